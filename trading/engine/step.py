"""What happens at one boundary: after candle t has closed, at the first price after it.

CRITERIA.md's order, which the backtest loop keeps at every boundary and the live cycle keeps day by day:

1. Risk exits of candle t (:func:`step_risk_exits`): a stop-loss, take-profit or trailing stop crossed during
   candle t fills at its level (or the gapped open), timed at t's open, before anything happens at the open.
   Live, this is the reconcile phase at the start of every step (paper stops are resting ``Order`` rows settled
   against the completed candles, as an exchange's resting stop fills between runs).
2. Entries (:func:`step_entries`, the **open** step): each instrument (in symbol order) without an open trade
   whose entry signal holds on candle t enters at the first price after t, sized on the equity at this boundary,
   while cash lasts. The cash of phase 1 is spent here, and an instrument stopped during t can be entered again.
3. Signal and maximum-holding exits (:func:`step_signal_exits`, the **close** step), of the trades that were open
   during candle t, at the first price after t. Their cash is spent from the next boundary on, and an instrument
   that exits here can be entered again from the next boundary.

The rules themselves are the compiled functions of :mod:`trading.engine.boundary`, which the backtest loop calls
at every boundary too; the functions here carry one boundary of the live cycle into them and back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from trading.engine import layout
from trading.engine.boundary import (
    book_equities,
    cooldowns_after_exits,
    entries_at_boundary,
    equity_at_boundary,
    limits_at_boundary,
    risk_exits_at_boundary,
    signal_exits_at_boundary,
)
from trading.engine.criteria import Criteria, Limits
from trading.engine.exits import nan_if_none, none_if_nan
from trading.engine.magnifier import finer_columns
from trading.engine.rules import close_fill
from trading.engine.sizing import sizing_code
from trading.engine.types import RUIN_TOLERANCE_RATIO, SECONDS_PER_DAY, CandleArrays, Halt, Trade
from trading.engine.vocabulary import ExitReason, RiskLimit, exit_reason_value


@dataclass(frozen=True)
class InstrumentAtBoundary:
    """One instrument at a boundary.

    Attributes:
        symbol: the instrument's symbol.
        index: index of candle t (the last completed candle) in the instrument's candles, or None when the
            instrument has no candle t.
        open_time_seconds: seconds since epoch of candle t's open (when ``index`` is set).
        open, high, low, close: candle t's prices (when ``index`` is set), quote currency.
        entry_signal, exit_signal: the signals on candle t.
        atr: the ATR on candle t that risk-based sizing with an ATR stop sizes on (NaN without one).
        last_close: the close of the instrument's last candle before the boundary (candle t's, or an earlier one
            across a gap); NaN when none is known. It marks a held position without candle t nor a next price.
        next_index: index of the candle whose open is the next price (replay), or -1 live / None at the end.
        next_time_seconds: seconds since epoch of the next price (open of t+1, or now live); None at the end of data.
        next_price: the first price after t (raw, before slippage); None at the end of data.
    """

    symbol: str
    index: int | None
    open_time_seconds: int = 0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    entry_signal: bool = False
    exit_signal: bool = False
    atr: float = math.nan
    last_close: float = math.nan
    next_index: int | None = None
    next_time_seconds: int | None = None
    next_price: float | None = None


@dataclass
class OpenTrade:
    """An open trade and the trailing stop's reference (max of entry price and highs since entry, before t)."""

    trade: Trade
    trail_reference: float


