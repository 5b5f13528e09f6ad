"""The three phases of one boundary over every instrument of a strategy, compiled by Numba.

CRITERIA.md's order at the open of candle t+1: (1) :func:`risk_exits_at_boundary` settles the stop-losses,
take-profits and trailing stops crossed during candle t (their cash is free for what follows); (2)
:func:`entries_at_boundary` fills the entries at the open; (3) :func:`signal_exits_at_boundary` fills the signal
and maximum-holding exits at the open (their cash is free from the next boundary on). The backtest loop
(:func:`trading.engine.loop.run_boundaries`) calls them at every boundary inside compiled code; the live cycle
calls them for one boundary through :mod:`trading.engine.step`: one set of rules.

Instrument state (one slot per instrument of the strategy, in symbol order), arrays of shape (k,), updated in
place: ``is_open`` (bool), ``quantity``, ``entry_price``, ``entry_fee``, ``entry_time_seconds`` (int64),
``entry_index`` (int64), ``stop_loss`` and ``take_profit`` (the fixed levels set at entry, NaN without),
``trail_reference`` (max of the entry price and the highs seen since), ``trail_level`` (the trailing stop in
force, NaN without).

Market, arrays of shape (n, k), row ``j`` being boundary ``j`` (the live cycle passes one row): ``has_t`` (the
instrument has candle t, the last closed one), ``t_index``, ``t_open_time_seconds`` (seconds), ``t_open``, ``t_high``,
``t_low``, ``t_close``, ``entry_signal``, ``exit_signal`` (candle t's values), ``has_next`` (a first price after
t exists), ``next_index`` (the candle whose open it is, -1 live), ``next_time_seconds`` (seconds), ``next_price`` (raw,
before slippage). Functions of one boundary take the row ``j`` with the arrays: indexing a row, rather than
slicing it, keeps compiled code free of per-boundary reference counting.

Compiled with ``cache=True``: the machine code is kept on disk beside this module, so a new process loads it
instead of compiling again. Numba checks only this file's timestamp, so after editing a module it calls, delete
``trading/engine/__pycache__`` (a fresh checkout starts with none).
"""

from __future__ import annotations

import numpy as np

from trading.engine.layout import (
    MAX_HOLDING_CODE,
    NO_EXIT,
    RULE_FEE_RATE,
    RULE_MAX_HOLDING_SECONDS,
    RULE_SIZING_METHOD,
    RULE_SIZING_VALUE,
    RULE_SLIPPAGE_RATIO,
    RULE_STOP_LOSS_RATIO,
    RULE_TAKE_PROFIT_RATIO,
    RULE_TRAILING_STOP_RATIO,
    SIGNAL_CODE,
    njit_without_refcounts,
)
from trading.engine.rules import (
    buy_fill_price,
    close_fill,
    entry_quantity,
    fill_fee,
    risk_exit_code,
    stop_loss_level,
    take_profit_level,
    trailing_stop_level,
)


@njit_without_refcounts
def equity_at_boundary(
    cash: float,
    j: int,
    is_open: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    has_t: np.ndarray,
    t_close: np.ndarray,
    has_next: np.ndarray,
    next_price: np.ndarray,
) -> float:
    """Return cash plus the open positions at this boundary's prices (the next price, else candle t's close,
    else the entry price)."""
    total = cash
    for i in range(is_open.shape[0]):
        if not is_open[i]:
            continue
        if has_next[j, i]:
            price = next_price[j, i]
        elif has_t[j, i]:
            price = t_close[j, i]
        else:
            price = entry_price[i]
        total += quantity[i] * price
    return total


