"""API authentication: django-rest-knox tokens sent as ``Authorization: Token <key>``.

This module is imported by DRF's settings whenever ``rest_framework.views`` is (scripts and worker code import
that before ``django.setup()``), so it imports no model: knox's authentication class imports its token model at
import time and is therefore loaded on first use.
"""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

#: The header's scheme, as DRF's tokens had it and ``scripts/daily_cycle.py`` sends it (knox's
#: ``AUTH_HEADER_PREFIX``, set to the same in settings).
SCHEME = "Token"


class TokenAuthentication(BaseAuthentication):
    """knox's ``TokenAuthentication`` (only the key's SHA-512 digest is stored; expired tokens are refused and
    deleted), with a key that is not UTF-8 refused with a 401 (knox decodes it unguarded: a 500)."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        """Return ``(user, token)`` for a valid ``Authorization: Token <key>``, None without that header.

        Raises:
            AuthenticationFailed: a malformed header, a key that is not UTF-8, unknown or expired, or an inactive
                user (401).
        """
        parts = get_authorization_header(request).split()
        if len(parts) == 2 and parts[0].lower() == SCHEME.lower().encode():
            try:
                parts[1].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise AuthenticationFailed(
                    "Invalid token header. Token string should not contain invalid characters."
                ) from exc
        from knox.auth import TokenAuthentication as KnoxTokenAuthentication  # imports knox's model

        user_and_token: tuple[Any, Any] | None = KnoxTokenAuthentication().authenticate(request)
        return user_and_token

    def authenticate_header(self, request: Request) -> str:
        """``WWW-Authenticate: Token`` on a 401."""
        return SCHEME