def criteria_rules(criteria: Criteria, *, starting_cash: float | None = None) -> np.ndarray:
    """Return the strategy's parameters as the kernel's ``rules`` vector (shape (RULES_SIZE,), float64, NaN
    for an absent level or limit); ``starting_cash`` (quote currency) sets the equity at which the account is
    ruined and enters no more (:data:`trading.engine.layout.RULE_RUIN_EQUITY`)."""
    rules = np.empty(layout.RULES_SIZE)
    rules[layout.RULE_STOP_LOSS_RATIO] = nan_if_none(criteria.stop_loss_ratio)
    rules[layout.RULE_TAKE_PROFIT_RATIO] = nan_if_none(criteria.take_profit_ratio)
    rules[layout.RULE_TRAILING_STOP_RATIO] = nan_if_none(criteria.trailing_stop_ratio)
    rules[layout.RULE_MAX_HOLDING_SECONDS] = (
        math.nan if criteria.max_holding_days is None else criteria.max_holding_days * SECONDS_PER_DAY
    )
    rules[layout.RULE_SIZING_METHOD] = sizing_code(criteria.sizing)
    rules[layout.RULE_SIZING_VALUE] = criteria.sizing.value
    rules[layout.RULE_FEE_RATE] = criteria.fee_rate
    rules[layout.RULE_SLIPPAGE_RATIO] = criteria.slippage_ratio
    rules[layout.RULE_RUIN_EQUITY] = (
        math.nan if starting_cash is None else RUIN_TOLERANCE_RATIO * float(starting_cash)
    )
    rules[layout.RULE_SIZING_ATR_MULTIPLE] = nan_if_none(criteria.sizing.atr_multiple)
    limits = criteria.limits
    rules[layout.RULE_MAX_OPEN_POSITIONS] = nan_if_none(limits.max_open_positions)
    rules[layout.RULE_MAX_EXPOSURE_RATIO] = nan_if_none(limits.max_exposure_ratio)
    rules[layout.RULE_DAILY_LOSS_LIMIT_RATIO] = nan_if_none(limits.daily_loss_limit_ratio)
    rules[layout.RULE_MAX_DRAWDOWN_HALT_RATIO] = nan_if_none(limits.max_drawdown_halt_ratio)
    rules[layout.RULE_DRAWDOWN_RESUME_SECONDS] = (
        math.nan if limits.drawdown_resume_days is None else limits.drawdown_resume_days * SECONDS_PER_DAY
    )
    rules[layout.RULE_COOLDOWN_SECONDS] = (
        math.nan
        if limits.cooldown_days_after_stop_loss is None
        else limits.cooldown_days_after_stop_loss * SECONDS_PER_DAY
    )
    return rules


#: The positions of the ``rules`` vector that halt a whole account (docs/criteria.md "Risk limits").
_ACCOUNT_HALTS = (
    layout.RULE_DAILY_LOSS_LIMIT_RATIO,
    layout.RULE_MAX_DRAWDOWN_HALT_RATIO,
    layout.RULE_DRAWDOWN_RESUME_SECONDS,
)