@njit_without_refcounts
def entries_at_boundary(
    rules: np.ndarray,
    j: int,
    cash: float,
    has_t: np.ndarray,
    t_close: np.ndarray,
    entry_signal: np.ndarray,
    has_next: np.ndarray,
    next_index: np.ndarray,
    next_time_seconds: np.ndarray,
    next_price: np.ndarray,
    is_open: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    entry_fee: np.ndarray,
    entry_time_seconds: np.ndarray,
    entry_index: np.ndarray,
    stop_loss: np.ndarray,
    take_profit: np.ndarray,
    trail_reference: np.ndarray,
    trail_level: np.ndarray,
    entered: np.ndarray,
) -> float:
    """The **open** step of one boundary: enter, in slot (symbol) order, every instrument without an open trade
    whose entry signal holds on candle t, at the first price after t, sized on the equity at this boundary,
    while cash lasts.

    Updates the state of the entered slots in place, sets ``entered[i]`` (shape (k,), bool) for each, and
    returns the cash left (never below 0).
    """
    fee_rate = rules[RULE_FEE_RATE]
    slippage_ratio = rules[RULE_SLIPPAGE_RATIO]
    equity = equity_at_boundary(cash, j, is_open, quantity, entry_price, has_t, t_close, has_next, next_price)
    for i in range(is_open.shape[0]):
        entered[i] = False
        if is_open[i] or not has_t[j, i] or not entry_signal[j, i] or not has_next[j, i]:
            continue
        price = buy_fill_price(next_price[j, i], slippage_ratio)
        units = entry_quantity(
            int(rules[RULE_SIZING_METHOD]), rules[RULE_SIZING_VALUE], equity, cash, price, fee_rate
        )
        if units <= 0.0:
            continue
        fee = fill_fee(price, units, fee_rate)
        cash -= price * units + fee
        entered[i] = True
        is_open[i] = True
        quantity[i] = units
        entry_price[i] = price
        entry_fee[i] = fee
        entry_time_seconds[i] = next_time_seconds[j, i]
        entry_index[i] = next_index[j, i]
        stop_loss[i] = stop_loss_level(price, rules[RULE_STOP_LOSS_RATIO])
        take_profit[i] = take_profit_level(price, rules[RULE_TAKE_PROFIT_RATIO])
        trail_reference[i] = price
        trail_level[i] = trailing_stop_level(price, rules[RULE_TRAILING_STOP_RATIO])
    return max(cash, 0.0)


@njit_without_refcounts
def _exit_fill(
    rules: np.ndarray,
    i: int,
    code: int,
    raw_price: float,
    where: int,
    when: int,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    entry_fee: np.ndarray,
    exit_code: np.ndarray,
    exit_index: np.ndarray,
    exit_time_seconds: np.ndarray,
    exit_price: np.ndarray,
    exit_fee: np.ndarray,
    pnl: np.ndarray,
    pnl_ratio: np.ndarray,
) -> float:
    """Fill the exit of slot ``i`` (slippage and fee applied to ``raw_price``), write it to the ``exit_*``,
    ``pnl`` and ``pnl_ratio`` arrays, and return its proceeds net of the fee, quote currency."""
    cost = entry_price[i] * quantity[i] + entry_fee[i]
    price, fee, gain, gain_ratio = close_fill(
        raw_price, quantity[i], cost, rules[RULE_FEE_RATE], rules[RULE_SLIPPAGE_RATIO]
    )
    exit_code[i] = code
    exit_index[i] = where
    exit_time_seconds[i] = when
    exit_price[i] = price
    exit_fee[i] = fee
    pnl[i] = gain
    pnl_ratio[i] = gain_ratio
    proceeds: float = price * quantity[i] - fee
    return proceeds


