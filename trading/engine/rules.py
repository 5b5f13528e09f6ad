"""The trading rules of one position, compiled by Numba: fills and fees, sizing, risk exits and a closing fill.

- fills and fees (CRITERIA.md "Fills"): :func:`buy_fill_price`, :func:`sell_fill_price`, :func:`fill_fee`;
- sizing (CRITERIA.md "Sizing"): :func:`entry_quantity`, and risk-based sizing :func:`risk_quantity`;
- risk exits (CRITERIA.md "When things happen"): the levels, and :func:`risk_exit_code`;
- a closing fill with its P&L: :func:`close_fill`.

The live cycle and the simulator reach the very same compiled functions (:mod:`trading.engine.boundary`).
Conventions (NaN for absent, integer exit codes): :mod:`trading.engine.layout`.

Compiled with ``cache=True``: the machine code is kept on disk beside this module, so a new process loads it
instead of compiling again. Numba checks only this file's timestamp, so after editing a module it calls, delete
``trading/engine/__pycache__`` (a fresh checkout starts with none).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trading.engine.layout import (
    MIN_SPEND_RATIO,
    NO_EXIT,
    SIZING_EQUITY_FRACTION,
    STOP_LOSS_CODE,
    TAKE_PROFIT_CODE,
    TRAILING_STOP_CODE,
)


@njit(cache=True)
def buy_fill_price(price: float, slippage_ratio: float) -> float:
    """Return what a buy at ``price`` pays per unit: ``price * (1 + slippage_ratio)``."""
    return price * (1.0 + slippage_ratio)


@njit(cache=True)
def sell_fill_price(price: float, slippage_ratio: float) -> float:
    """Return what a sell at ``price`` receives per unit: ``price * (1 - slippage_ratio)``."""
    return price * (1.0 - slippage_ratio)


@njit(cache=True)
def fill_fee(fill_price: float, quantity: float, fee_rate: float) -> float:
    """Return the fee of one fill: ``fee_rate * fill_price * quantity`` (quote currency)."""
    return fee_rate * fill_price * quantity


@njit(cache=True)
def entry_quantity(
    sizing_method: int, sizing_value: float, equity: float, cash: float, fill_price: float, fee_rate: float
) -> float:
    """Return how many base units an entry buys, or 0.0 when there is no cash to spend.

    ``SIZING_EQUITY_FRACTION`` spends ``sizing_value * equity``, ``SIZING_FIXED_QUOTE`` spends ``sizing_value``;
    never more than ``cash``, fee included: ``quantity = spend / (fill_price * (1 + fee_rate))``. A spend at or
    below ``MIN_SPEND_RATIO`` of equity is dust and buys nothing.
    """
    wanted = sizing_value * equity if sizing_method == SIZING_EQUITY_FRACTION else sizing_value
    spend = min(wanted, cash)
    if spend <= MIN_SPEND_RATIO * equity or fill_price <= 0.0:
        return 0.0
    return spend / (fill_price * (1.0 + fee_rate))


@njit(cache=True)
def risk_quantity(
    risk_ratio: float,
    equity: float,
    cash: float,
    fill_price: float,
    stop_price: float,
    fee_rate: float,
    slippage_ratio: float,
) -> float:
    """Return how many base units a risk-sized entry buys (docs/criteria.md "Risk-based sizing"), or 0.0.

    A unit bought at ``fill_price`` costs ``fill_price * (1 + fee_rate)``; sold at the stop it returns
    ``stop_price * (1 - slippage_ratio) * (1 - fee_rate)`` (the stop's own fill and fee, :func:`close_fill`).
    The difference is what a unit loses when the stop is hit, so ``quantity = risk_ratio * equity / loss`` loses
    ``risk_ratio`` of the equity at the stop (more only when a candle gaps through it). Never more than ``cash``
    buys, fee included, and a spend at or below ``MIN_SPEND_RATIO`` of equity is dust and buys nothing, as
    :func:`entry_quantity`. No stop (NaN) or a stop at or below 0 buys nothing: there is no loss to size on.
    """
    if np.isnan(stop_price) or stop_price <= 0.0 or fill_price <= 0.0:
        return 0.0
    unit_cost = fill_price * (1.0 + fee_rate)
    unit_loss = unit_cost - stop_price * (1.0 - slippage_ratio) * (1.0 - fee_rate)
    if unit_loss <= 0.0:
        return 0.0
    units = min(risk_ratio * equity / unit_loss, cash / unit_cost)
    if units * unit_cost <= MIN_SPEND_RATIO * equity:
        return 0.0
    return units


@njit(cache=True)
def stop_loss_level(entry_price: float, ratio: float) -> float:
    """``entry_price * (1 - ratio)``; NaN when ``ratio`` is NaN (no stop-loss)."""
    return entry_price * (1.0 - ratio)


@njit(cache=True)
def take_profit_level(entry_price: float, ratio: float) -> float:
    """``entry_price * (1 + ratio)``; NaN when ``ratio`` is NaN (no take-profit)."""
    return entry_price * (1.0 + ratio)


@njit(cache=True)
def trailing_stop_level(reference_high: float, ratio: float) -> float:
    """``(1 - ratio) * reference_high``; NaN when ``ratio`` is NaN (no trailing stop)."""
    return (1.0 - ratio) * reference_high


@njit(cache=True)
def risk_exit_code(
    open_: float, high: float, low: float, stop_loss: float, take_profit: float, trailing_stop: float
) -> tuple[int, float]:
    """Return ``(code, raw price)`` of the risk exit a long position takes during one candle, or ``(NO_EXIT, nan)``.

    The levels in force during the candle are NaN when absent. A level the open is already through fills at the
    open, else at the level. The higher of the stop-loss and the trailing stop is the one hit first (the
    stop-loss when they are equal); a stop beats the take-profit in the same candle (the pessimistic choice).
    """
    stop = np.nan
    stop_code = NO_EXIT
    if not np.isnan(stop_loss):
        stop, stop_code = stop_loss, STOP_LOSS_CODE
    if not np.isnan(trailing_stop) and (stop_code == NO_EXIT or trailing_stop > stop):
        stop, stop_code = trailing_stop, TRAILING_STOP_CODE
    has_take_profit = not np.isnan(take_profit)
    if stop_code != NO_EXIT and open_ <= stop:
        return stop_code, open_
    if has_take_profit and open_ >= take_profit:
        return TAKE_PROFIT_CODE, open_
    if stop_code != NO_EXIT and low <= stop:
        return stop_code, stop
    if has_take_profit and high >= take_profit:
        return TAKE_PROFIT_CODE, take_profit
    return NO_EXIT, np.nan


@njit(cache=True)
def close_fill(
    raw_price: float, quantity: float, cost: float, fee_rate: float, slippage_ratio: float
) -> tuple[float, float, float, float]:
    """Return ``(exit_price, exit_fee, pnl, pnl_ratio)`` of selling ``quantity`` at ``raw_price``.

    ``pnl = exit_price * quantity - exit_fee - cost`` and ``pnl_ratio = pnl / cost``, where ``cost`` is what the
    entry cost (notional plus entry fee).
    """
    price = sell_fill_price(raw_price, slippage_ratio)
    fee = fill_fee(price, quantity, fee_rate)
    pnl = price * quantity - fee - cost
    return price, fee, pnl, pnl / cost
