"""API tokens (django-rest-knox): made here, shown once by the caller, stored only as a digest."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.models import AuthToken
from rest_framework.exceptions import AuthenticationFailed

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def api_token_create(*, user: AbstractBaseUser, expiry_days: int | None = None) -> tuple[AuthToken, str]:
    """Make an API token for ``user``.

    Args:
        user: the token's user; the token can do what the user may (their permissions).
        expiry_days: lifetime in days; 0 never expires; None takes ``BARTER_API_TOKEN_EXPIRY_DAYS``.

    Returns:
        The stored token (its SHA-512 digest, ``expiry`` an aware UTC datetime or None) and the key, which is
        sent as ``Authorization: Token <key>``. The key is not stored: show it once, and never log it.

    Raises:
        ValueError: ``expiry_days`` is negative.
    """
    days = settings.BARTER_API_TOKEN_EXPIRY_DAYS if expiry_days is None else expiry_days
    if days < 0:
        raise ValueError(f"expiry_days must be >= 0 (0: never expires); was {days}")
    return AuthToken.objects.create(user=user, expiry=timedelta(days=days) if days else None)


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's ``Authorization: Token <key>`` authentication, refusing a key that is not UTF-8 with a 401 (knox
    decodes it unguarded, and the ``UnicodeDecodeError`` was a 500; DRF's own token authentication refused it)."""

    def authenticate_credentials(self, token: bytes) -> tuple[Any, AuthToken]:
        """Return ``(user, token)`` for a valid key.

        Raises:
            AuthenticationFailed: the key is not UTF-8, unknown, expired, or its user is inactive (401).
        """
        try:
            token.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuthenticationFailed(
                "Invalid token header. Token string should not contain invalid characters."
            ) from exc
        return super().authenticate_credentials(token)
