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
    HALT_FLOAT_EQUITY,
    HALT_FLOAT_REFERENCE,
    HALT_INT_BEGAN,
    HALT_INT_BOOK,
    HALT_INT_BOUNDARY_SECONDS,
    HALT_INT_LIMIT,
    LIMIT_COOLDOWN,
    LIMIT_DAILY_LOSS,
    LIMIT_MAX_DRAWDOWN,
    LIMIT_MAX_EXPOSURE,
    LIMIT_MAX_OPEN_POSITIONS,
    LIMIT_NONE,
    LIMIT_RISK_STOP,
    MAX_HOLDING_CODE,
    MIN_SPEND_RATIO,
    NO_EXIT,
    RULE_COOLDOWN_SECONDS,
    RULE_DAILY_LOSS_LIMIT_RATIO,
    RULE_DRAWDOWN_RESUME_SECONDS,
    RULE_FEE_RATE,
    RULE_MAX_DRAWDOWN_HALT_RATIO,
    RULE_MAX_EXPOSURE_RATIO,
    RULE_MAX_HOLDING_SECONDS,
    RULE_MAX_OPEN_POSITIONS,
    RULE_RUIN_EQUITY,
    RULE_SIZING_ATR_MULTIPLE,
    RULE_SIZING_METHOD,
    RULE_SIZING_VALUE,
    RULE_SLIPPAGE_RATIO,
    RULE_STOP_LOSS_RATIO,
    RULE_TAKE_PROFIT_RATIO,
    RULE_TRAILING_STOP_RATIO,
    SIGNAL_CODE,
    SIZING_RISK,
    STATE_DAY,
    STATE_DAY_START_EQUITY,
    STATE_DRAWDOWN_HALT_SECONDS,
    STATE_HALT_DAY,
    STATE_LAST_EQUITY,
    STATE_PEAK_EQUITY,
    STOP_LOSS_CODE,
    njit_without_refcounts,
)
from trading.engine.rules import (
    buy_fill_price,
    close_fill,
    entry_quantity,
    fill_fee,
    risk_exit_code,
    risk_quantity,
    stop_loss_level,
    take_profit_level,
    trailing_stop_level,
)

SECONDS_PER_DAY = 86_400


@njit_without_refcounts
def equity_at_boundary(
    cash: float,
    j: int,
    is_open: np.ndarray,
    quantity: np.ndarray,
    last_close: np.ndarray,
    has_t: np.ndarray,
    t_close: np.ndarray,
    has_next: np.ndarray,
    next_price: np.ndarray,
) -> float:
    """Return cash plus the open positions at this boundary's prices: the next price, else candle t's close, else
    ``last_close[i]`` (shape (k,): the close of the slot's last candle before the boundary, as the equity curve
    marks it; an instrument between two stored candles keeps its last price)."""
    total = cash
    for i in range(is_open.shape[0]):
        if not is_open[i]:
            continue
        if has_next[j, i]:
            price = next_price[j, i]
        elif has_t[j, i]:
            price = t_close[j, i]
        else:
            price = last_close[i]
        total += quantity[i] * price
    return total


@njit_without_refcounts
def _halt_logged(
    halt_ints: np.ndarray,
    halt_floats: np.ndarray,
    h: int,
    boundary_seconds: int,
    limit: int,
    began: int,
    equity: float,
    reference: float,
    book: int,
) -> int:
    """Write one halt event to row ``h`` of the halts log when it has room; return the rows used."""
    if h < halt_ints.shape[0]:
        halt_ints[h, HALT_INT_BOOK] = book
        halt_ints[h, HALT_INT_BOUNDARY_SECONDS] = boundary_seconds
        halt_ints[h, HALT_INT_LIMIT] = limit
        halt_ints[h, HALT_INT_BEGAN] = began
        halt_floats[h, HALT_FLOAT_EQUITY] = equity
        halt_floats[h, HALT_FLOAT_REFERENCE] = reference
        return h + 1
    return h


