"""An exchange (through ccxt) as a candle source of the collect step (its line in
:mod:`instruments.sources.registry`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.sources.base import CandleSource, DailyFetch
from instruments.sources.exchange.client import exchange_client
from instruments.sources.exchange.daily import exchange_source, fetch_daily_candles

if TYPE_CHECKING:
    from instruments.sources.coingecko.client import CoinGeckoClient


def _fetch(
    instrument: Instrument,
    *,
    days: Sequence[date],
    now: datetime,
    client: CoinGeckoClient | None,
    page_limit: int | None,
) -> DailyFetch:
    # The first stored day tells a day before the market's listing from a day the exchange failed to give.
    stored = InstrumentOHLC.objects.for_instrument(instrument, Timeframe.D1)
    first = stored.order_by("open_time").values_list("open_time", flat=True).first()
    return fetch_daily_candles(
        exchange_client(instrument.exchange_id),
        market_symbol=instrument.market_symbol,
        days=days,
        now=now,
        limit=page_limit,
        known_from=first.date() if first else None,
    )


#: The instrument's exchange (``exchange_id``) and market (``market_symbol``); reaches back to the listing.
EXCHANGE_SOURCE = CandleSource(
    fetch=_fetch,
    describe=lambda instrument: f"{instrument.exchange_id} ({instrument.market_symbol})",
    label=lambda instrument: exchange_source(instrument.exchange_id),
    reach=lambda today: None,
)
