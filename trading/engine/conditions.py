"""Evaluation of criteria conditions over an instrument's candles.

A condition's value at candle t uses data up to t's close only (indicators are causal). A comparison with an
undefined value (NaN: an indicator still warming up) is false, as CRITERIA.md requires; ``crosses_above`` holds
on t when ``left[t] > right[t]`` and ``left[t-1] <= right[t-1]``, both defined.

An operand may name another instrument (``"instrument": "bitcoin"``) and weekly candles (``"timeframe": "1w"``):
its series is computed over those candles and aligned to the traded ones without look-ahead
(:mod:`trading.engine.timeframes`; docs/criteria.md, "Another instrument and weekly candles"). The other
instruments' candles come in ``references`` (CoinGecko id -> candles).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from trading.engine.criteria import AllOf, AnyOf, Compare, Condition, Criteria, NotOf, Operand
from trading.engine.indicators import INDICATORS
from trading.engine.timeframes import (
    at_or_before_index,
    completed_weeks_index,
    daily_check,
    take_at,
    weekly_candles,
)
from trading.engine.types import CandleArrays

#: The key, in a memo of indicator series (``cache``), of a dict shared by the memos of several traded
#: instruments: the series computed over another instrument's (or weekly) candles, before their alignment, so that
#: a sweep over several traded instruments computes each of them once (:func:`series_memo`).
SHARED_SERIES = "shared series of other candles"

#: CoinGecko id -> that instrument's candles (of the run's timeframe, oldest first): the other instruments that
#: operands name.
References = Mapping[str, CandleArrays]


def series_memo(shared: dict[Any, Any] | None = None) -> dict[Any, Any]:
    """A new memo of indicator series for one traded instrument; ``shared``, when given, is the dict of series
    over other candles shared with the memos of the other traded instruments (:data:`SHARED_SERIES`)."""
    return {} if shared is None else {SHARED_SERIES: shared}


def _operand_values(
    operand: Operand, candles: CandleArrays, cache: dict[Any, Any], references: References | None
) -> np.ndarray:
    if operand.indicator == "value":
        return np.full(len(candles), float(operand.value if operand.value is not None else np.nan))
    return indicator_series(operand, candles, cache, references)


def condition_mask(
    condition: Condition,
    candles: CandleArrays,
    cache: dict[Any, Any] | None = None,
    references: References | None = None,
) -> np.ndarray:
    """Return where ``condition`` holds.

    Args:
        condition: a parsed condition (:mod:`trading.engine.criteria`).
        candles: the instrument's candles, oldest first.
        cache: optional memo of indicator series shared by several conditions.
        references: the candles of the other instruments operands name (see :func:`signals_compute`).

    Returns:
        shape (n,), bool.
    """
    cache = {} if cache is None else cache
    if isinstance(condition, AllOf):
        every: np.ndarray = np.logical_and.reduce(
            [condition_mask(c, candles, cache, references) for c in condition.items]
        )
        return every
    if isinstance(condition, AnyOf):
        some: np.ndarray = np.logical_or.reduce(
            [condition_mask(c, candles, cache, references) for c in condition.items]
        )
        return some
    if isinstance(condition, NotOf):
        return ~condition_mask(condition.item, candles, cache, references)
    return _compare(condition, candles, cache, references)


def _compare(
    condition: Compare, candles: CandleArrays, cache: dict[Any, Any], references: References | None
) -> np.ndarray:
    left = _operand_values(condition.left, candles, cache, references)
    right = _operand_values(condition.right, candles, cache, references)
    op = condition.op
    if op == ">":
        return np.asarray(np.greater(left, right))
    if op == ">=":
        return np.asarray(np.greater_equal(left, right))
    if op == "<":
        return np.asarray(np.less(left, right))
    if op == "<=":
        return np.asarray(np.less_equal(left, right))
    if op in ("crosses_above", "crosses_below"):
        # Candle t compares with t - 1 (none before the first candle, so never a cross there), on views of the
        # series: no shifted copies (a year of minutes: each copy is 4 MB of new memory).
        now, before = (np.greater, np.less_equal) if op == "crosses_above" else (np.less, np.greater_equal)
        crossed = np.zeros(left.shape[0], dtype=bool)
        if left.shape[0] > 1:
            np.logical_and(now(left[1:], right[1:]), before(left[:-1], right[:-1]), out=crossed[1:])
        return crossed
    raise ValueError(f"unknown comparison {op!r}")  # criteria_parse refuses it first


@dataclass(frozen=True)
class Signals:
    """Entry and exit signals of one instrument.

    Attributes:
        entry: shape (n,), bool; True on candle t means: enter at the open of t+1.
        exit: shape (n,), bool; True on candle t means: exit at the open of t+1 (all False without an exit rule).
        atr: shape (n,), float64, price units: the ATR that risk-based sizing with an ATR stop sizes on (the
            stop of an entry at t + 1 is ``fill - multiple * atr[t]``); None without such sizing.
    """

    entry: np.ndarray
    exit: np.ndarray
    atr: np.ndarray | None = None


def signals_compute(
    criteria: Criteria,
    candles: CandleArrays,
    cache: dict[Any, Any] | None = None,
    references: References | None = None,
) -> Signals:
    """Evaluate the entry and exit conditions of ``criteria`` over every candle of one instrument.

    Args:
        criteria: parsed criteria.
        candles: the traded instrument's candles, oldest first.
        cache: a memo of indicator series of these candles, shared by the evaluations of several criteria (the
            points of a sweep compute each distinct indicator once); a new one when None (:func:`series_memo`).
        references: CoinGecko id -> candles of each other instrument the operands name
            (:func:`trading.engine.criteria.criteria_instruments`), of the same timeframe as ``candles``; may be
            None when they name none.

    Returns:
        :class:`Signals`, shape (n,) each.

    Raises:
        ValueError: an operand names an instrument missing from ``references``, or a weekly operand is computed
            over candles that are not daily.
    """
    cache = {} if cache is None else cache
    entry = condition_mask(criteria.entry, candles, cache, references)
    exit_ = (
        condition_mask(criteria.exit, candles, cache, references)
        if criteria.exit is not None
        else np.zeros(len(candles), dtype=bool)
    )
    period = criteria.sizing.atr_period
    atr = (
        None
        if period is None
        else indicator_series(Operand(indicator="atr", params=(("period", period),)), candles, cache)
    )
    return Signals(entry=np.asarray(entry, dtype=bool), exit=np.asarray(exit_, dtype=bool), atr=atr)


def indicator_series(
    operand: Operand,
    candles: CandleArrays,
    cache: dict[Any, Any] | None = None,
    references: References | None = None,
) -> np.ndarray:
    """Return the values of ``operand`` at every candle of ``candles``.

    An operand of the traded instrument's own candles is computed over them. One that names another
    ``instrument`` or the ``"1w"`` timeframe is computed over those candles (``references[instrument]``, weekly
    candles built from them: :func:`trading.engine.timeframes.weekly_candles`), its ``shift`` counted in those
    candles (weeks for a weekly operand), then aligned to ``candles``: on candle t, the value of the other
    instrument's last candle opening at or before t (forward-filled over its missing days), or of the last week
    complete at t's close (its Sunday at or before t).

    Args:
        operand: an indicator operand (not ``"value"``); its ``shift`` is applied.
        candles: the traded instrument's candles, oldest first.
        cache: optional memo shared across the operands of one evaluation (:func:`series_memo`).
        references: the other instruments' candles (:func:`signals_compute`).

    Returns:
        shape (n,), float64; NaN during warm-up, for the first ``shift`` candles, and before the other series'
        first value.

    Raises:
        ValueError: the operand names no indicator of :data:`INDICATORS` (``criteria_parse`` refuses it first), an
            instrument missing from ``references``, or a weekly operand over candles that are not daily.
    """
    if cache is not None and operand in cache:
        cached: np.ndarray = cache[operand]
        return cached
    if operand.instrument is None and operand.timeframe == "1d":
        base = _own_series(operand, candles)
    else:
        base = _other_series(operand, candles, {} if cache is None else cache, references)
    if cache is not None:
        cache[operand] = base
    return base


def _own_series(operand: Operand, candles: CandleArrays) -> np.ndarray:
    """The operand's series over ``candles`` themselves, shifted."""
    indicator = INDICATORS.get(operand.indicator)
    if indicator is None:
        raise ValueError(f"unknown indicator {operand.indicator!r}")
    empty = len(candles) == 0
    base = np.empty(0, dtype=np.float64) if empty else indicator.compute(candles, dict(operand.params))
    if operand.shift:
        shifted = np.full_like(base, np.nan)
        if operand.shift < base.shape[0]:
            shifted[operand.shift :] = base[: -operand.shift]
        base = shifted
    return base


