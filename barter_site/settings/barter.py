"""Barter's own settings, read by ``base.py``: Celery and its queues, lost tasks and heartbeats, the daily
schedule, CoinGecko, exchanges and the simulator. Every variable is listed, with its default, in ``.env.example``.
"""

import re
from collections.abc import Iterable, Sequence
from datetime import time
from typing import overload

from celery.schedules import ParseException, crontab
from django.core.exceptions import ImproperlyConfigured

from barter_site.settings.environment import env

# Celery: REDIS_URL unset means every task runs in-process (eagerly), so the embedded default needs no broker.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
# One task at a time per worker process: the collect fan-out's tasks are long (HTTP) and should spread out.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis down must not hang a web request that enqueues (a queued simulation, a sweep): sending gives up after
# three tries within a few seconds, for the broker and for the result store alike (Celery's defaults retry the
# result store's connection 20 times a second apart), and the caller reports the queue as unavailable.
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2.0}
_SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
CELERY_TASK_PUBLISH_RETRY_POLICY = _SEND_RETRY_POLICY
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2.0
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": _SEND_RETRY_POLICY}
# The queue workers consume and tasks go to; give deployments that share one Redis different names.
CELERY_TASK_DEFAULT_QUEUE = env.str("BARTER_CELERY_QUEUE", default="celery")

# --- Lost tasks, heartbeats and the simulator's own queue (issue 11: "the chain survives a lost task", "nothing
# hangs"). The trading steps stay on CELERY_TASK_DEFAULT_QUEUE; the simulator's work (queued simulations, sweep
# chunks) goes to "<queue>-simulator", routed here and nowhere else, so a close step never waits behind a sweep.
# A worker started without -Q (`make worker`) consumes both queues; `-Q <queue>` makes a trading-only worker and
# `-Q <queue>-simulator` a simulator-only one (README, "Self-hosted with Celery beat").
BARTER_CELERY_SIMULATOR_QUEUE = f"{CELERY_TASK_DEFAULT_QUEUE}-simulator"
CELERY_TASK_QUEUES = {
    name: {"exchange": name, "routing_key": name}
    for name in (CELERY_TASK_DEFAULT_QUEUE, BARTER_CELERY_SIMULATOR_QUEUE)
}
CELERY_TASK_ROUTES = {
    name: {"queue": BARTER_CELERY_SIMULATOR_QUEUE}
    for name in (
        "simulator.run_simulation",
        "simulator.run_portfolio_simulation",
        "simulator.sweep_chunk",
        "simulator.sweep_finish",
        "simulator.walk_forward",
    )
}
# A task is acknowledged when it has finished (CELERY_TASK_ACKS_LATE above), and the idempotent trading tasks set
# reject_on_worker_lost: when the worker process running one dies (SIGKILL, out of memory), the message goes back
# to the queue and another process runs it again. Redis holds a message a worker took but never acknowledged (the
# whole worker gone, not only a child) for the visibility timeout, then gives it to another worker: 30 minutes is
# longer than any task runs (a collect that waits on CoinGecko's rate limit takes minutes; retry countdowns are at
# most a minute), so a slow task is not run twice at once, and a lost machine's work still comes back the same day.
# With prefetch 1 (CELERY_WORKER_PREFETCH_MULTIPLIER) a worker holds at most one unstarted message per process, so
# little waits on a worker that dies.
BARTER_CELERY_VISIBILITY_TIMEOUT_SECONDS = env.int("BARTER_CELERY_VISIBILITY_TIMEOUT_SECONDS", default=1800)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "visibility_timeout": BARTER_CELERY_VISIBILITY_TIMEOUT_SECONDS,
}
# One instrument's collect task is killed past this many seconds (Celery's hard time limit; keep it below the
# visibility timeout): the daily chain then records that collect as lost and still runs open and close.
BARTER_COLLECT_TIME_LIMIT_SECONDS = env.int("BARTER_COLLECT_TIME_LIMIT_SECONDS", default=1200)
# Every run (History), simulation and sweep beats while it works, every BARTER_HEARTBEAT_SECONDS; the reaper marks
# one whose last beat is older than BARTER_HEARTBEAT_STALE_SECONDS as interrupted (runs) or failed (simulations,
# sweeps): its worker died. Beat runs the reaper every BARTER_REAPER_INTERVAL_SECONDS; without a broker (the
# embedded mode) a request runs it at most that often (the first request after start-up does).
BARTER_HEARTBEAT_SECONDS = env.float("BARTER_HEARTBEAT_SECONDS", default=30.0)
BARTER_HEARTBEAT_STALE_SECONDS = env.float("BARTER_HEARTBEAT_STALE_SECONDS", default=300.0)
BARTER_REAPER_INTERVAL_SECONDS = env.float("BARTER_REAPER_INTERVAL_SECONDS", default=120.0)
# The embedded mode's request-time reaper (barter_site.heartbeat.reap_on_request_when_due); the tests turn it off
# where they count queries.
BARTER_REAPER_ON_REQUEST = True
# Without a broker, sweeps and simulations too large to answer inline run in this many background threads of the
# server process (never in the request); 0 runs them in the caller (the test settings do, to stay synchronous).
BARTER_SIMULATOR_BACKGROUND_THREADS = env.int("BARTER_SIMULATOR_BACKGROUND_THREADS", default=2)
# Load the engine's compiled code (Numba's cache; compiling it when the cache is empty) in a background thread of
# the server process as it starts, so that its first simulation does not pay it (make run turns it on for
# runserver). Off by default: management commands, workers and tests load it when they first need it.
BARTER_ENGINE_WARM_AT_START = env.bool("BARTER_ENGINE_WARM_AT_START", default=False)


