"""Read one candle file: detect its layout, dispatch to the layout's module, check the rows as a whole.

``LAYOUTS`` maps each layout (``fmt``) to its reader; :func:`read_ohlc_file` is the one entry.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from instruments.candles import TIMEFRAMES
from instruments.sources.files.binance import read_binance
from instruments.sources.files.common import PRICE_FIELDS, Collector, OHLCFileError, ParsedFile
from instruments.sources.files.feather import FEATHER_MAGIC, FEATHER_SUFFIXES, read_feather
from instruments.sources.files.headed import CDD_BANNER, read_cryptodatadownload, read_csv
from instruments.sources.files.wide import WIDE_HEADER, read_wide

#: Each layout's reader: adds the file's rows to the collector (``column_prefix`` is for ``wide`` only).
LAYOUTS: dict[str, Callable[[Path, Collector, str | None], None]] = {
    "csv": read_csv,
    "binance": read_binance,
    "cryptodatadownload": read_cryptodatadownload,
    "wide": read_wide,
    "feather": read_feather,
}

#: Layouts :func:`read_ohlc_file` reads; ``auto`` (the default) picks one of them from the file.
FORMATS: tuple[str, ...] = tuple(LAYOUTS)


def read_ohlc_file(
    path: str | Path, *, fmt: str = "auto", column_prefix: str | None = None, timeframe: str = "1d"
) -> ParsedFile:
    """Read one candle file.

    Every data row is validated: numbers and times must parse, a ``binance`` row must have 12 columns and a
    ``close_time`` that matches ``timeframe``, the candle must keep the OHLC invariants (``high >= low`` ...),
    its ``open_time`` must be a multiple of ``timeframe`` from 00:00 UTC, and a time may repeat only with the
    same values (a conflicting time refuses both rows). Refused rows are returned in ``errors``, not raised.

    Args:
        path: the file.
        fmt: ``"auto"`` or one of :data:`FORMATS`. ``auto`` looks at the extension (``.feather``) and the
            Arrow magic bytes, then at the first line: a CryptoDataDownload banner, a header with
            ``PREFIX:open`` cells (``wide``), a header with a ``symbol`` column (``cryptodatadownload``), a
            header with open/high/low/close (``csv``), or an epoch number in the first cell (``binance``).
        column_prefix: for ``wide`` files, the prefix of the instrument's columns (``"BTC"`` for
            ``BTC:open``); matched exactly first, then case-insensitively. Required for, and only allowed
            with, ``wide``.
        timeframe: the length of the file's candles, a key of :data:`~instruments.candles.TIMEFRAMES`.

    Returns:
        :class:`ParsedFile`.

    Raises:
        OHLCFileError: the file is missing or empty, its layout is unknown or its header lacks a column,
            ``column_prefix`` is missing or names no prefix of a wide file, or the candles are another
            length than ``timeframe`` (e.g. a 1-minute file read as ``1d``).
    """
    path = Path(path)
    if timeframe not in TIMEFRAMES:
        raise OHLCFileError(
            f"timeframe must be one of {', '.join(TIMEFRAMES)}; was {timeframe!r}",
            extra={"timeframe": timeframe},
        )
    if fmt != "auto" and fmt not in FORMATS:
        raise OHLCFileError(
            f"format must be auto or one of {', '.join(FORMATS)}; was {fmt!r}", extra={"format": fmt}
        )
    if not path.is_file():
        raise OHLCFileError(f"file not found: {path}", extra={"path": str(path)})
    detected = detect_format(path) if fmt == "auto" else fmt
    if column_prefix and detected != "wide":
        raise OHLCFileError(
            f"{path.name}: --column-prefix is for wide tables (BTC:open, ...) only; "
            f"this file is read as {detected}",
            extra={"path": str(path), "format": detected},
        )
    collector = Collector(path=path, timeframe=timeframe)
    LAYOUTS[detected](path, collector, column_prefix)
    return collector.result(detected)


def detect_format(path: Path) -> str:
    """Return the layout of ``path`` (one of :data:`FORMATS`), from its extension, magic bytes and first line.

    Raises:
        OHLCFileError: the file is empty or its first line fits no layout.
    """
    with path.open("rb") as binary:
        head = binary.read(4096)
    if path.suffix.lower() in FEATHER_SUFFIXES or head.startswith(FEATHER_MAGIC):
        return "feather"
    first_line = head.decode("utf-8-sig", errors="replace").splitlines()[0] if head.strip() else ""
    if not first_line.strip():
        raise OHLCFileError(
            f"{path.name} line 1: the file is empty or starts with a blank line", extra={"path": str(path)}
        )
    if CDD_BANNER.search(first_line):
        return "cryptodatadownload"
    cells = [cell.strip().lower() for cell in next(csv.reader([first_line]))]
    if sum(1 for cell in cells if WIDE_HEADER.match(cell)) >= len(PRICE_FIELDS):
        return "wide"
    if all(name in cells for name in PRICE_FIELDS):
        return "cryptodatadownload" if "symbol" in cells else "csv"
    if cells[0].isdigit():
        return "binance"
    raise OHLCFileError(
        f"{path.name} line 1: cannot tell the layout from {first_line[:120]!r}; expected a header with "
        f"open, high, low, close (csv), a CryptoDataDownload banner, PREFIX:open columns (wide) or a Binance "
        f"kline row; "
        f"pass --format with one of {', '.join(FORMATS)}",
        extra={"path": str(path)},
    )
