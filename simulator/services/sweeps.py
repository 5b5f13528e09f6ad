"""Sweeps: a grid of criteria values run over the same instruments and days, one statistic per point, its
work fanned out in chunks (:mod:`simulator.launch` sends them).
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from django.db import connection, transaction

from barter_site.heartbeat import Heartbeat
from instruments.models import Timeframe
from simulator.models import RunStatus, Simulation, Sweep, SweepPoint
from simulator.services import simulations
from simulator.services.coverage import Coverage, coverage_compute
from simulator.services.magnifier import ambiguous_rows, finer_candles_load
from simulator.services.requests import SimulationInputError, SimulationRequest
from simulator.services.robustness import points_returns_moments, sweep_robustness_safe
from simulator.services.simulations import simulation_create, simulation_run
from trading.engine.criteria import Criteria, CriteriaError, criteria_parse
from trading.engine.limits import (
    MAX_SWEEP_CONDITION_POINTS,
    MAX_SWEEP_POINTS,
    condition_count,
)
from trading.engine.magnifier import uses_finer_candles
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS_KEYS

logger = logging.getLogger(__name__)

_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def _path_steps(path: str) -> list[str | int]:
    """``entry.all[0].left.period`` -> ``["entry", "all", 0, "left", "period"]``; ValueError when malformed."""
    steps: list[str | int] = []
    for part in path.split("."):
        match = _PATH_PART.fullmatch(part)
        if not match:
            raise ValueError(f"malformed path {path!r}; write it like entry.all[0].left.period")
        steps.append(match.group(1))
        steps.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return steps


def criteria_value_get(document: dict[str, Any], path: str) -> Any:
    """The value at ``path`` (CriteriaError's path syntax) in a criteria document; KeyError/IndexError if absent."""
    node: Any = document
    for step in _path_steps(path):
        node = node[step]
    return node


def criteria_with(document: dict[str, Any], path: str, value: float) -> dict[str, Any]:
    """A copy of ``document`` with ``value`` at ``path`` (an integral value replaces an int as an int).

    Only the objects and lists along ``path`` are copied; the rest is shared with ``document`` (a sweep makes
    10,000 of these: a deep copy each was a third of its time). Neither is changed afterwards: treat both as
    read-only.
    """
    steps = _path_steps(path)
    changed = copy.copy(document)
    node: Any = changed
    for step in steps[:-1]:
        child = copy.copy(node[step])
        node[step] = child
        node = child
    old = node[steps[-1]] if not isinstance(node, dict) or steps[-1] in node else None
    node[steps[-1]] = int(value) if isinstance(old, int) and float(value).is_integer() else value
    return changed


#: The comparisons a constraint may use, each with its negation (what a skipped point's ``skipped`` says).
CONSTRAINT_OPS: dict[str, str] = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}

#: The most constraints a sweep takes.
MAX_CONSTRAINTS = 20

