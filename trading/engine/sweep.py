"""Sweeps in the engine: many criteria run over the same candles and days, the work they share done once.

A point of a sweep equals the single run of its criteria exactly (:func:`trading.engine.backtest.backtest` with
the same arguments): the same curve and statistics, bit for bit (:func:`sweep_statistics`, the sweep kernel).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from trading.engine.backtest import (
    _buy_and_hold,
    _close_at_data_end,
    _closes_on,
    _end_of_prices,
    _end_of_run,
    _market_columns,
    _measured,
    _rows_with_candle,
    backtest,
)
from trading.engine.conditions import series_memo, signals_compute
from trading.engine.criteria import Criteria
from trading.engine.curves import curves_from_trades
from trading.engine.layout import (
    AMBIGUITY_PESSIMISTIC,
    AMBIGUOUS_FLOAT_COLUMNS,
    AMBIGUOUS_FLOAT_STOP,
    AMBIGUOUS_FLOAT_TAKE_PROFIT,
    AMBIGUOUS_INT_COLUMNS,
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
    INT_ENTRY_TIME_SECONDS,
    INT_EXIT_TIME_SECONDS,
    INT_SLOT,
    RULE_FEE_RATE,
    RULE_SLIPPAGE_RATIO,
)
from trading.engine.loop import close_at_end, run_boundaries
from trading.engine.magnifier import finer_columns, uses_finer_candles
from trading.engine.statistics import (
    TRADE_FIGURES_SIZE,
    _curve_figures,
    statistics_from_figures,
    trade_figures,
)
from trading.engine.step import MARKET_COLUMNS, criteria_halts, standalone_rules
from trading.engine.types import RUIN_TOLERANCE_RATIO, SECONDS_PER_DAY, AmbiguousCandle, CandleArrays
from trading.engine.vocabulary import PESSIMISTIC_RESOLUTION, exit_reason_value

#: Columns of the kernel's per-point counts (:func:`_points_run`).
_COUNT_RETURNS, _COUNT_EXPOSURE, _COUNT_AMBIGUOUS, _COUNT_RESOLVED, _COUNT_INVALID, _COUNT_RUIN = range(6)
_COUNTS = 6
#: The most points one call of the compiled kernel runs (bounds the signal arrays: points x instruments x candles).
POINTS_PER_CALL = 500


@dataclass
class SweepStatistics:
    """What :func:`sweep_statistics` made: the statistics of every point, and its curve when asked.

    Attributes:
        times: shape (n,), int64, seconds since epoch: the open time of each candle of the curves.
        statistics: one dict per point (:func:`trading.engine.statistics.backtest_statistics`'s keys), None for a
            point whose run raised (its message in ``errors``).
        errors: one entry per point: ``""``, or ``"ValueError: ..."`` as the single run raised it.
        ambiguous: one list per point of its ambiguous candles (as :class:`~trading.engine.backtest.BacktestResult`).
        ruin_index: shape (P,), int64: the candle of each point's ruin (:func:`trading.engine.statistics.
            equity_at_ruin`), -1 where there was none.
        equity_curves: shape (P, n), float64, quote currency (the ruin-clamped curves), when asked for; else None.
    """

    times: np.ndarray
    statistics: list[dict[str, Any] | None]
    errors: list[str]
    ambiguous: list[list[AmbiguousCandle]]
    ruin_index: np.ndarray
    equity_curves: np.ndarray | None


def sweep_statistics(
    *,
    criteria: Sequence[Criteria],
    instruments: Sequence[CandleArrays],
    start_time_seconds: int,
    end_time_seconds: int,
    starting_cash: float,
    candle_seconds: int = SECONDS_PER_DAY,
    close_at_end: bool = False,
    finer: Mapping[str, CandleArrays] | None = None,
    keep_curves: bool = False,
    references: Mapping[str, CandleArrays] | None = None,
) -> SweepStatistics:
    """The statistics of each of ``criteria`` run over the same candles and boundaries, all points inside one
    compiled loop (the sweep kernel).

    What a point shares with the others is done once: each distinct indicator series, the market columns of the
    boundaries, the finer candles, the closes and buy and hold. Each point then runs the very boundary loop of the
    single run (:func:`trading.engine.loop.run_boundaries`), its end-of-run closes, curves and figures, all
    compiled, and its statistics are built by the single run's own function
    (:func:`trading.engine.statistics.statistics_from_figures`): a point's statistics equal
    ``backtest(criteria=c, ...).statistics`` exactly, its curve the backtest's ``equity_curve``.

    Args:
        criteria: the points' parsed criteria.
        instruments, start_time_seconds, end_time_seconds, starting_cash, candle_seconds, close_at_end, finer,
        references: as :func:`trading.engine.backtest.backtest`. A series over another instrument's (or weekly)
            candles is computed once for the sweep, whichever traded instrument and point use it
            (:func:`trading.engine.conditions.series_memo`).
        keep_curves: return every point's equity curve (P x n float64: 15 MB for 1,000 points of 5 years).

    Returns:
        :class:`SweepStatistics`.

    Raises:
        ValueError: as :func:`~trading.engine.backtest.backtest` for the range and symbols; a point's own error
            is in ``errors``, not raised.
    """
    if end_time_seconds < start_time_seconds:
        raise ValueError(
            f"end_time_seconds {end_time_seconds} is before start_time_seconds {start_time_seconds}"
        )
    symbols = [c.symbol for c in instruments]
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"instrument symbols must be unique, got {symbols}")
    ordered = sorted(instruments, key=lambda c: c.symbol)
    # One memo of indicator series per traded instrument; those over other candles (another instrument's, weekly)
    # shared by all of them: each distinct series is computed once per sweep.
    shared: dict[Any, Any] = {}
    cache: dict[str, dict[Any, Any]] = {c.symbol: series_memo(shared) for c in ordered}
    market = _shared_market(
        criteria,
        ordered,
        start_time_seconds,
        end_time_seconds,
        candle_seconds,
        close_at_end,
        references,
        cache,
    )
    boundaries = market.boundaries
    closes = [_closes_on(c, boundaries, candle_seconds) for c in ordered]
    closes_array = np.ascontiguousarray(np.column_stack(closes)) if closes else np.zeros((len(boundaries), 0))
    buy_and_hold = _buy_and_hold(boundaries, ordered, closes, starting_cash, candle_seconds)
    any_ambiguous = any(uses_finer_candles(c) for c in criteria)
    finer_bounds, finer_prices = finer_columns(
        [c.symbol for c in ordered],
        (finer or {}) if any_ambiguous else {},
        market.columns["t_open_time_seconds"][:, 0] if ordered else np.zeros(0, dtype=np.int64),
        candle_seconds,
    )
    end_arrays = _end_of_run(ordered, market.data_ends, end_time_seconds, candle_seconds)
    longest = max((len(c) for c in ordered), default=0)
    total = len(criteria)
    statistics: list[dict[str, Any] | None] = []
    errors: list[str] = []
    ambiguous: list[list[AmbiguousCandle]] = []
    ruin_index = np.full(total, -1, dtype=np.int64)
    curves = np.zeros((total, len(boundaries))) if keep_curves else None
    for first in range(0, total, POINTS_PER_CALL):
        chunk = criteria[first : first + POINTS_PER_CALL]
        entry = np.zeros((len(chunk), len(ordered), longest), dtype=np.bool_)
        exit_ = np.zeros_like(entry)
        uses_atr = any(point.sizing.atr_period is not None for point in chunk)
        atr = np.full(entry.shape if uses_atr else (0, 0, 0), np.nan)
        for p, point in enumerate(chunk):
            for i, candles in enumerate(ordered):
                signals = signals_compute(point, candles, cache[candles.symbol], references)
                entry[p, i, : len(candles)] = signals.entry
                exit_[p, i, : len(candles)] = signals.exit
                if signals.atr is not None:
                    atr[p, i, : len(candles)] = signals.atr
        standalone = [standalone_rules(point, starting_cash=starting_cash) for point in chunk]
        book_rules = np.stack([rules for rules, _ in standalone])
        account_rules = np.stack([account for _, account in standalone])
        (
            curve_figures,
            trade_figures_out,
            counts,
            final_equity,
            chunk_curves,
            amb_ints,
            amb_floats,
            amb_point,
        ) = _points_run(
            book_rules,
            account_rules,
            float(starting_cash),
            market.columns["has_t"],
            market.columns["t_index"],
            market.columns["t_open_time_seconds"],
            market.columns["t_open"],
            market.columns["t_high"],
            market.columns["t_low"],
            market.columns["t_close"],
            market.columns["has_next"],
            market.columns["next_index"],
            market.columns["next_time_seconds"],
            market.columns["next_price"],
            market.entry_override,
            market.exit_override,
            entry,
            exit_,
            atr,
            market.steps,
            finer_bounds,
            finer_prices,
            close_at_end,
            end_arrays[0],
            end_arrays[1],
            end_arrays[2],
            end_arrays[3],
            boundaries,
            closes_array,
            float(starting_cash) * RUIN_TOLERANCE_RATIO,
            keep_curves,
        )
        valid = counts[:, _COUNT_INVALID] == 0
        rows_statistics = iter(
            statistics_from_figures(
                curve_figures=curve_figures[valid],
                trade_figures_rows=trade_figures_out[valid],
                n=len(boundaries),
                returns_count=counts[valid, _COUNT_RETURNS],
                final_equity=final_equity[valid],
                buy_and_hold_last=float(buy_and_hold[-1]),
                exposure_count=counts[valid, _COUNT_EXPOSURE],
                candle_seconds=int(candle_seconds),
                starting_cash=float(starting_cash),
                ambiguous_candles=counts[valid, _COUNT_AMBIGUOUS],
                ambiguous_resolved=counts[valid, _COUNT_RESOLVED],
            )
        )
        by_point = _ambiguous_by_point(ordered, amb_ints, amb_floats, amb_point, len(chunk))
        for p, point in enumerate(chunk):
            index = first + p
            if not valid[p]:
                statistics.append(None)
                errors.append(
                    _single_run_error(
                        criteria=point,
                        instruments=ordered,
                        start_time_seconds=start_time_seconds,
                        end_time_seconds=end_time_seconds,
                        starting_cash=starting_cash,
                        candle_seconds=candle_seconds,
                        close_at_end=close_at_end,
                        finer=finer,
                        references=references,
                    )
                )
                ambiguous.append([])
                continue
            statistics.append(next(rows_statistics))
            errors.append("")
            ambiguous.append(by_point[p])
            ruin_index[index] = counts[p, _COUNT_RUIN]
            if curves is not None:
                curves[index] = chunk_curves[p]
    return SweepStatistics(boundaries, statistics, errors, ambiguous, ruin_index, curves)


def _single_run_error(**arguments: Any) -> str:
    """The error the single run raises for a point the kernel refused (its curve failed a check of
    :func:`~trading.engine.statistics.equity_at_ruin`), as ``"ValueError: ..."``."""
    try:
        backtest(**arguments)
    except (ValueError, OverflowError) as exc:
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError("the sweep kernel refused a curve that the single run accepts")


def _ambiguous_by_point(
    ordered: Sequence[CandleArrays],
    amb_ints: np.ndarray,
    amb_floats: np.ndarray,
    amb_point: np.ndarray,
    points: int,
) -> list[list[AmbiguousCandle]]:
    """The kernel's ambiguous candles (rows of every point, in point order) as one list a point."""
    by_point: list[list[AmbiguousCandle]] = [[] for _ in range(points)]
    for row, levels, p in zip(amb_ints.tolist(), amb_floats.tolist(), amb_point.tolist(), strict=True):
        by_point[p].append(
            AmbiguousCandle(
                symbol=ordered[row[AMBIGUOUS_INT_SLOT]].symbol,
                open_time_seconds=row[AMBIGUOUS_INT_OPEN_TIME_SECONDS],
                stop_price=levels[AMBIGUOUS_FLOAT_STOP],
                take_profit_price=levels[AMBIGUOUS_FLOAT_TAKE_PROFIT],
                resolution=PESSIMISTIC_RESOLUTION
                if row[AMBIGUOUS_INT_RESOLUTION] == AMBIGUITY_PESSIMISTIC
                else str(exit_reason_value(row[AMBIGUOUS_INT_RESOLUTION])),
            )
        )
    return by_point


#: The market columns every point shares, in :func:`_points_run`'s argument order: the live step's and the
#: backtest's columns (:data:`trading.engine.step.MARKET_COLUMNS`) but the signals, which are each point's own.
_SHARED = tuple(name for name in MARKET_COLUMNS if name not in ("entry_signal", "exit_signal"))


@dataclass
class _Market:
    """The boundaries of a sweep and the market columns its points share (shape (rows, k) each), with the rows
    where the end of the run or of an instrument's data fixes the signals (-1 where it does not, else 0/1)."""

    boundaries: np.ndarray
    steps: np.ndarray
    columns: dict[str, np.ndarray]
    entry_override: np.ndarray
    exit_override: np.ndarray
    data_ends: list[int | None]


def _shared_market(
    criteria: Sequence[Criteria],
    ordered: Sequence[CandleArrays],
    start_time_seconds: int,
    end_time_seconds: int,
    candle_seconds: int,
    close_at_end: bool,
    references: Mapping[str, CandleArrays] | None = None,
    cache: Mapping[str, dict[Any, Any]] | None = None,
) -> _Market:
    """The market columns of :func:`trading.engine.backtest.backtest`, made once for every point: the same
    boundaries, rows and end-of-run changes; the signal columns become overrides (int8, -1 none), which the
    kernel applies over each point's own signals."""
    boundaries = np.arange(start_time_seconds, end_time_seconds + 1, candle_seconds, dtype=np.int64)
    steps = boundaries
    if close_at_end:
        steps = np.append(boundaries, boundaries[-1] + candle_seconds)
    # As the single run: a limit that halts the account measures every boundary, data or not.
    rows = (
        _rows_with_candle(ordered[0], steps, candle_seconds)
        if len(ordered) == 1 and not any(criteria_halts(c) for c in criteria)
        else slice(0, len(steps))
    )
    steps_run = steps[rows]
    probe = criteria[0] if criteria else None
    columns = []
    data_ends: list[int | None] = [None] * len(ordered)
    for i, candles in enumerate(ordered):
        column = (
            _market_columns(
                probe,
                candles,
                steps_run,
                candle_seconds,
                writable=True,
                references=references,
                cache=None if cache is None else cache[candles.symbol],
            )
            if probe is not None
            else {}
        )
        column["entry_signal"] = np.full(len(steps_run), -1, dtype=np.int8)
        column["exit_signal"] = np.full(len(steps_run), -1, dtype=np.int8)
        if close_at_end and probe is not None:
            if rows.stop == len(steps) > rows.start:
                _end_of_prices(column)
            data_ends[i] = _close_at_data_end(column, candles, candle_seconds, end_time_seconds)
        columns.append(column)
    stacked = {
        name: np.ascontiguousarray(np.column_stack([column[name] for column in columns]))
        for name in (*_SHARED, "entry_signal", "exit_signal")
    }
    for name in ("t_index", "next_index", "t_open_time_seconds", "next_time_seconds"):
        stacked[name] = stacked[name].astype(np.int64)
    return _Market(
        boundaries,
        _measured(steps_run, close_at_end and rows.stop == len(steps) > rows.start),
        stacked,
        stacked.pop("entry_signal"),
        stacked.pop("exit_signal"),
        data_ends,
    )


@njit(cache=True)
def _points_run(
    book_rules: np.ndarray,
    account_rules: np.ndarray,
    cash: float,
    has_t: np.ndarray,
    t_index: np.ndarray,
    t_open_time_seconds: np.ndarray,
    t_open: np.ndarray,
    t_high: np.ndarray,
    t_low: np.ndarray,
    t_close: np.ndarray,
    has_next: np.ndarray,
    next_index: np.ndarray,
    next_time_seconds: np.ndarray,
    next_price: np.ndarray,
    entry_override: np.ndarray,
    exit_override: np.ndarray,
    entry_candles: np.ndarray,
    exit_candles: np.ndarray,
    atr_candles: np.ndarray,
    steps: np.ndarray,
    finer_bounds: np.ndarray,
    finer_prices: np.ndarray,
    closes_at_end: bool,
    data_end_seconds: np.ndarray,
    last_index: np.ndarray,
    last_close: np.ndarray,
    last_exit_seconds: np.ndarray,
    times: np.ndarray,
    closes: np.ndarray,
    ruin_equity: float,
    keep_curves: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run every point: its signals at the boundaries, :func:`~trading.engine.loop.run_boundaries`,
    :func:`~trading.engine.loop.close_at_end`, :func:`~trading.engine.curves.curves_from_trades`, the ruin clamp
    of :func:`~trading.engine.statistics.equity_at_ruin` and the figures of the statistics, as the single run does.

    Args:
        book_rules, account_rules: shape (P, 1, RULES_SIZE) and (P, RULES_SIZE), float64: each point's rules
            (:func:`trading.engine.step.standalone_rules`).
        cash: the starting cash, quote currency.
        has_t .. next_price: shape (rows, k): the shared market columns (:func:`_shared_market`).
        entry_override, exit_override: shape (rows, k), int8: -1, or the value the signal takes there.
        entry_candles, exit_candles: shape (P, k, m), bool: each point's signals on each instrument's candles.
        atr_candles: shape (P, k, m), float64: each point's ATR for risk-based sizing on an ATR stop (NaN where
            it has none), or (0, 0, 0) when no point sizes on one.
        steps: shape (rows,), int64: the time of each boundary the kernel runs (its limits' days and cooldowns).
        finer_bounds, finer_prices: :func:`trading.engine.magnifier.finer_columns`.
        closes_at_end: close what is open at the end (``end_of_data``); data_end_seconds .. last_exit_seconds:
            :func:`trading.engine.backtest._end_of_run`.
        times: shape (n,), int64, the boundaries; closes: shape (n, k), float64, the closes on them.
        ruin_equity: the equity at or below which an account is ruined (RUIN_TOLERANCE_RATIO of the cash).
        keep_curves: fill the curves output (else it is (0, n)).

    Returns:
        ``(curve_figures (P, 9), trade_figures (P, TRADE_FIGURES_SIZE), counts (P, 6) int64, final_equity (P,),
        curves, ambiguous_ints (a, 3), ambiguous_floats (a, 2), ambiguous_point (a,))``; a point whose curve fails
        a check of ``equity_at_ruin`` has ``counts[p, 4] = 1`` and no figures.
    """
    points = book_rules.shape[0]
    rows, k = has_t.shape
    n = times.shape[0]
    curve_figures = np.full((points, 9), np.nan)
    trade_out = np.full((points, TRADE_FIGURES_SIZE), np.nan)
    counts = np.zeros((points, _COUNTS), dtype=np.int64)
    final_equity = np.full(points, np.nan)
    curves = np.zeros((points if keep_curves else 0, n))
    amb_size = 64
    amb_ints = np.full((amb_size, AMBIGUOUS_INT_COLUMNS), -1, dtype=np.int64)
    amb_floats = np.full((amb_size, AMBIGUOUS_FLOAT_COLUMNS), np.nan)
    amb_point = np.full(amb_size, -1, dtype=np.int64)
    a_total = 0
    entry = np.zeros((rows, k), dtype=np.bool_)
    exit_ = np.zeros((rows, k), dtype=np.bool_)
    uses_atr = atr_candles.shape[0] > 0
    t_atr = np.full((rows, k) if uses_atr else (0, 0), np.nan)
    slot_book = np.zeros(k, dtype=np.int64)  # a point is a strategy run alone: one book of weight 1
    book_weight = np.ones(1)
    for p in range(points):
        capacity = 0
        for j in range(rows):
            for i in range(k):
                e = False
                x = False
                if has_t[j, i]:
                    e = entry_candles[p, i, t_index[j, i]]
                    x = exit_candles[p, i, t_index[j, i]]
                if entry_override[j, i] >= 0:
                    e = entry_override[j, i] == 1
                if exit_override[j, i] >= 0:
                    x = exit_override[j, i] == 1
                entry[j, i] = e
                exit_[j, i] = x
                if e:
                    capacity += 1
                if uses_atr:
                    t_atr[j, i] = atr_candles[p, i, t_index[j, i]] if has_t[j, i] else np.nan
        ints, floats, codes, still_open, _, a_ints, a_floats, _, _, _ = run_boundaries(
            book_rules[p],
            slot_book,
            book_weight,
            account_rules[p],
            cash,
            has_t,
            t_index,
            t_open_time_seconds,
            t_open,
            t_high,
            t_low,
            t_close,
            entry,
            exit_,
            has_next,
            next_index,
            next_time_seconds,
            next_price,
            finer_bounds,
            finer_prices,
            capacity,
            t_atr,
            steps,
            False,
        )
        if closes_at_end:
            close_at_end(
                ints,
                floats,
                codes,
                still_open,
                data_end_seconds,
                last_index,
                last_close,
                last_exit_seconds,
                book_rules[p, 0, RULE_FEE_RATE],
                book_rules[p, 0, RULE_SLIPPAGE_RATIO],
            )
        m = codes.shape[0]
        closed = np.empty(m, dtype=np.bool_)
        cost = np.empty(m)
        proceeds = np.empty(m)
        for r in range(m):
            closed[r] = codes[r] != 0
            quantity = floats[r, FLOAT_QUANTITY]
            cost[r] = floats[r, FLOAT_ENTRY_PRICE] * quantity + floats[r, FLOAT_ENTRY_FEE]
            proceeds[r] = (
                floats[r, FLOAT_EXIT_PRICE] * quantity - floats[r, FLOAT_EXIT_FEE] if closed[r] else 0.0
            )
        equity, exposure = curves_from_trades(
            times,
            closes,
            ints[:, INT_SLOT].copy(),
            ints[:, INT_ENTRY_TIME_SECONDS].copy(),
            cost,
            floats[:, FLOAT_QUANTITY].copy(),
            ints[:, INT_EXIT_TIME_SECONDS].copy(),
            proceeds,
            codes,
            cash,
        )
        # equity_at_ruin(equity, starting_cash=cash, ruin_ratio=RUIN_TOLERANCE_RATIO), its checks included: the
        # ruin is the first value at or below the level after the last one above it (a dip while dust is held
        # that recovers is none); nothing at or below 0 before it; nothing below the rounding of 0 from it on.
        tolerance = ruin_equity  # RUIN_TOLERANCE_RATIO of the starting cash: the level and the rounding of 0
        invalid = False
        after = 0
        for j in range(n):
            if not np.isfinite(equity[j]):
                invalid = True
                break
            if equity[j] > tolerance:
                after = j + 1
        ruin = after if after < n else -1
        if not invalid:
            for j in range(n if ruin < 0 else ruin):
                if equity[j] <= 0.0:
                    invalid = True
                    break
        if not invalid and ruin >= 0:
            for j in range(ruin, n):
                if not equity[j] + tolerance >= 0:
                    invalid = True
                    break
            for j in range(ruin, n):
                equity[j] = 0.0
        if invalid:
            counts[p, _COUNT_INVALID] = 1
            continue
        returns_count = n if ruin < 0 else ruin + 1
        drawdown, longest, mean, std, spread, largest, downside, episodes, episode_sum = _curve_figures(
            equity, cash, returns_count
        )
        curve_figures[p, 0] = drawdown
        curve_figures[p, 1] = longest
        curve_figures[p, 2] = mean
        curve_figures[p, 3] = std
        curve_figures[p, 4] = spread
        curve_figures[p, 5] = largest
        curve_figures[p, 6] = downside
        curve_figures[p, 7] = episodes
        curve_figures[p, 8] = episode_sum
        trade_out[p] = trade_figures(
            closed,
            floats[:, FLOAT_ENTRY_FEE].copy(),
            floats[:, FLOAT_EXIT_FEE].copy(),
            floats[:, FLOAT_PNL].copy(),
            floats[:, FLOAT_PNL_RATIO].copy(),
            ints[:, INT_ENTRY_TIME_SECONDS].copy(),
            ints[:, INT_EXIT_TIME_SECONDS].copy(),
        )
        exposed = 0
        for j in range(n):
            if exposure[j]:
                exposed += 1
        counts[p, _COUNT_RETURNS] = returns_count
        counts[p, _COUNT_EXPOSURE] = exposed
        counts[p, _COUNT_RUIN] = ruin
        final_equity[p] = equity[n - 1]
        if keep_curves:
            curves[p] = equity
        a = a_ints.shape[0]
        resolved = 0
        if a_total + a > amb_size:
            amb_size = max(2 * amb_size, a_total + a)
            grown_ints = np.full((amb_size, AMBIGUOUS_INT_COLUMNS), -1, dtype=np.int64)
            grown_floats = np.full((amb_size, AMBIGUOUS_FLOAT_COLUMNS), np.nan)
            grown_point = np.full(amb_size, -1, dtype=np.int64)
            grown_ints[:a_total] = amb_ints[:a_total]
            grown_floats[:a_total] = amb_floats[:a_total]
            grown_point[:a_total] = amb_point[:a_total]
            amb_ints, amb_floats, amb_point = grown_ints, grown_floats, grown_point
        for r in range(a):
            amb_ints[a_total + r] = a_ints[r]
            amb_floats[a_total + r] = a_floats[r]
            amb_point[a_total + r] = p
            if a_ints[r, AMBIGUOUS_INT_RESOLUTION] != AMBIGUITY_PESSIMISTIC:
                resolved += 1
        a_total += a
        counts[p, _COUNT_AMBIGUOUS] = a
        counts[p, _COUNT_RESOLVED] = resolved
    return (
        curve_figures,
        trade_out,
        counts,
        final_equity,
        curves,
        amb_ints[:a_total],
        amb_floats[:a_total],
        amb_point[:a_total],
    )
