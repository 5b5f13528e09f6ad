"""Arrow IPC (feather) files with columns ``date`` (timestamp; naive means UTC), ``open``, ``high``, ``low``,
``close`` and optionally ``volume``, read with ``pyarrow.feather.read_table``. Rows are numbered from 1 in place of
lines. float64 columns go through ``repr`` (the shortest text that round-trips, so ``4261.48`` stays
``4261.48``), never ``Decimal(float)``.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from pathlib import Path

from instruments.sources.files.common import (
    PRICE_FIELDS,
    TIME_COLUMNS,
    Collector,
    OHLCFileError,
    RowError,
    decimal_cell,
)

#: The first bytes of an Arrow IPC file, and the extensions that name one.
FEATHER_MAGIC = b"ARROW1"
FEATHER_SUFFIXES = (".feather", ".arrow", ".ipc")


def _arrow_decimal(value: object, name: str) -> Decimal:
    if value is None:
        raise RowError(f"{name} is empty")
    if isinstance(value, float):
        # repr gives the shortest text that round-trips: 4261.48 -> Decimal("4261.48"), not 4261.4799999...
        return Decimal(repr(value))
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        return decimal_cell(value, name)
    raise RowError(f"{name} has type {type(value).__name__}; expected a number")


def read_feather(path: Path, collector: Collector, column_prefix: str | None) -> None:
    """Read a feather file's rows into ``collector``.

    Raises:
        OHLCFileError: the file is not readable Arrow, lacks a date or price column, or its date is no timestamp.
    """
    # Imported here: loading pyarrow takes a while and only feather files need it.
    import pyarrow as pa
    from pyarrow import feather

    try:
        table = feather.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise OHLCFileError(
            f"{path.name}: not a readable feather file: {exc}", extra={"path": str(path)}
        ) from None
    lowered = {name.strip().lower(): name for name in table.column_names}
    time_names = [lowered[name] for name in ("date", *TIME_COLUMNS) if name in lowered]
    missing = [name for name in PRICE_FIELDS if name not in lowered]
    if not time_names or missing:
        needed = ([] if time_names else ["date"]) + missing
        raise OHLCFileError(
            f"{path.name}: no {', '.join(needed)} column; the columns are {', '.join(table.column_names)}",
            extra={"path": str(path)},
        )
    time_column = table.column(time_names[0])
    if not pa.types.is_timestamp(time_column.type):
        raise OHLCFileError(
            f"{path.name}: column {time_names[0]} has type {time_column.type}; expected a timestamp",
            extra={"path": str(path)},
        )
    times = time_column.to_pylist()
    prices = [table.column(lowered[name]).to_pylist() for name in PRICE_FIELDS]
    volumes = table.column(lowered["volume"]).to_pylist() if "volume" in lowered else [None] * table.num_rows
    rows = zip(times, *prices, volumes, strict=True)
    for row, (moment, open_, high, low, close, volume) in enumerate(rows, 1):
        collector.rows_read += 1
        try:
            if moment is None:
                raise RowError("date is empty")
            collector.add(
                row,
                moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC),
                _arrow_decimal(open_, "open"),
                _arrow_decimal(high, "high"),
                _arrow_decimal(low, "low"),
                _arrow_decimal(close, "close"),
                None if volume is None else _arrow_decimal(volume, "volume"),
            )
        except RowError as exc:
            collector.error(row, str(exc))
