"""Users, permissions and API tokens for tests: one place, so a test names what its user may do.

``user_with(...)`` makes a user holding exactly the named permissions (``"app_label.codename"``);
``api_token(user)`` makes a knox token and returns its key; ``token_client(user)`` is an ``APIClient`` sending
``Authorization: Token <key>``, as the daily script does.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Permission, User
from rest_framework.test import APIClient

from barter_site.tokens import api_token_create

#: Every read of the API and the dashboard: instruments, candles, positions, history, orders, strategies, audits.
VIEW_ALL = (
    "instruments.view_instrument",
    "instruments.view_instrumentohlc",
    "positions.view_position",
    "runs.view_history",
    "positions.view_order",
    "trading.view_strategy",
    "trading.view_portfolio",
    "trading.view_portfoliostrategy",
    "positions.view_limitstate",
    "positions.view_strategyaudit",
)
#: The cycle token's only permission.
RUN_STEPS = ("trading.run_steps",)
#: What the strategies API's tests need: reads, and add/change of strategies (paper).
STRATEGY_EDITOR = (*VIEW_ALL, "trading.add_strategy", "trading.change_strategy")


def permissions(*names: str) -> list[Permission]:
    """The ``Permission`` rows of ``names`` (``"app_label.codename"``).

    Raises:
        LookupError: a name matches no permission (a typo, or an app whose migrations did not run).
    """
    found = []
    for name in names:
        app_label, codename = name.split(".")
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is None:
            raise LookupError(f"no permission {name!r}")
        found.append(permission)
    return found


def user_with(username: str, *perms: str, **fields: Any) -> User:
    """Create a user holding exactly ``perms`` (``fields`` such as ``is_staff=True`` go to ``create_user``)."""
    # Any: ``fields`` are model fields of several types, as django-stubs types create_user's ``**extra_fields``.
    fields.setdefault("password", "unused-password-123")
    user = get_user_model().objects.create_user(username, **fields)
    user.user_permissions.set(permissions(*perms))
    return user


def api_token(user: AbstractBaseUser, *, expiry_days: int | None = None) -> str:
    """A new API token of ``user`` (knox: only its digest is stored); returns the key."""
    return api_token_create(user=user, expiry_days=expiry_days)[1]


def token_client(user: AbstractBaseUser) -> APIClient:
    """An ``APIClient`` authenticating as ``user`` with a new token (``Authorization: Token <key>``)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
    return client