_CONSTRAINT = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([A-Za-z_][A-Za-z0-9_]*|[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$"
)


def constraints_split(text: Any) -> list[str]:
    """The constraints written in a text (one per line or comma-separated) or a list of texts, blanks left out.

    Raises:
        SimulationInputError: ``{"constraints": [...]}`` when ``text`` is neither a string nor a list of strings.
    """
    if text is None:
        return []
    if isinstance(text, str):
        parts = re.split(r"[,\n;]", text)
    elif isinstance(text, list) and all(isinstance(t, str) for t in text):
        parts = [p for t in text for p in re.split(r"[,\n;]", t)]
    else:
        raise SimulationInputError(
            {"constraints": ["must be text such as 'fast < slow' or a list of such texts"]}
        )
    return [p.strip() for p in parts if p.strip()]


def sweep_constraints_check(criteria: Any, constraints: Any) -> list[str]:
    """Check a sweep's constraints between the criteria's parameters and return them normalised.

    Grammar: ``<parameter> <op> <parameter or number>``, op one of ``<``, ``<=``, ``>``, ``>=``
    (``fast < slow``, ``fast >= 5``); several one per line or comma-separated.

    Args:
        criteria: the base criteria document; its ``params`` are the names a constraint may use.
        constraints: text or a list of texts (:func:`constraints_split`).

    Returns:
        ``["fast < slow", ...]``, one space around the operator.

    Raises:
        SimulationInputError: ``{"constraints": [...]}``, one message per bad constraint, naming it.
    """
    texts = constraints_split(constraints)
    params = criteria.get("params") if isinstance(criteria, dict) else None
    names = set(params) if isinstance(params, dict) else set()
    known = (
        ", ".join(sorted(names)) or 'none: declare them in the criteria ("params": {"fast": 10, "slow": 50})'
    )
    errors: list[str] = []
    checked: list[str] = []
    if len(texts) > MAX_CONSTRAINTS:
        raise SimulationInputError(
            {"constraints": [f"at most {MAX_CONSTRAINTS} constraints; was {len(texts)}"]}
        )
    for text in texts:
        match = _CONSTRAINT.match(text)
        if not match:
            errors.append(
                f"{text!r} is not <parameter> <op> <parameter or number>, with op one of <, <=, >, >= "
                "(e.g. fast < slow)"
            )
            continue
        left, op, right = match.groups()
        unknown = [n for n in (left, right) if _is_name(n) and n not in names]
        if unknown:
            errors.append(f"{text!r}: unknown parameter {', '.join(unknown)}; the parameters are {known}")
            continue
        checked.append(f"{left} {op} {right}")
    if errors:
        raise SimulationInputError({"constraints": errors})
    return checked


def _is_name(token: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token))


def sweep_point_skipped(document: dict[str, Any], constraints: Sequence[str]) -> str:
    """Which constraint the criteria of a grid point break, or ``""``.

    Args:
        document: the point's criteria (:func:`sweep_point_criteria`), its ``params`` at the point's values.
        constraints: normalised constraints (:func:`sweep_constraints_check`).

    Returns:
        The first broken constraint, negated: ``"fast >= slow"`` for ``fast < slow`` at fast 50, slow 20.
    """
    params = document.get("params") or {}
    for constraint in constraints:
        left, op, right = constraint.split(" ")
        a = float(params[left])
        b = float(params[right]) if _is_name(right) else float(right)
        holds = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if not holds:
            return f"{left} {CONSTRAINT_OPS[op]} {right}"
    return ""