class NotifyUrls(Sequence[str]):
    """The Apprise URLs of ``BARTER_NOTIFY_URLS``, a sequence of strings whose ``repr`` names only how many there
    are, so that no settings dump (Django's error page, ``diffsettings``, a log of the settings) shows one: they
    hold tokens and passwords. Not a tuple nor a list: Django's error page rebuilds those item by item."""

    __slots__ = ("_urls",)

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self._urls = tuple(urls)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._urls[index]

    def __len__(self) -> int:
        return len(self._urls)

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._urls)

    def __repr__(self) -> str:
        return f"<{len(self)} notification URL(s), hidden>"

    __str__ = __repr__


def _notify_urls(value: str) -> NotifyUrls:
    """Split ``BARTER_NOTIFY_URLS`` on commas (a comma inside one URL is written ``%2C``), dropping blanks."""
    return NotifyUrls(url.strip() for url in value.split(",") if url.strip())


# Notifications (issue 17, docs/notifications.md): where to send them, as Apprise URLs from the environment only
# (never logged or shown: the admin lists each channel by its scheme and host), and how hard to try. One send
# gives up after BARTER_NOTIFY_TIMEOUT_SECONDS to connect and as many to read; a failed send is tried again after
# BARTER_NOTIFY_RETRY_BASE_SECONDS, then twice that, and so on, BARTER_NOTIFY_MAX_ATTEMPTS attempts in all.
BARTER_NOTIFY_URLS = _notify_urls(env.str("BARTER_NOTIFY_URLS", default=""))
BARTER_NOTIFY_TIMEOUT_SECONDS = env.float("BARTER_NOTIFY_TIMEOUT_SECONDS", default=10.0)
BARTER_NOTIFY_MAX_ATTEMPTS = env.int("BARTER_NOTIFY_MAX_ATTEMPTS", default=5)
BARTER_NOTIFY_RETRY_BASE_SECONDS = env.float("BARTER_NOTIFY_RETRY_BASE_SECONDS", default=30.0)
# How often Celery beat (or, without a broker, a request) sends the pending deliveries whose dispatch was lost.
BARTER_NOTIFY_FLUSH_INTERVAL_SECONDS = env.float("BARTER_NOTIFY_FLUSH_INTERVAL_SECONDS", default=180.0)
# Without a broker: the background threads of the server process that make the attempts (never the caller).
BARTER_NOTIFY_BACKGROUND_THREADS = env.int("BARTER_NOTIFY_BACKGROUND_THREADS", default=2)
# After each live close step: audit the day before, alert on its mismatches, send the digest (docs/notifications.md).
BARTER_DAILY_REPORT = env.bool("BARTER_DAILY_REPORT", default=True)
# Without a broker: how long a process that ends (manage.py run_cycle from cron, a server stopping) waits for its
# background threads to finish the day's report and the sends; what is left is sent by a later flush.
BARTER_NOTIFY_EXIT_WAIT_SECONDS = env.float("BARTER_NOTIFY_EXIT_WAIT_SECONDS", default=30.0)


