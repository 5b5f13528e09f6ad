"""Walk-forward analyses (issue 15): check and save a request, run it through
:func:`trading.engine.walk_forward.walk_forward`, keep its result document.

The grid is a sweep's (its axes, constraints and checks: :mod:`simulator.services.sweeps`); the days are those
with data (:mod:`simulator.services.coverage`), cut into folds by :func:`trading.engine.walk_forward.fold_windows`.
Each fold's train runs and test run are daily runs as a simulation's (trades at the opens, what is open at the
window's last close closed there, ``end_of_data``); docs/walk_forward.md says what the figures mean.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, Min

from barter_site.heartbeat import Heartbeat
from instruments.models import InstrumentOHLC, Timeframe
from simulator.models import RunStatus, WalkForward
from simulator.services import simulations
from simulator.services.coverage import coverage_compute
from simulator.services.magnifier import finer_candles_load
from simulator.services.requests import SimulationInputError, SimulationRequest, day_start
from simulator.services.robustness import LIKELY_REAL_RATIO, verdict
from simulator.services.sweeps import (
    sweep_axes_check,
    sweep_constraints_check,
    sweep_grid,
    sweep_point_criteria,
    sweep_point_skipped,
)
from trading.engine.criteria import CriteriaError, criteria_parse
from trading.engine.limits import MAX_WALK_FORWARD_RUNS
from trading.engine.magnifier import uses_finer_candles
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS_KEYS
from trading.engine.walk_forward import (
    MAX_RADIUS,
    RULES,
    FoldWindow,
    WalkForwardError,
    WalkForwardResult,
    fold_windows,
    parameter_stability,
    walk_forward,
)

logger = logging.getLogger(__name__)


def data_range(request: SimulationRequest) -> tuple[date, date] | None:
    """The first and last day with a daily candle of any of the request's instruments inside ``start`` ..
    ``end`` (one aggregate query), or None when there is none: the days a walk-forward is cut into (as a
    simulation's coverage, :func:`simulator.services.coverage.coverage_compute`)."""
    found = InstrumentOHLC.objects.filter(
        instrument__in=request.instruments,
        timeframe=Timeframe.D1,
        open_time__gte=day_start(request.start),
        open_time__lt=day_start(request.end) + timedelta(days=1),
    ).aggregate(first=Min("open_time"), last=Max("open_time"))
    if found["first"] is None:
        return None
    return found["first"].date(), found["last"].date()


def windows_check(
    *,
    start: date,
    end: date,
    train_days: Any,
    test_days: Any,
    step_days: Any = None,
    anchored: bool = False,
) -> list[FoldWindow]:
    """:func:`trading.engine.walk_forward.fold_windows` with its error as field errors.

    Raises:
        SimulationInputError: ``{"train_days" | "test_days" | "step_days" | "end": [message]}``.
    """
    try:
        return fold_windows(
            start=start,
            end=end,
            train_days=train_days,
            test_days=test_days,
            step_days=step_days,
            anchored=anchored,
        )
    except WalkForwardError as exc:
        raise SimulationInputError({exc.field: [exc.message]}) from exc


def walk_forward_create(
    *,
    request: SimulationRequest,
    axes: Any,
    train_days: Any,
    test_days: Any,
    step_days: Any = None,
    anchored: bool = False,
    statistic: str = HEADLINE_STATISTIC,
    rule: str = "best",
    radius: Any = 1,
    constraints: Any = None,
    created_by: Any = None,
    name: str = "",
) -> WalkForward:
    """Check a walk-forward and save it pending (start it with :func:`simulator.launch.walk_forward_start`).

    Args:
        request: the checked run every point shares (:func:`simulator.services.requests.simulation_request_check`).
        axes, constraints: the grid, as a sweep's (:func:`~simulator.services.sweeps.sweep_axes_check`,
            :func:`~simulator.services.sweeps.sweep_constraints_check`).
        train_days, test_days, step_days, anchored: the windows (:func:`trading.engine.walk_forward.fold_windows`;
            ``step_days`` defaults to ``test_days``).
        statistic, rule, radius: the choice (:func:`trading.engine.walk_forward.choose_point`).

    Raises:
        SimulationInputError: field errors: ``statistic``, ``rule``, ``radius``, ``timeframe`` (daily only),
            ``axes``/``constraints``/``criteria`` (as a sweep), the windows (``train_days``, ``test_days``,
            ``step_days``), or windows longer than the days with data (``train_days``, naming those days); ``start``
            when no instrument has data in the range. The form, the API and the command all come here.
    """
    errors: dict[str, list[str]] = {}
    if statistic not in STATISTICS_KEYS:
        errors["statistic"] = [f"must be one of {', '.join(STATISTICS_KEYS)}"]
    if rule not in RULES:
        errors["rule"] = [f"must be one of {', '.join(RULES)}; was {rule!r}"]
    if isinstance(radius, bool) or not isinstance(radius, int) or not 0 <= radius <= MAX_RADIUS:
        errors["radius"] = [f"must be a whole number 0 .. {MAX_RADIUS}; was {radius!r}"]
    if request.timeframe != Timeframe.D1:
        errors["timeframe"] = ["a walk-forward runs over daily candles only; choose 1d"]
    if errors:
        raise SimulationInputError(errors)
    step = test_days if step_days is None else step_days
    windows_check(
        start=request.start, end=request.end, train_days=train_days, test_days=test_days, step_days=step
    )
    rules = sweep_constraints_check(request.criteria, constraints)
    checked = sweep_axes_check(request.criteria, axes, rules)
    used = data_range(request)
    if used is None:
        raise SimulationInputError({"start": [f"no daily candles between {request.start} and {request.end}"]})
    try:
        folds = fold_windows(
            start=used[0],
            end=used[1],
            train_days=train_days,
            test_days=test_days,
            step_days=step,
            anchored=anchored,
        )
    except WalkForwardError as exc:
        raise SimulationInputError(
            {exc.field: [f"the data covers {used[0]} .. {used[1]} only: {exc.message}"]}
        ) from exc
    points = len(sweep_grid(checked))
    if len(folds) * points > MAX_WALK_FORWARD_RUNS:
        raise SimulationInputError(
            {
                "axes": [
                    f"{len(folds)} folds x {points:,} grid points are {len(folds) * points:,} runs; at most "
                    f"{MAX_WALK_FORWARD_RUNS:,}: sweep fewer values, or make fewer folds (longer test or step days)"
                ]
            }
        )
    with transaction.atomic():
        record = WalkForward.objects.create(
            name=name[:200],
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
            start=request.start,
            end=request.end,
            starting_cash=request.starting_cash,
            criteria=request.criteria,
            axes=checked,
            constraints=rules,
            statistic=statistic,
            rule=rule,
            radius=radius,
            anchored=anchored,
            train_days=train_days,
            test_days=test_days,
            step_days=step,
        )
        record.instruments.set(request.instruments)
    return record


def walk_forward_run(*, walk_forward_id: int) -> WalkForward:
    """Run a saved walk-forward and save its result (status ``done``); any error fails it with the message.

    What the Celery task ``simulator.walk_forward`` and the embedded mode's background thread call. A
    walk-forward already done is returned as it is (a retried task does nothing). It beats (``heartbeat_at``)
    while it runs and stores ``progress_ratio`` (folds done / folds) after each fold.
    """
    record = WalkForward.objects.get(pk=walk_forward_id)
    if record.status == RunStatus.DONE:
        return record
    began = time.perf_counter()
    WalkForward.objects.filter(pk=record.pk).update(
        status=RunStatus.RUNNING, progress_ratio=0.0, heartbeat_at=datetime.now(tz=UTC)
    )
    try:
        with Heartbeat(
            lambda: WalkForward.objects.filter(pk=record.pk).update(heartbeat_at=datetime.now(tz=UTC)),
            name=f"walk-forward {record.pk}",
        ):
            document = _compute(record)
    except Exception as exc:
        logger.exception("walk-forward %s failed", record.pk)
        known = isinstance(exc, WalkForwardError | ValueError | OverflowError | CriteriaError)
        message = f"{exc}" if known else f"internal error {type(exc).__name__}: {exc}"
        WalkForward.objects.filter(pk=record.pk).update(
            status=RunStatus.FAILED,
            error=message,
            progress_ratio=1.0,
            duration_seconds=time.perf_counter() - began,
        )
        return WalkForward.objects.get(pk=record.pk)
    WalkForward.objects.filter(pk=record.pk).update(
        status=RunStatus.DONE,
        error="",
        result=document,
        progress_ratio=1.0,
        duration_seconds=time.perf_counter() - began,
    )
    return WalkForward.objects.get(pk=record.pk)


def _compute(record: WalkForward) -> dict[str, Any]:
    instruments = list(record.instruments.order_by("symbol", "pk"))
    names = {i.symbol: i.coingecko_id for i in instruments}
    candles = simulations.candles_load(instruments, record.end)
    coverage = coverage_compute(candles=candles, names=names, start=record.start, end=record.end)
    windows = fold_windows(
        start=coverage.start,
        end=coverage.end,
        train_days=record.train_days,
        test_days=record.test_days,
        step_days=record.step_days,
        anchored=record.anchored,
    )
    grid = sweep_grid(record.axes)
    points = []
    for values in grid:
        document = sweep_point_criteria(record.criteria, record.axes, values)
        skipped = bool(record.constraints) and bool(sweep_point_skipped(document, record.constraints))
        points.append(None if skipped else criteria_parse(document))
    finer = (
        finer_candles_load(instruments, coverage.start, coverage.end)
        if any(p is not None and uses_finer_candles(p) for p in points)
        else {}
    )

    def progress(done: int, total: int) -> None:
        WalkForward.objects.filter(pk=record.pk).update(
            progress_ratio=done / total, heartbeat_at=datetime.now(tz=UTC)
        )

    result = walk_forward(
        points=points,
        shape=[len(a["values"]) for a in record.axes],
        instruments=candles,
        windows=windows,
        statistic=record.statistic,
        rule=record.rule,
        radius=record.radius,
        starting_cash=float(record.starting_cash),
        finer=finer,
        progress=progress,
        references=simulations.references_load([p for p in points if p is not None], record.end),
    )
    return result_document(
        result,
        axes=record.axes,
        grid=grid,
        statistic=record.statistic,
        starting_cash=float(record.starting_cash),
        coverage=coverage.document,
        trials=sum(p is not None for p in points),
    )


def result_document(
    result: WalkForwardResult,
    *,
    axes: list[dict[str, Any]],
    grid: list[tuple[float, ...]],
    statistic: str,
    starting_cash: float,
    coverage: dict[str, Any],
    trials: int,
) -> dict[str, Any]:
    """The JSON a :class:`~simulator.models.WalkForward` keeps.

    Returns:
        ``{"folds": [{"index", "train": {"start", "end"}, "test": {"start", "end"}, "chosen": {path: value},
        "chosen_index", "score", "in_sample_statistic", "in_sample_values" (the statistic of every grid point on the
        train window, row-major, null where none), "in_sample_sharpe_ratios" (likewise the Sharpe ratios: the
        trials of a deflated Sharpe ratio), "in_sample_statistics", "in_sample_failed",
        "out_of_sample_statistics", "starting_cash", "final_equity", "efficiency"}], "curve": {"time", "equity",
        "buy_and_hold", "drawdown_ratio"} (the stitched out-of-sample account, as a simulation's curve),
        "statistics": {"out_of_sample", "in_sample"}, "efficiency", "stability": [per axis], "trials" (grid
        points run in each fold), "coverage", "deflated_sharpe"}``; days ISO dates, ratios fractions, amounts
        floats in the quote currency. Each fold has ``deflated_sharpe_ratio``: the deflated Sharpe ratio of its
        choice among the points run on its train window (:func:`trading.engine.walk_forward.
        _choice_deflated_sharpe`; null when undefined); ``deflated_sharpe`` is ``{"folds", "median", "verdict",
        "sentence"}`` over them (null when no fold has one).
    """
    folds = []
    for fold in result.folds:
        w = fold.window
        test = fold.out_of_sample
        folds.append(
            {
                "index": w.index,
                "train": {"start": w.train_start.isoformat(), "end": w.train_end.isoformat()},
                "test": {"start": w.test_start.isoformat(), "end": w.test_end.isoformat()},
                "chosen": {a["path"]: v for a, v in zip(axes, grid[fold.chosen_index], strict=True)},
                "chosen_index": fold.chosen_index,
                "score": fold.score,
                "in_sample_statistic": fold.in_sample_values[fold.chosen_index],
                "in_sample_values": fold.in_sample_values,
                "in_sample_sharpe_ratios": fold.in_sample_sharpe_ratios,
                "in_sample_statistics": fold.in_sample_statistics,
                "in_sample_failed": len(fold.in_sample_errors),
                "out_of_sample_statistics": test.statistics,
                "starting_cash": fold.starting_cash,
                "final_equity": float(test.equity_curve[-1])
                if test.equity_curve.size
                else fold.starting_cash,
                "efficiency": fold.efficiency,
                "deflated_sharpe_ratio": fold.deflated_sharpe,
            }
        )
    # The stitched curves in a BacktestResult (the last fold's, its curves replaced): the simulation's curve
    # document (downsampled past MAX_CURVE_POINTS, with the drawdown) is made of them alone.
    stitched = dataclasses.replace(
        result.folds[-1].out_of_sample,
        times=result.times,
        equity_curve=result.equity_curve,
        buy_and_hold_curve=result.buy_and_hold_curve,
    )
    return {
        "statistic": statistic,
        "folds": folds,
        "curve": simulations.equity_curve_as_json(stitched, starting_cash),
        "statistics": {"out_of_sample": result.statistics, "in_sample": result.in_sample_statistics},
        "efficiency": result.efficiency,
        "stability": parameter_stability(
            [(a["path"], a["values"]) for a in axes], [f.chosen_index for f in result.folds]
        ),
        "trials": trials,
        "coverage": coverage,
        "deflated_sharpe": _deflated_sharpe_summary([f.deflated_sharpe for f in result.folds], trials),
    }


def _deflated_sharpe_summary(per_fold: list[float | None], trials: int) -> dict[str, Any] | None:
    """The deflated Sharpe ratios of the folds' choices in one line: their median and its verdict
    (:func:`simulator.services.robustness.verdict`, the sweep page's thresholds); None when no fold has one."""
    known = sorted(v for v in per_fold if v is not None)
    if not known:
        return None
    median = float(statistics.median(known))
    said = verdict(median)
    real = sum(v >= LIKELY_REAL_RATIO for v in known)
    return {
        "folds": per_fold,
        "median": median,
        "verdict": said,
        "sentence": (
            f"Each fold chose the best of {trials:,} trials: median deflated Sharpe ratio {median:.2f} over "
            f"{len(known)} fold{'s' if len(known) != 1 else ''} ({real} likely real): {said}."
        ),
    }
