"""ccxt OHLCV rows to :class:`~instruments.candles.Candle` values.

ccxt's ``fetch_ohlcv`` returns ``[[open_time_ms, open, high, low, close, volume], ...]``: the open time as an int
of milliseconds since the epoch (UTC) and the others as Python floats (ccxt parses the exchange's decimal strings
with ``float``; ``volume`` may be None). Each float becomes a ``Decimal`` once, here, through its shortest
``repr`` (``Decimal(repr(42283.58))`` is ``Decimal("42283.58")``): that repr is the decimal string the exchange
sent whenever it had at most 15 significant digits (every price and volume in Binance's and Bybit's candles),
where ``Decimal(42283.58)`` would carry the float's binary error. No float goes past this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from instruments.candles import Candle, CandleInvalidError
from instruments.sources.exchange.client import ExchangeApiError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ExchangePayloadError(ExchangeApiError):
    """A candle row from the exchange is malformed or breaks an OHLC invariant; nothing of the page is used."""


def _decimal(value: Any, *, name: str, row: int) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number, was {type(value).__name__} {value!r} (row {row})")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, was {value!r} (row {row})")
    # repr gives the shortest string that round-trips the float: the exchange's own decimal text.
    return Decimal(repr(value) if isinstance(value, float) else str(value))


def ohlcv_candles(rows: Sequence[Any], *, what: str = "fetch_ohlcv") -> list[Candle]:
    """Turn ccxt OHLCV rows into candles, refusing the whole page when one row is malformed.

    Args:
        rows: ``[[open_time_ms, open, high, low, close, volume], ...]``; ``open_time_ms`` an int (ms since
            1970-01-01 UTC), prices in the quote currency and volume in the base currency as floats (ints and
            decimal strings are accepted too), volume may be None.
        what: names the call in error messages, e.g. ``"binance fetch_ohlcv BTC/USDT 1d"``.

    Returns:
        The candles, in the rows' order.

    Raises:
        ExchangePayloadError: a row is not a list of 6, its time is not an int of ms, a price is missing, not
            finite or <= 0, or the row breaks an OHLC invariant (``high < low``...); the message names the row.
    """
    candles = []
    for index, row in enumerate(rows):
        try:
            if not isinstance(row, list | tuple) or len(row) != 6:
                raise ValueError(f"expected [ms, open, high, low, close, volume], got {row!r} (row {index})")
            ms = row[0]
            if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
                raise ValueError(f"open time must be an int of ms since the epoch, was {ms!r} (row {index})")
            open_, high, low, close = (
                _decimal(row[i], name=name, row=index)
                for i, name in enumerate(("open", "high", "low", "close"), 1)
            )
            volume = None if row[5] is None else _decimal(row[5], name="volume", row=index)
            candles.append(Candle(EPOCH + timedelta(milliseconds=ms), open_, high, low, close, volume))
        except (ValueError, CandleInvalidError) as exc:
            raise ExchangePayloadError(
                f"{what} returned a malformed candle: {exc}; the page is refused, nothing of it is stored",
                extra={"row": index, "retryable": False},
            ) from None
    return candles
