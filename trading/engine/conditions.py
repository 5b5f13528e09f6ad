"""Evaluation of criteria conditions over an instrument's candles.

A condition's value at candle t uses data up to t's close only (indicators are causal). A comparison with an
undefined value (NaN: an indicator still warming up) is false, as CRITERIA.md requires; ``crosses_above`` holds
on t when ``left[t] > right[t]`` and ``left[t-1] <= right[t-1]``, both defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trading.engine.criteria import AllOf, AnyOf, Compare, Condition, Criteria, NotOf, Operand
from trading.engine.indicators import INDICATORS
from trading.engine.types import CandleArrays


def _operand_values(operand: Operand, candles: CandleArrays, cache: dict[Operand, np.ndarray]) -> np.ndarray:
    if operand.indicator == "value":
        return np.full(len(candles), float(operand.value if operand.value is not None else np.nan))
    return indicator_series(operand, candles, cache)


def condition_mask(
    condition: Condition, candles: CandleArrays, cache: dict[Operand, np.ndarray] | None = None
) -> np.ndarray:
    """Return where ``condition`` holds.

    Args:
        condition: a parsed condition (:mod:`trading.engine.criteria`).
        candles: the instrument's candles, oldest first.
        cache: optional memo of indicator series shared by several conditions.

    Returns:
        shape (n,), bool.
    """
    cache = {} if cache is None else cache
    if isinstance(condition, AllOf):
        every: np.ndarray = np.logical_and.reduce(
            [condition_mask(c, candles, cache) for c in condition.items]
        )
        return every
    if isinstance(condition, AnyOf):
        some: np.ndarray = np.logical_or.reduce([condition_mask(c, candles, cache) for c in condition.items])
        return some
    if isinstance(condition, NotOf):
        return ~condition_mask(condition.item, candles, cache)
    return _compare(condition, candles, cache)


def _compare(condition: Compare, candles: CandleArrays, cache: dict[Operand, np.ndarray]) -> np.ndarray:
    left = _operand_values(condition.left, candles, cache)
    right = _operand_values(condition.right, candles, cache)
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
    criteria: Criteria, candles: CandleArrays, cache: dict[Operand, np.ndarray] | None = None
) -> Signals:
    """Evaluate the entry and exit conditions of ``criteria`` over every candle of one instrument.

    ``cache``: a memo of indicator series of these candles, shared by the evaluations of several criteria (the
    points of a sweep compute each distinct indicator once); a new one when None.
    """
    cache = {} if cache is None else cache
    entry = condition_mask(criteria.entry, candles, cache)
    exit_ = (
        condition_mask(criteria.exit, candles, cache)
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
    operand: Operand, candles: CandleArrays, cache: dict[Operand, np.ndarray] | None = None
) -> np.ndarray:
    """Return the values of ``operand`` at every candle.

    Args:
        operand: an indicator operand (not ``"value"``); its ``shift`` is applied.
        candles: the instrument's candles, oldest first.
        cache: optional memo shared across the operands of one evaluation.

    Returns:
        shape (n,), float64; NaN during warm-up and for the first ``shift`` candles.

    Raises:
        ValueError: the operand names no indicator of :data:`INDICATORS` (``criteria_parse`` refuses it first).
    """
    if cache is not None and operand in cache:
        return cache[operand]
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
    if cache is not None:
        cache[operand] = base
    return base
