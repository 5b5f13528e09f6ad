"""Coverage: which days of a requested run have stored candles (issue 13, item 3), in any timeframe: a day
counts as covered when it has at least one candle.

A run trades only inside its stored data (CRITERIA.md "When things happen"): a range reaching past the data of all
its instruments is run over the days that have data, from the first candle any instrument has to the last one any
instrument has, and the run keeps what was used (the ``coverage`` entry of its statistics): the requested and used
ranges, each instrument's first and last candle, the runs of missing days inside the used range, and a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np

from trading.engine.types import SECONDS_PER_DAY, CandleArrays
from trading.selectors import from_seconds


@dataclass(frozen=True)
class Coverage:
    """The days a run uses.

    Attributes:
        start, end: the used range (UTC days, inclusive), inside the requested one.
        document: the JSON the run keeps (see :func:`coverage_compute`).
    """

    start: date
    end: date
    document: dict[str, Any]


EPOCH = date(1970, 1, 1)


def _day(seconds: int) -> date:
    return from_seconds(int(seconds)).date()


def _seconds(day: date) -> int:
    """The open of UTC ``day``, seconds since epoch."""
    return (day - EPOCH).days * SECONDS_PER_DAY


def _gaps(open_time_seconds: np.ndarray, first: date, last: date) -> list[dict[str, Any]]:
    """Runs of days between ``first`` and ``last`` (inclusive) without a candle, as ``{"start", "end", "days"}``.

    Args:
        open_time_seconds: shape (m,), int64, strictly increasing: candles' open times (any timeframe: a day
            with at least one candle is not a gap; hours or minutes missing inside a day are not reported).
    """
    lo, hi = _seconds(first), _seconds(last + timedelta(days=1))
    days = open_time_seconds[(open_time_seconds >= lo) & (open_time_seconds < hi)] // SECONDS_PER_DAY
    gaps: list[dict[str, Any]] = []
    for at in np.flatnonzero(np.diff(days) > 1).tolist():
        before, after = int(days[at]), int(days[at + 1])
        gaps.append(
            {
                "start": (EPOCH + timedelta(days=before + 1)).isoformat(),
                "end": (EPOCH + timedelta(days=after - 1)).isoformat(),
                "days": after - before - 1,
            }
        )
    return gaps


def coverage_compute(
    *, candles: Sequence[CandleArrays], names: dict[str, str], start: date, end: date
) -> Coverage:
    """The used range of a run requested over ``start`` .. ``end`` and the JSON it keeps.

    Args:
        candles: each instrument's stored candles of the run's timeframe (up to ``end`` at least).
        names: symbol -> the name shown (coingecko id).
        start, end: the requested range, UTC days, inclusive.

    Returns:
        :class:`Coverage`; its ``document`` is ``{"requested": {"start", "end"}, "used": {"start", "end"},
        "instruments": [{"instrument", "symbol", "first", "last", "gaps": [{"start", "end", "days"}]}], "note"}``
        with ISO dates (``first``/``last``: the instrument's first and last candle inside the requested range).

    Raises:
        ValueError: no instrument has a candle inside the requested range.
    """
    spans: list[tuple[CandleArrays, tuple[date, date] | None]] = []
    for arrays in candles:
        days = arrays.open_time_seconds
        lo = int(np.searchsorted(days, _seconds(start)))
        hi = int(np.searchsorted(days, _seconds(end + timedelta(days=1)))) - 1
        spans.append((arrays, (_day(days[lo]), _day(days[hi])) if lo <= hi else None))
    found = [span for _, span in spans if span is not None]
    if not found:
        symbols = ", ".join(names.get(c.symbol, c.symbol) for c in candles)
        raise ValueError(f"no stored candles of {symbols} between {start} and {end}; choose dates with data")
    used_start, used_end = min(first for first, _ in found), max(last for _, last in found)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for arrays, span in spans:
        name = names.get(arrays.symbol, arrays.symbol)
        if span is None:
            rows.append(
                {"instrument": name, "symbol": arrays.symbol, "first": None, "last": None, "gaps": []}
            )
            notes.append(f"{name} has no data in the range")
            continue
        first, last = span
        gaps = _gaps(arrays.open_time_seconds, first, last)
        rows.append(
            {
                "instrument": name,
                "symbol": arrays.symbol,
                "first": first.isoformat(),
                "last": last.isoformat(),
                "gaps": gaps,
            }
        )
        bounds = ([f"starts {first}"] if first > start else []) + ([f"ends {last}"] if last < end else [])
        if bounds:
            notes.append(f"the data of {name} {' and '.join(bounds)}")
        notes.extend(f"{name} misses {g['start']} .. {g['end']} ({g['days']} days)" for g in gaps)
    clamped = (used_start, used_end) != (start, end)
    head = (
        f"Ran {used_start} .. {used_end} (requested {start} .. {end})"
        if clamped
        else f"Ran {used_start} .. {used_end}"
    )
    note = head + (": " + "; ".join(notes) if notes else "") + "."
    document = {
        "requested": {"start": start.isoformat(), "end": end.isoformat()},
        "used": {"start": used_start.isoformat(), "end": used_end.isoformat()},
        "instruments": rows,
        "note": note,
    }
    return Coverage(start=used_start, end=used_end, document=document)