@njit_without_refcounts
def limits_at_boundary(
    rules: np.ndarray,
    state: np.ndarray,
    equity: float,
    boundary_seconds: int,
    halt_ints: np.ndarray,
    halt_floats: np.ndarray,
    h: int,
    book: int,
) -> tuple[int, int]:
    """The account's halts at one boundary (docs/criteria.md "Risk limits"): update ``state`` with this
    boundary's equity and return ``(limit, h)``: the limit that refuses every entry here (``LIMIT_NONE``,
    ``LIMIT_DAILY_LOSS`` or ``LIMIT_MAX_DRAWDOWN``) and the rows of the halts log now used.

    Called at every boundary of a run whose rules have a daily loss limit or a drawdown halt, after the risk
    exits of candle t and before the entries, with the equity the entries are sized on (:func:`equity_at_boundary`).

    - The day is the UTC day of candle t (``(boundary_seconds - 1) // 86400``: a daily boundary at D 00:00 closes
      day D - 1). Its starting equity is the equity measured at the last boundary of the day before (this one's, on
      an account's first boundary). Once the equity is below ``(1 - daily_loss_limit_ratio)`` of it, no entry is
      made at any boundary of that day; the next day starts afresh (its first boundary logs the halt's end).
    - The peak is the highest equity measured at a boundary. While the equity is below ``(1 -
      max_drawdown_halt_ratio)`` of the peak, no entry is made. The halt ends when the equity is back at or above
      that line (open positions recovered), or, with ``drawdown_resume_days``, at the first boundary at least that
      many days after it began: the peak is then reset to the equity there (the drawdown is measured afresh).

    Args:
        rules: the strategy's ``rules`` vector (:mod:`trading.engine.layout` ``RULE_*``).
        state: shape (LIMIT_STATE_SIZE,), float64, updated in place (``STATE_*``; NaN unknown, -1 not halted).
        equity: cash plus open positions at this boundary's prices, quote currency.
        boundary_seconds: the boundary's time, seconds since epoch.
        halt_ints, halt_floats: the halts log (``HALT_*`` columns), written from row ``h`` while it has room.
        h: the rows of the halts log used so far.
        book: which book's halts these are, for the log (-1: the whole account's).
    """
    daily = rules[RULE_DAILY_LOSS_LIMIT_RATIO]
    drawdown = rules[RULE_MAX_DRAWDOWN_HALT_RATIO]
    blocked = LIMIT_NONE
    day = (boundary_seconds - 1) // SECONDS_PER_DAY
    if state[STATE_DAY] != day:  # True while NaN: the account's first boundary
        state[STATE_DAY] = day
        last = state[STATE_LAST_EQUITY]
        state[STATE_DAY_START_EQUITY] = equity if np.isnan(last) else last
        if state[STATE_HALT_DAY] >= 0.0:  # a daily loss halt ends with its day
            state[STATE_HALT_DAY] = -1.0
            h = _halt_logged(
                halt_ints,
                halt_floats,
                h,
                boundary_seconds,
                LIMIT_DAILY_LOSS,
                0,
                equity,
                state[STATE_DAY_START_EQUITY],
                book,
            )
    if not np.isnan(daily):
        start = state[STATE_DAY_START_EQUITY]
        if state[STATE_HALT_DAY] != day and equity < start * (1.0 - daily):
            state[STATE_HALT_DAY] = day
            h = _halt_logged(
                halt_ints, halt_floats, h, boundary_seconds, LIMIT_DAILY_LOSS, 1, equity, start, book
            )
        if state[STATE_HALT_DAY] == day:
            blocked = LIMIT_DAILY_LOSS
    if not np.isnan(drawdown):
        peak = state[STATE_PEAK_EQUITY]
        if np.isnan(peak) or equity > peak:
            peak = equity
        since = state[STATE_DRAWDOWN_HALT_SECONDS]
        if since >= 0.0:
            resume = rules[RULE_DRAWDOWN_RESUME_SECONDS]
            if equity >= peak * (1.0 - drawdown):
                since = -1.0
            elif not np.isnan(resume) and boundary_seconds - since >= resume:
                since = -1.0
                peak = equity
            if since < 0.0:
                h = _halt_logged(
                    halt_ints, halt_floats, h, boundary_seconds, LIMIT_MAX_DRAWDOWN, 0, equity, peak, book
                )
        elif equity < peak * (1.0 - drawdown):
            since = float(boundary_seconds)
            h = _halt_logged(
                halt_ints, halt_floats, h, boundary_seconds, LIMIT_MAX_DRAWDOWN, 1, equity, peak, book
            )
        state[STATE_PEAK_EQUITY] = peak
        state[STATE_DRAWDOWN_HALT_SECONDS] = since
        if since >= 0.0 and blocked == LIMIT_NONE:
            blocked = LIMIT_MAX_DRAWDOWN
    state[STATE_LAST_EQUITY] = equity
    return blocked, h


