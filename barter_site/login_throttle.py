"""Throttling of failed logins on the admin login page (``LOGIN_URL``, the only login page).

After ``BARTER_LOGIN_FAILURES_MAX`` failed logins (default 5) for one username from one client address within
``BARTER_LOGIN_FAILURES_WINDOW_SECONDS`` (default 900, i.e. 15 minutes), the login page answers 429 with a
``Retry-After`` header and says how long to wait, without checking the password, until that window has passed.
Other usernames and other addresses are not affected, so one attacker cannot lock everybody out.

Failures are counted by a ``user_login_failed`` receiver (Django sends it from ``authenticate``) in Django's
cache (``CACHES``: Redis when ``REDIS_URL`` is set, so every gunicorn worker shares the counts). The check
before authenticating is :func:`login_throttled`, which wraps the admin's login view in ``barter_site/urls.py``.
The client address is found as the API throttle finds it (``REST_FRAMEWORK["NUM_PROXIES"]``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from redis.exceptions import RedisError
from rest_framework.settings import api_settings

_PREFIX = "login-failures"
logger = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str:
    """Return the client's address: ``REMOTE_ADDR``, or with ``NUM_PROXIES`` = n > 0 the n-th address from
    the right of ``X-Forwarded-For`` (what the closest of our proxies saw), as DRF's throttles do.

    Args:
        request: the request.

    Returns:
        An address such as ``"203.0.113.7"``; ``""`` when the request carries none.
    """
    remote_addr = str(request.META.get("REMOTE_ADDR", ""))
    num_proxies = api_settings.NUM_PROXIES
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if num_proxies and forwarded:
        addresses = [part.strip() for part in forwarded.split(",") if part.strip()]
        if addresses:
            return addresses[-min(num_proxies, len(addresses))]
    return remote_addr


def _keys(username: str, address: str) -> tuple[str, str]:
    # Hashed: usernames are user input (any length, any characters) and should not sit in the cache as typed.
    digest = hashlib.sha256(f"{username.casefold()}\0{address}".encode()).hexdigest()
    return f"{_PREFIX}:{digest}:count", f"{_PREFIX}:{digest}:since"


def login_failure_record(*, username: str, address: str) -> int:
    """Count one failed login of ``username`` from ``address``.

    The first failure opens a window of ``BARTER_LOGIN_FAILURES_WINDOW_SECONDS``; the count and the window end
    together. The increment is atomic in the cache (Redis ``INCR``), so concurrent failures are all counted.

    Args:
        username: the username typed (compared case-insensitively).
        address: the client address (:func:`client_address`).

    Returns:
        The number of failures in the current window, this one included.
    """
    window_seconds = settings.BARTER_LOGIN_FAILURES_WINDOW_SECONDS
    count_key, since_key = _keys(username, address)
    cache.add(since_key, time.time(), timeout=window_seconds)
    cache.add(count_key, 0, timeout=window_seconds)
    try:
        return int(cache.incr(count_key))
    except ValueError:  # the key expired between add and incr: this failure opens a new window
        cache.set(count_key, 1, timeout=window_seconds)
        return 1


def login_blocked_seconds(*, username: str, address: str) -> int:
    """Return how long ``username`` from ``address`` must wait before the next login attempt.

    Args:
        username: the username typed (compared case-insensitively).
        address: the client address (:func:`client_address`).

    Returns:
        Whole seconds until the window of failures ends, at least 1, once ``BARTER_LOGIN_FAILURES_MAX``
        failures were counted in it; 0 while logging in is allowed.
    """
    count_key, since_key = _keys(username, address)
    found = cache.get_many([count_key, since_key])
    if int(found.get(count_key, 0)) < settings.BARTER_LOGIN_FAILURES_MAX:
        return 0
    since = float(found.get(since_key, time.time()))
    remaining_seconds = since + settings.BARTER_LOGIN_FAILURES_WINDOW_SECONDS - time.time()
    return max(1, math.ceil(remaining_seconds))


def login_failures_reset(*, username: str, address: str) -> None:
    """Forget the failures of ``username`` from ``address`` (after a successful login)."""
    cache.delete_many(list(_keys(username, address)))


@receiver(user_login_failed, dispatch_uid="barter_login_failure_record")
def _login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    """Count a failed ``authenticate`` made for a request (the login form); other callers are not counted."""
    if request is None:
        return
    try:
        login_failure_record(username=str(credentials.get("username", "")), address=client_address(request))
    except RedisError as exc:  # Redis down: logging in still works, unthrottled (and /healthz says so)
        logger.warning("login throttle skipped: the cache (Redis) cannot be reached (%s)", type(exc).__name__)


def _blocked_seconds_or_zero(username: str, address: str) -> int:
    try:
        return login_blocked_seconds(username=username, address=address)
    except RedisError as exc:
        logger.warning("login throttle skipped: the cache (Redis) cannot be reached (%s)", type(exc).__name__)
        return 0


def _blocked_page(request: HttpRequest, *, username: str, wait_seconds: int) -> HttpResponse:
    """The admin login page with the form refused: status 429, ``Retry-After`` and how long to wait."""
    from django.contrib import admin

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
    return response


def login_throttled(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a login view: refuse a POST for a blocked username and address (429) before authenticating.

    A POST whose failure reaches the limit is answered with the same 429 page; a successful login forgets the
    failures of that username and address. GET (the empty form) is never refused. While the cache cannot be
    reached (Redis down) logins are not throttled, with a warning in the log.

    Args:
        view: the login view, e.g. ``admin.site.login``.

    Returns:
        The wrapped view.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        username = str(request.POST.get("username", ""))
        address = client_address(request)
        wait_seconds = _blocked_seconds_or_zero(username, address)
        if wait_seconds:
            return _blocked_page(request, username=username, wait_seconds=wait_seconds)
        response = view(request, *args, **kwargs)
        if request.user.is_authenticated:
            with contextlib.suppress(RedisError):  # if not, the failures expire with their window anyway
                login_failures_reset(username=username, address=address)
        elif wait_seconds := _blocked_seconds_or_zero(username, address):
            return _blocked_page(request, username=username, wait_seconds=wait_seconds)
        return response

    return wrapped
