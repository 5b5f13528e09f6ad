"""The compiled core of the engine: the trading rules of one boundary, and the loop that runs them over history.

Every rule is written once, here, as a function that Numba compiles to machine code (``cache=True`` keeps the
compiled code on disk beside this module, so a new process loads it instead of compiling again):

- fills and fees (CRITERIA.md "Fills"): :func:`buy_fill_price`, :func:`sell_fill_price`, :func:`fill_fee`;
- sizing (CRITERIA.md "Sizing"): :func:`entry_quantity`;
- risk exits (CRITERIA.md "When things happen"): :func:`risk_exit_code`;
- a closing fill with its P&L: :func:`close_fill`;
- the open step of one boundary over every instrument of a strategy: :func:`entries_at_boundary`;
- the close step of one boundary: :func:`exits_at_boundary`;
- the backtest loop, which calls those two at every boundary: :func:`run_boundaries`;
- the equity curve and exposure rebuilt from the trades: :func:`curves_from_trades`.

The live cycle reaches the same compiled functions through :mod:`trading.engine.step` (one boundary, called from
Python), and the simulator through :func:`run_boundaries` (every boundary, inside compiled code): one engine,
one set of rules, and speed for one-minute candles (a year of them in tens of milliseconds).

Conventions, because compiled code has no ``None``: an absent price level or ratio is NaN; exit reasons are the
integer codes below (:data:`EXIT_REASONS` maps them to the names of the style guide). Prices and amounts are
float64 quote currency, quantities base units, times int64 seconds since 1970-01-01 UTC.

Instrument state (one slot per instrument of the strategy, in symbol order), arrays of shape (k,), updated in
place: ``is_open`` (bool), ``quantity``, ``entry_price``, ``entry_fee``, ``entry_time`` (int64),
``entry_index`` (int64), ``stop_loss`` and ``take_profit`` (the fixed levels set at entry, NaN without),
``trail_reference`` (max of the entry price and the highs seen since), ``trail_level`` (the trailing stop in
force, NaN without).

Market, arrays of shape (n, k), row ``j`` being boundary ``j`` (the live cycle passes one row): ``has_t`` (the
instrument has candle t, the last closed one), ``t_index``, ``t_open_time`` (seconds), ``t_open``, ``t_high``,
``t_low``, ``t_close``, ``entry_signal``, ``exit_signal`` (candle t's values), ``has_next`` (a first price after
t exists), ``next_index`` (the candle whose open it is, -1 live), ``next_time`` (seconds), ``next_price`` (raw,
before slippage). Functions of one boundary take the row ``j`` with the arrays: indexing a row, rather than
slicing it, keeps compiled code free of per-boundary reference counting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

#: Exit reason codes.
NO_EXIT = 0
STOP_LOSS_CODE = 1
TAKE_PROFIT_CODE = 2
TRAILING_STOP_CODE = 3
SIGNAL_CODE = 4
MAX_HOLDING_CODE = 5
END_OF_DATA_CODE = 6
MANUAL_CODE = 7
#: Code -> exit reason name (``exit_reason`` in models, API and CSV).
EXIT_REASONS: tuple[str | None, ...] = (
    None,
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "signal",
    "max_holding",
    "end_of_data",
    "manual",
)
EXIT_CODES = {name: code for code, name in enumerate(EXIT_REASONS) if name is not None}

#: Sizing method codes (CRITERIA.md "Sizing").
SIZING_EQUITY_FRACTION = 0
SIZING_FIXED_QUOTE = 1

#: Entries that would spend less than this fraction of equity are skipped: what is left after spending "all"
#: the cash is rounding dust (float in the backtest, Decimal live), not money to open a position with.
MIN_SPEND_RATIO = 1e-6

# Positions in the ``rules`` vector (float64, shape (8,)) that carries a strategy's parameters into compiled code.
RULE_STOP_LOSS_RATIO = 0
RULE_TAKE_PROFIT_RATIO = 1
RULE_TRAILING_STOP_RATIO = 2
RULE_MAX_HOLDING_SECONDS = 3
RULE_SIZING_METHOD = 4
RULE_SIZING_VALUE = 5
RULE_FEE_RATE = 6
RULE_SLIPPAGE_RATIO = 7
RULES_SIZE = 8

#: Options of the functions of one boundary, which the backtest calls once a candle: compiled without Numba's
#: reference counting (its option ``_nrt``), they cost nanoseconds instead of the ~300 ns that counting the
#: references of some 25 array arguments adds to each call. They allocate nothing, which is what it requires.
_WITHOUT_REFCOUNTS: dict[str, Any] = {"cache": True, "_nrt": False}


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


@njit(**_WITHOUT_REFCOUNTS)
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


@njit(**_WITHOUT_REFCOUNTS)
def entries_at_boundary(
    rules: np.ndarray,
    j: int,
    cash: float,
    has_t: np.ndarray,
    t_close: np.ndarray,
    entry_signal: np.ndarray,
    has_next: np.ndarray,
    next_index: np.ndarray,
    next_time: np.ndarray,
    next_price: np.ndarray,
    is_open: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    entry_fee: np.ndarray,
    entry_time: np.ndarray,
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
        entry_time[i] = next_time[j, i]
        entry_index[i] = next_index[j, i]
        stop_loss[i] = stop_loss_level(price, rules[RULE_STOP_LOSS_RATIO])
        take_profit[i] = take_profit_level(price, rules[RULE_TAKE_PROFIT_RATIO])
        trail_reference[i] = price
        trail_level[i] = trailing_stop_level(price, rules[RULE_TRAILING_STOP_RATIO])
    return max(cash, 0.0)


@njit(**_WITHOUT_REFCOUNTS)
def exits_at_boundary(
    rules: np.ndarray,
    j: int,
    has_t: np.ndarray,
    t_index: np.ndarray,
    t_open_time: np.ndarray,
    t_open: np.ndarray,
    t_high: np.ndarray,
    t_low: np.ndarray,
    exit_signal: np.ndarray,
    has_next: np.ndarray,
    next_index: np.ndarray,
    next_time: np.ndarray,
    next_price: np.ndarray,
    is_open: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    entry_fee: np.ndarray,
    entry_time: np.ndarray,
    stop_loss: np.ndarray,
    take_profit: np.ndarray,
    trail_reference: np.ndarray,
    trail_level: np.ndarray,
    exit_code: np.ndarray,
    exit_index: np.ndarray,
    exit_time: np.ndarray,
    exit_price: np.ndarray,
    exit_fee: np.ndarray,
    pnl: np.ndarray,
    pnl_ratio: np.ndarray,
) -> float:
    """The **close** step of one boundary, for the trades that were open during candle t (entered at or before
    t's open): a risk exit inside candle t (timed at t's open), else an exit signal on t, else the maximum
    holding time, both at the first price after t.

    A slot that exits gets ``is_open[i] = False`` and its exit written to the ``exit_*``, ``pnl`` and
    ``pnl_ratio`` arrays (``exit_code[i]`` is ``NO_EXIT`` for the others); ``trail_level[i]`` keeps the level
    that was in force. A trade that stays open has its trailing reference raised to candle t's high.

    Returns:
        The cash the exits bring in (proceeds net of fees), quote currency.
    """
    fee_rate = rules[RULE_FEE_RATE]
    slippage_ratio = rules[RULE_SLIPPAGE_RATIO]
    trailing_ratio = rules[RULE_TRAILING_STOP_RATIO]
    max_holding_seconds = rules[RULE_MAX_HOLDING_SECONDS]
    proceeds = 0.0
    for i in range(is_open.shape[0]):
        exit_code[i] = NO_EXIT
        if not is_open[i] or not has_t[j, i] or entry_time[i] > t_open_time[j, i]:
            continue
        trailing = trailing_stop_level(trail_reference[i], trailing_ratio)
        code, raw_price = risk_exit_code(
            t_open[j, i], t_high[j, i], t_low[j, i], stop_loss[i], take_profit[i], trailing
        )
        where, when = -1, 0
        if code != NO_EXIT:
            where, when = t_index[j, i], t_open_time[j, i]
        elif has_next[j, i]:
            if exit_signal[j, i]:
                code = SIGNAL_CODE
            elif not np.isnan(max_holding_seconds) and next_time[j, i] - entry_time[i] >= max_holding_seconds:
                code = MAX_HOLDING_CODE
            where, when, raw_price = next_index[j, i], next_time[j, i], next_price[j, i]
        if code == NO_EXIT:
            trail_reference[i] = max(trail_reference[i], t_high[j, i])
            trail_level[i] = trailing_stop_level(trail_reference[i], trailing_ratio)
            continue
        cost = entry_price[i] * quantity[i] + entry_fee[i]
        price, fee, gain, gain_ratio = close_fill(raw_price, quantity[i], cost, fee_rate, slippage_ratio)
        is_open[i] = False
        trail_level[i] = trailing
        exit_code[i] = code
        exit_index[i] = where
        exit_time[i] = when
        exit_price[i] = price
        exit_fee[i] = fee
        pnl[i] = gain
        pnl_ratio[i] = gain_ratio
        proceeds += price * quantity[i] - fee
    return proceeds


@njit(cache=True)
def run_boundaries(
    rules: np.ndarray,
    cash: float,
    has_t: np.ndarray,
    t_index: np.ndarray,
    t_open_time: np.ndarray,
    t_open: np.ndarray,
    t_high: np.ndarray,
    t_low: np.ndarray,
    t_close: np.ndarray,
    entry_signal: np.ndarray,
    exit_signal: np.ndarray,
    has_next: np.ndarray,
    next_index: np.ndarray,
    next_time: np.ndarray,
    next_price: np.ndarray,
    capacity: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Run the open step then the close step at every boundary, as the daily cycle does day by day.

    Args:
        rules: shape (RULES_SIZE,), float64: the strategy's parameters (``RULE_*`` positions).
        cash: starting cash, quote currency.
        has_t .. next_price: shape (n, k): the market of each of the k instruments (slots in symbol order) at
            each of the n boundaries, in time order (see the module docstring).
        capacity: an upper bound of the number of trades (the count of entry signals is one).

    Returns:
        ``(ints, floats, codes, still_open, cash)``: the trades in the order they were entered (then slot):
        ``ints`` shape (m, 5) int64 ``[slot, entry_index, entry_time, exit_index, exit_time]``, ``floats``
        shape (m, 10) float64 ``[entry_price, quantity, entry_fee, stop_loss, take_profit, trail_level,
        exit_price, exit_fee, pnl, pnl_ratio]`` (NaN where absent), ``codes`` shape (m,) int64 exit codes
        (``NO_EXIT`` while open), ``still_open`` shape (m,) bool, and the cash at the end.
    """
    n, k = has_t.shape
    ints = np.full((capacity, 5), -1, dtype=np.int64)
    floats = np.full((capacity, 10), np.nan)
    codes = np.zeros(capacity, dtype=np.int64)
    is_open = np.zeros(k, dtype=np.bool_)
    quantity = np.zeros(k)
    entry_price = np.zeros(k)
    entry_fee = np.zeros(k)
    entry_time = np.zeros(k, dtype=np.int64)
    entry_index = np.zeros(k, dtype=np.int64)
    stop_loss = np.full(k, np.nan)
    take_profit = np.full(k, np.nan)
    trail_reference = np.zeros(k)
    trail_level = np.full(k, np.nan)
    entered = np.zeros(k, dtype=np.bool_)
    exit_code = np.zeros(k, dtype=np.int64)
    exit_index = np.zeros(k, dtype=np.int64)
    exit_time = np.zeros(k, dtype=np.int64)
    exit_price = np.zeros(k)
    exit_fee = np.zeros(k)
    pnl = np.zeros(k)
    pnl_ratio = np.zeros(k)
    slot_trade = np.full(k, -1, dtype=np.int64)
    m = 0
    for j in range(n):
        cash = entries_at_boundary(
            rules,
            j,
            cash,
            has_t,
            t_close,
            entry_signal,
            has_next,
            next_index,
            next_time,
            next_price,
            is_open,
            quantity,
            entry_price,
            entry_fee,
            entry_time,
            entry_index,
            stop_loss,
            take_profit,
            trail_reference,
            trail_level,
            entered,
        )
        for i in range(k):
            if entered[i]:
                ints[m, 0] = i
                ints[m, 1] = entry_index[i]
                ints[m, 2] = entry_time[i]
                floats[m, 0] = entry_price[i]
                floats[m, 1] = quantity[i]
                floats[m, 2] = entry_fee[i]
                floats[m, 3] = stop_loss[i]
                floats[m, 4] = take_profit[i]
                slot_trade[i] = m
                m += 1
        cash += exits_at_boundary(
            rules,
            j,
            has_t,
            t_index,
            t_open_time,
            t_open,
            t_high,
            t_low,
            exit_signal,
            has_next,
            next_index,
            next_time,
            next_price,
            is_open,
            quantity,
            entry_price,
            entry_fee,
            entry_time,
            stop_loss,
            take_profit,
            trail_reference,
            trail_level,
            exit_code,
            exit_index,
            exit_time,
            exit_price,
            exit_fee,
            pnl,
            pnl_ratio,
        )
        for i in range(k):
            if exit_code[i] != NO_EXIT:
                row = slot_trade[i]
                codes[row] = exit_code[i]
                ints[row, 3] = exit_index[i]
                ints[row, 4] = exit_time[i]
                floats[row, 5] = trail_level[i]
                floats[row, 6] = exit_price[i]
                floats[row, 7] = exit_fee[i]
                floats[row, 8] = pnl[i]
                floats[row, 9] = pnl_ratio[i]
                slot_trade[i] = -1
    still_open = np.zeros(m, dtype=np.bool_)
    for i in range(k):
        if slot_trade[i] >= 0:
            still_open[slot_trade[i]] = True
            floats[slot_trade[i], 5] = trail_level[i]
    return ints[:m], floats[:m], codes[:m], still_open, cash


