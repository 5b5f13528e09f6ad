"""A portfolio backtest: several strategies with weights trading one account's cash (docs/portfolios.md).

Each strategy is a **book**: its instruments are slots of the one boundary kernel
(:func:`trading.engine.loop.run_boundaries`), with its own rules, and its **budget** at a boundary is its weight
of the account's equity (cash plus every open position at that boundary's prices): what its sizing calls equity.
The books share the cash: at each boundary the risk exits of every book are settled first, then the entries of
the books in portfolio order (each book's instruments in symbol order) while cash lasts, then the signal exits.
A strategy run alone (:func:`trading.engine.backtest.backtest`) is the same kernel with one book of weight 1.

Limits (docs/criteria.md "Risk limits") apply at two levels: each strategy's own (its criteria's ``limits``; its
halts measured on its **sleeve**: its weight of the starting cash plus the P&L of its trades, closed and open),
and the portfolio's (``limits`` here; over every book, halts measured on the account's equity).

Attribution per book: its P&L (its sleeve's last value less its weight of the starting cash), its exposure (the
share of candles it held a position), its contribution to the account's deepest drawdown (the change of its
sleeve from the account's peak to the trough: the contributions add up to the account's drawdown, in quote
currency), and the correlation of the books' daily returns (of their sleeves, Pearson, ``numpy.corrcoef``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trading.engine.backtest import (
    _buy_and_hold,
    _close_at_data_end,
    _closes_on,
    _end_of_prices,
    _end_of_run,
    _market_columns,
    _measured,
    _trade_log,
)
from trading.engine.criteria import Criteria, Limits
from trading.engine.curves import curves_from_trades
from trading.engine.layout import INT_SLOT
from trading.engine.loop import close_at_end as close_at_end_rows
from trading.engine.loop import run_boundaries
from trading.engine.magnifier import finer_columns, uses_finer_candles
from trading.engine.statistics import backtest_statistics, equity_at_ruin
from trading.engine.step import MARKET_COLUMNS, halts_from_log, portfolio_rules
from trading.engine.types import (
    RUIN_TOLERANCE_RATIO,
    SECONDS_PER_DAY,
    CandleArrays,
    Halt,
    LimitRefusal,
    TradeLog,
)
from trading.engine.vocabulary import RiskLimit

#: Weights may add up to 1 plus this (rounding of weights typed in percent).
WEIGHT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class PortfolioBook:
    """One strategy of a portfolio.

    Attributes:
        name: the strategy's name (unique in the portfolio).
        criteria: its parsed criteria.
        instruments: its instruments' candles (all of them: indicators warm up before the start); symbols unique.
        weight: its share of the account's equity, in [0, 1]; 0 makes no new entries (its open trades still exit).
    """

    name: str
    criteria: Criteria
    instruments: Sequence[CandleArrays]
    weight: float


@dataclass(frozen=True)
class BookAttribution:
    """What one book did in a portfolio run. Money is quote currency.

    Attributes:
        name, weight: the book's.
        pnl: its sleeve's last value less its weight of the starting cash (closed and open trades, fees included).
        return_on_budget_ratio: ``pnl / (weight * starting_cash)``; None for a weight of 0.
        exposure_ratio: the share of candles during which it held a position.
        drawdown_contribution: the change of its sleeve from the account's peak to its trough of the deepest
            drawdown (negative: it lost there); the books' contributions add up to the account's change there.
        n_trades: its trades, closed and open.
    """

    name: str
    weight: float
    pnl: float
    return_on_budget_ratio: float | None
    exposure_ratio: float
    drawdown_contribution: float
    n_trades: int


@dataclass
class PortfolioResult:
    """What :func:`portfolio_backtest` made.

    Attributes:
        times: shape (n,), int64, seconds since epoch: the open time of each candle of the curves.
        equity_curve: shape (n,), float64: the account's equity at each close, quote currency.
        buy_and_hold_curve: shape (n,), float64: the starting cash split equally across every distinct
            instrument of the books, bought at the first open (as :func:`trading.engine.backtest.backtest`).
        exposure: shape (n,), bool: some book held a position during the candle.
        statistics: :func:`trading.engine.statistics.backtest_statistics` of the account, over every trade.
        books: the books' names, in portfolio order.
        trade_logs: each book's trades (its own slots and symbols), in portfolio order.
        book_curves: shape (B, n), float64: each book's sleeve at each close, quote currency.
        attribution: one :class:`BookAttribution` per book.
        correlation: shape (B, B), float64: the correlation of the books' daily sleeve returns (NaN where a book's
            returns do not vary).
        refusals: the entry signals a limit refused, with the book's name as ``book`` (time order, then slot).
        halts: the halts, the account's (``book`` None) and each book's.
        drawdown_peak_index, drawdown_trough_index: the candles of the account's deepest drawdown (-1, -1 when
            there is none).
    """

    times: np.ndarray
    equity_curve: np.ndarray
    buy_and_hold_curve: np.ndarray
    exposure: np.ndarray
    statistics: dict[str, Any]
    books: list[str]
    trade_logs: list[TradeLog]
    book_curves: np.ndarray
    attribution: list[BookAttribution]
    correlation: np.ndarray
    refusals: list[tuple[str, LimitRefusal]] = field(default_factory=list)
    halts: list[Halt] = field(default_factory=list)
    drawdown_peak_index: int = -1
    drawdown_trough_index: int = -1


def portfolio_backtest(
    *,
    books: Sequence[PortfolioBook],
    start_time_seconds: int,
    end_time_seconds: int,
    starting_cash: float,
    limits: Limits | None = None,
    candle_seconds: int = SECONDS_PER_DAY,
    close_at_end: bool = False,
    finer: Mapping[str, CandleArrays] | None = None,
    references: Mapping[str, CandleArrays] | None = None,
) -> PortfolioResult:
    """Run several strategies with weights over one account's cash (the module's docstring has the rules).

    Args:
        books: the strategies, in portfolio order (their entries at one boundary are made in this order).
        start_time_seconds, end_time_seconds, starting_cash, candle_seconds, close_at_end, finer, references: as
            :func:`trading.engine.backtest.backtest`.
        limits: the portfolio's own limits, over every book (None: none).

    Returns:
        :class:`PortfolioResult`.

    Raises:
        ValueError: no book, book names repeat, a weight outside [0, 1] or weights adding up to more than 1, a
            book without instruments or with repeated symbols, or the range backwards.
    """
    _check(books, start_time_seconds, end_time_seconds)
    boundaries = np.arange(start_time_seconds, end_time_seconds + 1, candle_seconds, dtype=np.int64)
    steps = np.append(boundaries, boundaries[-1] + candle_seconds) if close_at_end else boundaries
    slots: list[CandleArrays] = []
    slot_book: list[int] = []
    columns: list[dict[str, np.ndarray]] = []
    data_ends: list[int | None] = []
    for b, book in enumerate(books):
        for candles in sorted(book.instruments, key=lambda c: c.symbol):
            column = _market_columns(
                book.criteria, candles, steps, candle_seconds, writable=close_at_end, references=references
            )
            end = None
            if close_at_end:
                _end_of_prices(column)
                end = _close_at_data_end(column, candles, candle_seconds, end_time_seconds)
            slots.append(candles)
            slot_book.append(b)
            columns.append(column)
            data_ends.append(end)
    book_rules, account_rules = portfolio_rules(
        [book.criteria for book in books], limits or Limits(), starting_cash=starting_cash
    )
    book_weight = np.array([float(book.weight) for book in books])
    uses_atr = any(book.criteria.sizing.atr_multiple is not None for book in books)

    def stacked(name: str) -> np.ndarray:
        return np.ascontiguousarray(np.column_stack([column[name] for column in columns]))

    finer_used = finer if any(uses_finer_candles(book.criteria) for book in books) else None
    finer_bounds, finer_prices = finer_columns(
        [c.symbol for c in slots], finer_used or {}, columns[0]["t_open_time_seconds"], candle_seconds
    )
    (ints, floats, codes, still_open, _, _, _, refusal_rows, halt_ints, halt_floats) = run_boundaries(
        book_rules,
        np.array(slot_book, dtype=np.int64),
        book_weight,
        account_rules,
        float(starting_cash),
        **{name: stacked(name) for name in MARKET_COLUMNS},
        finer_bounds=finer_bounds,
        finer_prices=finer_prices,
        capacity=int(sum(int(column["entry_signal"].sum()) for column in columns)),
        t_atr=_atr_columns(columns, len(steps)) if uses_atr else np.empty((0, 0)),
        boundary_seconds=_measured(steps, close_at_end),
        log_limits=True,
    )
    if close_at_end:
        end_arrays = _end_of_run(slots, data_ends, end_time_seconds, candle_seconds)
        for b, book in enumerate(books):  # each book's trades close with its own fee and slippage
            rows = (
                np.flatnonzero(np.array(slot_book)[ints[:, INT_SLOT]] == b) if len(ints) else np.zeros(0, int)
            )
            part = (ints[rows], floats[rows], codes[rows], still_open[rows])
            close_at_end_rows(*part, *end_arrays, book.criteria.fee_rate, book.criteria.slippage_ratio)
            ints[rows], floats[rows], codes[rows], still_open[rows] = part
    closes = np.column_stack([_closes_on(c, boundaries, candle_seconds) for c in slots])
    log = _trade_log(tuple(c.symbol for c in slots), ints, floats, codes)
    equity, exposure = _curves(log, boundaries, closes, float(starting_cash))
    equity, _ = equity_at_ruin(equity, starting_cash=starting_cash, ruin_ratio=RUIN_TOLERANCE_RATIO)
    distinct = list({c.symbol: c for c in slots}.values())
    buy_and_hold = _buy_and_hold(
        boundaries,
        distinct,
        [_closes_on(c, boundaries, candle_seconds) for c in distinct],
        starting_cash,
        candle_seconds,
    )
    statistics = backtest_statistics(
        equity_curve=equity,
        buy_and_hold_curve=buy_and_hold,
        exposure=exposure,
        trades=log,
        candle_seconds=candle_seconds,
        starting_cash=starting_cash,
    )
    slot_of_book = np.array(slot_book, dtype=np.int64)
    trade_logs, book_curves, book_exposure = [], [], []
    for b, book in enumerate(books):
        mine = np.flatnonzero(slot_of_book[log.slot] == b) if len(log) else np.zeros(0, dtype=np.int64)
        own_slots = np.flatnonzero(slot_of_book == b)
        book_log = _book_log(log, mine, own_slots)
        curve, held = _curves(book_log, boundaries, closes[:, own_slots], float(book.weight) * starting_cash)
        trade_logs.append(book_log)
        book_curves.append(curve)
        book_exposure.append(held)
    curves = np.vstack(book_curves) if book_curves else np.zeros((0, len(boundaries)))
    peak, trough = _deepest_drawdown(equity, float(starting_cash))
    attribution = [
        _attribution(book, trade_logs[b], curves[b], book_exposure[b], starting_cash, peak, trough)
        for b, book in enumerate(books)
    ]
    names = [book.name for book in books]
    refusals = [
        (
            names[int(slot_of_book[row[1]])],
            LimitRefusal(
                boundary_seconds=int(row[0]),
                symbol=slots[int(row[1])].symbol,
                limit=RiskLimit.from_code(int(row[2])),
            ),
        )
        for row in refusal_rows.tolist()
    ]
    return PortfolioResult(
        times=boundaries,
        equity_curve=equity,
        buy_and_hold_curve=buy_and_hold,
        exposure=exposure,
        statistics=statistics,
        books=names,
        trade_logs=trade_logs,
        book_curves=curves,
        attribution=attribution,
        correlation=_correlation(curves, book_weight, float(starting_cash)),
        refusals=refusals,
        halts=halts_from_log(halt_ints, halt_floats),
        drawdown_peak_index=peak,
        drawdown_trough_index=trough,
    )


def _atr_columns(columns: Sequence[dict[str, np.ndarray]], rows: int) -> np.ndarray:
    """The kernel's ``t_atr`` (shape (rows, k)): each slot's ATR column, NaN for the slots of books that do not
    size on an ATR stop (their column is empty)."""
    return np.ascontiguousarray(
        np.column_stack(
            [
                column["t_atr"] if column["t_atr"].shape[0] == rows else np.full(rows, np.nan)
                for column in columns
            ]
        )
    )


def _check(books: Sequence[PortfolioBook], start_time_seconds: int, end_time_seconds: int) -> None:
    if end_time_seconds < start_time_seconds:
        raise ValueError(
            f"end_time_seconds {end_time_seconds} is before start_time_seconds {start_time_seconds}"
        )
    if not books:
        raise ValueError("a portfolio needs at least one strategy")
    names = [book.name for book in books]
    if len(set(names)) != len(names):
        raise ValueError(f"strategy names must be unique in a portfolio, got {names}")
    for book in books:
        if not 0.0 <= book.weight <= 1.0:
            raise ValueError(f"the weight of {book.name} must be in [0, 1], was {book.weight}")
        symbols = [c.symbol for c in book.instruments]
        if not symbols or len(set(symbols)) != len(symbols):
            raise ValueError(f"{book.name} needs instruments with unique symbols, got {symbols}")
    total = sum(book.weight for book in books)
    if total > 1.0 + WEIGHT_TOLERANCE:
        raise ValueError(f"the weights add up to {total:.6g}; at most 1")


def _curves(
    log: TradeLog, times: np.ndarray, closes: np.ndarray, cash: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`trading.engine.curves.curves_from_trades` of a trade log whose slots index ``closes``' columns."""
    closed = log.closed
    equity, exposure = curves_from_trades(
        times,
        np.ascontiguousarray(closes),
        log.slot,
        log.entry_time_seconds,
        log.entry_price * log.quantity + log.entry_fee,
        log.quantity,
        log.exit_time_seconds,
        np.where(closed, log.exit_price * log.quantity - log.exit_fee, 0.0),
        log.exit_code,
        cash,
    )
    return equity, exposure


