"""Importing candle files: ``import_ohlc`` (:func:`ohlc_import`); ``load_shipped_history`` imports the shipped
files through it (:mod:`instruments.sources.files.shipped`).

Each file is read and validated whole (:func:`instruments.sources.files.reader.read_ohlc_file`) before anything of it
is written; then its candles go through :func:`instruments.services.candles_upsert`, one transaction per
file, so a second import of the same file adds and changes nothing. Every call is one ``History`` run of
``Step.IMPORT``: a ``candles_imported`` event per imported file and an ``error`` event per refused one,
written in autocommit after (never inside) the file's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from barter_site.errors import ApplicationError
from instruments.candles import TIMEFRAMES, Candle, Rollup, candles_rollup
from instruments.models import Instrument
from instruments.services import UpsertResult, candles_upsert, instrument_get_or_create
from instruments.sources.files.common import OHLCFileError
from instruments.sources.files.reader import FORMATS, read_ohlc_file
from runs.models import HistoryKind, RunStatus, Step
from runs.recorder import run_start, run_status

#: Longest uncovered stretch a rolled-up candle may have, as a fraction of its period: 0.25 lets a day miss
#: up to 6 hours in one stretch (Binance's outages in the shipped hourly file are 1-5 hours on the days
#: after 2020; longer ones, such as the 34 hours of 2018-02-08/09, drop the day).
ROLLUP_MAX_GAP_RATIO = 0.25

#: Messages of skipped rows kept per file with ``skip_invalid`` (the count is always complete).
SKIPPED_SHOWN = 5

#: ``InstrumentOHLC.source`` holds at most this many characters.
_SOURCE_MAX_LENGTH = 128


class OHLCImportError(ApplicationError):
    """The import cannot start: no files, a missing file, an unknown format or timeframe..."""


@dataclass(frozen=True, slots=True)
class FileImportResult:
    """What importing one file did.

    Attributes:
        path: the file, as given.
        detected_format: the layout it was read as (one of ``FORMATS``); ``""`` when it could not be read.
        timeframe: the timeframe of the stored candles (the ``to_timeframe`` when rolled up).
        source: the ``source`` written on added and updated candles, e.g. ``"file:BTC_USDT-1h.feather
            rolled up 1h->1d"``.
        rows_read: data rows in the file.
        candles: candles offered to the upsert (after the roll-up, if any).
        added, updated, unchanged: the upsert's counts.
        skipped: invalid rows left out (only with ``skip_invalid``; otherwise the file is refused).
        not_listed: wide-table rows without data for the prefix, skipped silently.
        incomplete: periods the roll-up dropped as not covered enough.
        rolled_up: whether the candles were rolled up into ``timeframe``.
        first_open_time, last_open_time: aware UTC open times of the first and last candle offered.
        messages: the first messages of the skipped rows, ``"<file> line <n>: <why>"``.
        error: why the file was refused (nothing of it written); ``""`` when it was imported.
    """

    path: str
    detected_format: str = ""
    timeframe: str = ""
    source: str = ""
    rows_read: int = 0
    candles: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    not_listed: int = 0
    incomplete: int = 0
    rolled_up: bool = False
    first_open_time: datetime | None = None
    last_open_time: datetime | None = None
    messages: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def name(self) -> str:
        """The file's name without its folder."""
        return Path(self.path).name

    def describe(self) -> str:
        """Return one line for people: ``"<file> (<format>): 366 rows read, 366 added, 0 updated, ..."``."""
        if self.error:
            return f"{self.name}: refused, nothing written. {self.error}"
        parts = [
            f"{self.rows_read:,} rows read",
            f"{self.added:,} candles added",
            f"{self.updated:,} updated",
            f"{self.unchanged:,} unchanged",
            f"{self.skipped:,} invalid rows skipped",
        ]
        if self.not_listed:
            parts.append(f"{self.not_listed:,} rows without data for the prefix")
        if self.rolled_up:
            parts.append(f"{self.incomplete:,} periods dropped as incomplete")
        span = ""
        if self.first_open_time and self.last_open_time:
            span = f", {self.first_open_time:%Y-%m-%d %H:%M} .. {self.last_open_time:%Y-%m-%d %H:%M} UTC"
        return f"{self.name} ({self.detected_format}, {self.timeframe}{span}): {', '.join(parts)}"

    def as_payload(self) -> dict[str, Any]:
        """Return the result as JSON-ready values (times as ISO 8601 strings) for ``History``."""
        return {
            "path": self.path,
            "format": self.detected_format,
            "timeframe": self.timeframe,
            "source": self.source,
            "rows_read": self.rows_read,
            "candles": self.candles,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "not_listed": self.not_listed,
            "incomplete": self.incomplete,
            "rolled_up": self.rolled_up,
            "first_open_time": self.first_open_time.isoformat() if self.first_open_time else None,
            "last_open_time": self.last_open_time.isoformat() if self.last_open_time else None,
            "messages": self.messages,
            "error": self.error,
        }


