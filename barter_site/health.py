"""The health endpoint ``/healthz``: is the database answering, and Redis when ``REDIS_URL`` is configured?

fly.io's proxy and its internal health checks call ``GET /healthz`` (``[[http_service.checks]]`` in
``fly.toml``). Those checks reach the machine over plain HTTP and may send the machine's private address as
``Host``, so the answer must come before ``SecurityMiddleware`` (which would redirect to HTTPS) and before
anything that validates the host against ``ALLOWED_HOSTS``. :class:`HealthCheckMiddleware` does that; the
same view is also routed at ``/healthz`` in ``barter_site/urls.py``, so the URL resolves like any other.

The checks are read-only, selectors in the sense of the style guide: each returns ``None`` or raises.

``/healthz?max_run_age_hours=N`` adds the check ``daily_cycle``: 503 when the last successful daily cycle (close
step) finished more than ``N`` hours ago or never, for an external monitor that must catch a dead server (a
scheduled GitHub workflow, an uptime service; docs/deploy.md, "Catch a dead server"). Without the parameter
nothing changes, so fly's routing check never takes the app out of service for a missed cycle.

``barter_site`` may import no app (the layers of ``pyproject.toml``), and the runs are the ``runs`` app's. The age
check therefore finds the selector by the dotted path in the setting ``BARTER_HEALTH_LAST_DAILY_CYCLE``
(``runs.selectors.last_daily_cycle``) through ``import_string`` when it is asked for, so the dependency points
from configuration to the app, as ``INSTALLED_APPS`` does, and no import of ``runs`` exists in this package.
"""

import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)

HEALTHZ_PATH = "/healthz"
# fly.toml gives the whole check 5 s; Redis gets less so that a hung broker still yields a 503, not a timeout.
REDIS_TIMEOUT_SECONDS = 2.0
CHECK_OK = "ok"
#: The query parameter of the daily-cycle age check, and its bounds in hours (a leap year at most).
MAX_RUN_AGE_PARAMETER = "max_run_age_hours"
MAX_RUN_AGE_HOURS_LIMIT = 24 * 366
DAILY_CYCLE_CHECK = "daily_cycle"


class DailyCycleLike(Protocol):
    """What the setting ``BARTER_HEALTH_LAST_DAILY_CYCLE``'s callable returns (or None): a finishing time."""

    @property
    def finished_at(self) -> datetime: ...


class MaxRunAgeError(ValueError):
    """The ``max_run_age_hours`` parameter is not one positive number of hours within the limit."""


def max_run_age_hours_parse(values: list[str]) -> float | None:
    """Return the ``max_run_age_hours`` query parameter as hours, or None when it is absent.

    Args:
        values: every value given for it (``request.GET.getlist``).

    Raises:
        MaxRunAgeError: given more than once, or not a finite number greater than 0 and at most 8784 (366 days).
    """
    if not values:
        return None
    if len(values) > 1:
        raise MaxRunAgeError(f"give {MAX_RUN_AGE_PARAMETER} once; was given {len(values)} times")
    text = values[0]
    try:
        hours = float(text)
    except ValueError:
        hours = math.nan
    if not (math.isfinite(hours) and 0 < hours <= MAX_RUN_AGE_HOURS_LIMIT):
        raise MaxRunAgeError(
            f"{MAX_RUN_AGE_PARAMETER} must be a number of hours greater than 0 and at most "
            f"{MAX_RUN_AGE_HOURS_LIMIT} (366 days), e.g. 26; was {text[:40]!r}"
        )
    return hours


def daily_cycle_check(*, max_age_hours: float, now: datetime) -> tuple[bool, str]:
    """Is the last successful daily cycle at most ``max_age_hours`` old at ``now``?

    The last cycle comes from the callable named by ``settings.BARTER_HEALTH_LAST_DAILY_CYCLE`` (see the module's
    docstring for why it is a setting).

    Args:
        max_age_hours: the oldest acceptable finishing time, hours before ``now``.
        now: aware datetime.

    Returns:
        ``(fresh, text)``: ``text`` is ``"last successful close run 2026-12-03T00:41:07+00:00 is 2.3 h old (max
        26)"`` or ``"no successful close run"``.

    Raises:
        django.db.DatabaseError: the database did not answer.
    """
    last_daily_cycle: Callable[[], DailyCycleLike | None] = import_string(
        settings.BARTER_HEALTH_LAST_DAILY_CYCLE
    )
    last = last_daily_cycle()
    if last is None:
        return False, "no successful close run"
    age_hours = (now - last.finished_at).total_seconds() / 3600
    return (
        age_hours <= max_age_hours,
        f"last successful close run {last.finished_at.isoformat(timespec='seconds')} is {age_hours:.1f} h old "
        f"(max {max_age_hours:g})",
    )


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

    With ``?max_run_age_hours=N`` the check ``daily_cycle`` joins them (:func:`daily_cycle_check`): its entry in
    ``checks`` says the last successful close run's time and age, and it fails when that is older than ``N`` hours
    or there is none. A bad ``N`` is 400 ``{"status": "bad_request", "errors": {"max_run_age_hours": [...]}}``.
    """
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    try:
        max_age_hours = max_run_age_hours_parse(request.GET.getlist(MAX_RUN_AGE_PARAMETER))
    except MaxRunAgeError as exc:
        return JsonResponse(
            {"status": "bad_request", "errors": {MAX_RUN_AGE_PARAMETER: [str(exc)]}}, status=400
        )
    checks = health_report(redis_url=settings.REDIS_URL)
    failed = [name for name, outcome in checks.items() if outcome != CHECK_OK]
    if max_age_hours is not None:
        try:
            fresh, checks[DAILY_CYCLE_CHECK] = daily_cycle_check(
                max_age_hours=max_age_hours, now=timezone.now()
            )
        except Exception as exc:  # a health check reports every failure instead of raising it
            logger.warning("health check %s failed: %s: %s", DAILY_CYCLE_CHECK, type(exc).__name__, exc)
            fresh, checks[DAILY_CYCLE_CHECK] = False, type(exc).__name__
        if not fresh:
            failed.append(DAILY_CYCLE_CHECK)
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
