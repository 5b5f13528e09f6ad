"""Is the best point of a sweep luck? (issue 15): the robustness document of a real sweep on the shipped BTC
history, checked against the deflated Sharpe ratio and CSCV computed here from each point's own equity curve, and
shown by the API and the page."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient
from scipy.stats import kurtosis, norm, skew

from simulator.models import RunStatus, Sweep, SweepPoint
from simulator.services import simulations
from simulator.services.coverage import coverage_compute
from simulator.services.magnifier import finer_candles_load
from simulator.services.requests import simulation_request_check
from simulator.services.robustness import sweep_robustness, verdict
from simulator.services.sweeps import (
    sweep_chunks,
    sweep_create,
    sweep_finish,
    sweep_point_criteria,
    sweep_run_in_process,
)
from tests.accounts import user_with
from tests.simulator.test_param_sweeps import CROSSOVER
from tests.trading.engine.test_overfitting import _pbo_by_slicing

pytestmark = pytest.mark.django_db

AXES = [
    {"path": "params.fast", "start": 5, "stop": 25, "step": 5},
    {"path": "params.slow", "start": 30, "stop": 90, "step": 20},
]


def _sweep(statistic: str = "sharpe_ratio", created_by: Any = None) -> Sweep:
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2018, 1, 1),
        end=date(2022, 12, 31),
        starting_cash=Decimal("10000"),
        criteria=CROSSOVER,
    )
    sweep = sweep_create(
        request=request, axes=AXES, constraints="fast < slow", statistic=statistic, created_by=created_by
    )
    sweep_run_in_process(sweep_id=sweep.pk, chunks=sweep_chunks(sweep.total, 2))
    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE, sweep.error
    return sweep


def _curves(sweep: Sweep) -> dict[int, np.ndarray]:
    """Each run point's equity curve, from its own backtest (as a single run of the point loads its candles)."""
    instruments = list(sweep.instruments.order_by("symbol", "pk"))
    candles = simulations.candles_load(instruments, sweep.end)
    coverage = coverage_compute(
        candles=candles,
        names={i.symbol: i.coingecko_id for i in instruments},
        start=sweep.start,
        end=sweep.end,
    )
    finer = finer_candles_load(instruments, coverage.start, coverage.end)
    curves = {}
    for point in SweepPoint.objects.filter(sweep=sweep, skipped="", error="").order_by("index"):
        document = sweep_point_criteria(
            sweep.criteria, sweep.axes, [point.values[a["path"]] for a in sweep.axes]
        )
        result = simulations.engine_run(
            document, candles, coverage.start, coverage.end, sweep.starting_cash, finer=finer
        )
        curves[point.index] = result.equity_curve
    return curves


