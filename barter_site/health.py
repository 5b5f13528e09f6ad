"""The health endpoint ``/healthz``: is the database answering, and Redis when ``REDIS_URL`` is configured?

fly.io's proxy and its internal health checks call ``GET /healthz`` (``[[http_service.checks]]`` in
``fly.toml``). Those checks reach the machine over plain HTTP and may send the machine's private address as
``Host``, so the answer must come before ``SecurityMiddleware`` (which would redirect to HTTPS) and before
anything that validates the host against ``ALLOWED_HOSTS``. :class:`HealthCheckMiddleware` does that; the
same view is also routed at ``/healthz`` in ``barter_site/urls.py``, so the URL resolves like any other.

The checks are read-only, selectors in the sense of the style guide: each returns ``None`` or raises.
"""

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)

HEALTHZ_PATH = "/healthz"
# fly.toml gives the whole check 5 s; Redis gets less so that a hung broker still yields a 503, not a timeout.
REDIS_TIMEOUT_SECONDS = 2.0
CHECK_OK = "ok"


def database_check(*, alias: str = DEFAULT_DB_ALIAS) -> None:
    """Run ``SELECT 1`` on a database connection.

    Args:
        alias: the ``DATABASES`` alias to check.

    Raises:
        django.db.DatabaseError: the database did not answer (connection refused, authentication, timeout).
    """
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def redis_check(*, url: str, timeout_seconds: float = REDIS_TIMEOUT_SECONDS) -> None:
    """Send ``PING`` to the Redis server at ``url`` on a fresh connection, then close it.

    Args:
        url: a redis-py URL, ``redis://[user:password@]host:port/db`` or ``rediss://`` for TLS.
        timeout_seconds: connect and read timeout, seconds.

    Raises:
        redis.RedisError: the server refused, timed out or answered with an error.
    """
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds)
    try:
        client.ping()
    finally:
        client.close()


def health_report(*, redis_url: str) -> dict[str, str]:
    """Run every configured check.

    Args:
        redis_url: ``settings.REDIS_URL``; empty means Redis is not configured and not checked.

    Returns:
        ``{"database": "ok", "redis": "ok"}``: per check, ``"ok"`` or the class name of the error it raised
        (``"OperationalError"``, ``"ConnectionError"``). Details go to the log, never to the response.
    """
    checks: dict[str, Callable[[], None]] = {"database": lambda: database_check()}
    if redis_url:
        checks["redis"] = lambda: redis_check(url=redis_url)
    report: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
        except Exception as exc:  # a health check reports every failure instead of raising it
            logger.warning("health check %s failed: %s: %s", name, type(exc).__name__, exc)
            report[name] = type(exc).__name__
        else:
            report[name] = CHECK_OK
    return report


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Answer 200 ``{"status": "ok", "checks": {...}}`` when every check passes, else 503 naming the failures.

    The 503 body is ``{"status": "unavailable", "failed": ["redis"], "checks": {"database": "ok", "redis":
    "ConnectionError"}}``. Only GET and HEAD are allowed. Nothing here reads the ``Host`` header.
    """
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    checks = health_report(redis_url=settings.REDIS_URL)
    failed = [name for name, outcome in checks.items() if outcome != CHECK_OK]
    if failed:
        return JsonResponse({"status": "unavailable", "failed": failed, "checks": checks}, status=503)
    return JsonResponse({"status": "ok", "checks": checks})


class HealthCheckMiddleware:
    """Answer ``/healthz`` before any later middleware can redirect it to HTTPS or refuse its ``Host``.

    Place it before ``django.middleware.security.SecurityMiddleware``; every other path goes on unchanged.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Serve ``/healthz`` here; pass every other request on."""
        if request.path_info == HEALTHZ_PATH:
            return healthz(request)
        return self.get_response(request)
