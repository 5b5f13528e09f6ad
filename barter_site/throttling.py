"""The API's throttles, and throttling of API requests that fail authentication.

:class:`UserRateThrottle` and :class:`AnonRateThrottle` are DRF's, except that an unreachable cache (Redis
down) lets the request through with a warning instead of failing every API call with a 500: the throttle is a
brake, not a gate, and ``/healthz`` reports Redis down.

DRF checks its throttles after authentication and permissions, so a request without a valid token (401) is
never counted, and ``AnonRateThrottle`` alone would not slow down anybody guessing tokens. The API's exception
handler is therefore :func:`api_exception_handler`: every 401 (no credentials, a wrong token) is counted per
client address by ``AnonRateThrottle`` (``BARTER_API_THROTTLE_ANON``, default 30/min); past the rate the
answer is 429 with ``Retry-After`` instead. Rendering stays with :func:`barter_site.errors.api_exception_handler`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from rest_framework import throttling
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, Throttled

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_THROTTLE_CLASSES) while it loads
    from rest_framework.request import Request
    from rest_framework.response import Response
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class _OpenWhileCacheIsDown(throttling.SimpleRateThrottle):
    """A DRF rate throttle that lets the request through, with a warning, when the cache cannot answer."""

    def allow_request(self, request: Request, view: APIView) -> bool:
        """Return whether the request is within the rate; True, with a warning, when the cache cannot answer."""
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            logger.warning(
                "API throttle skipped: the cache (Redis) cannot be reached (%s)", type(exc).__name__
            )
            return True


class UserRateThrottle(_OpenWhileCacheIsDown, throttling.UserRateThrottle):
    """DRF's per-user throttle (rate ``"user"``: ``BARTER_API_THROTTLE_USER``), open while the cache is down."""


class AnonRateThrottle(_OpenWhileCacheIsDown, throttling.AnonRateThrottle):
    """DRF's per-address throttle (rate ``"anon"``: ``BARTER_API_THROTTLE_ANON``), open while the cache is down."""


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