@njit_without_refcounts
def risk_exits_at_boundary(
    rules: np.ndarray,
    j: int,
    has_t: np.ndarray,
    t_index: np.ndarray,
    t_open_time_seconds: np.ndarray,
    t_open: np.ndarray,
    t_high: np.ndarray,
    t_low: np.ndarray,
    is_open: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    entry_fee: np.ndarray,
    entry_time_seconds: np.ndarray,
    stop_loss: np.ndarray,
    take_profit: np.ndarray,
    trail_reference: np.ndarray,
    trail_level: np.ndarray,
    exit_code: np.ndarray,
    exit_index: np.ndarray,
    exit_time_seconds: np.ndarray,
    exit_price: np.ndarray,
    exit_fee: np.ndarray,
    pnl: np.ndarray,
    pnl_ratio: np.ndarray,
) -> float:
    """Phase 1 of a boundary: **settle the risk exits of candle t**, for the trades that were open during it
    (entered at or before t's open), before anything happens at the open that follows.

    A stop-loss, take-profit or trailing stop crossed inside candle t fills at its level, or at t's open when the
    open gapped through it (stop before take-profit when both are inside, :func:`trading.engine.rules.
    risk_exit_code`), timed at t's open. A slot that exits gets ``is_open[i] = False``, its exit in the
    ``exit_*``, ``pnl`` and ``pnl_ratio`` arrays and ``trail_level[i]`` the trailing level that was in force; the
    others get ``exit_code[i] = NO_EXIT`` and, while they stay open, the trailing reference raised to t's high
    (``trail_level[i]`` the level in force from the next candle on).

    Returns:
        The cash the exits bring in (proceeds net of fees), quote currency: available to the entries at the
        open that follows (:func:`entries_at_boundary`).
    """
    trailing_ratio = rules[RULE_TRAILING_STOP_RATIO]
    proceeds = 0.0
    for i in range(is_open.shape[0]):
        exit_code[i] = NO_EXIT
        if not is_open[i] or not has_t[j, i] or entry_time_seconds[i] > t_open_time_seconds[j, i]:
            continue
        trailing = trailing_stop_level(trail_reference[i], trailing_ratio)
        code, raw_price = risk_exit_code(
            t_open[j, i], t_high[j, i], t_low[j, i], stop_loss[i], take_profit[i], trailing
        )
        if code == NO_EXIT:
            trail_reference[i] = max(trail_reference[i], t_high[j, i])
            trail_level[i] = trailing_stop_level(trail_reference[i], trailing_ratio)
            continue
        is_open[i] = False
        trail_level[i] = trailing
        proceeds += _exit_fill(
            rules,
            i,
            code,
            raw_price,
            t_index[j, i],
            t_open_time_seconds[j, i],
            quantity,
            entry_price,
            entry_fee,
            exit_code,
            exit_index,
            exit_time_seconds,
            exit_price,
            exit_fee,
            pnl,
            pnl_ratio,
        )
    return proceeds


@njit_without_refcounts
def signal_exits_at_boundary(
    rules: np.ndarray,
    j: int,
    has_t: np.ndarray,
    t_open_time_seconds: np.ndarray,
    exit_signal: np.ndarray,
    has_next: np.ndarray,
    next_index: np.ndarray,
    next_time_seconds: np.ndarray,
    next_price: np.ndarray,
    is_open: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    entry_fee: np.ndarray,
    entry_time_seconds: np.ndarray,
    exit_code: np.ndarray,
    exit_index: np.ndarray,
    exit_time_seconds: np.ndarray,
    exit_price: np.ndarray,
    exit_fee: np.ndarray,
    pnl: np.ndarray,
    pnl_ratio: np.ndarray,
) -> float:
    """Phase 3 of a boundary (after the entries): **signal and maximum-holding exits at the open**, of the trades
    that were open during candle t and are still open (its risk exits are settled, :func:`risk_exits_at_boundary`).

    An exit signal on candle t, else a holding time of at least ``max_holding_days`` at the first price after t,
    fills at that price. A slot that exits gets ``is_open[i] = False`` and its exit written to the ``exit_*``,
    ``pnl`` and ``pnl_ratio`` arrays (``exit_code[i]`` is ``NO_EXIT`` for the others); ``trail_level[i]`` keeps
    the level in force at that open.

    Returns:
        The cash the exits bring in (proceeds net of fees), quote currency: spent from the next boundary on.
    """
    max_holding_seconds = rules[RULE_MAX_HOLDING_SECONDS]
    proceeds = 0.0
    for i in range(is_open.shape[0]):
        exit_code[i] = NO_EXIT
        if (
            not is_open[i]
            or not has_t[j, i]
            or not has_next[j, i]
            or entry_time_seconds[i] > t_open_time_seconds[j, i]
        ):
            continue
        if exit_signal[j, i]:
            code = SIGNAL_CODE
        elif (
            not np.isnan(max_holding_seconds)
            and next_time_seconds[j, i] - entry_time_seconds[i] >= max_holding_seconds
        ):
            code = MAX_HOLDING_CODE
        else:
            continue
        is_open[i] = False
        proceeds += _exit_fill(
            rules,
            i,
            code,
            next_price[j, i],
            next_index[j, i],
            next_time_seconds[j, i],
            quantity,
            entry_price,
            entry_fee,
            exit_code,
            exit_index,
            exit_time_seconds,
            exit_price,
            exit_fee,
            pnl,
            pnl_ratio,
        )
    return proceeds
