"""Risk exits (CRITERIA.md "When things happen"): stop-loss, take-profit and trailing stop against one candle.

Levels are active from the entry candle on and checked against each candle's high and low. A level the open
has already gapped through fills at the open. When a stop and the take-profit are both inside one candle, the
stop is taken (the pessimistic choice). The trailing level during candle k is
``(1 - trailing_stop_ratio) * max(entry_price, highest high of the candles before k since entry)``.

The rules are the compiled functions of :mod:`trading.engine.rules`; this module gives them ``None`` for an
absent level and names (:class:`~trading.engine.vocabulary.ExitReason`) for exit reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trading.engine import rules
from trading.engine.vocabulary import exit_reason_value


def nan_if_none(value: float | None) -> float:
    """``value`` as a float, NaN for None (how compiled code spells "absent")."""
    return math.nan if value is None else float(value)


def none_if_nan(value: float) -> float | None:
    """``value`` as a float, None for NaN."""
    return None if math.isnan(value) else float(value)


def stop_loss_level(entry_price: float, ratio: float | None) -> float | None:
    """``entry_price * (1 - ratio)``, or None without a stop-loss."""
    return None if ratio is None else float(rules.stop_loss_level(float(entry_price), float(ratio)))


def take_profit_level(entry_price: float, ratio: float | None) -> float | None:
    """``entry_price * (1 + ratio)``, or None without a take-profit."""
    return None if ratio is None else float(rules.take_profit_level(float(entry_price), float(ratio)))


def trailing_stop_level(reference_high: float, ratio: float | None) -> float | None:
    """``(1 - ratio) * reference_high``, or None without a trailing stop.

    Args:
        reference_high: ``max(entry_price, highest high of the candles before this one since entry)``
            (:func:`trailing_reference`).
    """
    return None if ratio is None else float(rules.trailing_stop_level(float(reference_high), float(ratio)))


def trailing_reference(entry_price: float, highs_before: list[float] | tuple[float, ...]) -> float:
    """Return ``max(entry_price, *highs_before)``: the trailing stop's reference for the next candle."""
    return float(max([entry_price, *highs_before]))


@dataclass(frozen=True)
class RiskExit:
    """A risk exit inside one candle: the raw price it fills at (before slippage) and why."""

    price: float
    reason: str


def risk_exit(
    *,
    open_: float,
    high: float,
    low: float,
    stop_loss: float | None,
    take_profit: float | None,
    trailing_stop: float | None,
) -> RiskExit | None:
    """Return the risk exit a long position takes during one candle, or None.

    Args:
        open_, high, low: the candle's prices, quote currency.
        stop_loss, take_profit, trailing_stop: the levels in force during this candle, or None.

    Returns:
        The exit: at the open when the open is already through a level, else at the level. The higher of the
        stop-loss and the trailing stop is the one hit first; a stop beats the take-profit in the same candle
        (:func:`trading.engine.rules.risk_exit_code`).
    """
    code, price = rules.risk_exit_code(
        float(open_),
        float(high),
        float(low),
        nan_if_none(stop_loss),
        nan_if_none(take_profit),
        nan_if_none(trailing_stop),
    )
    reason = exit_reason_value(int(code))
    return None if reason is None else RiskExit(float(price), reason)