def test_the_robustness_of_a_sweep_is_the_dsr_and_pbo_of_its_points_curves(shipped_history: None) -> None:
    sweep = _sweep()
    robustness = sweep.robustness
    assert robustness["available"] is True, robustness

    curves = _curves(sweep)
    cash = float(sweep.starting_cash)
    returns = {
        i: np.diff(np.concatenate(([cash], c))) / np.concatenate(([cash], c[:-1])) for i, c in curves.items()
    }
    # fast 5..25 x slow 30..90 by 20: 5 x 4 points, none breaks fast < slow.
    assert len(returns) == 20 == robustness["trials"]

    def sharpe(r: np.ndarray) -> float:
        return float(r.mean() / r.std(ddof=1)) if r.std() > 0 else 0.0

    sharpes = {i: sharpe(r) for i, r in returns.items()}
    points = {p.index: p for p in sweep.points.all()}
    # The chosen point is the best by the sweep's statistic (the annualised Sharpe ratio: the same order).
    best = max((i for i in sharpes if points[i].statistics["n_trades"]), key=lambda i: (sharpes[i], -i))
    assert robustness["chosen_index"] == best
    r = returns[best]
    assert robustness["chosen_sharpe_ratio"] == pytest.approx(sharpes[best], rel=1e-9)
    assert robustness["chosen_sharpe_ratio_annualised"] == pytest.approx(
        points[best].statistics["sharpe_ratio"], rel=1e-9
    )
    assert robustness["observations"] == r.size
    assert robustness["skewness"] == pytest.approx(skew(r), rel=1e-9)
    assert robustness["kurtosis"] == pytest.approx(kurtosis(r, fisher=False), rel=1e-9)
    variance = float(np.var(list(sharpes.values()), ddof=1))
    assert robustness["trials_sharpe_variance"] == pytest.approx(variance, rel=1e-9)

    # Bailey and López de Prado (2014), equations (2) and (3), written here again.
    gamma, n = 0.5772156649015329, 20
    sr0 = math.sqrt(variance) * ((1 - gamma) * norm.ppf(1 - 1 / n) + gamma * norm.ppf(1 - 1 / (n * math.e)))
    sr, g3, g4 = sharpes[best], skew(r), kurtosis(r, fisher=False)
    dsr = norm.cdf((sr - sr0) * math.sqrt(r.size - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2))
    assert robustness["expected_maximum_sharpe_ratio"] == pytest.approx(sr0, rel=1e-9)
    assert robustness["deflated_sharpe_ratio"] == pytest.approx(dsr, rel=1e-9)
    assert robustness["verdict"] == verdict(dsr)
    assert robustness["sentence"] == (
        f"Best of 20 trials: deflated Sharpe ratio {dsr:.2f}, a {dsr * 100:.0f} % chance that its true Sharpe "
        f"ratio is above zero: {verdict(dsr)}."
    )

    # CSCV over the whole T x N matrix of returns, sliced block by block.
    matrix = np.column_stack([returns[i] for i in sorted(returns)])
    pbo, logits = _pbo_by_slicing(matrix, 16)
    assert robustness["pbo"]["combinations"] == 12_870
    assert robustness["pbo"]["probability"] == pytest.approx(pbo, abs=1e-12)
    assert robustness["pbo"]["logits"] == pytest.approx(logits, abs=1e-5)
    bins = robustness["pbo"]["histogram"]["bins"]
    assert sum(b["count"] for b in bins) == 12_870
    at_or_below_zero = sum(b["count"] for b in bins if b["high"] <= 0)
    assert at_or_below_zero / 12_870 == pytest.approx(pbo, abs=1e-12)

    # The API and the page show it.
    owner = user_with("trader")
    Sweep.objects.filter(pk=sweep.pk).update(created_by=owner)
    api = APIClient()
    api.force_authenticate(owner)
    assert api.get(f"/api/sweeps/{sweep.pk}/").json()["robustness"] == robustness
    client = Client()
    client.force_login(owner)
    page = client.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()
    assert 'id="sweep-robustness"' in page
    assert robustness["sentence"].replace("'", "&#x27;") in page
    assert robustness["pbo"]["sentence"] in page

    # Just after the grid, before it is worked out: the heatmap is there, the API says null, the page says so.
    Sweep.objects.filter(pk=sweep.pk).update(robustness={})
    assert api.get(f"/api/sweeps/{sweep.pk}/").json()["robustness"] is None
    waiting = client.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()
    assert 'id="heatmap"' in waiting
    assert (
        "Being worked out (the deflated Sharpe ratio and the probability of backtest overfitting" in waiting
    )


def test_a_sweep_chosen_by_another_statistic_reports_the_sharpe_ratio_of_its_best_point(
    shipped_history: None,
) -> None:
    sweep = _sweep(statistic="total_return_ratio")
    robustness = sweep.robustness
    assert robustness["available"] is True, robustness
    ranked = sorted(
        (p for p in sweep.points.all() if p.statistics["n_trades"]),
        key=lambda p: (-p.statistics["total_return_ratio"], p.index),
    )
    assert robustness["chosen_index"] == ranked[0].index
    assert robustness["chosen_sharpe_ratio_annualised"] == pytest.approx(
        ranked[0].statistics["sharpe_ratio"], rel=1e-9
    )


def test_without_two_trials_or_a_finished_sweep_the_robustness_says_why(shipped_history: None) -> None:
    sweep = _sweep()
    SweepPoint.objects.filter(sweep=sweep).exclude(index=0).update(error="ValueError: refused")
    assert sweep_robustness(sweep=sweep) == {
        "available": False,
        "reason": "a sweep needs at least 2 grid points run to compare; it ran 1",
        "sentence": "Is the best point luck? Not computed: a sweep needs at least 2 grid points run to compare; "
        "it ran 1.",
    }
    SweepPoint.objects.filter(sweep=sweep, index=1).delete()
    finished = sweep_finish(sweep_id=sweep.pk)
    assert finished.status == RunStatus.FAILED
    assert finished.robustness["available"] is False
    assert finished.robustness["reason"].startswith(
        "the sweep did not finish (1 of 20 grid points are missing"
    )
    owner = user_with("trader")
    Sweep.objects.filter(pk=sweep.pk).update(created_by=owner)
    client = Client()
    client.force_login(owner)
    page = client.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()
    assert (
        "Is the best point luck? Not computed: the sweep did not finish (1 of 20 grid points are missing"
        in page
    )
    assert 'id="logit-histogram"' not in page


def test_flat_trials_have_no_sharpe_ratio_to_deflate(shipped_history: None) -> None:
    sweep = _sweep()
    # As if no point had traded: the best point has no Sharpe ratio, and a flat one no value to be chosen by.
    for point in sweep.points.all():
        point.returns_moments["sharpe_ratio"] = None
        point.save(update_fields=["returns_moments"])
    robustness = sweep_robustness(sweep=sweep)
    assert robustness["available"] is False
    assert robustness["reason"] == "the best point has no Sharpe ratio (its equity hardly moved)"