def ohlc_rollup(candles: Sequence[Candle], *, timeframe: str, to_timeframe: str) -> Rollup:
    """Roll candles of ``timeframe`` up into ``to_timeframe`` ones, keeping only periods covered well enough.

    Coverage rule: a period is kept when no stretch of it longer than ``ROLLUP_MAX_GAP_RATIO`` of its length
    (6 hours of a day) has no input, at its start, inside, or at its end (:func:`candles_rollup` with that
    ``max_gap``); exchange outages of a few hours leave the day as the exchange itself reports it. The last
    period of the data is kept only when the data reaches its end: data that stops inside a period (an export
    taken at 15:00) would give that day a close that is not its close, so it is dropped, as incomplete, until
    a later file completes it. A late start is accepted within ``max_gap`` (the shipped Binance file starts at
    the listing, 2017-08-17 04:00).

    Args:
        candles: valid candles of ``timeframe``, in time order, one per ``open_time``.
        timeframe: their timeframe, e.g. ``"1h"``.
        to_timeframe: the longer timeframe to make, e.g. ``"1d"``; a whole multiple of ``timeframe``.

    Returns:
        The complete coarse candles and the open times of the periods dropped as incomplete.
    """
    period, span = TIMEFRAMES[to_timeframe], TIMEFRAMES[timeframe]
    rollup = candles_rollup(candles, period=period, span=span, max_gap=period * ROLLUP_MAX_GAP_RATIO)
    if not candles or not rollup.candles:
        return rollup
    data_end = max(candle.open_time for candle in candles) + span
    last = rollup.candles[-1]
    if data_end < last.open_time + period:
        return Rollup(candles=rollup.candles[:-1], incomplete=sorted([*rollup.incomplete, last.open_time]))
    return rollup