def sweep_axes_check(
    criteria: dict[str, Any], axes: Any, constraints: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Check sweep axes and return them as ``[{"path", "values"}]``.

    Args:
        criteria: the base criteria document (valid).
        axes: one or two axes, each ``{"path": "entry.all[0].left.period", "start": 5, "stop": 50, "step": 5}``
            (``stop`` included when the steps reach it) or ``{"path": ..., "values": [5, 10, 20]}``; the path
            must name a number in ``criteria``: a field, or a named parameter (``params.fast``, which moves every
            field that refers to it).
        constraints: normalised constraints (:func:`sweep_constraints_check`); the points that break one are
            not checked (they will not run), and a grid where every point breaks one is refused.

    Raises:
        SimulationInputError: ``{"axes": [...]}`` naming each bad axis, or ``{"criteria": [...]}`` when a grid
            point's criteria are invalid (a period of 0, say).
    """
    errors: list[str] = []
    checked: list[dict[str, Any]] = []
    if not isinstance(axes, list) or not 1 <= len(axes) <= 2:
        raise SimulationInputError({"axes": ["give one or two axes"]})
    for n, axis in enumerate(axes):
        where = f"axes[{n}]"
        if not isinstance(axis, dict) or not isinstance(axis.get("path"), str):
            errors.append(f"{where}: must be an object with a path")
            continue
        path = axis["path"]
        try:
            current = criteria_value_get(criteria, path)
        except (KeyError, IndexError, TypeError, ValueError):
            errors.append(f"{where}.path: {path!r} is not a field of the criteria")
            continue
        if isinstance(current, dict) and isinstance(current.get("param"), str):
            errors.append(
                f"{where}.path: {path!r} refers to the parameter {current['param']}; sweep params.{current['param']}"
            )
            continue
        if isinstance(current, bool) or not isinstance(current, int | float):
            errors.append(f"{where}.path: {path!r} is {current!r}, not a number")
            continue
        values = _axis_values(axis, where, errors)
        if values is not None:
            checked.append({"path": path, "values": values})
    if errors:
        raise SimulationInputError({"axes": errors})
    if len({a["path"] for a in checked}) != len(checked):
        raise SimulationInputError({"axes": ["the two axes must sweep different fields"]})
    total = math.prod(len(a["values"]) for a in checked)
    if total > MAX_SWEEP_POINTS:
        raise SimulationInputError({"axes": [f"at most {MAX_SWEEP_POINTS:,} grid points; was {total:,}"]})
    comparisons = max(1, condition_count(criteria))
    if total * comparisons > MAX_SWEEP_CONDITION_POINTS:
        raise SimulationInputError(
            {
                "axes": [
                    f"{total:,} grid points of criteria with {comparisons:,} comparisons are "
                    f"{total * comparisons:,} evaluations; at most {MAX_SWEEP_CONDITION_POINTS:,}: sweep fewer "
                    "values or simplify the criteria"
                ]
            }
        )
    problems: list[str] = []
    runs = 0
    for point in sweep_grid(checked):
        document = sweep_point_criteria(criteria, checked, point)
        if constraints and sweep_point_skipped(document, constraints):
            continue
        runs += 1
        try:
            criteria_parse(document)
        except CriteriaError as exc:
            shown = ", ".join(f"{a['path']}={v:g}" for a, v in zip(checked, point, strict=True))
            problems.append(f"at {shown}: {exc}")
            if len(problems) >= 3:
                break
    if problems:
        raise SimulationInputError({"criteria": problems})
    if not runs:
        raise SimulationInputError(
            {"constraints": [f"every grid point breaks {' or '.join(constraints)}: nothing would run"]}
        )
    return checked


def _axis_values(axis: dict[str, Any], where: str, errors: list[str]) -> list[float] | None:
    if "values" in axis:
        values = axis["values"]
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        ):
            errors.append(f"{where}.values: must be a non-empty list of numbers")
            return None
        return [float(v) for v in values]
    numbers = {key: axis.get(key) for key in ("start", "stop", "step")}
    bad = [k for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        errors.append(f"{where}: {', '.join(bad)} must be numbers (or give values)")
        return None
    start, stop, step = (float(numbers[k]) for k in ("start", "stop", "step"))  # type: ignore[arg-type]
    if step <= 0 or stop < start:
        errors.append(f"{where}: needs step > 0 and stop >= start; was {start:g}..{stop:g} by {step:g}")
        return None
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_SWEEP_POINTS:
        errors.append(f"{where}: {count:,} values; at most {MAX_SWEEP_POINTS:,}")
        return None
    return [round(start + i * step, 12) for i in range(count)]


def sweep_grid(axes: list[dict[str, Any]]) -> list[tuple[float, ...]]:
    """Every combination of the axes' values, row-major (the last axis varies fastest)."""
    return list(itertools.product(*(a["values"] for a in axes)))


def sweep_point_criteria(
    criteria: dict[str, Any], axes: list[dict[str, Any]], values: Sequence[float]
) -> dict[str, Any]:
    """The criteria of one grid point: ``criteria`` with each axis's path set to its value."""
    document = criteria
    for axis, value in zip(axes, values, strict=True):
        document = criteria_with(document, axis["path"], value)
    return document


def sweep_create(
    *,
    request: SimulationRequest,
    axes: Any,
    statistic: str = HEADLINE_STATISTIC,
    created_by: Any = None,
    name: str = "",
    constraints: Any = None,
) -> Sweep:
    """Check the axes and save a pending sweep (start it with :func:`sweep_start`).

    Args:
        constraints: constraints between the criteria's parameters (``"fast < slow"``; text, one per line or
            comma-separated, or a list of texts; :func:`sweep_constraints_check`): grid points that break one are
            saved as skipped, not run.

    Raises:
        SimulationInputError: bad axes (``axes``), bad constraints (``constraints``), a grid point with invalid
            criteria, an unknown ``statistic``, or a ``timeframe`` other than ``1d`` (a sweep runs over daily
            candles only). The form and ``POST /api/sweeps/`` both come here, so they refuse the same sweeps with
            the same messages.
    """
    if statistic not in STATISTICS_KEYS:
        raise SimulationInputError({"statistic": [f"must be one of {', '.join(STATISTICS_KEYS)}"]})
    if request.timeframe != Timeframe.D1:
        raise SimulationInputError(
            {"timeframe": ["a sweep runs over daily candles only; choose 1d, or run once"]}
        )
    rules = sweep_constraints_check(request.criteria, constraints)
    checked = sweep_axes_check(request.criteria, axes, rules)
    with transaction.atomic():
        sweep = Sweep.objects.create(
            name=name[:200],
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
            start=request.start,
            end=request.end,
            starting_cash=request.starting_cash,
            criteria=request.criteria,
            axes=checked,
            constraints=rules,
            statistic=statistic,
            total=len(sweep_grid(checked)),
        )
        sweep.instruments.set(request.instruments)
    return sweep


def sweep_chunks(total: int, workers: int) -> list[tuple[int, int]]:
    """Split ``range(total)`` into about four chunks a worker, each ``(first, stop)``."""
    size = max(1, math.ceil(total / max(1, workers * 4)))
    return [(first, min(first + size, total)) for first in range(0, total, size)]


def sweep_run_in_process(*, sweep_id: int, chunks: Sequence[tuple[int, int]]) -> Sweep:
    """Run every chunk of a sweep in turn in this thread, then finish it (the embedded mode's sweep).

    Each chunk goes through :func:`sweep_chunk_run_guarded`, so an unexpected error fails the sweep with its
    message instead of leaving it running.
    """
    began = time.perf_counter()
    for first, stop in chunks:
        sweep_chunk_run_guarded(sweep_id=sweep_id, first=first, stop=stop)
    return sweep_finish(sweep_id=sweep_id, duration_seconds=time.perf_counter() - began)


def sweep_chunk_run_guarded(*, sweep_id: int, first: int, stop: int) -> int:
    """:func:`sweep_chunk_run`, with the sweep marked ``failed`` (with the error) when it raises anything.

    Returns:
        How many points were new (0 when it failed).
    """
    try:
        return sweep_chunk_run(sweep_id=sweep_id, first=first, stop=stop)
    except Exception as exc:
        logger.exception("sweep %s chunk %s..%s failed", sweep_id, first, stop)
        # The first error is kept (chunks run in parallel); sweep_finish adds how many points are missing.
        Sweep.objects.filter(pk=sweep_id).exclude(status__in=[RunStatus.DONE, RunStatus.FAILED]).update(
            status=RunStatus.FAILED,
            error=f"grid points {first}..{stop - 1} failed: internal error {type(exc).__name__}: {exc}",
        )
        return 0


def sweep_chunk_run(*, sweep_id: int, first: int, stop: int) -> int:
    """Run grid points ``first`` .. ``stop - 1`` of a sweep and save their statistics; return how many were new.

    The candles are read once for the chunk. Points already saved (a retried chunk) are skipped. The sweep is
    ``running`` from its first chunk on, and beats (``heartbeat_at``) while a chunk runs.
    """
    now = datetime.now(tz=UTC)
    Sweep.objects.filter(pk=sweep_id, status=RunStatus.PENDING).update(status=RunStatus.RUNNING)
    Sweep.objects.filter(pk=sweep_id).update(heartbeat_at=now)
    with Heartbeat(
        lambda: Sweep.objects.filter(pk=sweep_id).update(heartbeat_at=datetime.now(tz=UTC)),
        name=f"sweep {sweep_id} chunk {first}..{stop - 1}",
    ):
        return _sweep_chunk_compute(sweep_id=sweep_id, first=first, stop=stop)


def _sweep_chunk_compute(*, sweep_id: int, first: int, stop: int) -> int:
    sweep = Sweep.objects.get(pk=sweep_id)
    done = set(
        SweepPoint.objects.filter(sweep=sweep, index__gte=first, index__lt=stop).values_list(
            "index", flat=True
        )
    )
    todo = [i for i in range(first, stop) if i not in done]
    if not todo:
        return 0
    grid = sweep_grid(sweep.axes)
    instruments = list(sweep.instruments.order_by("symbol", "pk"))
    candles = simulations.candles_load(instruments, sweep.end)
    try:
        # The days with data, as a simulation of one point uses them (issue 13, item 3).
        coverage: Coverage | None = coverage_compute(
            candles=candles,
            names={i.symbol: i.coingecko_id for i in instruments},
            start=sweep.start,
            end=sweep.end,
        )
        refused = ""
    except ValueError as exc:
        coverage, refused = None, f"ValueError: {exc}"
    names = {i.symbol: i.coingecko_id for i in instruments}
    points = []
    runs: list[tuple[SweepPoint, Criteria]] = []
    for index in todo:
        values = grid[index]
        point = SweepPoint(
            sweep=sweep, index=index, values={a["path"]: v for a, v in zip(sweep.axes, values, strict=True)}
        )
        points.append(point)
        document = sweep_point_criteria(sweep.criteria, sweep.axes, values)
        point.skipped = sweep_point_skipped(document, sweep.constraints or [])
        if point.skipped:
            continue
        if coverage is None:
            point.error = refused
            continue
        try:
            runs.append((point, criteria_parse(document)))
        except CriteriaError as exc:
            point.error = f"{type(exc).__name__}: {exc}"
    if runs and coverage is not None:
        # The bar magnifier's finer candles, as a simulation of one point loads them, when a point can use them
        # (58,419 hours of BTC read for nothing by each chunk of a stop-loss-only grid).
        finer = (
            finer_candles_load(instruments, coverage.start, coverage.end)
            if any(uses_finer_candles(parsed) for _, parsed in runs)
            else {}
        )
        try:
            # Every point of the chunk in one call of the engine's sweep kernel; each equals its single run.
            result = simulations.engine_sweep(
                [parsed for _, parsed in runs],
                candles,
                coverage.start,
                coverage.end,
                sweep.starting_cash,
                finer=finer,
                keep_curves=True,
                references=simulations.references_load([parsed for _, parsed in runs], sweep.end),
            )
        except (ValueError, OverflowError) as exc:
            for point, _ in runs:
                point.error = f"{type(exc).__name__}: {exc}"
        else:
            # for the sweep's robustness (simulator.services.robustness), from each point's curve (keep_curves)
            moments = points_returns_moments(cast(np.ndarray, result.equity_curves), sweep.starting_cash)
            for n, (point, _) in enumerate(runs):
                statistics = result.statistics[n]
                if statistics is None:
                    point.error = result.errors[n]
                    continue
                point.statistics = {
                    **statistics,
                    "coverage": coverage.document,
                    "ambiguous": ambiguous_rows(result.ambiguous[n], names),
                    # a sweep runs on daily candles
                    "ruined_at": simulations.ruin_time(result.times, int(result.ruin_index[n]), 86_400),
                }
                point.returns_moments = moments[n]
    return sweep_points_save(points)


def sweep_points_save(points: Sequence[SweepPoint]) -> int:
    """Insert new grid points; a point already saved (a chunk run twice) is left as it is.

    On PostgreSQL the rows go through ``COPY`` into a temporary table, then one ``INSERT ... ON CONFLICT DO
    NOTHING``: 10,000 points in about a third of the time ``bulk_create`` takes (psycopg escapes each JSON text
    of its ``UNNEST`` arrays in Python; ``benchmarks/sweep_api_10000.py``). Elsewhere ``bulk_create`` with
    ``ignore_conflicts``.

    Returns:
        How many points were given.
    """
    if connection.vendor != "postgresql" or not points:
        SweepPoint.objects.bulk_create(points, ignore_conflicts=True)
        return len(points)
    table = SweepPoint._meta.db_table
    columns = "sweep_id, index, values, statistics, error, skipped, returns_moments"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE sweep_point_load AS SELECT {columns} FROM {table} WITH NO DATA"  # noqa: S608 (names from the model)
        )
        with cursor.copy(f"COPY sweep_point_load ({columns}) FROM STDIN") as copy_in:
            for point in points:
                copy_in.write_row(
                    (
                        point.sweep_id,
                        point.index,
                        json.dumps(point.values),
                        json.dumps(point.statistics),
                        point.error,
                        point.skipped,
                        json.dumps(point.returns_moments),
                    )
                )
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM sweep_point_load ON CONFLICT DO NOTHING"  # noqa: S608
        )
        # Dropped here, not at commit: the caller's transaction (a test's, say) may save another chunk first.
        cursor.execute("DROP TABLE sweep_point_load")
    return len(points)


