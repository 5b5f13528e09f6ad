"""CoinGecko wire payloads turned into domain values (:class:`~instruments.candles.Candle`), without floats.

The client parses JSON numbers as ``Decimal``; here every payload is checked for shape and every candle for
the OHLC invariants, and a payload that breaks either is refused whole with :class:`CoinGeckoPayloadError`
(so no partial day is ever built from it).

Facts (CoinGecko API v3 docs; the recordings in ``tests/fixtures/coingecko/``): ``/coins/{id}/ohlc`` returns
``[[close_time_ms, open, high, low, close], ...]`` whose candle length follows ``days`` (1-2: 30 minutes,
3-30: 4 hours, 31 and more: 4 days); the timestamps are candle CLOSE times. ``/ohlc/range?interval=daily``
returns the same rows for daily candles. ``market_chart[/range]`` returns ``{"prices": [[ms, price], ...]}``
whose last point may be "now", duplicated or out of order.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from barter_site.errors import ApplicationError
from instruments.candles import Candle, CandleInvalidError, price_point
from instruments.precision import PRICE_DECIMAL_PLACES, PRICE_MAX_DIGITS


class CoinGeckoPayloadError(ApplicationError):
    """A 2xx payload that is not what CoinGecko documents (wrong shape, null or negative price, high < low)."""

    retryable = True


def ohlc_candle_length(days: int | str) -> timedelta:
    """Return the candle length CoinGecko uses for ``/coins/{id}/ohlc?days=N``.

    Raises:
        ValueError: ``days`` is not one of 1, 7, 14, 30, 90, 180, 365 (CoinGecko's allowed values, plus 2).
    """
    allowed = {1, 2, 7, 14, 30, 90, 180, 365}
    if int(days) not in allowed:
        raise ValueError(f"days must be one of {', '.join(map(str, sorted(allowed)))}; was {days}")
    if int(days) <= 2:
        return timedelta(minutes=30)
    if int(days) <= 30:
        return timedelta(hours=4)
    return timedelta(days=4)


#: Timestamps before 1970 or from 2100 on are garbage, not market data (and far ones overflow ``datetime``).
_LAST_MS = 4_102_444_800_000
#: The largest price the candle columns hold (``numeric(38, 18)``: 20 digits before the point), and the
#: smallest one that does not round to zero there.
PRICE_MAX = Decimal(10) ** (PRICE_MAX_DIGITS - PRICE_DECIMAL_PLACES)
PRICE_MIN = Decimal(1).scaleb(-PRICE_DECIMAL_PLACES)


def ms_to_datetime(value: Any, *, where: str) -> datetime:
    """Convert a CoinGecko millisecond timestamp (``Decimal`` or int) to an aware UTC datetime.

    Raises:
        CoinGeckoPayloadError: not a number, or outside 1970-01-01 .. 2100-01-01 UTC.
    """
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or not Decimal(value).is_finite():
        raise CoinGeckoPayloadError(f"{where}: timestamp must be a number of milliseconds, was {value!r}")
    if not 0 <= value < _LAST_MS:
        raise CoinGeckoPayloadError(
            f"{where}: timestamp {value} ms lies outside 1970-01-01 .. 2100-01-01 UTC; is it in milliseconds?"
        )
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))


def _price(value: Any, *, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise CoinGeckoPayloadError(f"{where}: price must be a number, was {value!r}")
    price = Decimal(value)
    if not price.is_finite() or price <= 0:
        raise CoinGeckoPayloadError(f"{where}: price must be > 0, was {value}")
    if not PRICE_MIN <= price < PRICE_MAX:
        raise CoinGeckoPayloadError(
            f"{where}: price {value} cannot be stored (candle prices lie in [{PRICE_MIN}, {PRICE_MAX:.0E}))"
        )
    return price


def ohlc_candles(payload: Any, *, candle_length: timedelta, endpoint: str) -> list[Candle]:
    """Parse an ``/ohlc`` or ``/ohlc/range`` payload into candles keyed by OPEN time.

    Args:
        payload: the decoded JSON body: a list of ``[close_time_ms, open, high, low, close]``.
        candle_length: the length of these candles (:func:`ohlc_candle_length`, or one day for
            ``interval=daily``); ``open_time = close_time - candle_length``.
        endpoint: named in error messages.

    Returns:
        Candles sorted by ``open_time``, duplicates of one time reduced to the last one given.

    Raises:
        CoinGeckoPayloadError: the payload is not a list of 5-number rows, or a candle is invalid.
    """
    if not isinstance(payload, list):
        raise CoinGeckoPayloadError(
            f"{endpoint}: expected a list of candles, got {type(payload).__name__} {payload!r:.120}"
        )
    candles: dict[datetime, Candle] = {}
    for index, row in enumerate(payload):
        where = f"{endpoint} candle [{index}]"
        if not isinstance(row, list) or len(row) != 5:
            raise CoinGeckoPayloadError(f"{where}: expected [time, open, high, low, close], was {row!r}")
        close_time = ms_to_datetime(row[0], where=where)
        open_, high, low, close = (_price(v, where=where) for v in row[1:])
        try:
            candle = Candle(open_time=close_time - candle_length, open=open_, high=high, low=low, close=close)
        except CandleInvalidError as exc:
            raise CoinGeckoPayloadError(f"{where}: {exc.message}") from exc
        candles[candle.open_time] = candle
    return [candles[t] for t in sorted(candles)]


def market_chart_points(payload: Any, *, endpoint: str) -> list[Candle]:
    """Parse the ``prices`` of a ``market_chart`` or ``market_chart/range`` payload into price points.

    Points are sorted and de-duplicated (the last value given for a timestamp wins); each becomes a
    zero-length candle (:func:`~instruments.candles.price_point`) for :func:`~instruments.candles.candles_rollup`.

    Raises:
        CoinGeckoPayloadError: no ``prices`` list, a point that is not ``[ms, price]``, or a price <= 0 / null.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("prices"), list):
        raise CoinGeckoPayloadError(
            f"{endpoint}: expected an object with a 'prices' list, got {payload!r:.80}"
        )
    points: dict[datetime, Candle] = {}
    for index, row in enumerate(payload["prices"]):
        where = f"{endpoint} prices[{index}]"
        if not isinstance(row, list) or len(row) != 2:
            raise CoinGeckoPayloadError(f"{where}: expected [time_ms, price], was {row!r}")
        at = ms_to_datetime(row[0], where=where)
        points[at] = price_point(at, _price(row[1], where=where))
    return [points[t] for t in sorted(points)]


def simple_prices(payload: Any, *, coin_ids: list[str], vs_currency: str) -> dict[str, Decimal]:
    """Parse ``/simple/price`` (``{"bitcoin": {"usd": 49357}}``) into ``{coin_id: price}``.

    Coins missing from the payload are left out; a present but invalid price raises ``CoinGeckoPayloadError``.
    """
    if not isinstance(payload, dict):
        raise CoinGeckoPayloadError(f"/simple/price: expected an object, got {type(payload).__name__}")
    prices: dict[str, Decimal] = {}
    for coin_id in coin_ids:
        quote = payload.get(coin_id)
        if isinstance(quote, dict) and vs_currency in quote:
            prices[coin_id] = _price(quote[vs_currency], where=f"/simple/price {coin_id}.{vs_currency}")
    return prices
