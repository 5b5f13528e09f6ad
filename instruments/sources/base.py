"""What every candle source gives the collect step: :class:`DailyFetch`, and the shape of a source.

A source is a package under ``instruments/sources/`` (``coingecko/``, ``exchange/``) with a ``source`` module
holding one :class:`CandleSource`; :mod:`instruments.sources.registry` maps each ``Instrument.candle_source``
value to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from instruments.candles import Candle

if TYPE_CHECKING:
    from instruments.models import Instrument
    from instruments.sources.coingecko.client import CoinGeckoClient


@dataclass
class DailyFetch:
    """Daily candles fetched for one instrument.

    Attributes:
        candles: complete daily candles for the requested days, in time order.
        source: how they were built (stored on each candle), e.g. ``coingecko:ohlc_30m``, ``exchange:binance``.
        unavailable: requested days the source gave no complete data for, although it had data before them
            (days before the coin's first data point are not listed: they cannot ever exist), or every
            requested day when the source gave no data at all.
        requests: how many HTTP calls were made.
    """

    candles: list[Candle] = field(default_factory=list)
    source: str = ""
    unavailable: list[date] = field(default_factory=list)
    requests: int = 0


class DailyFetcher(Protocol):
    """Fetch the completed daily candles of ``days`` (UTC dates, oldest first) of one instrument.

    Args:
        instrument: the instrument, whose fields name it at the source.
        days: the UTC days wanted; days not over by ``now`` are ignored.
        now: aware UTC current time.
        client: the CoinGecko client to reuse (sources that do not call CoinGecko ignore it); None makes one
            from settings where needed.
        page_limit: candles per request for sources that page (None: the source's maximum).

    Raises:
        ApplicationError: the source's error (``CoinGeckoError``, ``ExchangeApiError``), with ``retryable``.
    """

    def __call__(
        self,
        instrument: Instrument,
        *,
        days: Sequence[date],
        now: datetime,
        client: CoinGeckoClient | None,
        page_limit: int | None,
    ) -> DailyFetch: ...


@dataclass(frozen=True, slots=True)
class CandleSource:
    """One candle source of the collect step and ``backfill``.

    Attributes:
        fetch: fetches an instrument's completed daily candles (:class:`DailyFetcher`).
        describe: names the source of an instrument for people, e.g. ``"CoinGecko"``, ``"binance (BTC/USDT)"``.
        label: names it in run summaries, e.g. ``"coingecko"``, ``"exchange:binance"``.
        reach: given today (UTC), the oldest day the source can supply and a note for people saying so, or
            None when it reaches back as far as the data goes.
    """

    fetch: DailyFetcher
    describe: Callable[[Instrument], str]
    label: Callable[[Instrument], str]
    reach: Callable[[date], tuple[date, str] | None]