def _book_log(log: TradeLog, rows: np.ndarray, own_slots: np.ndarray) -> TradeLog:
    """The rows of one book from the account's trade log, its slots renumbered from 0 over ``own_slots``."""
    local = np.full(len(log.symbols), -1, dtype=np.int64)
    local[own_slots] = np.arange(own_slots.shape[0])
    values = {name: getattr(log, name)[rows] for name in log.__dataclass_fields__ if name != "symbols"}
    values["slot"] = local[values["slot"]]
    return TradeLog(symbols=tuple(log.symbols[s] for s in own_slots), **values)


def _deepest_drawdown(equity: np.ndarray, starting_cash: float) -> tuple[int, int]:
    """The candles of the peak and trough of the deepest drawdown of ``equity`` (the starting cash counts as a
    peak before the first candle, index -1 then maps to 0's open: reported as -1); (-1, -1) without one."""
    if equity.shape[0] == 0:
        return -1, -1
    anchored = np.concatenate([[starting_cash], equity])
    peaks = np.maximum.accumulate(anchored)
    depth = np.where(peaks > 0, 1.0 - anchored / peaks, 0.0)
    trough = int(np.argmax(depth))
    if depth[trough] <= 0.0:
        return -1, -1
    peak = int(np.argmax(anchored[: trough + 1]))
    return peak - 1, trough - 1


