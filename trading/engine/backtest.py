"""The backtest: the boundary steps of :mod:`trading.engine.step`, run over history, with shared cash.

Boundary ``b`` is the open of the candle starting at ``b`` (the live cycle's ``as_of`` day ``b``): candle
``t = b - candle_seconds`` has closed, and its signals act at the open of ``b``. A backtest from ``start`` to
``end`` runs every boundary ``start <= b <= end``, exactly as the cycle replayed day by day over those days; one
that closes what is still open at the end (``end_of_data``) first settles the risk exits of the last candle, the
one opening at ``end``, at one boundary more that has no price after it.
Indicators use every candle given, including those before ``start``.

The loop over the boundaries runs in compiled code (:func:`trading.engine.loop.run_boundaries`), which calls at
each boundary the very open and close rules that the live cycle reaches through :mod:`trading.engine.step`.
What this module does in numpy is the preparation (signals, the market of each instrument at each boundary) and
the curves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from trading.engine.conditions import Signals, signals_compute
from trading.engine.criteria import Criteria
from trading.engine.curves import curves_from_trades
from trading.engine.layout import (
    AMBIGUITY_PESSIMISTIC,
    AMBIGUOUS_FLOAT_STOP,
    AMBIGUOUS_FLOAT_TAKE_PROFIT,
    AMBIGUOUS_INT_OPEN_TIME_SECONDS,
    AMBIGUOUS_INT_RESOLUTION,
    AMBIGUOUS_INT_SLOT,
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
    INT_ENTRY_INDEX,
    INT_ENTRY_TIME_SECONDS,
    INT_EXIT_INDEX,
    INT_EXIT_TIME_SECONDS,
    INT_SLOT,
    REFUSAL_BOUNDARY_SECONDS,
    REFUSAL_LIMIT,
    REFUSAL_SLOT,
)
from trading.engine.loop import close_at_end as close_at_end_rows
from trading.engine.loop import run_boundaries
from trading.engine.magnifier import finer_columns, uses_finer_candles
from trading.engine.step import (
    MARKET_COLUMNS,
    InstrumentAtBoundary,
    criteria_halts,
    halts_from_log,
    single_book,
    standalone_rules,
)
from trading.engine.types import (
    RUIN_TOLERANCE_RATIO,
    SECONDS_PER_DAY,
    AmbiguousCandle,
    CandleArrays,
    Halt,
    LimitRefusal,
    Trade,
    TradeLog,
)
from trading.engine.vocabulary import PESSIMISTIC_RESOLUTION, RiskLimit, exit_reason_value


@dataclass
class BacktestResult:
    """What a backtest made.

    Attributes:
        trade_log: every trade, closed and open, in entry order (then symbol), as columns.
        times: shape (n,), int64, seconds since epoch: the open time of each candle of the curves.
        equity_curve: shape (n,), float64, quote currency: cash plus open positions at each candle's close; >= 0,
            exactly 0 from a ruin on (:func:`trading.engine.statistics.equity_at_ruin`).
        buy_and_hold_curve: shape (n,), float64: the starting cash split equally across the instruments,
            each share bought at its first open in the range (no fee) and marked at the closes.
        exposure: shape (n,), bool: a position was open at some point of the candle.
        statistics: :func:`trading.engine.statistics.backtest_statistics` of the above (with
            ``ambiguous_candles`` and ``ambiguous_resolved`` counted from ``ambiguous``).
        ambiguous: the ambiguous candles (stop and take-profit both inside), in time order then symbol, each
            with its resolution (docs/criteria.md "Finer candles inside a daily candle").
        refusals: the entry signals a risk limit refused, in time order then symbol (docs/criteria.md "Risk
            limits").
        halts: each halt of the entries by a daily loss limit or a drawdown halt, beginning and end, in time order.
    """

    trade_log: TradeLog
    times: np.ndarray
    equity_curve: np.ndarray
    buy_and_hold_curve: np.ndarray
    exposure: np.ndarray
    statistics: dict[str, Any] = field(default_factory=dict)
    ambiguous: list[AmbiguousCandle] = field(default_factory=list)
    refusals: list[LimitRefusal] = field(default_factory=list)
    halts: list[Halt] = field(default_factory=list)

    @cached_property
    def trades(self) -> list[Trade]:
        """The trades as :class:`Trade` values (made on first use: a year of minutes can hold 10,000)."""
        return self.trade_log.to_trades()


def _index_at(open_time_seconds: np.ndarray, moments: np.ndarray, step: int | None = None) -> np.ndarray:
    """Index of the candle opening exactly at each moment, or -1.

    Args:
        open_time_seconds: shape (m,), int64, strictly increasing.
        moments: shape (n,), int64.
        step: the candle length in seconds, when known: candles without gaps are then found by arithmetic.
    """
    m = open_time_seconds.shape[0]
    if m == 0:
        return np.full(moments.shape[0], -1, dtype=np.int64)
    if step and int(open_time_seconds[-1]) - int(open_time_seconds[0]) == (m - 1) * step:
        offset = moments - open_time_seconds[0]
        found = (offset % step == 0) & (offset >= 0) & (offset < m * step)
        return np.where(found, offset // step, -1)
    positions = np.searchsorted(open_time_seconds, moments)
    clipped = np.minimum(positions, m - 1)
    return np.where((positions < m) & (open_time_seconds[clipped] == moments), clipped, -1)


def _index_on(open_time_seconds: np.ndarray, moments: np.ndarray, step: int | None = None) -> np.ndarray:
    """Index of the last candle opening at or before each moment, or -1 (arguments as :func:`_index_at`)."""
    m = open_time_seconds.shape[0]
    if m == 0:
        return np.full(moments.shape[0], -1, dtype=np.int64)
    if step and int(open_time_seconds[-1]) - int(open_time_seconds[0]) == (m - 1) * step:
        offset = moments - open_time_seconds[0]
        return np.where(offset >= 0, np.minimum(offset // step, m - 1), -1)
    return np.searchsorted(open_time_seconds, moments, side="right") - 1


def market_at(
    candles: CandleArrays,
    signals: Signals,
    *,
    t: int,
    next_index: int | None,
    next_time_seconds: int | None,
    next_price: float | None,
) -> InstrumentAtBoundary:
    """Return an instrument at a boundary, candle ``t`` being its last completed candle (or -1 for none: then
    ``candles`` end before the boundary, and the last one's close is the instrument's last price)."""
    if t < 0:
        return InstrumentAtBoundary(
            symbol=candles.symbol,
            index=None,
            last_close=float(candles.close[-1]) if len(candles) else math.nan,
            next_index=next_index,
            next_time_seconds=next_time_seconds,
            next_price=next_price,
        )
    return InstrumentAtBoundary(
        symbol=candles.symbol,
        index=t,
        open_time_seconds=int(candles.open_time_seconds[t]),
        open=float(candles.open[t]),
        high=float(candles.high[t]),
        low=float(candles.low[t]),
        close=float(candles.close[t]),
        entry_signal=bool(signals.entry[t]),
        exit_signal=bool(signals.exit[t]),
        atr=math.nan if signals.atr is None else float(signals.atr[t]),
        last_close=float(candles.close[t]),
        next_index=next_index,
        next_time_seconds=next_time_seconds,
        next_price=next_price,
    )


def backtest(
    *,
    criteria: Criteria,
    instruments: Sequence[CandleArrays],
    start_time_seconds: int,
    end_time_seconds: int,
    starting_cash: float,
    candle_seconds: int = SECONDS_PER_DAY,
    close_at_end: bool = False,
    finer: Mapping[str, CandleArrays] | None = None,
    references: Mapping[str, CandleArrays] | None = None,
) -> BacktestResult:
    """Run ``criteria`` over the candles of one or several instruments that share one cash balance.

    The boundaries run inside compiled code (:func:`trading.engine.loop.run_boundaries`), which calls at each
    one the same open and close rules as the live cycle's :func:`~trading.engine.step.step_entries` and
    :func:`~trading.engine.step.step_exits`.

    Args:
        criteria: parsed criteria.
        instruments: each instrument's candles (all of them: indicators warm up before
            ``start_time_seconds``); symbols must be unique.
        start_time_seconds, end_time_seconds: the first and last boundary, seconds since epoch, multiples of
            ``candle_seconds``.
        starting_cash: quote currency, > 0.
        candle_seconds: candle length (86,400 for daily candles).
        close_at_end: close what is still open at the last close in the range (exit reason ``end_of_data``)
            instead of reporting it open. The risk exits inside the last candle are settled first, at their
            levels (CRITERIA.md: every candle is checked, the last one included, before an ``end_of_data``
            close): the close step of one boundary more, which has no price after the last candle. Without it,
            the run ends as the daily cycle replayed over the same days does: the last candle has not closed at
            the last boundary, so an open trade is reported open even when that candle goes through a level
            (the live close step settles it at the next boundary, at the level, timed at the candle's open).
            With it, an instrument whose data ends before the run's last candle is sold there too, at its last
            close (``end_of_data``, timed at that close): its cash is spent by the other instruments from the next
            boundary on (CRITERIA.md: an instrument trades only inside its stored candles).
        finer: optional finer candles (1h or 1m, oldest first) by symbol, for the bar magnifier: an ambiguous
            candle (its stop and take-profit both inside, :func:`trading.engine.boundary.is_ambiguous`) is
            decided by the first of its finer candles (those opening inside it) that crosses a level; without
            them, or for a symbol missing here, it takes the stop (CRITERIA.md). Other candles are unaffected.
        references: CoinGecko id -> candles (the run's timeframe, oldest first, all of them) of every other
            instrument the criteria's operands name (:func:`trading.engine.criteria.criteria_instruments`); see
            :func:`trading.engine.conditions.signals_compute`.

    Returns:
        :class:`BacktestResult`.

    Raises:
        ValueError: ``end_time_seconds < start_time_seconds``, symbols repeat, or an operand names an instrument
            missing from ``references``.
    """
    if end_time_seconds < start_time_seconds:
        raise ValueError(
            f"end_time_seconds {end_time_seconds} is before start_time_seconds {start_time_seconds}"
        )
    symbols = [c.symbol for c in instruments]
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"instrument symbols must be unique, got {symbols}")
    ordered = sorted(instruments, key=lambda c: c.symbol)
    boundaries = np.arange(start_time_seconds, end_time_seconds + 1, candle_seconds, dtype=np.int64)
    steps = boundaries
    if close_at_end:
        # One boundary more, after the last candle and with no price after it: its close step settles the risk
        # exits inside the last candle, as at every other boundary, before the end_of_data close below.
        steps = np.append(boundaries, boundaries[-1] + candle_seconds)
    # One instrument: the boundaries before its first candle t and after its last one are no-ops (nothing can be
    # open before its data, and nothing fills without a price), so the loop runs only the rows in between.
    # A limit that halts the account measures every boundary of the run (its days and halts' ends), data or not.
    rows = (
        _rows_with_candle(ordered[0], steps, candle_seconds)
        if len(ordered) == 1 and not criteria_halts(criteria)
        else slice(0, len(steps))
    )
    steps_run = steps[rows]
    columns = [
        _market_columns(
            criteria,
            c,
            steps_run,
            candle_seconds,
            writable=close_at_end,
            references=references,
        )
        for c in ordered
    ]
    data_ends: list[int | None] = [None] * len(columns)
    if close_at_end:
        for i, column in enumerate(columns):
            # The extra boundary is among the rows unless the one instrument's data ended before it.
            if rows.stop == len(steps) > rows.start:
                _end_of_prices(column)
            data_ends[i] = _close_at_data_end(column, ordered[i], candle_seconds, end_time_seconds)
    # The close each instrument shows at each boundary's candle: what the equity curve marks positions at.
    closes = [_closes_on(c, boundaries, candle_seconds) for c in ordered]

    def stacked(name: str) -> np.ndarray:
        if len(columns) == 1:  # one instrument: a (n, 1) view, no copy
            return np.ascontiguousarray(columns[0][name]).reshape(-1, 1)
        return np.ascontiguousarray(np.column_stack([column[name] for column in columns]))

    capacity = int(sum(int(column["entry_signal"].sum()) for column in columns))
    # Only a candle holding both a stop and a take-profit can be ambiguous: without both, finer candles decide
    # nothing and are not packed (a sweep of 1,000 stop-loss-only points would pack them 1,000 times).
    can_be_ambiguous = uses_finer_candles(criteria)
    finer_bounds, finer_prices = finer_columns(  # candle t opens at the same time for every instrument
        [c.symbol for c in ordered],
        (finer or {}) if can_be_ambiguous else {},
        columns[0]["t_open_time_seconds"],
        candle_seconds,
    )
    uses_atr = criteria.sizing.atr_multiple is not None
    book_rules, account_rules = standalone_rules(criteria, starting_cash=starting_cash)
    (
        ints,
        floats,
        codes,
        still_open,
        _,
        ambiguous_ints,
        ambiguous_floats,
        refusal_rows,
        halt_ints,
        halt_floats,
    ) = run_boundaries(
        book_rules,
        *single_book(len(ordered)),
        account_rules,
        float(starting_cash),
        **{name: stacked(name) for name in MARKET_COLUMNS},
        finer_bounds=finer_bounds,
        finer_prices=finer_prices,
        capacity=capacity,
        t_atr=stacked("t_atr") if uses_atr else np.empty((0, 0)),
        boundary_seconds=_measured(steps_run, close_at_end and rows.stop == len(steps) > rows.start),
        log_limits=True,
    )
    if close_at_end:
        close_at_end_rows(
            ints,
            floats,
            codes,
            still_open,
            *_end_of_run(ordered, data_ends, end_time_seconds, candle_seconds),
            criteria.fee_rate,
            criteria.slippage_ratio,
        )
    log = _trade_log(tuple(c.symbol for c in ordered), ints, floats, codes)
    closed = log.closed
    equity, exposure = curves_from_trades(
        boundaries,
        np.ascontiguousarray(closes[0]).reshape(-1, 1) if len(closes) == 1 else np.column_stack(closes),
        log.slot,
        log.entry_time_seconds,
        log.entry_price * log.quantity + log.entry_fee,
        log.quantity,
        log.exit_time_seconds,
        np.where(closed, log.exit_price * log.quantity - log.exit_fee, 0.0),
        log.exit_code,
        float(starting_cash),
    )
    buy_and_hold = _buy_and_hold(boundaries, ordered, closes, starting_cash, candle_seconds)
    ambiguous = [
        AmbiguousCandle(
            symbol=ordered[int(row[AMBIGUOUS_INT_SLOT])].symbol,
            open_time_seconds=int(row[AMBIGUOUS_INT_OPEN_TIME_SECONDS]),
            stop_price=float(levels[AMBIGUOUS_FLOAT_STOP]),
            take_profit_price=float(levels[AMBIGUOUS_FLOAT_TAKE_PROFIT]),
            resolution=PESSIMISTIC_RESOLUTION
            if int(row[AMBIGUOUS_INT_RESOLUTION]) == AMBIGUITY_PESSIMISTIC
            else str(exit_reason_value(int(row[AMBIGUOUS_INT_RESOLUTION]))),
        )
        for row, levels in zip(ambiguous_ints, ambiguous_floats, strict=True)
    ]
    from trading.engine.statistics import backtest_statistics, equity_at_ruin

    # A ruined account is at exactly 0 from its ruin on, not float rounding below it (the curve is stored and drawn).
    equity, _ = equity_at_ruin(equity, starting_cash=starting_cash, ruin_ratio=RUIN_TOLERANCE_RATIO)
    statistics = backtest_statistics(
        equity_curve=equity,
        buy_and_hold_curve=buy_and_hold,
        exposure=exposure,
        trades=log,
        candle_seconds=candle_seconds,
        starting_cash=starting_cash,
        ambiguous_candles=len(ambiguous),
        ambiguous_resolved=sum(1 for a in ambiguous if a.resolution != PESSIMISTIC_RESOLUTION),
    )
    refusals = [
        LimitRefusal(
            boundary_seconds=int(row[REFUSAL_BOUNDARY_SECONDS]),
            symbol=ordered[int(row[REFUSAL_SLOT])].symbol,
            limit=RiskLimit.from_code(int(row[REFUSAL_LIMIT])),
        )
        for row in refusal_rows.tolist()
    ]
    return BacktestResult(
        log,
        boundaries,
        equity,
        buy_and_hold,
        exposure,
        statistics,
        ambiguous,
        refusals,
        halts_from_log(halt_ints, halt_floats),
    )


def _measured(steps: np.ndarray, close_at_end: bool) -> np.ndarray:
    """The boundaries' times for the kernel's limits (:func:`trading.engine.loop.run_boundaries`): ``steps``, with
    -1 for the settlement step after the last candle of a run that closes at its end (not a boundary of the run)."""
    times = np.array(steps, dtype=np.int64)
    if close_at_end and times.shape[0]:
        times[-1] = -1
    return times


def _gapless_offset(candles: CandleArrays, moment: int, candle_seconds: int) -> int | None:
    """For candles without gaps whose open times are ``moment`` plus multiples of ``candle_seconds``: the index
    the candle opening at ``moment`` has or would have (negative before the first candle, ``len(candles)`` or more
    after the last). None for other candles, which are found by search (:func:`_index_at`)."""
    open_time_seconds = candles.open_time_seconds
    m = open_time_seconds.shape[0]
    if m == 0:
        return None
    first = int(open_time_seconds[0])
    if int(open_time_seconds[-1]) - first != (m - 1) * candle_seconds or (moment - first) % candle_seconds:
        return None
    return (moment - first) // candle_seconds


def _rows_with_candle(candles: CandleArrays, boundaries: np.ndarray, candle_seconds: int) -> slice:
    """The boundaries (shape (n,), int64, ``candle_seconds`` apart) at which one instrument has its candle t
    (the candle that closed there), as a slice of rows; all of them unless its candles are gapless
    (:func:`_gapless_offset`). An empty slice when no boundary has one."""
    n = boundaries.shape[0]
    t0 = _gapless_offset(candles, int(boundaries[0]) - candle_seconds, candle_seconds) if n else None
    if t0 is None:
        return slice(0, n)
    start = min(max(0, -t0), n)
    return slice(start, max(start, min(n, len(candles) - t0)))


#: The ``t_atr`` column of an instrument whose criteria do not size on an ATR stop (never read: the kernel then
#: takes a (0, 0) array).
_NO_ATR = np.empty(0)


def _market_columns(
    criteria: Criteria,
    candles: CandleArrays,
    boundaries: np.ndarray,
    candle_seconds: int,
    *,
    writable: bool = False,
    references: Mapping[str, CandleArrays] | None = None,
    cache: dict[Any, Any] | None = None,
) -> dict[str, np.ndarray]:
    """One instrument's market at every boundary (shape (n,) each; see :mod:`trading.engine.boundary`).

    Where the instrument has candle t at every boundary and its candles are gapless, the columns are views of the
    candle and signal arrays (a year of minutes: 13 gathers of 527,040 values avoided); ``writable`` makes the
    columns that :func:`_end_of_prices` and :func:`_close_at_data_end` change copies of their own; ``references``
    the other instruments' candles the operands name (:func:`trading.engine.conditions.signals_compute`), ``cache``
    its memo of indicator series (a sweep's).
    """
    signals = signals_compute(criteria, candles, cache, references)
    n = boundaries.shape[0]
    t0 = _gapless_offset(candles, int(boundaries[0]) - candle_seconds, candle_seconds) if n else None
    m = len(candles)
    if t0 is not None and t0 >= 0 and t0 + n <= m:
        # Candle t of row j is t0 + j; the next candle is t + 1, absent at the last row only (t0 + n == m).
        ends_without_next = t0 + n == m
        after = np.arange(t0, t0 + n + 1, dtype=np.int64)  # t_index and next_index share it
        rows = slice(t0, t0 + n)
        next_rows = slice(t0 + 1, t0 + n + 1)
        has_next = np.ones(n, dtype=np.bool_)
        columns = {
            "has_t": np.ones(n, dtype=np.bool_),
            "t_index": after[:-1],
            "t_open_time_seconds": candles.open_time_seconds[rows],
            "t_open": candles.open[rows],
            "t_high": candles.high[rows],
            "t_low": candles.low[rows],
            "t_close": candles.close[rows],
            "entry_signal": signals.entry[rows],
            "exit_signal": signals.exit[rows],
            "t_atr": signals.atr[rows] if signals.atr is not None else _NO_ATR,
            "has_next": has_next,
            "next_index": after[1:],
            "next_time_seconds": boundaries,
            "next_price": np.append(candles.open[next_rows], np.nan)
            if ends_without_next
            else candles.open[next_rows],
        }
        if ends_without_next:
            has_next[-1] = False
            columns["next_index"][-1] = -1  # the shared array's last value, past t_index's
        if writable:
            for name in ("entry_signal", "exit_signal", "next_index", "next_time_seconds", "next_price"):
                columns[name] = columns[name].copy()
        return columns
    t = _index_at(candles.open_time_seconds, boundaries - candle_seconds, candle_seconds)
    nxt = _index_at(candles.open_time_seconds, boundaries, candle_seconds)
    has_t, has_next = t >= 0, nxt >= 0
    at_t, at_next = np.maximum(t, 0), np.maximum(nxt, 0)
    empty = m == 0

    def gather(values: np.ndarray, where: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if empty:
            return np.full(n, np.nan)
        gathered: np.ndarray = values[where]
        gathered[~mask] = np.nan
        return gathered

    return {
        "has_t": has_t,
        "t_index": t,
        "t_open_time_seconds": boundaries - candle_seconds,
        "t_open": gather(candles.open, at_t, has_t),
        "t_high": gather(candles.high, at_t, has_t),
        "t_low": gather(candles.low, at_t, has_t),
        "t_close": gather(candles.close, at_t, has_t),
        "entry_signal": has_t & (signals.entry[at_t] if not empty else False),
        "exit_signal": has_t & (signals.exit[at_t] if not empty else False),
        "t_atr": gather(signals.atr, at_t, has_t) if signals.atr is not None else _NO_ATR,
        "has_next": has_next,
        "next_index": nxt,
        "next_time_seconds": boundaries.copy() if writable else boundaries,
        "next_price": gather(candles.open, at_next, has_next),
    }


def _end_of_run(
    ordered: Sequence[CandleArrays],
    data_ends: Sequence[int | None],
    end_time_seconds: int,
    candle_seconds: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The arrays :func:`trading.engine.loop.close_at_end` takes, one value an instrument (slot order):
    ``(data_end_seconds, last_index, last_close, last_exit_seconds)``; ``data_ends`` from
    :func:`_close_at_data_end`."""
    k = len(ordered)
    data_end_seconds = np.array([-1 if end is None else end for end in data_ends], dtype=np.int64)
    last_index = np.full(k, -1, dtype=np.int64)
    last_close = np.full(k, np.nan)
    last_exit_seconds = np.full(k, -1, dtype=np.int64)
    for i, candles in enumerate(ordered):
        last = int(np.searchsorted(candles.open_time_seconds, end_time_seconds, side="right")) - 1
        if last >= 0:
            last_index[i] = last
            last_close[i] = float(candles.close[last])
            last_exit_seconds[i] = int(candles.open_time_seconds[last]) + candle_seconds
    return data_end_seconds, last_index, last_close, last_exit_seconds


def _end_of_prices(column: dict[str, np.ndarray]) -> None:
    """Make the last row of one instrument's market columns (:func:`_market_columns`) a boundary without a next
    price, in place: nothing fills at an open there (no entry, no signal or max-holding exit), so its close step
    does only what happened inside candle t, the risk exits."""
    column["has_next"][-1] = False
    column["next_index"][-1] = -1
    column["next_price"][-1] = np.nan
    column["entry_signal"][-1] = False
    column["exit_signal"][-1] = False


def _close_at_data_end(
    column: dict[str, np.ndarray], candles: CandleArrays, candle_seconds: int, run_last_open_seconds: int
) -> int | None:
    """When an instrument's data ends before the run's last candle, make the boundary after its last candle sell
    what is open there at that candle's close, in place (CRITERIA.md: an instrument trades only inside its stored
    candles; the simulator closes what is open at the end of the data ``end_of_data``).

    That boundary settles the last candle's risk exits first, as every boundary does; then the sale is phase 3's
    (an exit signal, no entry, at the last close as the price after it), so its cash is spent by the other
    instruments from the next boundary on instead of lying idle to the end of the run. The caller relabels that
    exit ``end_of_data``.

    Args:
        column: the instrument's market columns (:func:`_market_columns`, writable).
        candles: its candles.
        candle_seconds: candle length.
        run_last_open_seconds: the open of the run's last candle (the last boundary's), seconds since epoch.

    Returns:
        The sale's time (the last candle's open plus ``candle_seconds``, seconds since epoch), or None when the
        instrument's last candle is the run's last one (or not in the run).
    """
    last = len(candles) - 1
    if last < 0 or int(candles.open_time_seconds[last]) >= run_last_open_seconds:
        return None
    rows = np.flatnonzero(column["t_index"] == last)
    if rows.shape[0] == 0:
        return None
    j = int(rows[0])
    when = int(candles.open_time_seconds[last]) + candle_seconds
    column["has_next"][j] = True
    column["next_index"][j] = last
    column["next_time_seconds"][j] = when
    column["next_price"][j] = candles.close[last]
    column["entry_signal"][j] = False
    column["exit_signal"][j] = True
    return when


def _trade_log(symbols: tuple[str, ...], ints: np.ndarray, floats: np.ndarray, codes: np.ndarray) -> TradeLog:
    """The kernel's trade log (see :func:`trading.engine.loop.run_boundaries`) as a :class:`TradeLog`."""

    def column(array: np.ndarray, i: int) -> np.ndarray:
        return np.ascontiguousarray(array[:, i])

    return TradeLog(
        symbols=symbols,
        slot=column(ints, INT_SLOT),
        entry_index=column(ints, INT_ENTRY_INDEX),
        entry_time_seconds=column(ints, INT_ENTRY_TIME_SECONDS),
        exit_index=column(ints, INT_EXIT_INDEX),
        exit_time_seconds=column(ints, INT_EXIT_TIME_SECONDS),
        exit_code=np.ascontiguousarray(codes),
        entry_price=column(floats, FLOAT_ENTRY_PRICE),
        quantity=column(floats, FLOAT_QUANTITY),
        entry_fee=column(floats, FLOAT_ENTRY_FEE),
        stop_loss_price=column(floats, FLOAT_STOP_LOSS_PRICE),
        take_profit_price=column(floats, FLOAT_TAKE_PROFIT_PRICE),
        trailing_stop_price=column(floats, FLOAT_TRAILING_STOP_PRICE),
        exit_price=column(floats, FLOAT_EXIT_PRICE),
        exit_fee=column(floats, FLOAT_EXIT_FEE),
        pnl=column(floats, FLOAT_PNL),
        pnl_ratio=column(floats, FLOAT_PNL_RATIO),
    )


def _closes_on(candles: CandleArrays, times: np.ndarray, step: int | None = None) -> np.ndarray:
    """The close of the last candle opened at or before each time (shape (n,), float64), 0.0 before the first
    candle; a view of ``candles.close`` when its gapless candles open at every time."""
    n = times.shape[0]
    first = _gapless_offset(candles, int(times[0]), step) if n and step else None
    if first is not None and first >= 0 and first + n <= len(candles):
        return candles.close[first : first + n]
    idx = _index_on(candles.open_time_seconds, times, step)
    closes = np.where(idx >= 0, candles.close[np.maximum(idx, 0)] if len(candles) else 0.0, 0.0)
    return np.asarray(closes, dtype=np.float64)


def _buy_and_hold(
    times: np.ndarray,
    instruments: Sequence[CandleArrays],
    closes: list[np.ndarray],
    starting_cash: float,
    candle_seconds: int,
) -> np.ndarray:
    """Buy and hold, equal shares (see :class:`BacktestResult`): each share bought at the open of the
    instrument's first candle opening at one of ``times`` (shape (n,), int64, the boundaries), ``closes[i]``
    instrument ``i``'s close at each time (:func:`_closes_on`); a share whose instrument has no such candle is
    kept as cash."""
    share = starting_cash / max(len(instruments), 1)
    total = np.zeros(times.shape[0])
    for candles, close in zip(instruments, closes, strict=True):
        first = _first_at(candles.open_time_seconds, times, candle_seconds)
        if first is None:
            total += share
            continue
        bought_at, candle = first
        value = (share / float(candles.open[candle])) * close
        value[:bought_at] = share
        total += value
    return total


def _first_at(
    open_time_seconds: np.ndarray, times: np.ndarray, candle_seconds: int
) -> tuple[int, int] | None:
    """The first of ``times`` (shape (n,), int64, ``candle_seconds`` apart) at which a candle opens, as ``(index
    in times, index of the candle)``, or None when no candle opens at any of them."""
    if not times.shape[0]:
        return None
    low = int(np.searchsorted(open_time_seconds, times[0]))
    high = int(np.searchsorted(open_time_seconds, times[-1], side="right"))
    offsets = open_time_seconds[low:high] - times[0]
    if not offsets.shape[0]:
        return None
    if offsets[0] % candle_seconds == 0:  # the usual case: candles open at the boundaries
        return int(offsets[0] // candle_seconds), low
    aligned = np.flatnonzero(offsets % candle_seconds == 0)
    if not aligned.shape[0]:
        return None
    return int(offsets[aligned[0]] // candle_seconds), low + int(aligned[0])
