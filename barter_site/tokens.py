"""API tokens (django-rest-knox): made here, shown once by the caller, stored only as a digest."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from knox.models import AuthToken

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
    created: tuple[Any, str] = AuthToken.objects.create(
        user=user, expiry=timedelta(days=days) if days else None
    )
    return created