def standalone_rules(
    criteria: Criteria, *, starting_cash: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's rules for a strategy run alone, as one book of weight 1 that is the whole account
    (:func:`trading.engine.loop.run_boundaries`): ``(book_rules, portfolio_rules)``.

    Returns:
        ``book_rules`` shape (1, RULES_SIZE): :func:`criteria_rules` without the halts of the account (the daily
        loss limit and the drawdown halt); ``portfolio_rules`` shape (RULES_SIZE,): NaN but those halts and the
        ruin level, so the halts are measured on the account's equity (cash plus open positions).
    """
    rules = criteria_rules(criteria, starting_cash=starting_cash)
    account = np.full(layout.RULES_SIZE, math.nan)
    for position in (*_ACCOUNT_HALTS, layout.RULE_RUIN_EQUITY):
        account[position] = rules[position]
        if position != layout.RULE_RUIN_EQUITY:
            rules[position] = math.nan
    return rules.reshape(1, layout.RULES_SIZE), account


#: Each slot's book in a strategy run alone (every slot is the one book's), by slot count.
def single_book(k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(slot_book, book_weight)`` of a strategy run alone over ``k`` slots: every slot in book 0, weight 1."""
    return np.zeros(k, dtype=np.int64), np.ones(1)


def limits_rules(limits: Limits, *, starting_cash: float | None = None) -> np.ndarray:
    """A portfolio's own rules (the kernel's ``portfolio_rules``, shape (RULES_SIZE,), float64): its limits over
    every strategy (:class:`~trading.engine.criteria.Limits`) and the ruin level of ``starting_cash``; NaN
    elsewhere (docs/portfolios.md)."""
    rules = np.full(layout.RULES_SIZE, math.nan)
    rules[layout.RULE_MAX_OPEN_POSITIONS] = nan_if_none(limits.max_open_positions)
    rules[layout.RULE_MAX_EXPOSURE_RATIO] = nan_if_none(limits.max_exposure_ratio)
    rules[layout.RULE_DAILY_LOSS_LIMIT_RATIO] = nan_if_none(limits.daily_loss_limit_ratio)
    rules[layout.RULE_MAX_DRAWDOWN_HALT_RATIO] = nan_if_none(limits.max_drawdown_halt_ratio)
    rules[layout.RULE_DRAWDOWN_RESUME_SECONDS] = (
        math.nan if limits.drawdown_resume_days is None else limits.drawdown_resume_days * SECONDS_PER_DAY
    )
    rules[layout.RULE_COOLDOWN_SECONDS] = (
        math.nan
        if limits.cooldown_days_after_stop_loss is None
        else limits.cooldown_days_after_stop_loss * SECONDS_PER_DAY
    )
    rules[layout.RULE_RUIN_EQUITY] = (
        math.nan if starting_cash is None else RUIN_TOLERANCE_RATIO * float(starting_cash)
    )
    return rules


def portfolio_rules(
    criteria: Sequence[Criteria], limits: Limits, *, starting_cash: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's rules of a portfolio (:func:`trading.engine.loop.run_boundaries`): ``(book_rules,
    account_rules)``, one row of ``book_rules`` (shape (B, RULES_SIZE)) per strategy, its criteria's rules, and
    the portfolio's own (:func:`limits_rules`). The portfolio's cooldown after a stop-loss applies to every
    strategy's instruments: a strategy's is the longer of its own and the portfolio's."""
    account = limits_rules(limits, starting_cash=starting_cash)
    books = np.stack([criteria_rules(c) for c in criteria]) if criteria else np.zeros((0, layout.RULES_SIZE))
    if not math.isnan(account[layout.RULE_COOLDOWN_SECONDS]):
        books[:, layout.RULE_COOLDOWN_SECONDS] = np.fmax(
            books[:, layout.RULE_COOLDOWN_SECONDS], account[layout.RULE_COOLDOWN_SECONDS]
        )
    return books, account


def criteria_halts(criteria: Criteria) -> bool:
    """True when the criteria set a limit that halts the whole account (a daily loss limit or a drawdown halt):
    its state must then be measured at every boundary, entry signal or not (:func:`step_limits`)."""
    return (
        criteria.limits.daily_loss_limit_ratio is not None
        or criteria.limits.max_drawdown_halt_ratio is not None
    )


@dataclass(frozen=True)
class LimitState:
    """An account's risk-limit state between two boundaries (:func:`trading.engine.boundary.limits_at_boundary`),
    which the live cycle keeps in the database. None where not yet known (a fresh account).

    Attributes:
        day: the UTC day (days since 1970-01-01) of the last boundary's candle t.
        day_start_equity: that day's starting equity, quote currency.
        last_equity: the equity measured at the last boundary, quote currency.
        halt_day: the day the daily loss limit halted entries, or None.
        peak_equity: the highest equity measured at a boundary (since the last reset), quote currency.
        drawdown_halt_seconds: when the drawdown halt in force began (seconds since epoch), or None.
    """

    day: int | None = None
    day_start_equity: float | None = None
    last_equity: float | None = None
    halt_day: int | None = None
    peak_equity: float | None = None
    drawdown_halt_seconds: int | None = None

    def array(self) -> np.ndarray:
        """The kernel's state vector (shape (LIMIT_STATE_SIZE,), float64; ``layout.STATE_*``)."""
        state = np.empty(layout.LIMIT_STATE_SIZE)
        state[layout.STATE_DAY] = nan_if_none(self.day)
        state[layout.STATE_DAY_START_EQUITY] = nan_if_none(self.day_start_equity)
        state[layout.STATE_LAST_EQUITY] = nan_if_none(self.last_equity)
        state[layout.STATE_HALT_DAY] = -1.0 if self.halt_day is None else self.halt_day
        state[layout.STATE_PEAK_EQUITY] = nan_if_none(self.peak_equity)
        state[layout.STATE_DRAWDOWN_HALT_SECONDS] = (
            -1.0 if self.drawdown_halt_seconds is None else self.drawdown_halt_seconds
        )
        return state

    @classmethod
    def from_array(cls, state: np.ndarray) -> LimitState:
        """The state of a kernel state vector (the inverse of :meth:`array`)."""

        def whole(value: float) -> int | None:
            return None if math.isnan(value) or value < 0 else int(value)

        return cls(
            day=whole(float(state[layout.STATE_DAY])),
            day_start_equity=none_if_nan(float(state[layout.STATE_DAY_START_EQUITY])),
            last_equity=none_if_nan(float(state[layout.STATE_LAST_EQUITY])),
            halt_day=whole(float(state[layout.STATE_HALT_DAY])),
            peak_equity=none_if_nan(float(state[layout.STATE_PEAK_EQUITY])),
            drawdown_halt_seconds=whole(float(state[layout.STATE_DRAWDOWN_HALT_SECONDS])),
        )


#: The market of a boundary the compiled kernel takes, one column each, in its argument order
#: (:func:`trading.engine.loop.run_boundaries`; :mod:`trading.engine.boundary`).
MARKET_COLUMNS = (
    "has_t",
    "t_index",
    "t_open_time_seconds",
    "t_open",
    "t_high",
    "t_low",
    "t_close",
    "entry_signal",
    "exit_signal",
    "has_next",
    "next_index",
    "next_time_seconds",
    "next_price",
)


class _Boundary:
    """One boundary of the live cycle as the kernel's arrays: market and state, one slot per symbol (sorted)."""

    def __init__(
        self,
        symbols: Iterable[str],
        market: dict[str, InstrumentAtBoundary],
        open_trades: dict[str, OpenTrade],
    ) -> None:
        self.symbols = sorted(symbols)
        k = len(self.symbols)
        here = [market.get(symbol) for symbol in self.symbols]
        held = [open_trades.get(symbol) for symbol in self.symbols]
        has = [h is not None and h.index is not None for h in here]
        nxt = [h is not None and h.next_price is not None and h.next_time_seconds is not None for h in here]
        self.has_t = np.array(has, dtype=bool)
        self.t_index = np.array(
            [h.index if ok and h else -1 for h, ok in zip(here, has, strict=True)], np.int64
        )
        self.t_open_time_seconds = np.array(
            [h.open_time_seconds if ok and h else 0 for h, ok in zip(here, has, strict=True)], np.int64
        )
        self.t_open = np.array([h.open if ok and h else math.nan for h, ok in zip(here, has, strict=True)])
        self.t_high = np.array([h.high if ok and h else math.nan for h, ok in zip(here, has, strict=True)])
        self.t_low = np.array([h.low if ok and h else math.nan for h, ok in zip(here, has, strict=True)])
        self.t_close = np.array([h.close if ok and h else math.nan for h, ok in zip(here, has, strict=True)])
        self.entry_signal = np.array(
            [ok and h is not None and h.entry_signal for h, ok in zip(here, has, strict=True)], bool
        )
        self.exit_signal = np.array(
            [ok and h is not None and h.exit_signal for h, ok in zip(here, has, strict=True)], bool
        )
        self.has_next = np.array(nxt, dtype=bool)
        self.next_index = np.array(
            [
                h.next_index if ok and h and h.next_index is not None else -1
                for h, ok in zip(here, nxt, strict=True)
            ],
            np.int64,
        )
        self.next_time_seconds = np.array(
            [h.next_time_seconds if ok and h else 0 for h, ok in zip(here, nxt, strict=True)], np.int64
        )
        self.next_price = np.array(
            [h.next_price if ok and h else math.nan for h, ok in zip(here, nxt, strict=True)]
        )
        self.t_atr = np.array([h.atr if ok and h else math.nan for h, ok in zip(here, has, strict=True)])
        # A held instrument in a gap is marked at its last close (the equity curve's mark), else its entry price.
        self.last_close = np.array(
            [
                h.last_close
                if h is not None and not math.isnan(h.last_close)
                else (o.trade.entry_price if o else math.nan)
                for h, o in zip(here, held, strict=True)
            ]
        )
        for name in (
            *MARKET_COLUMNS,
            "t_atr",
        ):  # the kernel takes the market as rows of boundaries: this is row 0
            setattr(self, name, getattr(self, name).reshape(1, k))
        self.held = held
        self.is_open = np.array([o is not None for o in held], dtype=bool)
        self.quantity = np.array([o.trade.quantity if o else 0.0 for o in held])
        self.entry_price = np.array([o.trade.entry_price if o else 0.0 for o in held])
        self.entry_fee = np.array([o.trade.entry_fee if o else 0.0 for o in held])
        self.entry_time_seconds = np.array([o.trade.entry_time_seconds if o else 0 for o in held], np.int64)
        self.entry_index = np.array([o.trade.entry_index if o else -1 for o in held], np.int64)
        self.stop_loss = np.array([nan_if_none(o.trade.stop_loss_price) if o else math.nan for o in held])
        self.take_profit = np.array([nan_if_none(o.trade.take_profit_price) if o else math.nan for o in held])
        self.trail_reference = np.array([o.trail_reference if o else 0.0 for o in held])
        self.trail_level = np.array(
            [nan_if_none(o.trade.trailing_stop_price) if o else math.nan for o in held]
        )
        self.k = k


@dataclass(frozen=True)
class Entries:
    """What the open step of one boundary decided (:func:`step_entries`).

    Attributes:
        trades: the new trades, open, in symbol order.
        cash: the free cash after them, quote currency.
        refused: the instruments whose entry signal a risk limit refused, by symbol, with the limit.
        limit_state: the account's risk-limit state after this boundary (keep it for the next one).
        halts: the halts that began or ended at this boundary.
    """

    trades: list[Trade]
    cash: float
    refused: dict[str, RiskLimit]
    limit_state: LimitState
    halts: list[Halt]


def step_entries(
    *,
    criteria: Criteria,
    market: dict[str, InstrumentAtBoundary],
    open_trades: dict[str, OpenTrade],
    cash: float,
    starting_cash: float | None = None,
    boundary_seconds: int | None = None,
    limit_state: LimitState | None = None,
    stop_loss_exits: Mapping[str, int] | None = None,
) -> Entries:
    """Decide and fill the entries of one boundary (the **open** step) of a strategy alone, within its limits.

    Each instrument (in symbol order) without an open trade whose entry signal holds on candle t enters at the
    first price after t, sized on the equity at this boundary (cash plus the open trades at the next price,
    else t's close, else their last close), while cash lasts and the criteria's risk limits allow
    (:func:`trading.engine.boundary.limits_at_boundary`, :func:`trading.engine.boundary.entries_at_boundary`):
    the kernel's one book of weight 1 (:func:`standalone_rules`), as the backtest runs it.

    Args:
        criteria: the strategy's criteria.
        market: every instrument of the strategy at this boundary, by symbol.
        open_trades: the trades open before this boundary, by symbol (at most one per instrument).
        cash: free cash before this boundary, quote currency.
        starting_cash: the account's starting cash (the ruin level), quote currency.
        boundary_seconds: the boundary's time (the open of candle t + 1), seconds since epoch: required when the
            criteria have a daily loss limit or a drawdown halt.
        limit_state: the account's state after its previous boundary (a fresh one when None).
        stop_loss_exits: the time of each instrument's last stop-loss exit (seconds since epoch), by symbol, for
            the cooldown after a stop-loss.

    Returns:
        :class:`Entries` (its ``limit_state`` and ``halts`` are the account's).

    Raises:
        ValueError: halting limits without ``boundary_seconds``.
    """
    book_rules, account_rules = standalone_rules(criteria, starting_cash=starting_cash)
    decided = _entries(
        book_rules,
        account_rules,
        [BookAtBoundary(criteria, market, open_trades, 1.0, 0.0, None, stop_loss_exits)],
        cash=cash,
        starting_cash=0.0 if starting_cash is None else float(starting_cash),
        boundary_seconds=boundary_seconds,
        limit_state=limit_state,
    )
    (book,) = decided.books
    return replace(book, cash=decided.cash, limit_state=decided.limit_state, halts=decided.halts)


@dataclass(frozen=True)
class BookAtBoundary:
    """One strategy of a portfolio at a boundary (:func:`step_portfolio_entries`).

    Attributes:
        criteria, market, open_trades, stop_loss_exits: as :func:`step_entries`'s.
        weight: its share of the account's equity (its budget), in [0, 1].
        realized_pnl: the P&L of its closed trades as a member, quote currency (its sleeve's, for its halts).
        limit_state: its own limit state after the previous boundary (None: fresh).
    """

    criteria: Criteria
    market: dict[str, InstrumentAtBoundary]
    open_trades: dict[str, OpenTrade]
    weight: float = 1.0
    realized_pnl: float = 0.0
    limit_state: LimitState | None = None
    stop_loss_exits: Mapping[str, int] | None = None


@dataclass(frozen=True)
class PortfolioEntries:
    """What the open step of a portfolio decided at one boundary (:func:`step_portfolio_entries`).

    Attributes:
        books: one :class:`Entries` per strategy, in portfolio order (its trades, refusals, its own limit state
            and halts; its ``cash`` is the account's cash left).
        cash: the account's free cash after every entry, quote currency.
        limit_state: the portfolio's own limit state after this boundary.
        halts: the portfolio's own halts that began or ended here.
    """

    books: list[Entries]
    cash: float
    limit_state: LimitState
    halts: list[Halt]


def step_portfolio_entries(
    *,
    books: Sequence[BookAtBoundary],
    limits: Limits,
    cash: float,
    starting_cash: float,
    boundary_seconds: int,
    limit_state: LimitState | None = None,
) -> PortfolioEntries:
    """Decide and fill the entries of one boundary of a portfolio: its strategies in order, each instrument of a
    strategy in symbol order, sized on each strategy's budget (its weight of the account's equity), while the
    shared cash lasts, within each strategy's limits and the portfolio's own (docs/portfolios.md): the kernel's
    books, as :func:`trading.engine.portfolio.portfolio_backtest` runs them at every boundary.

    Args:
        books: the strategies at this boundary, in portfolio order.
        limits: the portfolio's own limits.
        cash: the account's free cash before this boundary, quote currency.
        starting_cash: the account's starting cash (the sleeves' base and the ruin level), quote currency.
        boundary_seconds: the boundary's time, seconds since epoch.
        limit_state: the portfolio's own limit state after its previous boundary (None: fresh).

    Returns:
        :class:`PortfolioEntries`.
    """
    book_rules, account_rules = portfolio_rules(
        [book.criteria for book in books], limits, starting_cash=starting_cash
    )
    return _entries(
        book_rules,
        account_rules,
        books,
        cash=cash,
        starting_cash=float(starting_cash),
        boundary_seconds=boundary_seconds,
        limit_state=limit_state,
    )


def _rules_halt(rules: np.ndarray) -> bool:
    return not (
        math.isnan(rules[layout.RULE_DAILY_LOSS_LIMIT_RATIO])
        and math.isnan(rules[layout.RULE_MAX_DRAWDOWN_HALT_RATIO])
    )


def _entries(
    book_rules: np.ndarray,
    account_rules: np.ndarray,
    books: Sequence[BookAtBoundary],
    *,
    cash: float,
    starting_cash: float,
    boundary_seconds: int | None,
    limit_state: LimitState | None,
) -> PortfolioEntries:
    """The kernel's open step of one boundary over every book (the one code behind :func:`step_entries` and
    :func:`step_portfolio_entries`)."""
    parts = [
        _Boundary(set(book.market) | set(book.open_trades), book.market, book.open_trades) for book in books
    ]
    slot_book = np.concatenate([np.full(part.k, b, dtype=np.int64) for b, part in enumerate(parts)])
    k = slot_book.shape[0]

    def joined(name: str) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([getattr(part, name) for part in parts], axis=-1))

    market = {name: joined(name) for name in (*MARKET_COLUMNS, "t_atr")}
    state_columns = (
        "is_open",
        "quantity",
        "entry_price",
        "entry_fee",
        "entry_time_seconds",
        "entry_index",
        "stop_loss",
        "take_profit",
        "trail_reference",
        "trail_level",
        "last_close",
    )
    state_arrays = {name: joined(name) for name in state_columns}
    halt_rows = 2 * (1 + len(books))
    halt_ints = np.full((halt_rows, layout.HALT_INT_COLUMNS), -1, dtype=np.int64)
    halt_floats = np.full((halt_rows, layout.HALT_FLOAT_COLUMNS), math.nan)
    h = 0
    blocked = layout.LIMIT_NONE
    state = (limit_state or LimitState()).array()
    book_states = [(book.limit_state or LimitState()).array() for book in books]
    book_blocked = np.zeros(len(books), dtype=np.int64)
    halting = _rules_halt(account_rules) or any(_rules_halt(rules) for rules in book_rules)
    if halting and boundary_seconds is None:
        raise ValueError("a daily loss limit or a drawdown halt needs the boundary's time")
    if _rules_halt(account_rules):
        equity = equity_at_boundary(
            float(cash),
            0,
            state_arrays["is_open"],
            state_arrays["quantity"],
            state_arrays["last_close"],
            market["has_t"],
            market["t_close"],
            market["has_next"],
            market["next_price"],
        )
        blocked, h = limits_at_boundary(
            account_rules, state, equity, int(boundary_seconds or 0), halt_ints, halt_floats, h, -1
        )
    weights = np.array([float(book.weight) for book in books])
    if any(_rules_halt(rules) for rules in book_rules):
        sleeves = np.zeros(len(books))
        book_equities(
            weights,
            float(starting_cash),
            np.array([float(book.realized_pnl) for book in books]),
            slot_book,
            0,
            state_arrays["is_open"],
            state_arrays["quantity"],
            state_arrays["entry_price"],
            state_arrays["entry_fee"],
            state_arrays["last_close"],
            market["has_t"],
            market["t_close"],
            market["has_next"],
            market["next_price"],
            sleeves,
        )
        for b, rules in enumerate(book_rules):
            if _rules_halt(rules):
                book_blocked[b], h = limits_at_boundary(
                    rules,
                    book_states[b],
                    sleeves[b],
                    int(boundary_seconds or 0),
                    halt_ints,
                    halt_floats,
                    h,
                    b,
                )
    cooldown_until = np.full(k, np.iinfo(np.int64).min, dtype=np.int64)
    symbols = [(b, symbol) for b, part in enumerate(parts) for symbol in part.symbols]
    stopped = [books[b].stop_loss_exits or {} for b in range(len(books))]
    cooldowns_after_exits(
        book_rules,
        slot_book,
        np.array(
            [ExitReason.STOP_LOSS.code if s in stopped[b] else layout.NO_EXIT for b, s in symbols],
            dtype=np.int64,
        ),
        np.array([stopped[b].get(s, 0) for b, s in symbols], dtype=np.int64),
        cooldown_until,
    )
    entered = np.zeros(k, dtype=bool)
    refused = np.zeros(k, dtype=np.int64)
    cash_left = entries_at_boundary(
        book_rules,
        slot_book,
        weights,
        account_rules,
        0,
        float(cash),
        market["has_t"],
        market["t_close"],
        market["t_atr"],
        market["entry_signal"],
        market["has_next"],
        market["next_index"],
        market["next_time_seconds"],
        market["next_price"],
        state_arrays["is_open"],
        state_arrays["quantity"],
        state_arrays["entry_price"],
        state_arrays["entry_fee"],
        state_arrays["entry_time_seconds"],
        state_arrays["entry_index"],
        state_arrays["stop_loss"],
        state_arrays["take_profit"],
        state_arrays["trail_reference"],
        state_arrays["trail_level"],
        state_arrays["last_close"],
        entered,
        blocked,
        book_blocked,
        np.zeros(len(books), dtype=np.int64),
        np.zeros(len(books)),
        cooldown_until,
        refused,
    )
    halts = halts_from_log(halt_ints[:h], halt_floats[:h])
    results: list[Entries] = []
    for b in range(len(books)):
        rows = [i for i, (owner, _) in enumerate(symbols) if owner == b]
        trades = [
            Trade(
                symbol=symbols[i][1],
                side="long",
                entry_index=int(state_arrays["entry_index"][i]),
                entry_time_seconds=int(state_arrays["entry_time_seconds"][i]),
                entry_price=float(state_arrays["entry_price"][i]),
                quantity=float(state_arrays["quantity"][i]),
                entry_fee=float(state_arrays["entry_fee"][i]),
                stop_loss_price=none_if_nan(state_arrays["stop_loss"][i]),
                take_profit_price=none_if_nan(state_arrays["take_profit"][i]),
                trailing_stop_price=none_if_nan(state_arrays["trail_level"][i]),
            )
            for i in rows
            if entered[i]
        ]
        results.append(
            Entries(
                trades=trades,
                cash=float(cash_left),
                refused={
                    symbols[i][1]: RiskLimit.from_code(int(refused[i]))
                    for i in rows
                    if refused[i] != layout.LIMIT_NONE
                },
                limit_state=LimitState.from_array(book_states[b]),
                halts=[halt for halt in halts if halt.book == b],
            )
        )
    return PortfolioEntries(
        books=results,
        cash=float(cash_left),
        limit_state=LimitState.from_array(state),
        halts=[halt for halt in halts if halt.book is None],
    )


