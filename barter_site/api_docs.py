"""Swagger UI at ``/api/docs/``: for a token or a session, like the schema it shows; an anonymous visitor (a
person, in a browser) is sent to the login page, which brings them back."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBase
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated


class SwaggerView(SpectacularSwaggerView):
    """drf-spectacular's Swagger UI; ``SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]`` requires a user."""

    # DRF's stub says Response; dispatch() accepts any Django response here (finalize_response checks that).
    def handle_exception(self, exc: Exception) -> HttpResponseBase:  # type: ignore[override]
        """Redirect an unauthenticated request to ``LOGIN_URL`` (with ``?next=``); the rest as DRF does."""
        if isinstance(exc, NotAuthenticated | AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
