"""CoinGecko: ``client`` (HTTP only), ``errors`` (its failures, each saying whether to retry), ``schemas``
(payloads to candles), ``daily`` (completed daily candles), ``ratelimit`` (the calls-per-minute budget shared by
every worker), ``source`` (CoinGecko as the collect step's candle source)."""

from functools import lru_cache

from django.conf import settings

from instruments.sources.coingecko.client import CoinGeckoClient, CoinGeckoConfig
from instruments.sources.coingecko.ratelimit import CoinGeckoRateLimiter


def coingecko_client_from_settings() -> CoinGeckoClient:
    """Return a client configured by the ``COINGECKO_*`` settings, with the shared rate limiter."""
    return CoinGeckoClient(
        CoinGeckoConfig(
            api_key=settings.COINGECKO_API_KEY,
            plan=settings.COINGECKO_API_PLAN,
            base_url=settings.COINGECKO_BASE_URL,
            timeout_seconds=settings.COINGECKO_TIMEOUT_SECONDS,
            max_retries=settings.COINGECKO_MAX_RETRIES,
            retry_after_max_seconds=settings.COINGECKO_RETRY_AFTER_MAX_SECONDS,
        ),
        limiter=coingecko_rate_limiter_from_settings(),
    )


def coingecko_rate_limiter_from_settings() -> CoinGeckoRateLimiter | None:
    """Return this process's limiter for ``COINGECKO_RATE_LIMIT_PER_MINUTE`` calls a minute (None when 0).

    The budget lives in Redis at ``REDIS_URL`` (shared by every worker and the web process), else in memory
    (this process only). One limiter per process and configuration, so every client of the process shares it.
    """
    calls = settings.COINGECKO_RATE_LIMIT_PER_MINUTE
    if calls <= 0:
        return None
    return _rate_limiter(
        calls,
        settings.REDIS_URL or "memory://",
        settings.COINGECKO_API_PLAN,
        settings.COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS,
    )


@lru_cache(maxsize=8)
def _rate_limiter(calls: int, storage_uri: str, key: str, max_wait_seconds: float) -> CoinGeckoRateLimiter:
    return CoinGeckoRateLimiter(
        calls=calls, window_seconds=60, storage_uri=storage_uri, key=key, max_wait_seconds=max_wait_seconds
    )