def halts_from_log(halt_ints: np.ndarray, halt_floats: np.ndarray) -> list[Halt]:
    """The kernel's halts log (``layout.HALT_*`` columns) as :class:`~trading.engine.types.Halt` rows."""
    return [
        Halt(
            boundary_seconds=int(row[layout.HALT_INT_BOUNDARY_SECONDS]),
            limit=RiskLimit.from_code(int(row[layout.HALT_INT_LIMIT])),
            began=bool(row[layout.HALT_INT_BEGAN]),
            equity=float(values[layout.HALT_FLOAT_EQUITY]),
            reference_equity=float(values[layout.HALT_FLOAT_REFERENCE]),
            book=None if row[layout.HALT_INT_BOOK] < 0 else int(row[layout.HALT_INT_BOOK]),
        )
        for row, values in zip(halt_ints.tolist(), halt_floats.tolist(), strict=True)
    ]


def step_risk_exits(
    *,
    criteria: Criteria,
    market: dict[str, InstrumentAtBoundary],
    open_trades: dict[str, OpenTrade],
    finer: Mapping[str, CandleArrays] | None = None,
) -> tuple[list[Trade], dict[str, OpenTrade]]:
    """Settle the risk exits of candle t (phase 1 of a boundary: before anything at the open that follows).

    Only trades that were open during candle t are checked (entered at or before t's open); the others, and
    instruments without a candle t, are carried unchanged (:func:`trading.engine.boundary.risk_exits_at_boundary`).

    Args:
        criteria: the strategy's criteria.
        market: every instrument at this boundary, by symbol (only candle t is read).
        open_trades: the open trades, by symbol.
        finer: stored finer candles (1h or 1m) by symbol, for the bar magnifier: those inside candle t decide an
            ambiguous candle (docs/criteria.md); without them the stop is taken (CRITERIA.md).

    Returns:
        ``(closed trades, still-open trades)``: closed ones are copies with the exit fields and P&L set (timed
        at t's open, at the level or the gapped open); the still-open ones carry the trailing reference and
        level raised with candle t's high.
    """
    return _exits(criteria, market, open_trades, risk=True, signal=False, finer=finer)


