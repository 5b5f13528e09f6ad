"""The backtest loop: every boundary in the contract's order (risk exits of candle t, entries at the open, signal
and maximum-holding exits at the open), inside compiled code.

A year of one-minute candles runs in tens of milliseconds because the loop and the steps it calls
(:mod:`trading.engine.boundary`) are all compiled by Numba; :mod:`trading.engine.backtest` prepares its arrays
and reads its trade log (columns: :mod:`trading.engine.layout`).

Compiled with ``cache=True``: the machine code is kept on disk beside this module, so a new process loads it
instead of compiling again. Numba checks only this file's timestamp, so after editing a module it calls, delete
``trading/engine/__pycache__`` (a fresh checkout starts with none).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trading.engine.boundary import (
    book_equities,
    cooldowns_after_exits,
    entries_at_boundary,
    equity_at_boundary,
    limits_at_boundary,
    risk_exits_at_boundary,
    signal_exits_at_boundary,
)
from trading.engine.layout import (
    AMBIGUITY_NONE,
    AMBIGUOUS_FLOAT_COLUMNS,
    AMBIGUOUS_FLOAT_STOP,
    AMBIGUOUS_FLOAT_TAKE_PROFIT,
    AMBIGUOUS_INT_COLUMNS,
    AMBIGUOUS_INT_OPEN_TIME_SECONDS,
    AMBIGUOUS_INT_RESOLUTION,
    AMBIGUOUS_INT_SLOT,
    END_OF_DATA_CODE,
    FLOAT_COLUMNS,
    FLOAT_ENTRY_FEE,
    FLOAT_ENTRY_PRICE,
    FLOAT_EXIT_FEE,
    FLOAT_EXIT_PRICE,
    FLOAT_PNL,
    FLOAT_PNL_RATIO,
    FLOAT_QUANTITY,
    FLOAT_STOP_LOSS_PRICE,
    FLOAT_TAKE_PROFIT_PRICE,
    FLOAT_TRAILING_STOP_PRICE,
    HALT_FLOAT_COLUMNS,
    HALT_INT_COLUMNS,
    INT_COLUMNS,
    INT_ENTRY_INDEX,
    INT_ENTRY_TIME_SECONDS,
    INT_EXIT_INDEX,
    INT_EXIT_TIME_SECONDS,
    INT_SLOT,
    LIMIT_NONE,
    LIMIT_STATE_SIZE,
    MAX_HOLDING_CODE,
    NO_EXIT,
    REFUSAL_BOUNDARY_SECONDS,
    REFUSAL_COLUMNS,
    REFUSAL_LIMIT,
    REFUSAL_SLOT,
    RULE_COOLDOWN_SECONDS,
    RULE_DAILY_LOSS_LIMIT_RATIO,
    RULE_MAX_DRAWDOWN_HALT_RATIO,
    SIGNAL_CODE,
    STATE_DRAWDOWN_HALT_SECONDS,
    STATE_HALT_DAY,
)
from trading.engine.rules import close_fill


@njit(cache=True)
def _exits_record(
    slot_trade: np.ndarray,
    exit_code: np.ndarray,
    exit_index: np.ndarray,
    exit_time_seconds: np.ndarray,
    trail_level: np.ndarray,
    exit_price: np.ndarray,
    exit_fee: np.ndarray,
    pnl: np.ndarray,
    pnl_ratio: np.ndarray,
    ints: np.ndarray,
    floats: np.ndarray,
    codes: np.ndarray,
) -> int:
    """Write the exits of one phase (slots whose ``exit_code`` is set) to their trades' rows, free the slots, and
    return how many there were."""
    recorded = 0
    for i in range(exit_code.shape[0]):
        if exit_code[i] != NO_EXIT:
            recorded += 1
            row = slot_trade[i]
            codes[row] = exit_code[i]
            ints[row, INT_EXIT_INDEX] = exit_index[i]
            ints[row, INT_EXIT_TIME_SECONDS] = exit_time_seconds[i]
            floats[row, FLOAT_TRAILING_STOP_PRICE] = trail_level[i]
            floats[row, FLOAT_EXIT_PRICE] = exit_price[i]
            floats[row, FLOAT_EXIT_FEE] = exit_fee[i]
            floats[row, FLOAT_PNL] = pnl[i]
            floats[row, FLOAT_PNL_RATIO] = pnl_ratio[i]
            slot_trade[i] = -1
            exit_code[i] = NO_EXIT
    return recorded


@njit(cache=True)
def run_boundaries(
    book_rules: np.ndarray,
    slot_book: np.ndarray,
    book_weight: np.ndarray,
    portfolio_rules: np.ndarray,
    cash: float,
    has_t: np.ndarray,
    t_index: np.ndarray,
    t_open_time_seconds: np.ndarray,
    t_open: np.ndarray,
    t_high: np.ndarray,
    t_low: np.ndarray,
    t_close: np.ndarray,
    entry_signal: np.ndarray,
    exit_signal: np.ndarray,
    has_next: np.ndarray,
    next_index: np.ndarray,
    next_time_seconds: np.ndarray,
    next_price: np.ndarray,
    finer_bounds: np.ndarray,
    finer_prices: np.ndarray,
    capacity: int,
    t_atr: np.ndarray,
    boundary_seconds: np.ndarray,
    log_limits: bool,
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    float,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]:
    """Run every boundary in the contract's order (CRITERIA.md), as the daily cycle does day by day: the risk
    exits of candle t, the entries at the open, the signal and maximum-holding exits at the open.

    Args:
        book_rules: shape (B, RULES_SIZE), float64: each book's parameters (``RULE_*`` positions): one book for a
            strategy run alone (its rules without the account's halts, :func:`trading.engine.step.
            standalone_rules`), one per strategy of a portfolio (docs/portfolios.md).
        slot_book: shape (k,), int64: the book of each slot.
        book_weight: shape (B,), float64: each book's share of the account's equity (its budget).
        portfolio_rules: shape (RULES_SIZE,), float64: the account's own limits and ruin level (NaN where none).
        cash: starting cash, quote currency.
        has_t .. next_price: shape (n, k): the market of each of the k slots (each book's instruments in symbol
            order, the books one after the other) at each of the n boundaries, in time order (see
            :mod:`trading.engine.boundary`).
        finer_bounds: shape (n, k, 2), int64: the finer candles inside candle t of each boundary and instrument
            are the columns ``finer_bounds[j, i, 0] .. finer_bounds[j, i, 1] - 1`` of ``finer_prices``.
        finer_prices: shape (3, f), float64: open, high and low of the finer candles (f = 0, and the bounds
            equal, without finer candles).
        capacity: an upper bound of the number of trades (the count of entry signals is one).
        t_atr: shape (n, k), float64: the ATR on candle t, for risk-based sizing with an ATR stop; may be (0, 0)
            when the rules do not size on an ATR stop.
        boundary_seconds: shape (n,), int64: each boundary's time (the open of candle t + 1), seconds; -1 for the
            settlement step after the last candle of a run that closes at its end (no limit is measured there).
        log_limits: log the entries refused by a risk limit and the halts (else the refusal and halt logs are
            empty; the limits apply either way).

    A book's halts (daily loss, drawdown) are measured on its own equity (:func:`trading.engine.boundary.
    book_equities`), the account's on the account's equity.

    Returns:
        ``(ints, floats, codes, still_open, cash)``: the trades in the order they were entered (then slot):
        ``ints`` shape (m, 5) int64 and ``floats`` shape (m, 10) float64 with the columns ``INT_*`` and
        ``FLOAT_*`` of :mod:`trading.engine.layout` (NaN where absent), ``codes`` shape (m,) int64 exit codes
        (``NO_EXIT`` while open), ``still_open`` shape (m,) bool, the cash at the end, and the ambiguous candles
        in time order (then slot): ``ambiguous_ints`` shape (a, 3) int64 and ``ambiguous_floats`` shape (a, 2)
        float64 with the columns ``AMBIGUOUS_*`` of :mod:`trading.engine.layout`. Each ambiguous candle closes
        a trade, so ``a <= m``. Then the risk limits' logs (:mod:`trading.engine.layout`, docs/criteria.md "Risk
        limits"): ``refusals`` shape (r, 3) int64 (``REFUSAL_*``: the boundary, slot and limit of every entry
        signal a limit refused, in time order then slot), ``halt_ints`` shape (h, 4) int64 and ``halt_floats``
        shape (h, 2) float64 (``HALT_*``: each halt's beginning and end, in time order, the account's first).
    """
    n, k = has_t.shape
    ints = np.full((capacity, INT_COLUMNS), -1, dtype=np.int64)
    floats = np.full((capacity, FLOAT_COLUMNS), np.nan)
    codes = np.zeros(capacity, dtype=np.int64)
    is_open = np.zeros(k, dtype=np.bool_)
    quantity = np.zeros(k)
    entry_price = np.zeros(k)
    entry_fee = np.zeros(k)
    entry_time_seconds = np.zeros(k, dtype=np.int64)
    entry_index = np.zeros(k, dtype=np.int64)
    stop_loss = np.full(k, np.nan)
    take_profit = np.full(k, np.nan)
    trail_reference = np.zeros(k)
    trail_level = np.full(k, np.nan)
    entered = np.zeros(k, dtype=np.bool_)
    exit_code = np.zeros(k, dtype=np.int64)
    exit_index = np.zeros(k, dtype=np.int64)
    exit_time_seconds = np.zeros(k, dtype=np.int64)
    exit_price = np.zeros(k)
    exit_fee = np.zeros(k)
    pnl = np.zeros(k)
    pnl_ratio = np.zeros(k)
    slot_trade = np.full(k, -1, dtype=np.int64)
    ambiguity = np.full(k, AMBIGUITY_NONE, dtype=np.int64)
    ambiguous_stop = np.full(k, np.nan)
    ambiguous_ints = np.full((capacity, AMBIGUOUS_INT_COLUMNS), -1, dtype=np.int64)
    ambiguous_floats = np.full((capacity, AMBIGUOUS_FLOAT_COLUMNS), np.nan)
    a = 0
    m = 0
    # The risk limits (docs/criteria.md "Risk limits"): the account's halts are checked at every boundary (the
    # peak and the day's starting equity are measured at each), the cooldowns after each risk exit.
    books = book_rules.shape[0]
    halts = not np.isnan(portfolio_rules[RULE_DAILY_LOSS_LIMIT_RATIO]) or not np.isnan(
        portfolio_rules[RULE_MAX_DRAWDOWN_HALT_RATIO]
    )
    book_halts = False
    cooldowns = False
    for b in range(books):
        book_halts = (
            book_halts
            or not np.isnan(book_rules[b, RULE_DAILY_LOSS_LIMIT_RATIO])
            or not np.isnan(book_rules[b, RULE_MAX_DRAWDOWN_HALT_RATIO])
        )
        cooldowns = cooldowns or not np.isnan(book_rules[b, RULE_COOLDOWN_SECONDS])
    starting_cash = cash
    state = np.full(LIMIT_STATE_SIZE, np.nan)
    state[STATE_HALT_DAY] = -1.0
    state[STATE_DRAWDOWN_HALT_SECONDS] = -1.0
    book_state = np.full((books, LIMIT_STATE_SIZE), np.nan)
    for b in range(books):
        book_state[b, STATE_HALT_DAY] = -1.0
        book_state[b, STATE_DRAWDOWN_HALT_SECONDS] = -1.0
    book_blocked = np.zeros(books, dtype=np.int64)
    book_open = np.zeros(books, dtype=np.int64)
    book_exposure = np.zeros(books)
    book_equity = np.zeros(books)
    realized = np.zeros(books)
    last_close = np.full(k, np.nan)  # each slot's last close before the boundary: marks a held slot in a gap
    cooldown_until = np.full(k, np.iinfo(np.int64).min, dtype=np.int64)
    refused = np.zeros(k, dtype=np.int64)
    refusals = np.full((capacity if log_limits else 0, REFUSAL_COLUMNS), -1, dtype=np.int64)
    halt_rows = 2 * n * (1 + books) if log_limits and (halts or book_halts) else 0
    halt_ints = np.full((halt_rows, HALT_INT_COLUMNS), -1, dtype=np.int64)
    halt_floats = np.full((halt_rows, HALT_FLOAT_COLUMNS), np.nan)
    r = 0
    h = 0
    # Open positions: a phase with nothing to act on is not called (most boundaries of a one-minute run).
    n_open = 0
    for j in range(n):
        # 1. the risk exits of candle t, settled before the open: entries there see them closed, and their cash
        if n_open > 0:
            cash += risk_exits_at_boundary(
                book_rules,
                slot_book,
                j,
                has_t,
                t_index,
                t_open_time_seconds,
                t_open,
                t_high,
                t_low,
                finer_bounds,
                finer_prices,
                is_open,
                quantity,
                entry_price,
                entry_fee,
                entry_time_seconds,
                stop_loss,
                take_profit,
                trail_reference,
                trail_level,
                ambiguity,
                ambiguous_stop,
                exit_code,
                exit_index,
                exit_time_seconds,
                exit_price,
                exit_fee,
                pnl,
                pnl_ratio,
            )
            for i in range(k):
                if ambiguity[i] != AMBIGUITY_NONE:
                    ambiguous_ints[a, AMBIGUOUS_INT_SLOT] = i
                    ambiguous_ints[a, AMBIGUOUS_INT_OPEN_TIME_SECONDS] = t_open_time_seconds[j, i]
                    ambiguous_ints[a, AMBIGUOUS_INT_RESOLUTION] = ambiguity[i]
                    ambiguous_floats[a, AMBIGUOUS_FLOAT_STOP] = ambiguous_stop[i]
                    ambiguous_floats[a, AMBIGUOUS_FLOAT_TAKE_PROFIT] = take_profit[i]
                    a += 1
            if cooldowns:
                cooldowns_after_exits(book_rules, slot_book, exit_code, exit_time_seconds, cooldown_until)
            if book_halts:
                for i in range(k):
                    if exit_code[i] != NO_EXIT:
                        realized[slot_book[i]] += pnl[i]
            n_open -= _exits_record(
                slot_trade,
                exit_code,
                exit_index,
                exit_time_seconds,
                trail_level,
                exit_price,
                exit_fee,
                pnl,
                pnl_ratio,
                ints,
                floats,
                codes,
            )
        for i in range(k):
            if has_t[j, i]:
                last_close[i] = t_close[j, i]
        blocked = LIMIT_NONE
        # The limits are measured at the run's boundaries: not at the settlement step after the last candle of a
        # run that closes at its end (boundary_seconds -1 there), where nothing can be entered.
        measured = boundary_seconds[j] >= 0
        if halts and measured:
            equity = equity_at_boundary(
                cash, j, is_open, quantity, last_close, has_t, t_close, has_next, next_price
            )
            blocked, h = limits_at_boundary(
                portfolio_rules, state, equity, boundary_seconds[j], halt_ints, halt_floats, h, -1
            )
        if book_halts and measured:
            book_equities(
                book_weight,
                starting_cash,
                realized,
                slot_book,
                j,
                is_open,
                quantity,
                entry_price,
                entry_fee,
                last_close,
                has_t,
                t_close,
                has_next,
                next_price,
                book_equity,
            )
            for b in range(books):
                book_blocked[b], h = limits_at_boundary(
                    book_rules[b],
                    book_state[b],
                    book_equity[b],
                    boundary_seconds[j],
                    halt_ints,
                    halt_floats,
                    h,
                    b,
                )
        has_entry_signal = False
        for i in range(k):
            has_entry_signal = has_entry_signal or entry_signal[j, i]
        # 2. the entries at the open
        if has_entry_signal:
            cash = entries_at_boundary(
                book_rules,
                slot_book,
                book_weight,
                portfolio_rules,
                j,
                cash,
                has_t,
                t_close,
                t_atr,
                entry_signal,
                has_next,
                next_index,
                next_time_seconds,
                next_price,
                is_open,
                quantity,
                entry_price,
                entry_fee,
                entry_time_seconds,
                entry_index,
                stop_loss,
                take_profit,
                trail_reference,
                trail_level,
                last_close,
                entered,
                blocked,
                book_blocked,
                book_open,
                book_exposure,
                cooldown_until,
                refused,
            )
            for i in range(k):
                if log_limits and refused[i] != LIMIT_NONE:
                    refusals[r, REFUSAL_BOUNDARY_SECONDS] = boundary_seconds[j]
                    refusals[r, REFUSAL_SLOT] = i
                    refusals[r, REFUSAL_LIMIT] = refused[i]
                    r += 1
                if entered[i]:
                    ints[m, INT_SLOT] = i
                    ints[m, INT_ENTRY_INDEX] = entry_index[i]
                    ints[m, INT_ENTRY_TIME_SECONDS] = entry_time_seconds[i]
                    floats[m, FLOAT_ENTRY_PRICE] = entry_price[i]
                    floats[m, FLOAT_QUANTITY] = quantity[i]
                    floats[m, FLOAT_ENTRY_FEE] = entry_fee[i]
                    floats[m, FLOAT_STOP_LOSS_PRICE] = stop_loss[i]
                    floats[m, FLOAT_TAKE_PROFIT_PRICE] = take_profit[i]
                    slot_trade[i] = m
                    m += 1
                    n_open += 1
        # 3. the signal and maximum-holding exits at the open; their cash is spent from the next boundary on
        if n_open > 0:
            cash += signal_exits_at_boundary(
                book_rules,
                slot_book,
                j,
                has_t,
                t_open_time_seconds,
                exit_signal,
                has_next,
                next_index,
                next_time_seconds,
                next_price,
                is_open,
                quantity,
                entry_price,
                entry_fee,
                entry_time_seconds,
                exit_code,
                exit_index,
                exit_time_seconds,
                exit_price,
                exit_fee,
                pnl,
                pnl_ratio,
            )
            if book_halts:
                for i in range(k):
                    if exit_code[i] != NO_EXIT:
                        realized[slot_book[i]] += pnl[i]
            n_open -= _exits_record(
                slot_trade,
                exit_code,
                exit_index,
                exit_time_seconds,
                trail_level,
                exit_price,
                exit_fee,
                pnl,
                pnl_ratio,
                ints,
                floats,
                codes,
            )
    still_open = np.zeros(m, dtype=np.bool_)
    for i in range(k):
        if slot_trade[i] >= 0:
            still_open[slot_trade[i]] = True
            floats[slot_trade[i], FLOAT_TRAILING_STOP_PRICE] = trail_level[i]
    return (
        ints[:m],
        floats[:m],
        codes[:m],
        still_open,
        cash,
        ambiguous_ints[:a],
        ambiguous_floats[:a],
        refusals[:r],
        halt_ints[:h],
        halt_floats[:h],
    )


@njit(cache=True)
def close_at_end(
    ints: np.ndarray,
    floats: np.ndarray,
    codes: np.ndarray,
    still_open: np.ndarray,
    data_end_seconds: np.ndarray,
    last_index: np.ndarray,
    last_close: np.ndarray,
    last_exit_seconds: np.ndarray,
    fee_rate: float,
    slippage_ratio: float,
) -> None:
    """Finish a run that closes what is open at the end (``end_of_data``), in place, after :func:`run_boundaries`.

    The sale at an instrument's last close when its data ends first (the signal exit that
    :func:`trading.engine.backtest._close_at_data_end` set up) is relabelled ``end_of_data``; each trade still open
    is sold at its instrument's last close in the run, timed at that candle's close (CRITERIA.md).

    Args:
        ints, floats, codes, still_open: :func:`run_boundaries`' trade log (m rows).
        data_end_seconds: shape (k,), int64: the time of the sale at the end of each instrument's data, -1 where
            its data reaches the run's last candle.
        last_index: shape (k,), int64: each instrument's last candle in the run (-1 without one);
            last_close: shape (k,), float64, its close; last_exit_seconds: shape (k,), int64, its close's time.
        fee_rate, slippage_ratio: the criteria's.
    """
    for row in range(codes.shape[0]):
        code = codes[row]
        if code in (SIGNAL_CODE, MAX_HOLDING_CODE) and ints[row, INT_EXIT_TIME_SECONDS] >= 0:
            end = data_end_seconds[ints[row, INT_SLOT]]
            if end >= 0 and ints[row, INT_EXIT_TIME_SECONDS] == end:
                codes[row] = END_OF_DATA_CODE
    for row in range(codes.shape[0]):
        if not still_open[row]:
            continue
        slot = ints[row, INT_SLOT]
        quantity = floats[row, FLOAT_QUANTITY]
        cost = floats[row, FLOAT_ENTRY_PRICE] * quantity + floats[row, FLOAT_ENTRY_FEE]
        price, fee, pnl, pnl_ratio = close_fill(last_close[slot], quantity, cost, fee_rate, slippage_ratio)
        ints[row, INT_EXIT_INDEX] = last_index[slot]
        ints[row, INT_EXIT_TIME_SECONDS] = last_exit_seconds[slot]
        floats[row, FLOAT_EXIT_PRICE] = price
        floats[row, FLOAT_EXIT_FEE] = fee
        floats[row, FLOAT_PNL] = pnl
        floats[row, FLOAT_PNL_RATIO] = pnl_ratio
        codes[row] = END_OF_DATA_CODE
