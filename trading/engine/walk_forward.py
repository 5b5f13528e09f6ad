"""Walk-forward analysis: a sweep's grid chosen on each train window, then run on the test window that follows.

The days ``start`` .. ``end`` are cut into folds (:func:`fold_windows`). In each fold the grid is backtested over
the train window only: the candles are cut at the train window's last candle, so nothing after it can reach the
choice (not even through an indicator). One point is chosen by a named rule (:func:`choose_point`) and run on the
test window with every candle up to the test window's end, so its indicators are warmed on all earlier data.

**Stitching.** The test windows follow one another; each starts with the previous fold's final equity (the first
with ``starting_cash``), so the stitched out-of-sample curve is one account traded fold after fold, each fold's
positions closed at its test window's last close (``end_of_data``). Its statistics are
:func:`trading.engine.statistics.backtest_statistics` of that curve (its buy and hold the same way: bought again
at each test window's first open with what the previous window's buy and hold ended with). With ``step_days``
above ``test_days`` the days between two test windows are in no fold: the curve goes from one window to the next.

**Walk-forward efficiency** (WFE, Pardo, *The Evaluation and Optimization of Trading Strategies*, 2008, ch. 11):
the annualised out-of-sample return over the annualised in-sample return. Annualised returns are the CAGR of
the statistics (``cagr_ratio``, 365-day years). Per fold: the test run's CAGR over the chosen point's CAGR on the
train window. Overall: the stitched curve's CAGR over the mean of the folds' in-sample CAGRs. It is None when
the in-sample CAGR is undefined or not above 0: a ratio to a loss (or to nothing) reads backwards, so no number
is given rather than a misleading one.

Pure (numpy and the engine), no Django: the simulator's :mod:`simulator.services.walk_forwards` maps dates and
models onto it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast

import numpy as np

from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import Criteria
from trading.engine.overfitting import deflated_sharpe_ratio, returns_moments
from trading.engine.statistics import SECONDS_PER_YEAR, backtest_statistics
from trading.engine.sweep import SweepStatistics, sweep_statistics
from trading.engine.types import SECONDS_PER_DAY, CandleArrays, Trade
from trading.engine.vocabulary import STATISTIC_BY_KEY, STATISTICS_KEYS

#: The choice rules (:func:`choose_point`).
RULES: tuple[str, ...] = ("best", "plateau")
Rule = Literal["best", "plateau"]

#: The largest plateau radius (grid steps on each side).
MAX_RADIUS = 10

#: The most folds a walk-forward makes.
MAX_FOLDS = 200


class WalkForwardError(ValueError):
    """Settings that cannot make a walk-forward; ``field`` names the setting to change (``train_days``...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class FoldWindow:
    """The days of one fold, UTC, each range inclusive: train ``train_start`` .. ``train_end``, then test
    ``test_start`` (the day after ``train_end``) .. ``test_end``."""

    index: int
    train_start: date
    train_end: date
    test_start: date
    test_end: date

    @property
    def train_days(self) -> int:
        """Days in the train window."""
        return (self.train_end - self.train_start).days + 1

    @property
    def test_days(self) -> int:
        """Days in the test window."""
        return (self.test_end - self.test_start).days + 1


def fold_windows(
    *,
    start: date,
    end: date,
    train_days: int,
    test_days: int,
    step_days: int | None = None,
    anchored: bool = False,
) -> list[FoldWindow]:
    """The folds over the days ``start`` .. ``end`` (inclusive).

    Fold ``k`` (from 0) tests the ``test_days`` days from ``start + train_days + k * step_days``; its train window
    is the ``train_days`` days before them (rolling), or every day from ``start`` before them (anchored: the
    train window grows by ``step_days`` a fold). Only whole test windows are made: the days after the last one
    that fits are in no fold.

    Args:
        start, end: the range, UTC days, inclusive.
        train_days: days of the (first) train window, >= 1.
        test_days: days of each test window, >= 1.
        step_days: days between the starts of two test windows, >= ``test_days`` (test windows may not overlap:
            they are stitched into one account); default ``test_days``.
        anchored: train windows start at ``start`` and grow (True), or keep ``train_days`` and roll (False).

    Returns:
        The folds in time order, at least one, at most :data:`MAX_FOLDS`.

    Raises:
        WalkForwardError: a length that is not a whole number of days >= 1, a step shorter than the test window,
            a range too short for one fold (the message says how many days it has and needs), or too many folds.
    """
    for name, value in (("train_days", train_days), ("test_days", test_days)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise WalkForwardError(name, f"must be a whole number of days >= 1; was {value!r}")
    step = test_days if step_days is None else step_days
    if isinstance(step, bool) or not isinstance(step, int) or step < test_days:
        raise WalkForwardError(
            "step_days",
            f"must be a whole number of days >= test_days ({test_days}), so that test windows do not overlap; "
            f"was {step!r}",
        )
    if end < start:
        raise WalkForwardError("end", f"must not be before start ({start}); was {end}")
    total = (end - start).days + 1
    if train_days + test_days > total:
        raise WalkForwardError(
            "train_days",
            f"train_days + test_days = {train_days + test_days} days, but {start} .. {end} has {total}: "
            "shorten the windows or widen the range",
        )
    count = (total - train_days - test_days) // step + 1
    if count > MAX_FOLDS:
        raise WalkForwardError(
            "step_days", f"{count} folds; at most {MAX_FOLDS}: lengthen test_days or step_days"
        )
    folds = []
    for k in range(count):
        test_start = start + timedelta(days=train_days + k * step)
        train_start = start if anchored else test_start - timedelta(days=train_days)
        folds.append(
            FoldWindow(
                index=k,
                train_start=train_start,
                train_end=test_start - timedelta(days=1),
                test_start=test_start,
                test_end=test_start + timedelta(days=test_days - 1),
            )
        )
    return folds


def neighbourhood_means(
    values: Sequence[float | None], *, shape: Sequence[int], radius: int
) -> list[float | None]:
    """The mean of each grid point's neighbourhood: the points within ``radius`` grid steps of it on every axis
    (a box of up to ``(2 * radius + 1) ** len(shape)`` points, clipped at the grid's edges), itself included,
    those without a value (skipped, failed, or with an undefined statistic) left out.

    Args:
        values: one per grid point, row-major over the axes (the last varies fastest); None where there is none.
        shape: the number of values of each axis; ``prod(shape) == len(values)``.
        radius: grid steps on each side, >= 0 (0: each point's own value).

    Returns:
        One mean per grid point, None where the point itself has no value (it is never a plateau's centre) or
        its neighbourhood has none.
    """
    grid = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64).reshape(
        tuple(shape)
    )
    means: list[float | None] = []
    for index, own in zip(itertools.product(*(range(n) for n in shape)), values, strict=True):
        if own is None:
            means.append(None)
            continue
        box = grid[tuple(slice(max(0, i - radius), i + radius + 1) for i in index)]
        finite = box[np.isfinite(box)]
        means.append(float(finite.mean()) if finite.size else None)
    return means


def choose_point(
    values: Sequence[float | None],
    *,
    shape: Sequence[int],
    rule: str,
    radius: int = 1,
    higher_is_better: bool = True,
    ran: Sequence[bool] | None = None,
) -> tuple[int, float | None]:
    """The grid point a fold trades, by ``rule``.

    - ``best``: the point with the best value of the statistic.
    - ``plateau``: the point whose neighbourhood mean (:func:`neighbourhood_means`) is best: a point among good
      neighbours (a plateau) rather than a lone spike whose neighbours are poor.

    "Best" is the highest, or the lowest for a statistic where less is better (``higher_is_better``). Ties go to
    the first point in grid order. A point whose statistic is undefined (None: no trades, say) is never chosen
    while another has a value; when none has one, the first point that ran is chosen (its score None).

    Args:
        values: the statistic of each grid point, row-major; None where undefined, skipped or failed.
        shape: the number of values of each axis.
        rule: ``best`` or ``plateau``.
        radius: the plateau's grid steps on each side (``plateau`` only).
        higher_is_better: the statistic's direction.
        ran: which points ran (False for skipped and failed ones); default: all.

    Returns:
        ``(index, score)``: the chosen point's index in ``values`` and its score (its value, or its neighbourhood
        mean), None when no point has a value.

    Raises:
        WalkForwardError: an unknown rule, a bad radius, or no point that ran.
    """
    if rule not in RULES:
        raise WalkForwardError("rule", f"must be one of {', '.join(RULES)}; was {rule!r}")
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_RADIUS:
        raise WalkForwardError("radius", f"must be a whole number 0 .. {MAX_RADIUS}; was {radius!r}")
    did_run = [True] * len(values) if ran is None else list(ran)
    cleaned = [
        float(v) if ok and v is not None and math.isfinite(float(v)) else None
        for v, ok in zip(values, did_run, strict=True)
    ]
    scores = cleaned if rule == "best" else neighbourhood_means(cleaned, shape=shape, radius=radius)
    sign = 1.0 if higher_is_better else -1.0
    best: int | None = None
    for i, score in enumerate(scores):
        if score is not None and (best is None or sign * score > sign * scores[best]):  # type: ignore[operator]
            best = i
    if best is not None:
        return best, scores[best]
    for i, ok in enumerate(did_run):
        if ok:
            return i, None
    raise WalkForwardError("axes", "no grid point ran in this train window")


def walk_forward_efficiency(out_of_sample_cagr: float | None, in_sample_cagr: float | None) -> float | None:
    """Annualised out-of-sample return / annualised in-sample return (fractions); None when the in-sample one is
    None or not above 0, or the out-of-sample one is None (see the module's docstring)."""
    if out_of_sample_cagr is None or in_sample_cagr is None or not in_sample_cagr > 0:
        return None
    ratio = out_of_sample_cagr / in_sample_cagr
    return ratio if math.isfinite(ratio) else None


@dataclass
class FoldResult:
    """One fold's outcome.

    Attributes:
        window: its days.
        chosen_index: the chosen grid point (row-major index).
        score: the chosen point's score under the rule (its statistic, or its neighbourhood mean), None when no
            point had a value.
        in_sample_values: the statistic of every grid point on the train window; None where undefined, skipped
            or failed.
        in_sample_errors: index -> the error of each point that failed on the train window.
        in_sample_sharpe_ratios: every grid point's Sharpe ratio on the train window (None where undefined,
            skipped or failed): the trials a deflated Sharpe ratio of the choice needs, whatever the statistic.
        in_sample_statistics: every statistic of the chosen point on the train window.
        out_of_sample: the chosen point's run over the test window.
        starting_cash: the test run's starting equity (the previous fold's final equity), quote currency.
        efficiency: the fold's walk-forward efficiency (:func:`walk_forward_efficiency`), or None.
        deflated_sharpe: the deflated Sharpe ratio of the choice among the points run on the train window
            (:func:`_choice_deflated_sharpe`: the probability that the chosen point's true Sharpe ratio is above
            0), or None.
    """

    window: FoldWindow
    chosen_index: int
    score: float | None
    in_sample_values: list[float | None]
    in_sample_errors: dict[int, str]
    in_sample_sharpe_ratios: list[float | None]
    in_sample_statistics: dict[str, Any]
    out_of_sample: BacktestResult
    starting_cash: float
    efficiency: float | None
    deflated_sharpe: float | None = None


@dataclass
class WalkForwardResult:
    """A walk-forward's outcome.

    Attributes:
        folds: each fold's outcome, in time order.
        times: shape (n,), int64, seconds: the open of each candle of the stitched test windows.
        equity_curve: shape (n,), float64, quote currency: the stitched out-of-sample account at each close.
        buy_and_hold_curve: shape (n,), float64: buy and hold over the same candles, chained the same way.
        statistics: :func:`~trading.engine.statistics.backtest_statistics` of the stitched curve.
        in_sample_statistics: each statistic's mean over the folds of the chosen point's train-window statistics
            (None where no fold has it).
        efficiency: the overall walk-forward efficiency, or None.
    """

    folds: list[FoldResult]
    times: np.ndarray
    equity_curve: np.ndarray
    buy_and_hold_curve: np.ndarray
    statistics: dict[str, Any]
    in_sample_statistics: dict[str, Any]
    efficiency: float | None
    trades: list[Trade] = field(default_factory=list)


def day_seconds(day: date) -> int:
    """Seconds since 1970-01-01 UTC of ``day`` 00:00 UTC."""
    return int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp())