def step_signal_exits(
    *,
    criteria: Criteria,
    market: dict[str, InstrumentAtBoundary],
    open_trades: dict[str, OpenTrade],
) -> tuple[list[Trade], dict[str, OpenTrade]]:
    """The signal and maximum-holding exits at the first price after candle t (phase 3 of a boundary, the
    **close** step), of the trades open during t whose risk exits of t are settled (:func:`step_risk_exits`).

    Args and return value: as :func:`step_risk_exits` (still-open trades are returned unchanged).
    """
    return _exits(criteria, market, open_trades, risk=False, signal=True)


def step_exits(
    *,
    criteria: Criteria,
    market: dict[str, InstrumentAtBoundary],
    open_trades: dict[str, OpenTrade],
    finer: Mapping[str, CandleArrays] | None = None,
) -> tuple[list[Trade], dict[str, OpenTrade]]:
    """Both exit phases of one boundary for trades that no entry of the boundary can change (a past boundary
    caught up): the risk exits of candle t, then the signal and maximum-holding exits at the first price after t.

    Args and return value: as :func:`step_risk_exits`.
    """
    return _exits(criteria, market, open_trades, risk=True, signal=True, finer=finer)


def _exits(
    criteria: Criteria,
    market: dict[str, InstrumentAtBoundary],
    open_trades: dict[str, OpenTrade],
    *,
    risk: bool,
    signal: bool,
    finer: Mapping[str, CandleArrays] | None = None,
) -> tuple[list[Trade], dict[str, OpenTrade]]:
    b = _Boundary(open_trades, market, open_trades)
    book_rules, _ = standalone_rules(criteria)
    slot_book, _ = single_book(b.k)
    code = np.zeros(b.k, dtype=np.int64)
    exit_code = np.zeros(b.k, dtype=np.int64)
    exit_index = np.zeros(b.k, dtype=np.int64)
    exit_time_seconds = np.zeros(b.k, dtype=np.int64)
    exit_price, exit_fee, pnl, pnl_ratio = (np.zeros(b.k) for _ in range(4))
    exits = (exit_code, exit_index, exit_time_seconds, exit_price, exit_fee, pnl, pnl_ratio)
    if risk:
        risk_exits_at_boundary(
            book_rules,
            slot_book,
            0,
            b.has_t,
            b.t_index,
            b.t_open_time_seconds,
            b.t_open,
            b.t_high,
            b.t_low,
            *finer_columns(b.symbols, finer or {}, b.t_open_time_seconds, SECONDS_PER_DAY),
            b.is_open,
            b.quantity,
            b.entry_price,
            b.entry_fee,
            b.entry_time_seconds,
            b.stop_loss,
            b.take_profit,
            b.trail_reference,
            b.trail_level,
            np.zeros(b.k, dtype=np.int64),
            np.zeros(b.k),
            *exits,
        )
        code[:] = exit_code
    if signal:
        signal_exits_at_boundary(
            book_rules,
            slot_book,
            0,
            b.has_t,
            b.t_open_time_seconds,
            b.exit_signal,
            b.has_next,
            b.next_index,
            b.next_time_seconds,
            b.next_price,
            b.is_open,
            b.quantity,
            b.entry_price,
            b.entry_fee,
            b.entry_time_seconds,
            *exits,
        )
        code = np.where(exit_code != layout.NO_EXIT, exit_code, code)
    closed: list[Trade] = []
    still_open: dict[str, OpenTrade] = {}
    for i, symbol in enumerate(b.symbols):
        open_trade = open_trades[symbol]
        trailing = none_if_nan(b.trail_level[i])
        if code[i] != layout.NO_EXIT:
            closed.append(
                replace(
                    open_trade.trade,
                    trailing_stop_price=trailing,
                    exit_index=int(exit_index[i]),
                    exit_time_seconds=int(exit_time_seconds[i]),
                    exit_price=float(exit_price[i]),
                    exit_fee=float(exit_fee[i]),
                    exit_reason=exit_reason_value(int(code[i])),
                    pnl=float(pnl[i]),
                    pnl_ratio=float(pnl_ratio[i]),
                )
            )
            continue
        reference = float(b.trail_reference[i])
        if reference == open_trade.trail_reference and trailing == open_trade.trade.trailing_stop_price:
            still_open[symbol] = open_trade
        else:
            still_open[symbol] = OpenTrade(
                trade=replace(open_trade.trade, trailing_stop_price=trailing), trail_reference=reference
            )
    return closed, still_open


def trade_close_at(
    trade: Trade, criteria: Criteria, *, index: int, time: int, raw_price: float, reason: str
) -> Trade:
    """Close ``trade`` at ``raw_price`` (slippage and fee applied, :func:`trading.engine.rules.close_fill`) for
    ``reason``: end of data, or manual."""
    price, fee, pnl, pnl_ratio = close_fill(
        float(raw_price), trade.quantity, trade.cost, criteria.fee_rate, criteria.slippage_ratio
    )
    return replace(
        trade,
        exit_index=index,
        exit_time_seconds=time,
        exit_price=float(price),
        exit_fee=float(fee),
        exit_reason=reason,
        pnl=float(pnl),
        pnl_ratio=float(pnl_ratio),
    )
