"""What a sweep's pages and API show besides the heatmap (:func:`simulator.presenters.sweep_heatmap`): the list
of sweeps with their best value, the table of the best grid points by a chosen statistic, and the grid as JSON.

Every grid point keeps all the statistics of the report (:class:`simulator.models.SweepPoint`), so any of them
can be shown, ranked or coloured without running the sweep again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.display import (
    DASH,
    lower_is_better,
    quote_currency,
    statistic_class,
    statistic_label,
    statistic_text,
)
from simulator.models import RunStatus, Sweep, SweepPoint
from simulator.presenters import Cell, axis_value_text, point_has_no_trades
from trading.engine.vocabulary import STATISTICS_KEYS

#: How many grid points the table of best points shows.
TOP_POINTS = 20

#: The statistics the table of best points shows beside the chosen one (in this order, the chosen one first).
TOP_POINT_STATISTICS = (
    "total_return_ratio",
    "cagr_ratio",
    "sharpe_ratio",
    "max_drawdown_ratio",
    "win_rate_ratio",
    "profit_factor",
    "n_trades",
)


def statistic_value(point: SweepPoint, key: str) -> float | None:
    """A grid point's ``key`` as a finite float, or None: an error, no trade, or undefined (a Sharpe ratio
    without returns)."""
    if point.error or point_has_no_trades(point):
        return None
    value = point.statistics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def points_ranked(points: Iterable[SweepPoint], key: str) -> list[SweepPoint]:
    """The points that have a value of ``key``, best first (highest, or lowest where less is better; the lower
    grid index first on a tie)."""
    valued = [(value, p) for p in points if (value := statistic_value(p, key)) is not None]
    sign = 1.0 if lower_is_better(key) else -1.0
    valued.sort(key=lambda pair: (sign * pair[0], pair[1].index))
    return [p for _, p in valued]


@dataclass(frozen=True)
class TopPoint:
    """A line of the table of best grid points: its rank, grid index, each parameter's value as text (in axis
    order), and the statistics' cells (:func:`top_point_columns` order)."""

    rank: int
    index: int
    parameters: list[Cell]
    cells: list[Cell]
    simulation_id: int | None


def top_point_columns(key: str) -> list[tuple[str, str]]:
    """The statistics columns of the table of best points: ``(key, label)``, the chosen statistic first."""
    keys = [key, *(k for k in TOP_POINT_STATISTICS if k != key)]
    return [(k, statistic_label(k)) for k in keys]


def top_points(
    sweep: Sweep, points: Sequence[SweepPoint], key: str, limit: int = TOP_POINTS
) -> list[TopPoint]:
    """The ``limit`` best grid points by ``key`` (:func:`points_ranked`), with their parameters and key
    statistics as sortable cells."""
    currency = quote_currency(sweep.instruments.all())
    columns = top_point_columns(key)
    lines = []
    for rank, point in enumerate(points_ranked(points, key)[:limit], start=1):
        parameters = [
            Cell(axis_value_text(path, value, sweep.criteria), repr(value), "num")
            for path, value in point.values.items()
        ]
        cells = []
        for column, _ in columns:
            value = point.statistics.get(column)
            cells.append(
                Cell(
                    statistic_text(column, value, currency),
                    "" if value is None else repr(value),
                    f"num {statistic_class(column, value)}".strip(),
                )
            )
        lines.append(TopPoint(rank, point.index, parameters, cells, point.simulation_id))
    return lines


def axis_names(sweep: Sweep) -> list[str]:
    """The names of a sweep's axes, in grid order (the criteria path, or whatever the axis is keyed by)."""
    names = []
    for axis in sweep.axes:
        name = axis.get("path") or axis.get("param") or axis.get("name") or ""
        names.append(str(name))
    return names


@dataclass
class ListedSweep:
    """A line of the list of sweeps: the sweep (annotated with ``done``), and its best value as text."""

    sweep: Sweep
    best_text: str = DASH
    best_sort: str = ""
    best_css: str = ""
    statistic_label: str = ""
    axes: list[str] = field(default_factory=list)


def listed_sweeps(sweeps: Iterable[Sweep], best: dict[int, float]) -> list[ListedSweep]:
    """The lines of the list page from a page of :func:`simulator.selectors.sweeps_listed` and
    :func:`simulator.selectors.sweep_best_values`."""
    lines = []
    for sweep in sweeps:
        value = best.get(sweep.pk)
        lines.append(
            ListedSweep(
                sweep=sweep,
                best_text=statistic_text(sweep.statistic, value, quote_currency(sweep.instruments.all())),
                best_sort="" if value is None else repr(value),
                best_css=f"num {statistic_class(sweep.statistic, value)}".strip(),
                statistic_label=statistic_label(sweep.statistic),
                axes=axis_names(sweep),
            )
        )
    return lines


