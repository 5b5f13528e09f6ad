"""CoinGecko as a candle source of the collect step (its line in :mod:`instruments.sources.registry`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from instruments.sources.base import CandleSource, DailyFetch
from instruments.sources.coingecko import coingecko_client_from_settings
from instruments.sources.coingecko.daily import fetch_daily_candles

if TYPE_CHECKING:
    from instruments.models import Instrument
    from instruments.sources.coingecko.client import CoinGeckoClient


def _fetch(
    instrument: Instrument,
    *,
    days: Sequence[date],
    now: datetime,
    client: CoinGeckoClient | None,
    page_limit: int | None,
) -> DailyFetch:
    # page_limit is the exchanges' business: CoinGecko's windows are fixed by its plans (daily.py).
    return fetch_daily_candles(
        client or coingecko_client_from_settings(),
        coin_id=instrument.coingecko_id,
        vs_currency=instrument.quote_currency,
        days=days,
        now=now,
    )


def _reach(today: date) -> tuple[date, str] | None:
    """Paid plans reach back to the coin's first day; the Demo plan ``BARTER_BACKFILL_DAYS`` (365) days."""
    if settings.COINGECKO_API_PLAN == "pro":
        return None
    reach = today - timedelta(days=settings.BARTER_BACKFILL_DAYS)
    return reach, (
        f"CoinGecko's Demo plan reaches back {settings.BARTER_BACKFILL_DAYS} days: days before "
        f"{reach.isoformat()} were not asked for; use an exchange source for older history"
    )


#: CoinGecko, by the instrument's ``coingecko_id`` and ``quote_currency``.
COINGECKO_SOURCE = CandleSource(
    fetch=_fetch,
    describe=lambda instrument: "CoinGecko",
    label=lambda instrument: "coingecko",
    reach=_reach,
)
