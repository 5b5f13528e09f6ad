"""Completed daily candles of one spot market from an exchange, in pages of ccxt ``fetch_ohlcv``.

Each page asks for an explicit window ``[since, until]`` of at most ``limit`` days (``fetch_ohlcv(symbol, "1d",
since, limit, {"until": ...})``), and the next page starts where the window ended. An explicit end matters: with
a start only, Bybit's ``/v5/market/kline`` answers the *newest* ``limit`` candles (its list is newest first and
ends at now), so following the last candle's time would skip years. Windows hold only days that are wanted:
runs of days already stored cost no request. The window never reaches the current UTC day, whose candle is
still moving, and a candle that is not over by ``now`` is dropped if an exchange sends it anyway.

Page sizes are the exchanges' documented maxima for spot klines: Binance 1000 (``/api/v3/klines``, default
500), Bybit 1000 (``/v5/market/kline``, default 200), Bitget 200 (``/api/v2/spot/market/history-candles``,
which ccxt uses for old windows). ccxt's rate limiter spaces the pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from instruments.candles import Candle
from instruments.sources.base import DailyFetch
from instruments.sources.exchange.client import exchange_error
from instruments.sources.exchange.schemas import ExchangePayloadError, ohlcv_candles

DAY = timedelta(days=1)
DAY_MS = 86_400_000
#: Candles per request, per exchange (the documented maximum of its spot kline endpoint).
PAGE_LIMITS: dict[str, int] = {"binance": 1000, "bybit": 1000, "bitget": 200}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def exchange_source(exchange_id: str) -> str:
    """Return the ``source`` stored on candles from ``exchange_id``, e.g. ``"exchange:binance"``."""
    return f"exchange:{exchange_id}"


def _ms(day: date) -> int:
    return int((datetime.combine(day, time(0), tzinfo=UTC) - EPOCH).total_seconds()) * 1000


def _windows(wanted: list[date], limit: int) -> list[tuple[date, date]]:
    """Split sorted ``wanted`` days into windows of at most ``limit`` days that each start on a wanted day."""
    windows: list[tuple[date, date]] = []
    index = 0
    while index < len(wanted):
        start = wanted[index]
        end = start + (limit - 1) * DAY
        windows.append((start, min(end, wanted[-1])))
        while index < len(wanted) and wanted[index] <= end:
            index += 1
    return windows


def fetch_daily_candles(
    client: Any,
    *,
    market_symbol: str,
    days: Sequence[date],
    now: datetime,
    limit: int | None = None,
    known_from: date | None = None,
) -> DailyFetch:
    """Fetch the completed daily candles of ``days`` from an exchange, page by page.

    Args:
        client: the ccxt exchange from :func:`~instruments.sources.exchange.client.exchange_client`.
        market_symbol: ccxt unified spot symbol, e.g. ``"BTC/USDT"``.
        days: the UTC days wanted, any order; days not over by ``now`` (today, the future) are ignored.
        now: aware UTC current time.
        limit: candles per request; default :data:`PAGE_LIMITS` of the exchange (1000, bitget 200).
        known_from: a day the market is known to have had a candle (the instrument's first stored one): wanted
            days from it on that the exchange does not return are reported unavailable even when the first
            page returned nothing.

    Returns:
        :class:`~instruments.sources.base.DailyFetch` with the candles of the wanted days in time
        order, ``source`` ``exchange:<id>``, ``requests`` the pages fetched, and ``unavailable`` the wanted days
        the exchange did not return although it had candles before them (days before the market's first candle
        precede its listing and are not listed), or every wanted day when it returned no candle at all.

    Raises:
        ExchangeApiError: a subclass from :func:`~instruments.sources.exchange.client.exchange_error` when a page
            fails (``retryable`` on 429, 418, timeouts and network errors; not on an unknown symbol), or
            :class:`~instruments.sources.exchange.schemas.ExchangePayloadError` for a malformed candle or one
            that does not open at 00:00 UTC. No candle is returned then: the caller stores nothing.
    """
    exchange_id = str(client.id)
    source = exchange_source(exchange_id)
    wanted = sorted({d for d in days if d + DAY <= now.date()})  # day d is over at d + 1 00:00 UTC
    if not wanted:
        return DailyFetch(source=source)
    page = min(limit or PAGE_LIMITS.get(exchange_id, 200), 1000)
    what = f"fetching 1d candles of {market_symbol}"
    by_time: dict[datetime, Candle] = {}
    requests = 0
    for first, last in _windows(wanted, page):
        since_ms, until_ms = _ms(first), _ms(last) + DAY_MS - 1
        try:
            rows = client.fetch_ohlcv(market_symbol, "1d", since_ms, page, {"until": until_ms})
        except Exception as exc:
            raise exchange_error(exc, what=what, exchange_id=exchange_id) from exc
        requests += 1
        for candle in ohlcv_candles(rows, what=f"{exchange_id} fetch_ohlcv {market_symbol} 1d"):
            if candle.open_time.time() != time(0):
                raise ExchangePayloadError(
                    f"{exchange_id} returned a 1d candle of {market_symbol} opening at "
                    f"{candle.open_time.isoformat()}, not 00:00 UTC; Barter's days are UTC days",
                    extra={"exchange_id": exchange_id, "retryable": False},
                )
            if first <= candle.open_time.date() <= last and candle.open_time + DAY <= now:
                by_time[candle.open_time] = candle
    candles = [by_time[t] for t in sorted(by_time)]
    got = {c.open_time.date() for c in candles}
    starts = [d for d in (candles[0].open_time.date() if candles else None, known_from) if d is not None]
    listed_from = min(starts) if starts else None
    unavailable = [d for d in wanted if d not in got and (listed_from is None or d >= listed_from)]
    wanted_set = set(wanted)
    return DailyFetch(
        candles=[c for c in candles if c.open_time.date() in wanted_set],
        source=source,
        unavailable=unavailable,
        requests=requests,
    )
