"""Lockout of failed logins on the admin login page (``LOGIN_URL``, the only login page), by django-axes.

After ``BARTER_LOGIN_FAILURES_MAX`` failed logins (default 5) of one username from one client address, that
username and address are locked out for ``BARTER_LOGIN_FAILURES_WINDOW_SECONDS`` (default 900, 15 minutes)
counted from the failure that locked them: the login page answers 429 with ``Retry-After`` and says how many
minutes to wait, without checking the password. Other usernames and other addresses are not affected, so one
attacker cannot lock everybody out. A successful login forgets that username and address's failures.

django-axes does the counting (its database handler: the ``axes`` tables, on SQLite and PostgreSQL alike, shared
by every process, listed read-only in the admin); the settings are in ``barter_site/settings/base.py``. This
module holds what axes calls back:

- :func:`client_address`: the client address the API throttles use (DRF's, with ``REST_FRAMEWORK["NUM_PROXIES"]``,
  i.e. ``BARTER_NUM_PROXIES``), so that one proxy-trust setting decides both;
- :func:`username_key`: usernames compared without case;
- :func:`lockout_response`: the admin login page with the wait, status 429;
- :class:`LoginLockoutBackend`: axes' check, skipped for ``authenticate`` calls without a request (management
  commands, tests' ``Client.login``), which no login form makes.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from rest_framework.throttling import BaseThrottle


def client_address(request: HttpRequest) -> str:
    """Return the client's address as the API throttles find it (DRF's ``BaseThrottle.get_ident``).

    ``REMOTE_ADDR`` when ``NUM_PROXIES`` is 0 (a forged ``X-Forwarded-For`` is ignored); with ``NUM_PROXIES`` = n
    > 0, the n-th address from the right of ``X-Forwarded-For`` (the one our closest proxy appended).

    Args:
        request: the request.

    Returns:
        An address such as ``"203.0.113.7"``; ``""`` when the request carries none.
    """
    return str(BaseThrottle().get_ident(request) or "")  # type: ignore[arg-type]


def username_key(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str:
    """The username axes counts failures under: as typed, without case (``Alice`` and ``alice`` are one)."""
    return str((credentials or {}).get("username") or "").casefold()


def _wait_seconds(request: HttpRequest, credentials: dict[str, Any] | None) -> int:
    """Whole seconds, at least 1, until the lockout of this username and address ends."""
    cool_off = get_cool_off(request) or timedelta(0)
    last_failure = None
    handler = AxesProxyHandler.get_implementation()
    for attempts in getattr(handler, "get_user_attempts", lambda *_: [])(request, credentials):
        latest = attempts.order_by("-attempt_time").values_list("attempt_time", flat=True).first()
        if latest is not None and (last_failure is None or latest > last_failure):
            last_failure = latest
    ends_at = (last_failure or timezone.now()) + cool_off
    return max(1, math.ceil((ends_at - timezone.now()).total_seconds()))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict[str, Any] | None
) -> HttpResponse:
    """The admin login page with the form refused: status 429, ``Retry-After`` and how many minutes to wait.

    Called by axes (``AXES_LOCKOUT_CALLABLE``) for a login of a locked-out username and address.
    """
    from django.contrib import admin

    username = str((credentials or {}).get("username") or request.POST.get("username", ""))
    wait_seconds = _wait_seconds(request, credentials)
    minutes = math.ceil(wait_seconds / 60)
    form = AuthenticationForm(request, data={"username": username})
    form.errors.clear()
    form.add_error(
        None,
        f"Too many failed logins for this username from your address. Wait {minutes} minute"
        f"{'s' if minutes != 1 else ''} and try again.",
    )
    context = {
        **admin.site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "form": form,
        "username": username,
    }
    response = TemplateResponse(request, "admin/login.html", context, status=429)
    response["Retry-After"] = str(wait_seconds)
    # Rendered here: axes' middleware runs after the view, where nothing renders a TemplateResponse any more.
    return response.render()


class LoginLockoutBackend(AxesStandaloneBackend):  # type: ignore[misc]  # axes ships no type information
    """axes' lockout check for logins made for a request (the login form); other callers are not checked.

    ``AxesStandaloneBackend`` refuses an ``authenticate`` without a request; management commands and the test
    client's ``login`` make such calls, and none of them is a login form an attacker can reach.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Raise ``AxesBackendPermissionDenied`` for a locked-out username and address; else let others decide."""
        if request is None:
            return None
        super().authenticate(request, username, password, **kwargs)  # raises when locked out, else None
        return None