def ohlc_import(
    *,
    paths: Sequence[str | Path],
    coingecko_id: str,
    symbol: str = "",
    name: str = "",
    quote_currency: str = "",
    timeframe: str = "1d",
    fmt: str = "auto",
    column_prefix: str | None = None,
    to_timeframe: str | None = None,
    skip_invalid: bool = False,
    parsed_files: dict[tuple[str, str, str | None, str], Any] | None = None,
) -> list[FileImportResult]:
    """Import candle files into one instrument, file by file, as one ``History`` run of ``Step.IMPORT``.

    A file with any invalid row (bad number or time, wrong column count, ``high < low``, a time repeated with
    other values, a time off the timeframe) is refused whole, with every problem listed by line, unless
    ``skip_invalid``: then its valid rows are imported and the rest counted in ``skipped``. A refused file
    does not stop the others.

    Args:
        paths: the files, imported in this order (a later file's candle replaces an earlier one's).
        coingecko_id: the instrument's CoinGecko id; the instrument is created when it does not exist.
        symbol, name, quote_currency: used only when creating the instrument; the quote currency defaults to
            ``BARTER_QUOTE_CURRENCY``.
        timeframe: the timeframe of the files' candles: ``"1m"``, ``"1h"`` or ``"1d"``.
        fmt: ``"auto"`` or a layout of :data:`instruments.sources.files.reader.FORMATS`.
        column_prefix: the instrument's column prefix in wide tables (``"BTC"``).
        to_timeframe: roll the candles up into this longer timeframe before storing (:func:`ohlc_rollup`,
            each file on its own, so a file must hold whole periods); ``None`` stores them as they are.
        skip_invalid: import the valid rows of a file that has invalid ones.
        parsed_files: a cache of read files shared by several imports of the same files (``load_shipped_history``
            imports the hourly bitcoin file twice, rolled up to days and as it is, and reads it once); None:
            every file is read.

    Returns:
        One :class:`FileImportResult` per path, in order; refused files have ``error`` set.

    Raises:
        OHLCImportError: before anything is written, when no path is given, a file does not exist, or
            ``fmt``, ``timeframe`` or ``to_timeframe`` is not one of the known values.
    """
    files = [Path(path) for path in paths]
    _check_arguments(
        files, coingecko_id=coingecko_id, timeframe=timeframe, fmt=fmt, to_timeframe=to_timeframe
    )
    instrument, _ = instrument_get_or_create(
        coingecko_id=coingecko_id,
        symbol=symbol,
        name=name,
        quote_currency=quote_currency or settings.BARTER_QUOTE_CURRENCY,
    )
    recorder = run_start(
        step=Step.IMPORT,
        params={
            "instrument": coingecko_id,
            "paths": [str(path) for path in files],
            "timeframe": timeframe,
            "to_timeframe": to_timeframe,
            "format": fmt,
            "column_prefix": column_prefix,
            "skip_invalid": skip_invalid,
        },
    )
    results: list[FileImportResult] = []
    try:
        for path in files:
            result = _file_import(
                path,
                instrument=instrument,
                timeframe=timeframe,
                fmt=fmt,
                column_prefix=column_prefix,
                to_timeframe=to_timeframe,
                skip_invalid=skip_invalid,
                parsed_files=parsed_files,
            )
            results.append(result)
            # After candles_upsert's transaction has committed: the record stays even if a later file fails.
            recorder.event(
                HistoryKind.ERROR if result.error else HistoryKind.CANDLES_IMPORTED,
                instrument=instrument,
                message=result.describe(),
                payload=result.as_payload(),
            )
    except Exception as exc:
        recorder.event(HistoryKind.ERROR, instrument=instrument, message=f"import stopped: {exc!r}")
        recorder.finish(status=RunStatus.FAILED, summary=_summary(coingecko_id, results))
        raise
    refused = sum(1 for result in results if result.error)
    status = run_status(errors=refused, succeeded=len(results) - refused)
    recorder.finish(status=status, summary=_summary(coingecko_id, results))
    return results


def _summary(coingecko_id: str, results: Sequence[FileImportResult]) -> dict[str, Any]:
    return {
        "instrument": coingecko_id,
        "added": sum(result.added for result in results),
        "updated": sum(result.updated for result in results),
        "results": [result.as_payload() for result in results],
    }