def candles_until(candles: CandleArrays, until_seconds: int) -> CandleArrays:
    """The candles of ``candles`` that open before ``until_seconds`` (views, not copies)."""
    stop = int(np.searchsorted(candles.open_time_seconds, until_seconds, side="left"))
    return CandleArrays(
        symbol=candles.symbol,
        open_time_seconds=candles.open_time_seconds[:stop],
        open=candles.open[:stop],
        high=candles.high[:stop],
        low=candles.low[:stop],
        close=candles.close[:stop],
        volume=candles.volume[:stop],
    )


def _window_arguments(
    instruments: Sequence[CandleArrays],
    finer: Mapping[str, CandleArrays] | None,
    first: date,
    last: date,
    starting_cash: float,
    candle_seconds: int,
    references: Mapping[str, CandleArrays] | None = None,
) -> dict[str, Any]:
    """The run arguments of the days ``first`` .. ``last`` with only the candles that open before ``last`` ends."""
    until = day_seconds(last) + SECONDS_PER_DAY
    return {
        "instruments": [candles_until(c, until) for c in instruments],
        "start_time_seconds": day_seconds(first),
        "end_time_seconds": until - candle_seconds,
        "starting_cash": starting_cash,
        "candle_seconds": candle_seconds,
        "close_at_end": True,
        "finer": None if finer is None else {s: candles_until(c, until) for s, c in finer.items()},
        "references": None
        if references is None
        else {i: candles_until(c, until) for i, c in references.items()},
    }


