"""Swagger UI at ``/api/docs/``: for a token or a session, like the schema it shows; an anonymous visitor (a
person, in a browser) is sent to the login page, which brings them back.

The page has no inline script or style, as the Content-Security-Policy requires: drf-spectacular's split view
serves the start-up script from ``/api/docs/?script`` and our template (``templates/api_docs/swagger_ui.html``)
links the few page styles from a static file instead of a ``<style>`` element."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase, HttpResponseNotAllowed
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated


class SwaggerView(SpectacularSwaggerSplitView):
    """drf-spectacular's Swagger UI without inline script; ``SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]`` requires
    a user (for the page and for its script).

    GET and HEAD only: any other method is a plain 405 (the page's HTML renderer cannot render DRF's 405 and
    OPTIONS answers, which were 500s).
    """

    template_name = "api_docs/swagger_ui.html"
    http_method_names = ["get", "head"]

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:  # type: ignore[override]
        """405 with ``Allow: GET, HEAD``, as a plain Django response."""
        return HttpResponseNotAllowed(["GET", "HEAD"])

    # DRF's stub says Response; dispatch() accepts any Django response here (finalize_response checks that).
    def handle_exception(self, exc: Exception) -> HttpResponseBase:  # type: ignore[override]
        """Redirect an unauthenticated request to ``LOGIN_URL`` (with ``?next=``); the rest as DRF does."""
        if isinstance(exc, NotAuthenticated | AuthenticationFailed):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