def _check_arguments(
    files: Sequence[Path], *, coingecko_id: str, timeframe: str, fmt: str, to_timeframe: str | None
) -> None:
    known = ", ".join(TIMEFRAMES)
    if not coingecko_id.strip():
        raise OHLCImportError(
            "give the instrument's CoinGecko id (--instrument bitcoin)", extra={"field": "instrument"}
        )
    if not files:
        raise OHLCImportError("give at least one file to import", extra={"paths": []})
    if timeframe not in TIMEFRAMES:
        raise OHLCImportError(
            f"timeframe must be one of {known}; was {timeframe!r}", extra={"timeframe": timeframe}
        )
    if fmt != "auto" and fmt not in FORMATS:
        raise OHLCImportError(
            f"format must be auto or one of {', '.join(FORMATS)}; was {fmt!r}", extra={"format": fmt}
        )
    if to_timeframe is not None:
        if to_timeframe not in TIMEFRAMES:
            raise OHLCImportError(
                f"to_timeframe must be one of {known}; was {to_timeframe!r}",
                extra={"to_timeframe": to_timeframe},
            )
        period, span = TIMEFRAMES[to_timeframe], TIMEFRAMES[timeframe]
        if period <= span or period % span:
            raise OHLCImportError(
                f"to_timeframe must be a multiple of timeframe {timeframe}, longer than it, to roll candles "
                f"up; was {to_timeframe}",
                extra={"timeframe": timeframe, "to_timeframe": to_timeframe},
            )
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise OHLCImportError(f"file not found: {', '.join(missing)}", extra={"paths": missing})


def _source(path: Path, timeframe: str, to_timeframe: str | None) -> str:
    suffix = f" rolled up {timeframe}->{to_timeframe}" if to_timeframe else ""
    prefix = "file:"
    room = _SOURCE_MAX_LENGTH - len(prefix) - len(suffix)
    return f"{prefix}{path.name[:room]}{suffix}"


def _file_import(
    path: Path,
    *,
    instrument: Instrument,
    timeframe: str,
    fmt: str,
    column_prefix: str | None,
    to_timeframe: str | None,
    skip_invalid: bool,
    parsed_files: dict[tuple[str, str, str | None, str], Any] | None = None,
) -> FileImportResult:
    stored_timeframe = to_timeframe or timeframe
    source = _source(path, timeframe, to_timeframe)
    key = (str(path.resolve()), fmt, column_prefix, timeframe)
    try:
        if parsed_files is not None and key in parsed_files:
            parsed = parsed_files[key]
        else:
            parsed = read_ohlc_file(path, fmt=fmt, column_prefix=column_prefix, timeframe=timeframe)
            if parsed_files is not None:
                parsed_files[key] = parsed
    except OHLCFileError as exc:
        return FileImportResult(path=str(path), timeframe=stored_timeframe, source=source, error=exc.message)
    counts: dict[str, Any] = {
        "path": str(path),
        "detected_format": parsed.detected_format,
        "timeframe": stored_timeframe,
        "source": source,
        "rows_read": parsed.rows_read,
        "not_listed": parsed.not_listed,
    }
    if parsed.errors and not skip_invalid:
        rows = len(parsed.errors)
        error = (
            f"{path.name}: {rows:,} invalid row{'s' if rows > 1 else ''}; nothing of this file was written. "
            f"Fix {'them' if rows > 1 else 'it'} or pass --skip-invalid to import the valid rows:\n  "
            + "\n  ".join(parsed.error_messages())
        )
        return FileImportResult(**counts, error=error)
    candles = parsed.candles
    incomplete = 0
    if to_timeframe:
        rollup = ohlc_rollup(candles, timeframe=timeframe, to_timeframe=to_timeframe)
        candles, incomplete = rollup.candles, len(rollup.incomplete)
    upserted = (
        candles_upsert(instrument=instrument, candles=candles, source=source, timeframe=stored_timeframe)
        if candles
        else UpsertResult()
    )
    return FileImportResult(
        **counts,
        candles=len(candles),
        added=upserted.added,
        updated=upserted.updated,
        unchanged=upserted.unchanged,
        skipped=len(parsed.errors),
        incomplete=incomplete,
        rolled_up=bool(to_timeframe),
        first_open_time=candles[0].open_time if candles else None,
        last_open_time=candles[-1].open_time if candles else None,
        messages=parsed.error_messages(SKIPPED_SHOWN) if parsed.errors else [],
    )
