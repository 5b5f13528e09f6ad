"""The API's throttles, and throttling of API requests that fail authentication.

:class:`UserRateThrottle` and :class:`AnonRateThrottle` identify requests as DRF's do (the user; the client
address, ``NUM_PROXIES`` deciding how much of ``X-Forwarded-For`` to believe) with DRF's rates, but count
atomically with the ``limits`` library: a moving window kept in Redis when ``REDIS_URL`` is set (one Lua script
checks and records a request, so concurrent requests of every gunicorn worker and machine are all counted), in
process memory otherwise (``BARTER_THROTTLE_STORAGE_URI``). DRF's own ``SimpleRateThrottle`` reads the list of
past requests, appends and writes it back: concurrent requests overwrite each other's entries, and 1,204 of
1,500 concurrent requests passed a 600/min limit. A request past the rate is refused with 429 and
``Retry-After`` (the seconds until the oldest counted request leaves the window). Storage that cannot be
reached (Redis down) lets the request through with a warning instead of failing every API call with a 500: the
throttle is a brake, not a gate, and ``/healthz`` reports Redis down.

DRF checks its throttles after authentication and permissions, so a request without a valid token (401) is
never counted, and ``AnonRateThrottle`` alone would not slow down anybody guessing tokens. The API's exception
handler is therefore :func:`api_exception_handler`: every 401 (no credentials, a wrong token) is counted per
client address by ``AnonRateThrottle`` (``BARTER_API_THROTTLE_ANON``, default 30/min); past the rate the
answer is 429 with ``Retry-After`` instead. Rendering stays with :func:`barter_site.errors.api_exception_handler`.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from rest_framework import throttling
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, Throttled

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_THROTTLE_CLASSES) while it loads
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

#: Prefix of the throttles' keys in the storage (``barter-api/<n>/<seconds>/second/throttle_user_42``).
NAMESPACE = "barter-api"


@functools.cache
def throttle_storage(uri: str) -> Storage:
    """The ``limits`` storage at ``uri`` (``redis://host:port/db`` or ``memory://``), one per process and URI.

    Redis gets short socket timeouts (seconds): a Redis that does not answer must not hold up requests.
    Errors are wrapped as ``limits.errors.StorageError``.
    """
    options: dict[str, float | str | bool] = {"wrap_exceptions": True}
    if uri.startswith(("redis://", "rediss://")):
        options.update(socket_connect_timeout=1.0, socket_timeout=1.0)
    storage = storage_from_string(uri, **options)
    assert isinstance(storage, Storage)  # noqa: S101 (a synchronous scheme: memory://, redis://)
    return storage


def throttle_storage_reset() -> None:
    """Forget every count of the configured storage (tests: each starts with empty throttles)."""
    try:
        throttle_storage(settings.BARTER_THROTTLE_STORAGE_URI).reset()
    except StorageError as exc:
        logger.warning("API throttle storage not reset: it cannot be reached (%s)", exc)


class _AtomicRateThrottle(throttling.SimpleRateThrottle):
    """A DRF rate throttle (its ``scope``, rate and cache key) counted atomically by ``limits``' moving window.

    Open, with a warning, while the storage cannot be reached.
    """

    _wait_seconds: float = 0.0

    def allow_request(self, request: Request, view: APIView) -> bool:
        """Count the request and return whether it is within the rate (True while the storage is down).

        A refused request is not counted; :meth:`wait` then says when the next one is allowed.
        """
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        num_requests, duration = self.parse_rate(self.rate)
        if num_requests is None or duration is None:
            return True
        item = RateLimitItemPerSecond(num_requests, duration, namespace=NAMESPACE)
        limiter = MovingWindowRateLimiter(throttle_storage(settings.BARTER_THROTTLE_STORAGE_URI))
        try:
            if limiter.hit(item, key):
                return True
            reset_time = limiter.get_window_stats(item, key).reset_time
        except StorageError as exc:
            logger.warning(
                "API throttle skipped: the cache (Redis) cannot be reached (%s)",
                type(exc.storage_error).__name__,
            )
            return True
        self._wait_seconds = max(reset_time - time.time(), 0.0)
        return False

    def wait(self) -> float | None:
        """Whole seconds until the oldest counted request leaves the window (at least 1), after a refusal."""
        return float(max(1, math.ceil(self._wait_seconds)))


class UserRateThrottle(_AtomicRateThrottle, throttling.UserRateThrottle):
    """Per user (rate ``"user"``: ``BARTER_API_THROTTLE_USER``), counted atomically, open while Redis is down."""


class AnonRateThrottle(_AtomicRateThrottle, throttling.AnonRateThrottle):
    """Per client address (rate ``"anon"``: ``BARTER_API_THROTTLE_ANON``), counted atomically, open while Redis
    is down."""


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Count a 401 against the client address's anonymous rate; past it, answer 429 instead; then render.

    Args:
        exc: the exception a view raised.
        context: DRF's context, with ``request`` and ``view``.

    Returns:
        The response of :func:`barter_site.errors.api_exception_handler` (``None`` for exceptions DRF does
        not handle, which Django turns into a 500).
    """
    from barter_site.errors import api_exception_handler as render_exception

    request, view = context.get("request"), context.get("view")
    if isinstance(exc, NotAuthenticated | AuthenticationFailed) and request is not None and view is not None:
        throttle = AnonRateThrottle()
        if not throttle.allow_request(request, view):
            exc = Throttled(wait=throttle.wait())
    return render_exception(exc, context)
