"""The headed CSV layouts: ``csv`` (basana's ``datetime,open,high,low,close,volume``) and ``cryptodatadownload``
(an optional banner line, then a header such as ``date,symbol,open,high,low,close,volume_btc,volume``).

Header names are matched case-insensitively; the time column may have any name of
:data:`~instruments.sources.files.common.TIME_COLUMNS`. The volume kept is the base-currency one: of the columns
whose name starts with ``volume``, the first (CryptoDataDownload lists the base volume first).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from instruments.sources.files.common import (
    PRICE_FIELDS,
    TIME_COLUMNS,
    Collector,
    OHLCFileError,
    RowError,
    add_cells,
    csv_rows,
)

#: A first line that is CryptoDataDownload's banner rather than a header.
CDD_BANNER = re.compile(r"cryptodatadownload|^\s*timestamps are|^\s*created on", re.IGNORECASE)


def header_index(cells: Sequence[str]) -> dict[str, int]:
    """Return the column of ``time``, ``open``, ``high``, ``low``, ``close`` and ``volume`` found in a header."""
    lowered = [cell.strip().lower() for cell in cells]
    index: dict[str, int] = {}
    for name in PRICE_FIELDS:
        if name in lowered:
            index[name] = lowered.index(name)
    time_names = [name for name in TIME_COLUMNS if name in lowered]
    if time_names:
        index["time"] = lowered.index(time_names[0])
    volumes = [i for i, cell in enumerate(lowered) if cell.startswith("volume")]
    if volumes:
        index["volume"] = volumes[0]
    return index


def read_headed(path: Path, collector: Collector, *, cryptodatadownload: bool) -> None:
    """Read a headed CSV file's rows into ``collector``; ``cryptodatadownload`` allows a banner line first.

    Raises:
        OHLCFileError: the file is empty or its header lacks the time or a price column.
    """
    rows = csv_rows(path)
    index: dict[str, int] = {}
    header_line = 0
    for position, (line, cells) in enumerate(rows):
        index = header_index(cells)
        header_line = line
        # A CryptoDataDownload file may open with a banner; its header is the next line.
        if cryptodatadownload and position == 0 and not all(name in index for name in PRICE_FIELDS):
            continue
        break
    if header_line == 0:
        raise OHLCFileError(f"{path.name}: the file is empty", extra={"path": str(path)})
    missing = [name for name in ("time", *PRICE_FIELDS) if name not in index]
    if missing:
        names = {"time": f"a time ({'/'.join(TIME_COLUMNS)})"}
        raise OHLCFileError(
            f"{path.name} line {header_line}: the header has no "
            f"{', '.join(names.get(m, m) for m in missing)} column; pass --format if this is another layout",
            extra={"path": str(path), "line": header_line},
        )
    t, o, h, lo, c = index["time"], index["open"], index["high"], index["low"], index["close"]
    v = index.get("volume")
    width = max(index.values()) + 1
    for line, cells in rows:
        collector.rows_read += 1
        try:
            if len(cells) < width:
                raise RowError(f"{len(cells)} columns, the header needs at least {width}")
            add_cells(collector, line, cells, time_at=t, ohlcv=(o, h, lo, c, v))
        except RowError as exc:
            collector.error(line, str(exc))


def read_csv(path: Path, collector: Collector, column_prefix: str | None) -> None:
    """Read a ``csv`` file (header, then one candle a row) into ``collector``.

    Raises:
        OHLCFileError: the file is empty or its header lacks the time or a price column.
    """
    read_headed(path, collector, cryptodatadownload=False)


def read_cryptodatadownload(path: Path, collector: Collector, column_prefix: str | None) -> None:
    """Read a CryptoDataDownload file (optional banner, header, newest row first) into ``collector``.

    Raises:
        OHLCFileError: the file is empty or its header lacks the time or a price column.
    """
    read_headed(path, collector, cryptodatadownload=True)