def _other_series(
    operand: Operand, candles: CandleArrays, cache: dict[Any, Any], references: References | None
) -> np.ndarray:
    """The operand's series over another instrument's or weekly candles, aligned to ``candles``."""
    if operand.instrument is None:
        source, memo = candles, cache  # the traded instrument's own weekly candles: this memo only
    else:
        found = None if references is None else references.get(operand.instrument)
        if found is None:
            raise ValueError(
                f"the criteria name the instrument {operand.instrument!r}, whose candles were not given"
            )
        source, memo = found, cache.get(SHARED_SERIES, cache)
    if operand.timeframe == "1w":
        weekly_key = ("weekly candles", operand.instrument)
        if weekly_key not in memo:
            memo[weekly_key] = weekly_candles(source)
        source = memo[weekly_key]
    plain = replace(operand, instrument=None, timeframe="1d")  # the same operand over the source's candles
    series_key = ("series", operand.instrument, operand.timeframe, plain)
    if series_key not in memo:
        memo[series_key] = _own_series(plain, source)
    if operand.timeframe == "1w":
        daily_check(candles)  # the completeness rule counts a week on the traded candle of its Sunday
        index = completed_weeks_index(source.open_time_seconds, candles.open_time_seconds)
    else:
        index = at_or_before_index(source.open_time_seconds, candles.open_time_seconds)
    return take_at(memo[series_key], index)