def sweep_finish(*, sweep_id: int, duration_seconds: float | None = None) -> Sweep:
    """Mark a sweep done once all its points are saved (failed when some are missing), then work out its
    robustness (:func:`simulator.services.robustness.sweep_robustness`) and save it: the heatmap is shown first
    (PBO over 10,000 points takes seconds). A sweep already failed (a chunk's error, the reaper) keeps its error,
    with the missing points added."""
    sweep = Sweep.objects.get(pk=sweep_id)
    saved = sweep.points.count()
    missing = (
        "" if saved == sweep.total else f"{sweep.total - saved} of {sweep.total} grid points are missing"
    )
    if sweep.status == RunStatus.FAILED and sweep.error:
        sweep.error = f"{sweep.error}; {missing}" if missing and missing not in sweep.error else sweep.error
    else:
        sweep.status = RunStatus.DONE if not missing else RunStatus.FAILED
        sweep.error = missing
    if duration_seconds is not None:
        sweep.duration_seconds = duration_seconds
    elif sweep.created_at:
        sweep.duration_seconds = (datetime.now(tz=UTC) - sweep.created_at).total_seconds()
    sweep.save(update_fields=["status", "error", "duration_seconds"])
    sweep.robustness = sweep_robustness_safe(sweep=sweep)  # is the best point luck? (issue 15)
    sweep.save(update_fields=["robustness"])
    return sweep


def sweep_point_simulation(*, point: SweepPoint, created_by: Any = None) -> Simulation:
    """The full simulation of a grid point (trades, curves), made and run the first time it is asked for."""
    with transaction.atomic():
        locked = SweepPoint.objects.select_for_update().select_related("sweep").get(pk=point.pk)
        if locked.simulation_id is not None:
            simulation = Simulation.objects.get(pk=locked.simulation_id)
        else:
            sweep = locked.sweep
            request = SimulationRequest(
                instruments=tuple(sweep.instruments.order_by("symbol", "pk")),
                start=sweep.start,
                end=sweep.end,
                starting_cash=sweep.starting_cash,
                criteria=sweep_point_criteria(
                    sweep.criteria, sweep.axes, [locked.values[a["path"]] for a in sweep.axes]
                ),
            )
            shown = ", ".join(f"{path}={value:g}" for path, value in locked.values.items())
            simulation = simulation_create(
                request=request, created_by=created_by, name=f"{sweep} at {shown}", sweep=sweep
            )
            locked.simulation = simulation
            locked.save(update_fields=["simulation"])
    return simulation_run(simulation=simulation)
