"""What every candle-file layout shares: the error, the parsed result, the row collector, time and number parsing.

Pure Python (no Django). Numbers go from text straight to ``Decimal``; times become aware UTC (a date without a
time is 00:00 UTC; a time with an offset is converted to UTC).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path

from barter_site.errors import ApplicationError
from instruments.candles import TIMEFRAMES, Candle, CandleInvalidError

#: Error messages shown per file; the rest are counted ("... and 1,234 more").
ERRORS_SHOWN = 20

#: Header names accepted for the time column of ``csv`` and ``cryptodatadownload`` files, preferred first.
TIME_COLUMNS: tuple[str, ...] = ("datetime", "date", "timestamp", "time", "open_time", "date_time")

PRICE_FIELDS = ("open", "high", "low", "close")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch times by number of digits: 10 = seconds, 13 = milliseconds, 16 = microseconds (2001-09-09 .. 2286).
EPOCH_UNITS: dict[int, timedelta] = {
    10: timedelta(seconds=1),
    13: timedelta(milliseconds=1),
    16: timedelta(microseconds=1),
}
_AM_PM = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T](\d{1,2})-([AP]M)$", re.IGNORECASE)


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


def parse_time(text: str) -> datetime:
    """Parse a time as the files write it and return it as an aware UTC datetime.

    Accepts ISO 8601 (``2020-01-01``, ``2020-01-01 00:00:00``, ``2019-07-04 00:00``, ``...T00:00:00Z``,
    ``...+02:00``; naive means UTC), CryptoDataDownload's hourly ``2019-10-17 09-AM``, and epoch numbers
    by digit count: 10 digits seconds, 13 milliseconds, 16 microseconds.

    Raises:
        ValueError: with a message naming the text received.
    """
    text = text.strip()
    if text.isdigit() and len(text) in EPOCH_UNITS:
        return EPOCH + int(text) * EPOCH_UNITS[len(text)]
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


class RowError(Exception):
    """One row cannot become a candle; the message says why (the line number is added by the collector)."""


def decimal_cell(text: str, name: str) -> Decimal:
    """Return the cell ``text`` of column ``name`` as a ``Decimal``.

    Raises:
        RowError: the cell is empty or not a number.
    """
    try:
        return Decimal(text)
    except InvalidOperation:
        if not text.strip():
            raise RowError(f"{name} is empty") from None
        raise RowError(f"{name} is not a number: {text!r}") from None


def time_cell(text: str) -> datetime:
    """Return the cell ``text`` as an aware UTC datetime (:func:`parse_time`).

    Raises:
        RowError: the cell is not a time.
    """
    try:
        return parse_time(text)
    except ValueError as exc:
        raise RowError(str(exc)) from None


@dataclass
class Collector:
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
            raise RowError(exc.message) from None
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
            elif (open_time - EPOCH) % step:
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


def csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, cells)`` of every non-blank CSV record; ``line`` is where the record starts, 1-based."""
    with path.open(newline="", encoding="utf-8-sig") as text:
        reader = csv.reader(text)
        line = 1
        for cells in reader:
            if cells and any(cell.strip() for cell in cells):
                yield line, cells
            line = reader.line_num + 1


def add_cells(
    collector: Collector,
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
        time_cell(cells[time_at]),
        decimal_cell(cells[o], "open"),
        decimal_cell(cells[h], "high"),
        decimal_cell(cells[lo], "low"),
        decimal_cell(cells[c], "close"),
        decimal_cell(volume_text, "volume") if volume_text else None,
    )