@njit(cache=True)
def curves_from_trades(
    times: np.ndarray,
    closes: np.ndarray,
    slots: np.ndarray,
    entry_time: np.ndarray,
    cost: np.ndarray,
    quantity: np.ndarray,
    exit_time: np.ndarray,
    exit_proceeds: np.ndarray,
    exit_codes: np.ndarray,
    starting_cash: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the equity at each candle's close and the exposure, rebuilt from the trades.

    A trade entered at the open of candle ``s`` and exited at candle ``e`` is held at the closes of
    ``s .. e-1``; its cost leaves the cash at ``s`` and its proceeds arrive at ``e``. ``e`` is the candle of a
    risk exit (which happens inside it, so the candle counts as exposed), the candle at whose open a signal,
    max-holding or manual exit fills, or the last candle for ``end_of_data``.

    Args:
        times: shape (n,), int64: the open time of each candle of the curves.
        closes: shape (n, k), float64: each instrument's close at each time (0.0 before its first candle).
        slots, entry_time, cost, quantity, exit_time, exit_proceeds, exit_codes: shape (m,), one value a
            trade; ``exit_codes`` is ``NO_EXIT`` for a trade still open; ``exit_proceeds`` is
            ``exit_price * quantity - exit_fee``.
        starting_cash: quote currency.

    Returns:
        ``(equity, exposure)``: shape (n,) float64 quote currency, and shape (n,) bool.
    """
    n = times.shape[0]
    cash_delta = np.zeros(n)
    held_value = np.zeros(n)
    exposure = np.zeros(n, dtype=np.bool_)
    for row in range(slots.shape[0]):
        start = np.searchsorted(times, entry_time[row])
        if start >= n:
            continue
        cash_delta[start] -= cost[row]
        code = exit_codes[row]
        if code == NO_EXIT:
            end = n
            exposed_until = n
        else:
            last = n - 1
            end = last if code == END_OF_DATA_CODE else min(np.searchsorted(times, exit_time[row]), last)
            cash_delta[end] += exit_proceeds[row]
            risk = code in (STOP_LOSS_CODE, TAKE_PROFIT_CODE, TRAILING_STOP_CODE, END_OF_DATA_CODE)
            exposed_until = end + 1 if risk else end
        slot = slots[row]
        for j in range(start, end):
            held_value[j] += quantity[row] * closes[j, slot]
        for j in range(start, exposed_until):
            exposure[j] = True
    equity = np.empty(n)
    running = starting_cash
    for j in range(n):
        running += cash_delta[j]
        equity[j] = running + held_value[j]
    return equity, exposure