@njit_without_refcounts
def cooldowns_after_exits(
    book_rules: np.ndarray,
    slot_book: np.ndarray,
    exit_code: np.ndarray,
    exit_time_seconds: np.ndarray,
    cooldown_until: np.ndarray,
) -> None:
    """Start the cooldown of every slot whose exit (``exit_code``, shape (k,)) was a stop-loss: no entry there
    at a boundary at or before ``exit_time_seconds[i] + cooldown_days_after_stop_loss`` days
    (``cooldown_until``, shape (k,), int64 seconds, updated in place). A take-profit, trailing stop or signal exit
    starts none; nothing happens without the limit (each slot's from its book's rules: ``book_rules`` shape
    (B, RULES_SIZE), ``slot_book`` shape (k,), int64)."""
    for i in range(exit_code.shape[0]):
        cooldown = book_rules[slot_book[i], RULE_COOLDOWN_SECONDS]
        if exit_code[i] == STOP_LOSS_CODE and not np.isnan(cooldown):
            cooldown_until[i] = max(cooldown_until[i], exit_time_seconds[i] + int(cooldown))


@njit_without_refcounts
def book_equities(
    book_weight: np.ndarray,
    starting_cash: float,
    realized: np.ndarray,
    slot_book: np.ndarray,
    j: int,
    is_open: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    entry_fee: np.ndarray,
    last_close: np.ndarray,
    has_t: np.ndarray,
    t_close: np.ndarray,
    has_next: np.ndarray,
    next_price: np.ndarray,
    out: np.ndarray,
) -> None:
    """Each book's own equity in a portfolio (its sleeve, docs/portfolios.md): its weight of the starting cash,
    plus the P&L of its closed trades (``realized``, shape (B,)), plus its open trades' value at this boundary's
    prices less what they cost. Written to ``out`` (shape (B,), quote currency); its halts are measured on it."""
    for b in range(out.shape[0]):
        out[b] = book_weight[b] * starting_cash + realized[b]
    for i in range(is_open.shape[0]):
        if not is_open[i]:
            continue
        if has_next[j, i]:
            price = next_price[j, i]
        elif has_t[j, i]:
            price = t_close[j, i]
        else:
            price = last_close[i]
        out[slot_book[i]] += quantity[i] * price - (entry_price[i] * quantity[i] + entry_fee[i])


