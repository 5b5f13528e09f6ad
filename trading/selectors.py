"""Reads for the trading cycle: candles as engine arrays, and the conversions between engine and stored values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db import connection

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.precision import price_quantize
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
    return price_quantize(Decimal(repr(float(value))))


#: Candles as floats straight from the database: the engine's one conversion on the way in, without building a
#: ``Decimal`` and a ``datetime`` per value (which made ``candles_before`` the slowest part of a replay).
_CANDLES_SQL = {
    "postgresql": (
        "SELECT CAST(EXTRACT(EPOCH FROM open_time) AS BIGINT), CAST(open AS DOUBLE PRECISION), "
        "CAST(high AS DOUBLE PRECISION), CAST(low AS DOUBLE PRECISION), CAST(close AS DOUBLE PRECISION), "
        "CAST(volume AS DOUBLE PRECISION) FROM {table} "
        "WHERE instrument_id = %s AND timeframe = %s AND open_time < %s ORDER BY open_time"
    ),
    "sqlite": (
        "SELECT CAST(strftime('%%s', open_time) AS INTEGER), CAST(open AS REAL), CAST(high AS REAL), "
        "CAST(low AS REAL), CAST(close AS REAL), CAST(volume AS REAL) FROM {table} "
        "WHERE instrument_id = %s AND timeframe = %s AND open_time < %s ORDER BY open_time"
    ),
}


def candles_before(instrument: Instrument, before: datetime) -> CandleArrays:
    """Return every daily candle of ``instrument`` that opened before ``before``, as engine arrays.

    Only completed candles as of ``before`` (a day boundary) are returned, so the live cycle cannot look ahead.
    Prices become float64 here, once (style guide rule 5); volumes unknown to the source are NaN.
    """
    sql = _CANDLES_SQL[connection.vendor].format(table=InstrumentOHLC._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [instrument.pk, Timeframe.D1.value, connection.ops.adapt_datetimefield_value(before)]
        )
        rows = cursor.fetchall()
    table = np.array(rows, dtype=np.float64).reshape(-1, 6) if rows else np.empty((0, 6), dtype=np.float64)
    return CandleArrays(
        symbol=instrument.symbol,
        open_time=table[:, 0].astype(np.int64),
        open=np.ascontiguousarray(table[:, 1]),
        high=np.ascontiguousarray(table[:, 2]),
        low=np.ascontiguousarray(table[:, 3]),
        close=np.ascontiguousarray(table[:, 4]),
        volume=np.ascontiguousarray(table[:, 5]),
    )
