"""Risk exits (CRITERIA.md "When things happen"): stop-loss, take-profit and trailing stop against one candle.

Levels are active from the entry candle on and checked against each candle's high and low. A level the open
has already gapped through fills at the open. When a stop and the take-profit are both inside one candle, the
stop is taken (the pessimistic choice). The trailing level during candle k is
``(1 - trailing_stop_ratio) * max(entry_price, highest high of the candles before k since entry)``.
"""

from __future__ import annotations

from dataclasses import dataclass

STOP_LOSS = "stop_loss"
TAKE_PROFIT = "take_profit"
TRAILING_STOP = "trailing_stop"
SIGNAL = "signal"
MAX_HOLDING = "max_holding"
END_OF_DATA = "end_of_data"
MANUAL = "manual"


def stop_loss_level(entry_price: float, ratio: float | None) -> float | None:
    """``entry_price * (1 - ratio)``, or None without a stop-loss."""
    return None if ratio is None else entry_price * (1 - ratio)


def take_profit_level(entry_price: float, ratio: float | None) -> float | None:
    """``entry_price * (1 + ratio)``, or None without a take-profit."""
    return None if ratio is None else entry_price * (1 + ratio)


def trailing_stop_level(reference_high: float, ratio: float | None) -> float | None:
    """``(1 - ratio) * reference_high``, or None without a trailing stop.

    Args:
        reference_high: ``max(entry_price, highest high of the candles before this one since entry)``
            (:func:`trailing_reference`).
    """
    return None if ratio is None else (1 - ratio) * reference_high


def trailing_reference(entry_price: float, highs_before: list[float] | tuple[float, ...]) -> float:
    """Return ``max(entry_price, *highs_before)``: the trailing stop's reference for the next candle."""
    return max([entry_price, *highs_before])


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
        stop-loss and the trailing stop is the one hit first; a stop beats the take-profit in the same candle.
    """
    stops = [
        (level, reason)
        for level, reason in ((stop_loss, STOP_LOSS), (trailing_stop, TRAILING_STOP))
        if level is not None
    ]
    stop = max(stops, key=lambda s: s[0]) if stops else None
    if stop is not None and open_ <= stop[0]:
        return RiskExit(open_, stop[1])
    if take_profit is not None and open_ >= take_profit:
        return RiskExit(open_, TAKE_PROFIT)
    if stop is not None and low <= stop[0]:
        return RiskExit(stop[0], stop[1])
    if take_profit is not None and high >= take_profit:
        return RiskExit(take_profit, TAKE_PROFIT)
    return None