@njit_without_refcounts
def entries_at_boundary(
    book_rules: np.ndarray,
    slot_book: np.ndarray,
    book_weight: np.ndarray,
    portfolio_rules: np.ndarray,
    j: int,
    cash: float,
    has_t: np.ndarray,
    t_close: np.ndarray,
    t_atr: np.ndarray,
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
    last_close: np.ndarray,
    entered: np.ndarray,
    blocked: int,
    book_blocked: np.ndarray,
    book_open: np.ndarray,
    book_exposure: np.ndarray,
    cooldown_until: np.ndarray,
    refused: np.ndarray,
) -> float:
    """The **open** step of one boundary: enter, in slot order, every slot without an open trade whose entry
    signal holds on candle t, at the first price after t, sized on its book's budget at this boundary, while
    cash lasts and the risk limits allow (docs/criteria.md "Risk limits", docs/portfolios.md).

    Slots are instruments of books (a strategy's instruments, in symbol order; a portfolio's strategies one after
    the other): ``slot_book`` (shape (k,), int64) names each slot's book, ``book_rules`` (shape (B,
    RULES_SIZE)) holds each book's rules, ``book_weight`` (shape (B,)) its share of the account: a book's budget,
    what its sizing calls equity, is its weight of the account's equity (cash plus every open position at this
    boundary's prices). A strategy run alone is one book of weight 1. ``portfolio_rules`` (shape (RULES_SIZE,))
    holds the account's own limits (its ruin level, and ``max_open_positions`` and ``max_exposure_ratio`` over
    every book; NaN where none).

    An entry signal is refused, in this order: by ``blocked`` (a halt of the whole account,
    :func:`limits_at_boundary`), by ``book_blocked[b]`` (a halt of its book), by the slot's cooldown
    (``cooldown_until[i]`` at or after the entry time), by ``max_open_positions`` (its book's, then the
    account's: the positions open, those entered here included), by ``max_exposure_ratio`` (its book's over its
    budget, then the account's over its equity: the spend is cut to what keeps the open positions' value at this
    boundary's prices, the new one's at its fill price, within the limit; refused when what is left is dust, if
    the entry would buy something: a signal without cash is skipped), and, with risk-based sizing, when there
    is no stop to size on (``LIMIT_RISK_STOP``; ``LIMIT_MAX_EXPOSURE`` when no room is left either).
    ``t_atr`` (shape (n, k)) is the ATR on candle t, read only by risk-based sizing with an ATR stop, which
    also sets the trade's stop-loss at ``fill - multiple * ATR``. ``last_close`` (shape (k,)) marks an open
    position whose instrument has neither candle t nor a next price (:func:`equity_at_boundary`). ``book_open``
    (shape (B,), int64) and ``book_exposure`` (shape (B,), float64) are work arrays (overwritten).

    Updates the state of the entered slots in place, sets ``entered[i]`` (shape (k,), bool) for each and
    ``refused[i]`` (shape (k,), int64) to the ``LIMIT_*`` code that refused slot ``i`` (``LIMIT_NONE`` else),
    and returns the cash left (never below 0).
    """
    equity = equity_at_boundary(cash, j, is_open, quantity, last_close, has_t, t_close, has_next, next_price)
    ruined = equity <= portfolio_rules[RULE_RUIN_EQUITY]  # False when NaN (no starting cash given)
    for b in range(book_open.shape[0]):
        book_open[b] = 0
        book_exposure[b] = 0.0
    n_open = 0
    exposure = 0.0
    for i in range(is_open.shape[0]):
        if is_open[i]:
            if has_next[j, i]:
                mark = next_price[j, i]
            elif has_t[j, i]:
                mark = t_close[j, i]
            else:
                mark = last_close[i]
            book_open[slot_book[i]] += 1
            book_exposure[slot_book[i]] += quantity[i] * mark
            n_open += 1
            exposure += quantity[i] * mark
    max_open_total = portfolio_rules[RULE_MAX_OPEN_POSITIONS]
    max_exposure_total = portfolio_rules[RULE_MAX_EXPOSURE_RATIO]
    for i in range(is_open.shape[0]):
        entered[i] = False
        refused[i] = LIMIT_NONE
        if ruined:
            continue
        if is_open[i] or not has_t[j, i] or not entry_signal[j, i] or not has_next[j, i]:
            continue
        b = slot_book[i]
        if blocked != LIMIT_NONE:
            refused[i] = blocked
            continue
        if book_blocked[b] != LIMIT_NONE:
            refused[i] = book_blocked[b]
            continue
        if cooldown_until[i] >= next_time_seconds[j, i]:
            refused[i] = LIMIT_COOLDOWN
            continue
        max_open = book_rules[b, RULE_MAX_OPEN_POSITIONS]
        if (not np.isnan(max_open) and book_open[b] >= max_open) or (
            not np.isnan(max_open_total) and n_open >= max_open_total
        ):
            refused[i] = LIMIT_MAX_OPEN_POSITIONS
            continue
        fee_rate = book_rules[b, RULE_FEE_RATE]
        slippage_ratio = book_rules[b, RULE_SLIPPAGE_RATIO]
        budget = book_weight[b] * equity
        max_exposure = book_rules[b, RULE_MAX_EXPOSURE_RATIO]
        room = np.inf
        if not np.isnan(max_exposure):
            room = max_exposure * budget - book_exposure[b]
        if not np.isnan(max_exposure_total):
            room = min(room, max_exposure_total * equity - exposure)
        no_room = room <= MIN_SPEND_RATIO * equity
        price = buy_fill_price(next_price[j, i], slippage_ratio)
        stop = stop_loss_level(price, book_rules[b, RULE_STOP_LOSS_RATIO])
        method = int(book_rules[b, RULE_SIZING_METHOD])
        if method == SIZING_RISK:
            atr_multiple = book_rules[b, RULE_SIZING_ATR_MULTIPLE]
            if not np.isnan(atr_multiple):
                stop = price - atr_multiple * t_atr[j, i]
            if (
                np.isnan(stop) or stop <= 0.0
            ):  # nothing to size on: the exposure limit, listed first, if no room
                refused[i] = LIMIT_MAX_EXPOSURE if no_room else LIMIT_RISK_STOP
                continue
            units = risk_quantity(
                book_rules[b, RULE_SIZING_VALUE], budget, cash, price, stop, fee_rate, slippage_ratio
            )
        else:
            units = entry_quantity(method, book_rules[b, RULE_SIZING_VALUE], budget, cash, price, fee_rate)
        # The exposure limits cut the spend to their room; they refuse only an entry that would buy something
        # (a signal that finds no cash is skipped, as without limits).
        if units > 0.0 and units * price > room:
            if no_room:
                refused[i] = LIMIT_MAX_EXPOSURE
                continue
            units = room / price
        if units <= 0.0:
            continue
        fee = fill_fee(price, units, fee_rate)
        cash -= price * units + fee
        n_open += 1
        book_open[b] += 1
        exposure += price * units
        book_exposure[b] += price * units
        entered[i] = True
        is_open[i] = True
        quantity[i] = units
        entry_price[i] = price
        entry_fee[i] = fee
        entry_time_seconds[i] = next_time_seconds[j, i]
        entry_index[i] = next_index[j, i]
        stop_loss[i] = stop
        take_profit[i] = take_profit_level(price, book_rules[b, RULE_TAKE_PROFIT_RATIO])
        trail_reference[i] = price
        trail_level[i] = trailing_stop_level(price, book_rules[b, RULE_TRAILING_STOP_RATIO])
    return max(cash, 0.0)


@njit_without_refcounts
def _exit_fill(
    fee_rate: float,
    slippage_ratio: float,
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
    price, fee, gain, gain_ratio = close_fill(raw_price, quantity[i], cost, fee_rate, slippage_ratio)
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
    book_rules: np.ndarray,
    slot_book: np.ndarray,
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
    proceeds = 0.0
    for i in range(is_open.shape[0]):
        exit_code[i] = NO_EXIT
        ambiguity[i] = AMBIGUITY_NONE
        trailing_ratio = book_rules[slot_book[i], RULE_TRAILING_STOP_RATIO]
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
            book_rules[slot_book[i], RULE_FEE_RATE],
            book_rules[slot_book[i], RULE_SLIPPAGE_RATIO],
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
    book_rules: np.ndarray,
    slot_book: np.ndarray,
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
    proceeds = 0.0
    for i in range(is_open.shape[0]):
        exit_code[i] = NO_EXIT
        max_holding_seconds = book_rules[slot_book[i], RULE_MAX_HOLDING_SECONDS]
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
            book_rules[slot_book[i], RULE_FEE_RATE],
            book_rules[slot_book[i], RULE_SLIPPAGE_RATIO],
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