def _train_runs(criteria: Sequence[Criteria], arguments: dict[str, Any]) -> SweepStatistics | str:
    """Every grid point over a train window through the sweep kernel (its statistics and curves), or the error
    text when the window itself is refused."""
    try:
        return sweep_statistics(criteria=criteria, keep_curves=True, **arguments)
    except (ValueError, OverflowError) as exc:
        return f"{type(exc).__name__}: {exc}"


def _choice_deflated_sharpe(
    curve: np.ndarray, sharpe_ratios: Sequence[float | None], starting_cash: float, candle_seconds: int
) -> float | None:
    """The deflated Sharpe ratio (:func:`trading.engine.overfitting.deflated_sharpe_ratio`) of the point chosen on
    a train window, among the trials that ran there: its curve's per-candle returns (their moments), and the
    trials' Sharpe ratios (annualised, as reported; None where undefined, counted as 0 as a sweep counts them).
    None when fewer than 2 trials ran or the chosen point has no Sharpe ratio."""
    if len(sharpe_ratios) < 2:
        return None
    moments = returns_moments(curve, starting_cash=starting_cash)
    if moments.sharpe_ratio is None or moments.skewness is None or moments.kurtosis is None:
        return None
    per_candle = math.sqrt(SECONDS_PER_YEAR / candle_seconds)
    trials = np.array([(s or 0.0) / per_candle for s in sharpe_ratios], dtype=np.float64)
    try:
        return deflated_sharpe_ratio(
            moments.sharpe_ratio,
            moments.count,
            moments.skewness,
            moments.kurtosis,
            len(sharpe_ratios),
            float(np.var(trials, ddof=1)),
        )
    except ValueError:
        return None