def _cron_schedule(name: str, default: str) -> crontab:
    """Return the 5-field cron expression of environment variable ``name`` as a Celery crontab (UTC)."""
    value = env.str(name, default=default)
    fields = value.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"found {len(fields)} field(s)")
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except (ValueError, ParseException) as exc:
        raise ImproperlyConfigured(
            f"{name} must be a cron expression of 5 fields 'minute hour day-of-month month day-of-week' in UTC, "
            f"e.g. {default!r}; was {value!r} ({str(exc).rstrip('.')})"
        ) from exc


_TIME_OF_DAY = re.compile(r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})")


def time_of_day_parse(name: str, value: str, *, default: str) -> time | None:
    """Return ``value`` ("HH:MM", 24-hour, UTC) as a ``datetime.time``, or None when it is empty (turned off).

    Args:
        name: the environment variable it came from, for the message.
        value: the variable's text; surrounding blanks are ignored.
        default: the variable's default, shown in the message as an example.

    Raises:
        ImproperlyConfigured: ``value`` is neither empty nor a time ``HH:MM`` from ``00:00`` to ``23:59``.
    """
    text = value.strip()
    if not text:
        return None
    match = _TIME_OF_DAY.fullmatch(text)
    if match is not None and int(match["hour"]) < 24 and int(match["minute"]) < 60:
        return time(int(match["hour"]), int(match["minute"]))
    raise ImproperlyConfigured(
        f"{name} must be a time of day HH:MM (24-hour, UTC) from 00:00 to 23:59, e.g. {default!r}, or empty to "
        f"turn it off; was {value!r}"
    )


# The missed-run alarm (notifications.alarm): when no successful close step exists for today (UTC) by this time,
# the alarm is raised once that day on every channel (beat checks every 10 minutes, or `manage.py
# check_missed_run`). Leave room after the daily cycle (00:40 UTC) for its retries; empty turns the alarm off.
BARTER_RUN_DEADLINE = time_of_day_parse(
    "BARTER_RUN_DEADLINE", env.str("BARTER_RUN_DEADLINE", default="03:00"), default="03:00"
)
# How /healthz?max_run_age_hours=N finds the last successful daily cycle: a dotted path to a callable taking no
# argument and returning an object with `finished_at` (aware UTC) or None. barter_site imports no app (the layers
# of pyproject.toml), so the health view reaches the runs app's selector through this setting.
BARTER_HEALTH_LAST_DAILY_CYCLE = "runs.selectors.last_daily_cycle"
BARTER_MISSED_RUN_CHECK_INTERVAL_SECONDS = 600.0


# Celery beat (`make beat`), the self-hosted alternative to the GitHub Action: the daily cycle after 00:35 UTC,
# when CoinGecko has the completed day. trading.daily_cycle chains collect (one task per instrument), open, close.
CELERY_BEAT_SCHEDULE = {
    "daily-cycle": {
        "task": "trading.daily_cycle",
        "schedule": _cron_schedule("BARTER_DAILY_CYCLE_CRON", "40 0 * * *"),
    },
    # The reapers (issue 11, "nothing hangs"): runs, simulations and sweeps whose worker died are finished.
    "reap-runs": {"task": "positions.reap_runs", "schedule": BARTER_REAPER_INTERVAL_SECONDS},
    "reap-simulations": {"task": "simulator.reap", "schedule": BARTER_REAPER_INTERVAL_SECONDS},
    # The missed-run alarm (issue 17): after BARTER_RUN_DEADLINE, no successful close step for today raises it.
    "missed-run-check": {
        "task": "notifications.missed_run_check",
        "schedule": BARTER_MISSED_RUN_CHECK_INTERVAL_SECONDS,
    },
    # Notifications whose dispatch was lost (a worker or a thread that died, the broker down when they were
    # made) are sent again (notifications.services.deliveries_flush).
    "flush-notifications": {"task": "notifications.flush", "schedule": BARTER_NOTIFY_FLUSH_INTERVAL_SECONDS},
}

