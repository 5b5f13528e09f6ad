"""Reads for the trading cycle: candles as engine arrays, and the conversions between engine and stored values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from instruments.models import Instrument
from instruments.precision import decimal_quantize
from instruments.selectors import candles_float
from trading.engine.types import CandleArrays

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_seconds(moment: datetime) -> int:
    """Seconds since 1970-01-01 UTC of an aware datetime."""
    return int((moment - EPOCH).total_seconds())


def from_seconds(seconds: int) -> datetime:
    """The aware UTC datetime of ``seconds`` since epoch."""
    return EPOCH + timedelta(seconds=int(seconds))


def to_decimal(value: float) -> Decimal:
    """Convert an engine float to a stored ``Decimal``: its shortest round-trip text, rounded to the stored
    precision (the one conversion on the way out of the engine)."""
    return decimal_quantize(Decimal(repr(float(value))))


def candles_before(instrument: Instrument, before: datetime) -> CandleArrays:
    """Return every daily candle of ``instrument`` that opened before ``before``, as engine arrays.

    Only completed candles as of ``before`` (a day boundary) are returned, so the live cycle cannot look ahead.
    Read by :func:`instruments.selectors.candles_float`, the reader the simulator uses too; volumes unknown to
    the source are NaN.
    """
    columns = candles_float(instrument, before=before)
    return CandleArrays(
        symbol=instrument.symbol,
        open_time_seconds=columns.open_time,
        open=columns.open,
        high=columns.high,
        low=columns.low,
        close=columns.close,
        volume=columns.volume,
    )
