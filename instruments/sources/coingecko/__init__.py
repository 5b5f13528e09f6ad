"""CoinGecko: ``client`` (HTTP only), ``schemas`` (payloads to candles), ``daily`` (completed daily candles)."""

from django.conf import settings

from instruments.sources.coingecko.client import CoinGeckoClient, CoinGeckoConfig


def coingecko_client_from_settings() -> CoinGeckoClient:
    """Return a client configured by the ``COINGECKO_*`` settings."""
    return CoinGeckoClient(
        CoinGeckoConfig(
            api_key=settings.COINGECKO_API_KEY,
            plan=settings.COINGECKO_API_PLAN,
            base_url=settings.COINGECKO_BASE_URL,
            timeout_seconds=settings.COINGECKO_TIMEOUT_SECONDS,
            max_retries=settings.COINGECKO_MAX_RETRIES,
            retry_after_max_seconds=settings.COINGECKO_RETRY_AFTER_MAX_SECONDS,
        )
    )
