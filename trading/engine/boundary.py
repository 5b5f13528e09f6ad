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
before slippage), and ``finer_bounds`` (shape (n, k, 2), int64: the finer candles inside candle t are the
columns ``finer_bounds[j, i, 0] .. finer_bounds[j, i, 1] - 1`` of ``finer_prices``, shape (3, f), float64, rows
open, high and low of every instrument's finer candles in time order; both bounds equal when there are none, and
``finer_bounds`` may have no rows when ``finer_prices`` has no columns).
Functions of one boundary take the row ``j`` with the arrays: indexing a row, rather than slicing it, keeps
compiled code free of per-boundary reference counting. The finer candles come packed in these two arrays
rather than five: with five more array arguments the minute backtest's kernel ran 4 to 7 times slower.

The bar magnifier (docs/criteria.md "Finer candles inside a daily candle"): a candle t is **ambiguous** for an
open trade when its stop (the higher of the stop-loss and the trailing level in force) and its take-profit are
both inside the candle (``low <= stop`` and ``high >= take_profit``) and its open went through neither. Only
ambiguous candles are walked through their finer candles (:func:`finer_risk_exit`); every other candle is
decided by its own open, high and low exactly as without finer candles, so a run with finer candles differs from
one without only on the candles it reports ambiguous.

