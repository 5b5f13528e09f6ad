"""URL configuration: the admin, the REST API with its schema and docs, and the apps' pages."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from barter_site import lockout_admin  # noqa: F401 - registers django-axes' tables, read-only, in the admin
from barter_site.api_docs import SwaggerView
from barter_site.health import HEALTHZ_PATH, healthz

urlpatterns = [
    # Normally answered by HealthCheckMiddleware before routing; routed too so that the URL resolves.
    path(HEALTHZ_PATH.lstrip("/"), healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # Both need a token or a session (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]); Swagger UI is a page for
    # people, so it sends an anonymous visitor to the login page instead of answering 401.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("instruments.urls")),
    path("api/", include("runs.urls")),
    path("api/", include("positions.urls")),
    path("api/", include("trading.api_urls")),
    path("api/", include("simulator.api_urls")),
    path("simulator/", include("simulator.page_urls")),
    path("", include("positions.page_urls")),
]

# Errors Django answers itself (an unknown URL, a body over DATA_UPLOAD_MAX_MEMORY_SIZE, ...): JSON under /api/,
# HTML pages elsewhere; a body over the limit is 413 (barter_site.errors).
handler400 = "barter_site.errors.bad_request"
handler403 = "barter_site.errors.permission_denied"
handler404 = "barter_site.errors.page_not_found"
handler500 = "barter_site.errors.server_error"