# CoinGecko: the plan picks the host and the header the key travels in (never a query parameter).
COINGECKO_API_KEY = env.str("COINGECKO_API_KEY", default="")
COINGECKO_API_PLAN = env.str("COINGECKO_API_PLAN", default="demo")
COINGECKO_BASE_URL = env.str("COINGECKO_BASE_URL", default="")
COINGECKO_TIMEOUT_SECONDS = env.float("COINGECKO_TIMEOUT_SECONDS", default=20.0)
COINGECKO_MAX_RETRIES = env.int("COINGECKO_MAX_RETRIES", default=4)
COINGECKO_RETRY_AFTER_MAX_SECONDS = env.float("COINGECKO_RETRY_AFTER_MAX_SECONDS", default=65.0)
# Calls per minute shared by every process (through Redis when REDIS_URL is set); 30 is the Demo plan's limit.
# 0 turns the limiter off. A call waits at most COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS for a free slot.
COINGECKO_RATE_LIMIT_PER_MINUTE = env.int("COINGECKO_RATE_LIMIT_PER_MINUTE", default=30)
COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS = env.float("COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS", default=120.0)
BARTER_QUOTE_CURRENCY = env.str("BARTER_QUOTE_CURRENCY", default="usd").lower()
# How far back the collect step fills missing days; the Demo plan reaches back 365 days.
BARTER_BACKFILL_DAYS = env.int("BARTER_BACKFILL_DAYS", default=365)

# Exchanges through ccxt (instruments.sources.exchange.client.exchange_client): candles, and orders where a
# strategy trades for real. Keys have no defaults and are only needed by authenticated clients; they are never
# logged or stored. BARTER_EXCHANGE_<ID>_SANDBOX=true uses the exchange's testnet (bitget: demo trading).
# The ids of instruments.markets.SUPPORTED_EXCHANGE_IDS (settings import no app code).
_EXCHANGE_IDS = ("binance", "bybit", "bitget")
BARTER_EXCHANGE_TIMEOUT_SECONDS = env.float("BARTER_EXCHANGE_TIMEOUT_SECONDS", default=10.0)
BARTER_EXCHANGES = {
    exchange_id: {
        "api_key": env.str(f"BARTER_EXCHANGE_{exchange_id.upper()}_KEY", default=""),
        "secret": env.str(f"BARTER_EXCHANGE_{exchange_id.upper()}_SECRET", default=""),
        "password": env.str(f"BARTER_EXCHANGE_{exchange_id.upper()}_PASSWORD", default=""),
        "sandbox": env.bool(f"BARTER_EXCHANGE_{exchange_id.upper()}_SANDBOX", default=False),
    }
    for exchange_id in _EXCHANGE_IDS
}
# Kill switch of exchange strategies (positions.execution.trades): false opens nothing new; exits, stops and
# reconciliation still run. Each strategy has its own switch too (Strategy.trading_enabled).
BARTER_TRADING_ENABLED = env.bool("BARTER_TRADING_ENABLED", default=True)


# Simulator: runs that read more daily candles than this go to a Celery task with a progress bar (in-process
# without a broker); sweeps are split into about four chunks per worker.
BARTER_SIMULATOR_INLINE_CANDLES = env.int("BARTER_SIMULATOR_INLINE_CANDLES", default=200_000)
# ... and so do runs of more candle series than this: candles x (4 OHLC + one per distinct indicator), what a run
# costs in time and memory (simulator.services.simulation_candle_series). 2,000,000 float64 series values are
# 16 MB: 3 instruments x 10 years with 20 indicators run inline; 20 instruments x 17 years with 400 do not.
BARTER_SIMULATOR_INLINE_CANDLE_SERIES = env.int("BARTER_SIMULATOR_INLINE_CANDLE_SERIES", default=2_000_000)
BARTER_SIMULATOR_SWEEP_WORKERS = env.int("BARTER_SIMULATOR_SWEEP_WORKERS", default=2)
# Simulations run inside web requests at once per process (gunicorn worker); beyond, 503 with Retry-After, so
# that threads stay free for /healthz and the pages, and a worker's memory stays bounded (docs/reliability.md).
BARTER_SIMULATOR_INLINE_CONCURRENCY = env.int("BARTER_SIMULATOR_INLINE_CONCURRENCY", default=2)
