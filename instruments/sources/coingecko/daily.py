"""Completed daily candles from CoinGecko, on the Demo (free) plan and on paid plans.

Demo plan (daily candles and ``/ohlc/range`` are paid-only):
- the newest completed day comes from the 30-minute candles of ``/coins/{id}/ohlc?days=2``, and only when
  its 48 candles cover it entirely (source ``coingecko:ohlc_30m``);
- older days (a backfill of up to 365 days) come from the hourly prices of ``/coins/{id}/market_chart/range``
  in windows of at most 90 days (CoinGecko serves hourly points for ranges of 2-90 days): open = first price of
  the day, high = max, low = min, close = last (source ``coingecko:market_chart_hourly``). A day counts only when
  no stretch of it longer than :data:`HOURLY_MAX_GAP` lacks a point.
Paid plans: ``/coins/{id}/ohlc/range?interval=daily`` in windows of 180 days (source ``coingecko:ohlc_daily``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from instruments.candles import Candle, candles_rollup
from instruments.sources.base import DailyFetch
from instruments.sources.coingecko.client import CoinGeckoClient
from instruments.sources.coingecko.schemas import market_chart_points, ohlc_candle_length, ohlc_candles

DAY = timedelta(days=1)
#: Hourly points arrive at irregular minutes and one is sometimes missing (the recorded 2024-11 series has a
#: 2 h 05 min hole on 2024-11-25); a day with a hole longer than this is not built.
HOURLY_MAX_GAP = timedelta(hours=3)
MARKET_CHART_WINDOW = timedelta(days=90)
OHLC_RANGE_WINDOW = timedelta(days=180)
SOURCE_OHLC_30M = "coingecko:ohlc_30m"
SOURCE_MARKET_CHART = "coingecko:market_chart_hourly"
SOURCE_OHLC_DAILY = "coingecko:ohlc_daily"


def day_start(day: date) -> datetime:
    """Return 00:00 UTC of ``day``."""
    return datetime.combine(day, time(0), tzinfo=UTC)


def fetch_daily_candles(
    client: CoinGeckoClient, *, coin_id: str, vs_currency: str, days: Sequence[date], now: datetime
) -> DailyFetch:
    """Fetch complete daily candles for ``days`` (UTC dates, each already over by ``now``).

    Args:
        client: the CoinGecko client.
        coin_id: CoinGecko coin id.
        vs_currency: quote currency, e.g. ``"usd"``.
        days: the missing days wanted, any order; days not over by ``now`` are ignored.
        now: aware UTC current time (decides which endpoint covers which days).

    Returns:
        :class:`DailyFetch`.

    Raises:
        CoinGeckoError, CoinGeckoPayloadError: the request failed or its payload is malformed.
    """
    wanted = sorted({d for d in days if day_start(d) + DAY <= now})
    if not wanted:
        return DailyFetch()
    if client.config.plan == "pro":
        return _fetch_ohlc_range(client, coin_id=coin_id, vs_currency=vs_currency, wanted=wanted)
    if wanted[0] >= (now - 2 * DAY).date() + DAY:
        # Every wanted day lies within the last 48 hours, which the 30-minute candles of days=2 cover.
        return _fetch_ohlc_days2(client, coin_id=coin_id, vs_currency=vs_currency, wanted=wanted)
    return _fetch_market_chart(client, coin_id=coin_id, vs_currency=vs_currency, wanted=wanted)


def _result(
    candles: list[Candle], wanted: list[date], source: str, requests: int, data_from: datetime | None
) -> DailyFetch:
    """Keep the wanted days; a wanted day missing although the coin had data from its start is unavailable.

    ``data_from`` None means the payloads held no data at all: every wanted day is then unavailable (reported),
    not silently skipped as if it preceded the coin's listing.
    """
    wanted_set = set(wanted)
    kept = [c for c in candles if c.open_time.date() in wanted_set]
    got = {c.open_time.date() for c in kept}
    unavailable = [d for d in wanted if d not in got and (data_from is None or day_start(d) >= data_from)]
    return DailyFetch(candles=kept, source=source, unavailable=unavailable, requests=requests)


def _fetch_ohlc_days2(
    client: CoinGeckoClient, *, coin_id: str, vs_currency: str, wanted: list[date]
) -> DailyFetch:
    length = ohlc_candle_length(2)
    payload = client.api.get_coin_ohlc_by_id(id=coin_id, vs_currency=vs_currency, days=2)
    half_hours = ohlc_candles(payload, candle_length=length, endpoint=f"/coins/{coin_id}/ohlc?days=2")
    rollup = candles_rollup(half_hours, period=DAY, span=length)
    # The 48-hour window starts mid-day: its first day is partial by design, not missing.
    first = half_hours[0].open_time if half_hours else None
    return _result(rollup.candles, wanted, SOURCE_OHLC_30M, 1, first)


def _windows(wanted: list[date], width: timedelta) -> list[tuple[datetime, datetime]]:
    start, end = day_start(wanted[0]), day_start(wanted[-1]) + DAY
    windows = []
    while start < end:
        windows.append((start, min(start + width, end)))
        start += width
    return windows


def _fetch_market_chart(
    client: CoinGeckoClient, *, coin_id: str, vs_currency: str, wanted: list[date]
) -> DailyFetch:
    points: list[Candle] = []
    windows = _windows(wanted, MARKET_CHART_WINDOW)
    for start, end in windows:
        payload = client.api.get_coin_market_chart_range_by_id(
            id=coin_id,
            vs_currency=vs_currency,
            from_timestamp=int(start.timestamp()),
            to_timestamp=int(end.timestamp()),
        )
        points += market_chart_points(payload, endpoint=f"/coins/{coin_id}/market_chart/range")
    rollup = candles_rollup(points, period=DAY, span=timedelta(0), max_gap=HOURLY_MAX_GAP)
    # Hourly points start up to HOURLY_MAX_GAP into a day; a coin's first (listing) day is partial, not missing.
    first = min((p.open_time for p in points), default=None)
    data_from = first - HOURLY_MAX_GAP if first else None
    return _result(rollup.candles, wanted, SOURCE_MARKET_CHART, len(windows), data_from)


def _fetch_ohlc_range(
    client: CoinGeckoClient, *, coin_id: str, vs_currency: str, wanted: list[date]
) -> DailyFetch:
    candles: list[Candle] = []
    windows = _windows(wanted, OHLC_RANGE_WINDOW)
    for start, end in windows:
        # The daily candle of day D closes at D+1 00:00, so ask up to the close of the window's last day.
        payload = client.api.get_coin_ohlc_by_id_range(
            id=coin_id,
            vs_currency=vs_currency,
            from_timestamp=int(start.timestamp()),
            to_timestamp=int(end.timestamp()),
            interval="daily",
        )
        candles += ohlc_candles(payload, candle_length=DAY, endpoint=f"/coins/{coin_id}/ohlc/range")
    first = min((c.open_time for c in candles), default=None)
    return _result(candles, wanted, SOURCE_OHLC_DAILY, len(windows), first)
