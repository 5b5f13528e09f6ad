"""How the OpenAPI schema (drf-spectacular) describes Barter's authentication; registered by
``barter_site.apps.BarterSiteConfig.ready``."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object

from barter_site.authentication import SCHEME


class TokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # drf-spectacular's __init_subclass__ is untyped
    """``Authorization: Token <key>`` (knox tokens), under the name DRF's token authentication had."""

    target_class = "barter_site.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        """An API key in the ``Authorization`` header, prefixed with ``Token``."""
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix=SCHEME)
