"""CoinGecko's calls-per-minute budget, shared by every client that uses the same storage.

CoinGecko counts calls per API key (the Demo plan allows 30 a minute; paid plans more). When the collect step
fans out over several Celery workers, each worker's client must take its calls from one shared budget, or the
workers together overrun it and spend their retries on 429s. :class:`CoinGeckoRateLimiter` keeps a moving window
of the last calls in Redis (``limits``' ``MovingWindowRateLimiter``: an atomic Lua script adds a call only while
fewer than ``calls`` lie in the last ``window_seconds``), or in process memory without Redis.

No Django here: ``coingecko_client_from_settings()`` builds the limiter from settings and hands it to the client.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from instruments.sources.coingecko.errors import CoinGeckoRateLimitWaitError

logger = logging.getLogger(__name__)

#: Prefix of the limiter's keys in Redis (``barter-coingecko/<calls>/<window>/second/<key>``).
NAMESPACE = "barter-coingecko"
#: Seconds added to every computed wait so the oldest call has surely left the window when we look again.
WAIT_MARGIN_SECONDS = 0.01


def _wait(seconds: float) -> None:
    # An Event's wait rather than time.sleep: tests stub time.sleep to skip urllib3's backoff, and the limiter
    # must still really wait there (a stubbed sleep would turn it into a busy loop on Redis).
    threading.Event().wait(seconds)


class CoinGeckoRateLimiter:
    """At most ``calls`` CoinGecko calls in any ``window_seconds``, across every process sharing ``storage_uri``.

    Args:
        calls: calls allowed per window, >= 1 (the Demo plan: 30 per 60 s).
        window_seconds: length of the moving window in whole seconds, >= 1.
        storage_uri: ``redis://host:port/db`` to share the budget between processes (Celery workers, web),
            or ``memory://`` for this process only.
        key: which budget; clients with the same storage and key share one (one per CoinGecko plan/key).
        max_wait_seconds: the longest :meth:`acquire` waits for a free slot before giving up.
        sleep: how to wait, in seconds (tests may pass their own).

    Raises:
        ValueError: ``calls`` or ``window_seconds`` is below 1, or ``max_wait_seconds`` is negative.
    """

    def __init__(
        self,
        *,
        calls: int,
        window_seconds: int = 60,
        storage_uri: str = "memory://",
        key: str = "default",
        max_wait_seconds: float = 120.0,
        sleep: Callable[[float], None] = _wait,
    ) -> None:
        if calls < 1 or window_seconds < 1 or max_wait_seconds < 0:
            raise ValueError(
                "the CoinGecko rate limit needs calls >= 1, window_seconds >= 1 and max_wait_seconds >= 0; "
                f"was calls={calls}, window_seconds={window_seconds}, max_wait_seconds={max_wait_seconds}"
            )
        self.calls = calls
        self.window_seconds = window_seconds
        self.storage_uri = storage_uri
        self.key = key
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        options: dict[str, float | str | bool] = {"wrap_exceptions": True}
        if storage_uri.startswith(("redis://", "rediss://")):
            # A Redis that does not answer must not hang a call: fail fast and let acquire() decide.
            options.update(socket_connect_timeout=2.0, socket_timeout=2.0)
        self._storage = storage_from_string(storage_uri, **options)
        self._item = RateLimitItemPerSecond(calls, window_seconds, namespace=NAMESPACE)
        self._limiter = MovingWindowRateLimiter(self._storage)

    def acquire(self) -> float:
        """Take one call slot, waiting while the window is full; return the seconds waited.

        When the storage (Redis) cannot be reached the call goes ahead unlimited, with a warning: CoinGecko's
        own 429s, which the client retries with ``Retry-After``, are then the only brake.

        Raises:
            CoinGeckoRateLimitWaitError: (retryable) no slot would free within ``max_wait_seconds``.
        """
        started = time.monotonic()
        while True:
            try:
                if self._limiter.hit(self._item, self.key):
                    return time.monotonic() - started
                frees_at = self._limiter.get_window_stats(self._item, self.key).reset_time
            except StorageError as exc:
                logger.warning(
                    "CoinGecko rate limit storage unavailable (%s); calling without the limit", exc
                )
                return time.monotonic() - started
            wait_seconds = max(frees_at - time.time(), 0.0) + WAIT_MARGIN_SECONDS
            waited = time.monotonic() - started
            if waited + wait_seconds > self.max_wait_seconds:
                raise CoinGeckoRateLimitWaitError(
                    f"CoinGecko rate limit: all {self.calls} calls of the last {self.window_seconds} s are taken "
                    f"and none frees within the {self.max_wait_seconds:g} s a call may wait (waited "
                    f"{waited:.1f} s); try later, or raise COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS",
                )
            self._sleep(wait_seconds)

    def reset(self) -> None:
        """Forget every call counted under this limiter's key (tests, or after changing plans)."""
        try:
            self._limiter.clear(self._item, self.key)
        except StorageError as exc:
            logger.warning("CoinGecko rate limit storage unavailable (%s); nothing reset", exc)