Compiled with ``cache=True``: the machine code is kept on disk beside this module, so a new process loads it
instead of compiling again. Numba checks only this file's timestamp, so after editing a module it calls, delete
``trading/engine/__pycache__`` (a fresh checkout starts with none).
"""

from __future__ import annotations

import numpy as np

from trading.engine.layout import (
    AMBIGUITY_NONE,
    AMBIGUITY_PESSIMISTIC,
    MAX_HOLDING_CODE,
    NO_EXIT,
    RULE_FEE_RATE,
    RULE_MAX_HOLDING_SECONDS,
    RULE_RUIN_EQUITY,
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
    ruined = equity <= rules[RULE_RUIN_EQUITY]  # False when NaN (no starting cash given)
    for i in range(is_open.shape[0]):
        entered[i] = False
        if ruined:
            continue
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
def stop_in_force(stop_loss: float, trailing_stop: float) -> float:
    """The stop a long position is taken out at: the higher of ``stop_loss`` and ``trailing_stop`` (NaN when
    absent); NaN when both are."""
    if np.isnan(stop_loss):
        return trailing_stop
    if np.isnan(trailing_stop):
        return stop_loss
    return max(stop_loss, trailing_stop)


@njit_without_refcounts
def is_ambiguous(open_: float, high: float, low: float, stop: float, take_profit: float) -> bool:
    """True when the stop and the take-profit are both inside one candle (``low <= stop`` and
    ``high >= take_profit``) and its open went through neither (``stop < open_ < take_profit``): its open, high
    and low cannot tell which was crossed first. False when either level is NaN."""
    if np.isnan(stop) or np.isnan(take_profit):
        return False
    return open_ > stop and open_ < take_profit and low <= stop and high >= take_profit


@njit_without_refcounts
def finer_risk_exit(
    finer_prices: np.ndarray,
    start: int,
    end: int,
    stop_loss: float,
    take_profit: float,
    trail_reference: float,
    trailing_ratio: float,
) -> tuple[int, float, float, int]:
    """Walk the finer candles ``start .. end - 1`` of an ambiguous candle (``finer_prices``: shape (3, f),
    float64, rows open, high and low of the finer candles, time order) and return ``(code, raw price,
    trailing level in force, resolution)`` of the first risk exit among them.

    Each finer candle is checked with :func:`trading.engine.rules.risk_exit_code`, the rule of a daily candle
    one level finer: a level the finer open went through fills at that open, else at the level. The trailing
    reference starts at ``trail_reference`` (the entry price and the highs of the candles before this one) and
    rises with the highs of the finer candles before the one being checked (CRITERIA.md's trailing level, one
    level finer). ``resolution`` is the exit code when that finer candle decides (it holds one level only, or
    its open went through one), ``AMBIGUITY_PESSIMISTIC`` when it holds both the stop and the take-profit (the
    stop is taken, as CRITERIA.md does) or when no finer candle crosses a level (missing finer candles: the
    code is then ``NO_EXIT`` and the caller keeps the daily candle's pessimistic exit).
    """
    reference = trail_reference
    for f in range(start, end):
        trailing = trailing_stop_level(reference, trailing_ratio)
        code, raw_price = risk_exit_code(
            finer_prices[0, f], finer_prices[1, f], finer_prices[2, f], stop_loss, take_profit, trailing
        )
        if code != NO_EXIT:
            stop = stop_in_force(stop_loss, trailing)
            if is_ambiguous(finer_prices[0, f], finer_prices[1, f], finer_prices[2, f], stop, take_profit):
                return code, raw_price, trailing, AMBIGUITY_PESSIMISTIC
            return code, raw_price, trailing, code
        reference = max(reference, finer_prices[1, f])
    return NO_EXIT, np.nan, np.nan, AMBIGUITY_PESSIMISTIC


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
    finer_bounds: np.ndarray,
    finer_prices: np.ndarray,
    is_open: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    entry_fee: np.ndarray,
    entry_time_seconds: np.ndarray,
    stop_loss: np.ndarray,
    take_profit: np.ndarray,
    trail_reference: np.ndarray,
    trail_level: np.ndarray,
    ambiguity: np.ndarray,
    ambiguous_stop: np.ndarray,
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
    risk_exit_code`), timed at t's open. When candle t is ambiguous (:func:`is_ambiguous`) and has finer
    candles (``finer_bounds[j, i, 0] < finer_bounds[j, i, 1]``), the first finer candle that crosses a level decides
    instead (:func:`finer_risk_exit`). A slot that exits gets ``is_open[i] = False``, its exit in the
    ``exit_*``, ``pnl`` and ``pnl_ratio`` arrays and ``trail_level[i]`` the trailing level that was in force; the
    others get ``exit_code[i] = NO_EXIT`` and, while they stay open, the trailing reference raised to t's high
    (``trail_level[i]`` the level in force from the next candle on).

    ``ambiguity[i]`` (shape (k,), int64) gets ``AMBIGUITY_NONE`` unless candle t was ambiguous for slot ``i``:
    then the resolution (``AMBIGUITY_PESSIMISTIC`` or the exit code the finer candles decided, see
    :mod:`trading.engine.layout`), and ``ambiguous_stop[i]`` (shape (k,), float64) the stop that was inside the
    candle (the take-profit is ``take_profit[i]``).

    Returns:
        The cash the exits bring in (proceeds net of fees), quote currency: available to the entries at the
        open that follows (:func:`entries_at_boundary`).
    """
    trailing_ratio = rules[RULE_TRAILING_STOP_RATIO]
    proceeds = 0.0
    for i in range(is_open.shape[0]):
        exit_code[i] = NO_EXIT
        ambiguity[i] = AMBIGUITY_NONE
        if not is_open[i] or not has_t[j, i] or entry_time_seconds[i] > t_open_time_seconds[j, i]:
            continue
        trailing = trailing_stop_level(trail_reference[i], trailing_ratio)
        code, raw_price = risk_exit_code(
            t_open[j, i], t_high[j, i], t_low[j, i], stop_loss[i], take_profit[i], trailing
        )
        stop = stop_in_force(stop_loss[i], trailing)
        if is_ambiguous(t_open[j, i], t_high[j, i], t_low[j, i], stop, take_profit[i]):
            ambiguity[i] = AMBIGUITY_PESSIMISTIC
            ambiguous_stop[i] = stop
            if finer_prices.shape[1] == 0:  # no finer candles at all (and finer_bounds may have no rows)
                finer_code, finer_price, finer_trailing, resolution = (
                    NO_EXIT,
                    np.nan,
                    np.nan,
                    AMBIGUITY_PESSIMISTIC,
                )
            else:
                finer_code, finer_price, finer_trailing, resolution = finer_risk_exit(
                    finer_prices,
                    finer_bounds[j, i, 0],
                    finer_bounds[j, i, 1],
                    stop_loss[i],
                    take_profit[i],
                    trail_reference[i],
                    trailing_ratio,
                )
            if finer_code != NO_EXIT:
                code, raw_price, trailing, ambiguity[i] = finer_code, finer_price, finer_trailing, resolution
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