def walk_forward(
    *,
    points: Sequence[Criteria | None],
    shape: Sequence[int],
    instruments: Sequence[CandleArrays],
    windows: Sequence[FoldWindow],
    statistic: str,
    rule: str,
    radius: int = 1,
    starting_cash: float,
    candle_seconds: int = SECONDS_PER_DAY,
    finer: Mapping[str, CandleArrays] | None = None,
    progress: Callable[[int, int], object] | None = None,
    references: Mapping[str, CandleArrays] | None = None,
) -> WalkForwardResult:
    """Run a walk-forward (see the module's docstring).

    Args:
        points: each grid point's parsed criteria, row-major over the axes; None for a point that is not run (it
            breaks a constraint).
        shape: the number of values of each axis; ``prod(shape) == len(points)``.
        instruments: every candle of each instrument up to the last test window's end at least (those before the
            first train window warm the indicators).
        windows: the folds (:func:`fold_windows`), in time order, test windows not overlapping.
        statistic: the key of the statistic the rule ranks (:data:`~trading.engine.vocabulary.STATISTICS_KEYS`).
        rule, radius: see :func:`choose_point`.
        starting_cash: the account at the first test window's open (and each train run's), quote currency, > 0.
        candle_seconds: the candles' length (daily: 86,400).
        finer: finer candles by symbol for the ambiguous candles (as :func:`~trading.engine.backtest.backtest`).
        progress: called ``(folds done, folds)`` after each fold.
        references: the other instruments' candles the operands name (as :func:`~trading.engine.backtest.backtest`),
            cut at each window's end as ``instruments`` are.

    Returns:
        :class:`WalkForwardResult`.

    Raises:
        WalkForwardError: an unknown statistic or rule, a bad radius, a grid whose shape does not match, no
            window, or a fold in which no point ran or whose chosen point the engine refused on its test window.
    """
    if statistic not in STATISTICS_KEYS:
        raise WalkForwardError("statistic", f"must be one of {', '.join(STATISTICS_KEYS)}; was {statistic!r}")
    if rule not in RULES:
        raise WalkForwardError("rule", f"must be one of {', '.join(RULES)}; was {rule!r}")
    if math.prod(shape) != len(points):
        raise WalkForwardError(
            "axes", f"a grid of shape {tuple(shape)} has {math.prod(shape)} points, not {len(points)}"
        )
    if not windows:
        raise WalkForwardError("train_days", "no fold")
    higher = STATISTIC_BY_KEY[statistic].higher_is_better
    runnable = [i for i, p in enumerate(points) if p is not None]
    folds: list[FoldResult] = []
    cash = float(starting_cash)
    for done, window in enumerate(windows):
        train_arguments = _window_arguments(
            instruments,
            finer,
            window.train_start,
            window.train_end,
            float(starting_cash),
            candle_seconds,
            references,
        )
        train = _train_runs([points[i] for i in runnable], train_arguments)  # type: ignore[misc]
        values: list[float | None] = [None] * len(points)
        sharpe: list[float | None] = [None] * len(points)
        ran = [False] * len(points)
        errors: dict[int, str] = {}
        by_index: dict[int, int] = {}  # grid index -> row of the train runs
        for row, i in enumerate(runnable):
            statistics = None if isinstance(train, str) else train.statistics[row]
            if statistics is None:
                errors[i] = train if isinstance(train, str) else train.errors[row]
                continue
            ran[i] = True
            by_index[i] = row
            values[i] = _finite(statistics.get(statistic))
            sharpe[i] = _finite(statistics.get("sharpe_ratio"))
        try:
            chosen, score = choose_point(
                values, shape=shape, rule=rule, radius=radius, higher_is_better=higher, ran=ran
            )
        except WalkForwardError as exc:
            raise WalkForwardError(
                exc.field,
                f"fold {window.index + 1} ({window.train_start} .. {window.train_end}): {exc.message}",
            ) from exc
        try:
            test = backtest(
                criteria=points[chosen],  # type: ignore[arg-type]
                **_window_arguments(
                    instruments, finer, window.test_start, window.test_end, cash, candle_seconds, references
                ),
            )
        except (ValueError, OverflowError) as exc:
            raise WalkForwardError(
                "axes",
                f"fold {window.index + 1}: the chosen point failed on {window.test_start} .. {window.test_end}: "
                f"{type(exc).__name__}: {exc}",
            ) from exc
        ran_train = cast(SweepStatistics, train)  # a point was chosen: the train window ran
        chosen_row = by_index[chosen]
        in_sample = dict(ran_train.statistics[chosen_row] or {})
        curves = cast(np.ndarray, ran_train.equity_curves)
        deflated = _choice_deflated_sharpe(
            curves[chosen_row],
            [sharpe[i] for i in runnable if ran[i]],
            float(starting_cash),
            candle_seconds,
        )
        folds.append(
            FoldResult(
                window=window,
                chosen_index=chosen,
                score=score,
                in_sample_values=values,
                in_sample_errors=errors,
                in_sample_sharpe_ratios=sharpe,
                in_sample_statistics=in_sample,
                out_of_sample=test,
                starting_cash=cash,
                efficiency=walk_forward_efficiency(
                    test.statistics.get("cagr_ratio"), in_sample.get("cagr_ratio")
                ),
                deflated_sharpe=deflated,
            )
        )
        cash = float(test.equity_curve[-1]) if test.equity_curve.size else cash
        if progress is not None:
            progress(done + 1, len(windows))
    return _stitched(folds, float(starting_cash), candle_seconds)