def sweep_grid_document(sweep: Sweep, points: Sequence[SweepPoint], key: str) -> dict[str, Any]:
    """The grid of ``GET /api/sweeps/<id>/``: each saved point's parameters and value of ``key``, and the best.

    Returns:
        ``{"statistic": key, "done": saved points, "progress_ratio": done / total, "points": [{"index",
        "values": {axis: value}, "value", "n_trades", "error", "skipped", "simulation"}], "best": one of the points or
        None}``: values in the engine's units (fractions for ``_ratio`` keys); ``value`` is None for a point
        with an error, no trade, an undefined statistic, or one skipped (it broke a constraint: ``skipped``
        says which); ``simulation`` is the id of the point's full run,
        None until it is opened (``/simulator/sweeps/<id>/points/<index>/`` makes it).
    """
    rows = [
        {
            "index": p.index,
            "values": p.values,
            "value": statistic_value(p, key),
            "n_trades": p.statistics.get("n_trades"),
            "error": p.error,
            "skipped": p.skipped,
            "simulation": p.simulation_id,
        }
        for p in points
    ]
    ranked = points_ranked(points, key)
    best = None
    if ranked:
        best = next(row for row in rows if row["index"] == ranked[0].index)
    done = len(points)
    return {
        "statistic": key,
        "done": done,
        "progress_ratio": 1.0 if sweep.total == 0 else min(1.0, done / sweep.total),
        "points": rows,
        "best": best,
    }


def statistic_or_default(sweep: Sweep, asked: str | None) -> str:
    """The statistic to show: ``asked`` when it is one of :data:`STATISTICS_KEYS`, else the sweep's own."""
    return asked if asked in STATISTICS_KEYS else sweep.statistic


@dataclass(frozen=True)
class LogitBar:
    """A bar of the histogram of CSCV's logits: the logits in (low, high], its height as a percentage of the
    tallest bar, and ``overfit`` when it is at or left of 0 (those PBO counts)."""

    low: float
    high: float
    count: int
    height_pct: float
    overfit: bool

    @property
    def title(self) -> str:
        """The bar's tooltip: its range and count."""
        return f"logit in ({self.low:g}, {self.high:g}]: {self.count:,} split{'s' if self.count != 1 else ''}"


@dataclass(frozen=True)
class RobustnessView:
    """The sweep page's "Is the best point luck?" section (:attr:`Sweep.robustness`)."""

    available: bool
    sentence: str
    verdict: str = ""
    figures: list[tuple[str, str]] = field(default_factory=list)
    pbo_sentence: str = ""
    bars: list[LogitBar] = field(default_factory=list)
    chosen_index: int | None = None

    @property
    def logit_range(self) -> str:
        """``from -2.5 to 3`` : the span of the histogram's bars."""
        return f"from {self.bars[0].low:g} to {self.bars[-1].high:g}" if self.bars else ""


def robustness_view(sweep: Sweep) -> RobustnessView | None:
    """What the page shows of a finished sweep's robustness; None while it runs or when it failed without one
    (the reaper's); a sentence while it is worked out, just after the grid."""
    document = sweep.robustness or {}
    if not document:
        if sweep.status == RunStatus.DONE:
            return RobustnessView(
                False,
                "Being worked out (the deflated Sharpe ratio and the probability of backtest overfitting are "
                "computed right after the grid): reload in a few seconds.",
            )
        return None
    if not document.get("available"):
        return RobustnessView(False, str(document.get("sentence", "")))
    figures = [
        ("Trials (grid points run)", f"{document['trials']:,}"),
        (
            "Sharpe ratio of the best point",
            f"{document['chosen_sharpe_ratio_annualised']:.2f} a year ({document['chosen_sharpe_ratio']:.4f} a day)",
        ),
        (
            "Expected best Sharpe ratio of as many trials without skill",
            f"{document['expected_maximum_sharpe_ratio_annualised']:.2f} a year "
            f"({document['expected_maximum_sharpe_ratio']:.4f} a day)",
        ),
        ("Variance of the trials' daily Sharpe ratios", f"{document['trials_sharpe_variance']:.3g}"),
        (
            "Daily returns of the best point",
            f"{document['observations']:,}, skewness {document['skewness']:.2f}, kurtosis {document['kurtosis']:.2f}",
        ),
        ("Deflated Sharpe ratio", f"{document['deflated_sharpe_ratio']:.4f}"),
    ]
    pbo = document.get("pbo") or {}
    bins = (pbo.get("histogram") or {}).get("bins") or []
    tallest = max((b["count"] for b in bins), default=0) or 1
    bars = [
        LogitBar(b["low"], b["high"], b["count"], round(100.0 * b["count"] / tallest, 1), b["high"] <= 0)
        for b in bins
    ]
    return RobustnessView(
        True,
        str(document["sentence"]),
        str(document.get("verdict", "")),
        figures,
        str(pbo.get("sentence", "")),
        bars,
        document.get("chosen_index"),
    )
