"""Reads of instruments and candles: the one float candle reader, and what the collect step still lacks.

:func:`candles_float` is the one reader of stored candles as float64 arrays: the live cycle
(:func:`trading.selectors.candles_before`, for the engine) and the simulator (its charts and its backtests) both
call it, so both see the very same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import connection

from barter_site.errors import ApplicationError
from instruments.models import Instrument, InstrumentOHLC, Timeframe

#: Candles as floats straight from the database, without building a ``Decimal`` and a ``datetime`` per value
#: (which made reading the candles the slowest part of a replay). ``{since}`` is empty or a lower bound.
_CANDLES_SQL = {
    "postgresql": (
        "SELECT CAST(EXTRACT(EPOCH FROM open_time) AS BIGINT), CAST(open AS DOUBLE PRECISION), "
        "CAST(high AS DOUBLE PRECISION), CAST(low AS DOUBLE PRECISION), CAST(close AS DOUBLE PRECISION), "
        "CAST(volume AS DOUBLE PRECISION) FROM {table} "
        "WHERE instrument_id = %s AND timeframe = %s{since} AND open_time < %s ORDER BY open_time"
    ),
    "sqlite": (
        "SELECT CAST(strftime('%%s', open_time) AS INTEGER), CAST(open AS REAL), CAST(high AS REAL), "
        "CAST(low AS REAL), CAST(close AS REAL), CAST(volume AS REAL) FROM {table} "
        "WHERE instrument_id = %s AND timeframe = %s{since} AND open_time < %s ORDER BY open_time"
    ),
}
_SINCE_SQL = " AND open_time >= %s"
#: The price and volume columns of :class:`CandleColumns`, in the order the queries select them.
CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class CandleColumns:
    """Candles of one instrument as columns, oldest first.

    Attributes:
        open_time: shape (n,), int64, seconds since 1970-01-01 UTC of each candle's start.
        open, high, low, close: shape (n,), float64, C-contiguous, quote currency.
        volume: shape (n,), float64, C-contiguous, base units; NaN where the source gave none.
    """

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.open_time.shape[0])


def candles_float(
    instrument: Instrument, *, before: datetime, since: datetime | None = None, timeframe: str = Timeframe.D1
) -> CandleColumns:
    """Return the candles of ``instrument`` that opened in ``[since, before)``, as float64 columns.

    The one conversion of stored prices to floats (style guide rule 5): one raw query, the database casting
    each ``Decimal`` to a double, so neither a ``Decimal`` nor a model is built per candle; on PostgreSQL a binary
    ``COPY`` read straight into numpy (:func:`_candles_copied`), with no Python object per value either. With
    ``before`` a day boundary, only candles completed by then are returned, so the live cycle cannot look ahead.

    Args:
        instrument: whose candles.
        before: aware datetime; candles opening at or after it are left out.
        since: aware datetime; candles opening before it are left out. None: from the first candle.
        timeframe: one of :class:`~instruments.models.Timeframe`; default daily.

    Returns:
        :class:`CandleColumns`, oldest first (n = 0 when there are none).
    """
    if connection.vendor == "postgresql":
        return _candles_copied(instrument, before=before, since=since, timeframe=str(timeframe))
    sql = _CANDLES_SQL[connection.vendor].format(
        table=InstrumentOHLC._meta.db_table, since="" if since is None else _SINCE_SQL
    )
    bounds = [] if since is None else [connection.ops.adapt_datetimefield_value(since)]
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [instrument.pk, str(timeframe), *bounds, connection.ops.adapt_datetimefield_value(before)],
        )
        rows = cursor.fetchall()
    table = np.array(rows, dtype=np.float64).reshape(-1, 6) if rows else np.empty((0, 6), dtype=np.float64)
    return CandleColumns(
        open_time=table[:, 0].astype(np.int64),
        open=np.ascontiguousarray(table[:, 1]),
        high=np.ascontiguousarray(table[:, 2]),
        low=np.ascontiguousarray(table[:, 3]),
        close=np.ascontiguousarray(table[:, 4]),
        volume=np.ascontiguousarray(table[:, 5]),
    )


#: PostgreSQL's binary ``COPY`` of the candle columns: the open time as ``timestamptz`` (microseconds since
#: 2000-01-01 UTC) and the prices as doubles, no NULL (a volume unknown to the source is NaN).
_CANDLES_COPY_SQL = (
    "COPY (SELECT open_time, CAST(open AS DOUBLE PRECISION), CAST(high AS DOUBLE PRECISION), "
    "CAST(low AS DOUBLE PRECISION), CAST(close AS DOUBLE PRECISION), "
    "COALESCE(CAST(volume AS DOUBLE PRECISION), 'NaN') FROM {table} "
    "WHERE instrument_id = %s AND timeframe = %s{since} AND open_time < %s ORDER BY open_time) "
    "TO STDOUT (FORMAT BINARY)"
)
#: One row of that ``COPY``: the field count (int16), then each field's length (int32) and value, big-endian
#: (PostgreSQL's documentation, "COPY", "Binary Format").
_COPY_ROW = np.dtype(
    [("fields", ">i2"), ("time_length", ">i4"), ("time", ">i8")]
    + [
        (name, kind)
        for column in CANDLE_COLUMNS
        for name, kind in ((f"{column}_length", ">i4"), (column, ">f8"))
    ]
)
#: The binary COPY header: an 11-byte signature, a 32-bit flags field and a 32-bit header-extension length.
_COPY_HEADER = 19
#: Seconds from 1970-01-01 to 2000-01-01 UTC, PostgreSQL's timestamp epoch.
_POSTGRES_EPOCH_SECONDS = 946_684_800


def _candles_copied(
    instrument: Instrument, *, before: datetime, since: datetime | None, timeframe: str
) -> CandleColumns:
    """:func:`candles_float` on PostgreSQL: one binary ``COPY`` of the rows, parsed by numpy as fixed-width
    records (a year of one-minute candles, 527,040 rows, in about a second instead of four through rows of
    Python floats).

    Raises:
        RuntimeError: the database answered in a layout this parser does not expect (not 6 fields of 8 bytes).
    """
    sql = _CANDLES_COPY_SQL.format(
        table=InstrumentOHLC._meta.db_table, since="" if since is None else _SINCE_SQL
    )
    params: list[object] = [instrument.pk, timeframe, *([] if since is None else [since]), before]
    with connection.cursor() as cursor, cursor.cursor.copy(sql, params) as copy:
        data = b"".join(bytes(chunk) for chunk in copy)
    extension = int.from_bytes(data[15:_COPY_HEADER], "big")
    body = data[_COPY_HEADER + extension : -2]  # the trailer is a field count of -1
    rows = np.frombuffer(body, dtype=_COPY_ROW)
    lengths = [rows["time_length"], *(rows[f"{column}_length"] for column in CANDLE_COLUMNS)]
    if len(body) % _COPY_ROW.itemsize or (
        rows.size and not (np.all(rows["fields"] == 6) and np.all(np.array(lengths) == 8))
    ):
        raise RuntimeError(
            "the candles' binary COPY has an unexpected layout; expected 6 fields of 8 bytes a row"
        )
    return CandleColumns(
        open_time=(rows["time"] // 1_000_000 + _POSTGRES_EPOCH_SECONDS).astype(np.int64),
        **{column: rows[column].astype(np.float64) for column in CANDLE_COLUMNS},
    )


def sync_window(*, as_of: date, backfill_days: int) -> list[date]:
    """Return the days the collect step keeps complete for ``as_of``: the ``backfill_days`` days before it.

    Days are added up to the last one completed before ``as_of`` (``as_of`` itself is not included).
    """
    return [as_of - timedelta(days=n) for n in range(backfill_days, 0, -1)]


def days_missing(instrument: Instrument, *, as_of: date) -> list[date]:
    """Return the days of the window before ``as_of`` that have no daily candle, oldest first.

    The window is the ``BARTER_BACKFILL_DAYS`` days before ``as_of``. Once an instrument has candles, days
    before its first one are not asked for again: they precede the coin's data (a listing day is partial),
    so asking every day would only spend the rate limit.
    """
    window = sync_window(as_of=as_of, backfill_days=settings.BARTER_BACKFILL_DAYS)
    daily = InstrumentOHLC.objects.for_instrument(instrument, Timeframe.D1)
    first = daily.order_by("open_time").values_list("open_time", flat=True).first()
    stored = set(
        daily.filter(open_time__date__gte=window[0], open_time__date__lte=window[-1]).values_list(
            "open_time__date", flat=True
        )
    )
    return [d for d in window if d not in stored and (first is None or d >= first.date())]


def instruments_resolve(coingecko_ids: Sequence[str] | None) -> list[Instrument]:
    """Return the instruments named by CoinGecko id, or every active instrument when ``coingecko_ids`` is None.

    Raises:
        ApplicationError: (field ``instruments``) some ids are unknown; the message lists them and the known ones.
    """
    if coingecko_ids is None:
        return list(Instrument.objects.active().order_by("coingecko_id"))
    found = {i.coingecko_id: i for i in Instrument.objects.filter(coingecko_id__in=coingecko_ids)}
    unknown = [c for c in coingecko_ids if c not in found]
    if unknown:
        known = ", ".join(Instrument.objects.order_by("coingecko_id").values_list("coingecko_id", flat=True))
        raise ApplicationError(
            f"unknown instrument(s) {', '.join(map(repr, unknown))}: use CoinGecko coin ids of instruments "
            f"in the database ({known or 'none yet: add one in the admin or with import_ohlc'})",
            extra={"field": "instruments"},
        )
    return [found[c] for c in sorted(set(coingecko_ids))]