def _finite(value: Any) -> float | None:
    """A statistic's value as a float, or None when it is undefined (None, NaN, an infinity)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _stitched(folds: list[FoldResult], starting_cash: float, candle_seconds: int) -> WalkForwardResult:
    times = np.concatenate([f.out_of_sample.times for f in folds]).astype(np.int64)
    equity = np.concatenate([f.out_of_sample.equity_curve for f in folds])
    exposure = np.concatenate([f.out_of_sample.exposure for f in folds])
    held = starting_cash
    hold_parts = []
    for fold in folds:
        curve = fold.out_of_sample.buy_and_hold_curve * (held / fold.starting_cash)
        hold_parts.append(curve)
        if curve.size:
            held = float(curve[-1])
    hold = np.concatenate(hold_parts)
    trades = [t for f in folds for t in f.out_of_sample.trades]
    statistics = backtest_statistics(
        equity_curve=equity,
        buy_and_hold_curve=hold,
        exposure=exposure,
        trades=trades,
        candle_seconds=candle_seconds,
        starting_cash=starting_cash,
        ambiguous_candles=sum(int(f.out_of_sample.statistics.get("ambiguous_candles") or 0) for f in folds),
        ambiguous_resolved=sum(int(f.out_of_sample.statistics.get("ambiguous_resolved") or 0) for f in folds),
    )
    in_sample = mean_statistics([f.in_sample_statistics for f in folds])
    return WalkForwardResult(
        folds=folds,
        times=times,
        equity_curve=equity,
        buy_and_hold_curve=hold,
        statistics=statistics,
        in_sample_statistics=in_sample,
        efficiency=walk_forward_efficiency(statistics.get("cagr_ratio"), in_sample.get("cagr_ratio")),
        trades=trades,
    )


def mean_statistics(rows: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Each statistic's mean over ``rows`` (dicts of :data:`STATISTICS_KEYS`), None values left out; None where
    no row has a finite value."""
    means: dict[str, float | None] = {}
    for key in STATISTICS_KEYS:
        found = [
            float(r[key])
            for r in rows
            if isinstance(r.get(key), int | float)
            and not isinstance(r.get(key), bool)
            and math.isfinite(r[key])
        ]
        means[key] = sum(found) / len(found) if found else None
    return means