def _attribution(
    book: PortfolioBook,
    log: TradeLog,
    curve: np.ndarray,
    held: np.ndarray,
    starting_cash: float,
    peak: int,
    trough: int,
) -> BookAttribution:
    budget = float(book.weight) * starting_cash
    pnl = float(curve[-1]) - budget if curve.shape[0] else 0.0
    if trough < 0:
        contribution = 0.0
    else:
        at_peak = budget if peak < 0 else float(curve[peak])
        contribution = float(curve[trough]) - at_peak
    return BookAttribution(
        name=book.name,
        weight=float(book.weight),
        pnl=pnl,
        return_on_budget_ratio=pnl / budget if budget > 0 else None,
        exposure_ratio=float(held.mean()) if held.shape[0] else 0.0,
        drawdown_contribution=contribution,
        n_trades=len(log),
    )


def _correlation(curves: np.ndarray, weights: np.ndarray, starting_cash: float) -> np.ndarray:
    """Pearson correlation of the books' per-candle sleeve returns (shape (B, B); NaN where undefined)."""
    books = curves.shape[0]
    if books == 0:
        return np.zeros((0, 0))
    anchored = np.hstack([(weights * starting_cash).reshape(-1, 1), curves])
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = anchored[:, 1:] / anchored[:, :-1] - 1.0
    returns = np.where(np.isfinite(returns), returns, 0.0)
    result = np.full((books, books), np.nan)
    varies = returns.std(axis=1) > 0 if returns.shape[1] > 1 else np.zeros(books, dtype=bool)
    if varies.sum() >= 1:
        index = np.flatnonzero(varies)
        matrix = np.corrcoef(returns[index]) if index.shape[0] > 1 else np.ones((1, 1))
        result[np.ix_(index, index)] = matrix
    return result