def parameter_stability(
    axes: Sequence[tuple[str, Sequence[float]]], chosen: Sequence[int]
) -> list[dict[str, Any]]:
    """How steady each axis's chosen value was from fold to fold.

    Args:
        axes: ``(path, values)`` of each axis, in grid order.
        chosen: each fold's chosen row-major index.

    Returns:
        One dict per axis: ``path``, ``values`` (the chosen value of each fold), ``distinct`` (how many
        different values), ``changes`` (folds whose value differs from the previous fold's), ``min``, ``max``,
        ``mean``, ``std`` (population standard deviation), and ``range_ratio`` ((max - min) over the axis's own
        span, 0 when the axis has one value: 0 is perfectly stable, 1 the choice crossed the whole axis).
    """
    shape = [len(v) for _, v in axes]
    coordinates = [np.unravel_index(i, shape) for i in chosen] if shape else []
    rows = []
    for n, (path, axis_values) in enumerate(axes):
        picked = [float(axis_values[int(c[n])]) for c in coordinates]
        span = max(axis_values) - min(axis_values) if axis_values else 0.0
        array = np.array(picked, dtype=np.float64)
        rows.append(
            {
                "path": path,
                "values": picked,
                "distinct": len(set(picked)),
                "changes": sum(1 for a, b in itertools.pairwise(picked) if a != b),
                "min": float(array.min()) if array.size else None,
                "max": float(array.max()) if array.size else None,
                "mean": float(array.mean()) if array.size else None,
                "std": float(array.std()) if array.size else None,
                "range_ratio": float((array.max() - array.min()) / span) if array.size and span > 0 else 0.0,
            }
        )
    return rows
