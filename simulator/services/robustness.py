"""Is the best point of a sweep luck? (issue 15): the deflated Sharpe ratio and the probability of backtest
overfitting of a finished sweep, from what each grid point kept of its returns.

Each grid point that runs keeps its per-candle returns' moments in :attr:`SweepPoint.returns_moments`
(:func:`points_returns_moments`: not a statistic of the report, so they are kept apart from the statistics);
:func:`sweep_robustness` reads them when the sweep finishes and makes the document saved in
:attr:`simulator.models.Sweep.robustness`. The formulas are :mod:`trading.engine.overfitting`'s; the sentences and
thresholds are here.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from simulator.models import RunStatus, Sweep
from trading.engine.overfitting import (
    DEFAULT_BLOCKS,
    deflated_sharpe_ratio,
    expected_maximum_sharpe_ratio,
    probability_of_backtest_overfitting,
    returns_moments_of_curves,
)
from trading.engine.vocabulary import STATISTIC_BY_KEY

logger = logging.getLogger(__name__)

#: The key of a grid point's ``statistics`` holding its returns' moments (not a statistic of the report).
RETURNS_MOMENTS_KEY = "returns_moments"

#: A deflated Sharpe ratio at or above this is "likely real" (the paper's 95 % confidence).
LIKELY_REAL_RATIO = 0.95

#: A deflated Sharpe ratio below this is "likely luck": the true Sharpe ratio is more likely at or below zero.
LIKELY_LUCK_RATIO = 0.5

#: Width of a bar of the histogram of the logits.
LOGIT_BIN_WIDTH = 0.5

#: A sweep runs on daily candles: candles in a 365-day year, to show per-candle Sharpe ratios annualised.
CANDLES_PER_YEAR = 365


def points_returns_moments(equity_curves: np.ndarray, starting_cash: Decimal) -> list[dict[str, Any]]:
    """What each grid point keeps of its per-candle returns for :func:`sweep_robustness`.

    Args:
        equity_curves: shape (P, n), float64, quote currency: the points' equity curves (ruin-clamped, as
            :func:`simulator.services.simulations.engine_sweep` keeps them with ``keep_curves``).
        starting_cash: the sweep's starting cash, quote currency.

    Returns:
        One ``{"count", "sharpe_ratio", "skewness", "kurtosis", "blocks"}`` a point: the returns' count; their
        Sharpe ratio **per candle, not annualised** (None for a flat curve); skewness; kurtosis (not excess: 3 for
        normal returns); and ``blocks``, :data:`~trading.engine.overfitting.DEFAULT_BLOCKS` lists ``[count, sum,
        sum of squares]`` of the returns in contiguous blocks of the candles (:func:`trading.engine.overfitting.
        returns_moments_of_curves`).
    """
    return [
        {
            "count": moments.count,
            "sharpe_ratio": moments.sharpe_ratio,
            "skewness": moments.skewness,
            "kurtosis": moments.kurtosis,
            "blocks": moments.blocks.tolist(),
        }
        for moments in returns_moments_of_curves(equity_curves, starting_cash=float(starting_cash))
    ]


def verdict(deflated_sharpe: float) -> str:
    """``likely real`` (>= :data:`LIKELY_REAL_RATIO`), ``uncertain``, or ``likely luck`` (<
    :data:`LIKELY_LUCK_RATIO`) for a deflated Sharpe ratio (a probability)."""
    if deflated_sharpe >= LIKELY_REAL_RATIO:
        return "likely real"
    if deflated_sharpe >= LIKELY_LUCK_RATIO:
        return "uncertain"
    return "likely luck"


def _absent(reason: str, **known: Any) -> dict[str, Any]:
    return {
        "available": False,
        "reason": reason,
        "sentence": f"Is the best point luck? Not computed: {reason}.",
        **known,
    }


def _chosen(trials: list[_Trial], key: str) -> _Trial | None:
    """The best trial by ``key`` as the sweep page ranks them (:func:`simulator.sweep_presenters.points_ranked`:
    a point with no trade or no value of ``key`` is not chosen; the lower grid index on a tie)."""
    statistic = STATISTIC_BY_KEY.get(key)
    sign = -1.0 if statistic is None or statistic.higher_is_better else 1.0
    valued = []
    for point in trials:
        value = point.statistics.get(key)
        if point.statistics.get("n_trades") == 0:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        valued.append((sign * float(value), point.index, point))
    return min(valued, key=lambda t: (t[0], t[1]))[2] if valued else None


@dataclass(frozen=True)
class _Trial:
    """A grid point that ran, as the robustness reads it (a light :class:`SweepPoint`)."""

    index: int
    values: dict[str, Any]
    statistics: dict[str, Any]


def _trials(sweep: Sweep) -> list[_Trial]:
    """The grid points that ran, in grid order, each with only what the robustness reads of its statistics (the
    sweep's statistic, ``n_trades`` and the returns' moments): 10,000 whole statistics documents take a second to
    decode."""
    keys = (sweep.statistic, "n_trades")
    rows = (
        sweep.points.filter(skipped="", error="")
        .order_by("index")
        .values_list("index", "values", "returns_moments", *(f"statistics__{key}" for key in keys))
    )
    return [
        _Trial(index, values, {**dict(zip(keys, figures, strict=True)), RETURNS_MOMENTS_KEY: moments or None})
        for index, values, moments, *figures in rows
    ]


def sweep_robustness(*, sweep: Sweep) -> dict[str, Any]:
    """Is the best point of a finished sweep luck? The document saved in :attr:`Sweep.robustness`.

    The trials are the grid points that ran (skipped and failed points are not trials). The chosen point is the
    best by the sweep's statistic, as the page ranks it, whatever that statistic is; its Sharpe ratio is reported
    beside. Each trial's Sharpe ratio is per candle (daily), not annualised; a trial whose equity never moved (no
    trade) has no Sharpe ratio and counts as 0 in their variance (its mean return is 0).

    Returns:
        When it can be computed, ``{"available": True, "sentence", "verdict", "trials", "chosen_index",
        "chosen_values", "statistic", "chosen_sharpe_ratio" (per candle), "chosen_sharpe_ratio_annualised",
        "observations", "skewness", "kurtosis" (not excess), "trials_sharpe_variance" (per candle, squared),
        "expected_maximum_sharpe_ratio" (per candle), "expected_maximum_sharpe_ratio_annualised",
        "deflated_sharpe_ratio" (a probability), "pbo": {"probability", "combinations", "blocks", "logits",
        "histogram": {"bin_width", "bins": [{"low", "high", "count"}]}, "sentence"} or None}``. Otherwise
        ``{"available": False, "reason", "sentence"}`` with the reason: the sweep failed, fewer than 2 trials, no
        Sharpe ratio at the chosen point, or points saved before the moments were kept.
    """
    if sweep.status != RunStatus.DONE:
        return _absent("the sweep did not finish" + (f" ({sweep.error})" if sweep.error else ""))
    trials = _trials(sweep)
    if len(trials) < 2:
        return _absent(f"a sweep needs at least 2 grid points run to compare; it ran {len(trials)}")
    if any(not isinstance(p.statistics.get(RETURNS_MOMENTS_KEY), dict) for p in trials):
        return _absent("the grid points were saved before their returns were kept: run the sweep again")
    chosen = _chosen(trials, sweep.statistic)
    if chosen is None:
        return _absent(f"no grid point has a value of {sweep.statistic} with a trade", trials=len(trials))
    moments = chosen.statistics[RETURNS_MOMENTS_KEY]
    sharpe = moments.get("sharpe_ratio")
    if sharpe is None or moments.get("skewness") is None or moments.get("kurtosis") is None:
        return _absent(
            "the best point has no Sharpe ratio (its equity hardly moved)",
            trials=len(trials),
            chosen_index=chosen.index,
        )
    trial_sharpes = np.array(
        [p.statistics[RETURNS_MOMENTS_KEY].get("sharpe_ratio") or 0.0 for p in trials], dtype=np.float64
    )
    variance = float(np.var(trial_sharpes, ddof=1))
    try:
        expected = expected_maximum_sharpe_ratio(len(trials), variance)
        deflated = deflated_sharpe_ratio(
            sharpe, int(moments["count"]), moments["skewness"], moments["kurtosis"], len(trials), variance
        )
    except ValueError as exc:
        return _absent(f"the deflated Sharpe ratio is undefined here: {exc}", trials=len(trials))
    said = verdict(deflated)
    sentence = (
        f"Best of {len(trials):,} trials: deflated Sharpe ratio {deflated:.2f}, a {deflated * 100:.0f} % chance "
        f"that its true Sharpe ratio is above zero: {said}."
    )
    annualiser = math.sqrt(CANDLES_PER_YEAR)
    return {
        "available": True,
        "sentence": sentence,
        "verdict": said,
        "statistic": sweep.statistic,
        "trials": len(trials),
        "chosen_index": chosen.index,
        "chosen_values": chosen.values,
        "chosen_sharpe_ratio": sharpe,
        "chosen_sharpe_ratio_annualised": sharpe * annualiser,
        "observations": int(moments["count"]),
        "skewness": moments["skewness"],
        "kurtosis": moments["kurtosis"],
        "trials_sharpe_variance": variance,
        "expected_maximum_sharpe_ratio": expected,
        "expected_maximum_sharpe_ratio_annualised": expected * annualiser,
        "deflated_sharpe_ratio": deflated,
        "pbo": _pbo_document(trials),
    }


def _pbo_document(trials: list[_Trial]) -> dict[str, Any] | None:
    """The probability of backtest overfitting of the trials (CSCV over their per-block moments), its logits and
    their histogram; None when the points kept another number of blocks than the engine's default."""
    blocks = np.array([p.statistics[RETURNS_MOMENTS_KEY]["blocks"] for p in trials], dtype=np.float64)
    if blocks.shape[1:] != (DEFAULT_BLOCKS, 3):
        return None
    result = probability_of_backtest_overfitting(blocks)
    logits = result.logits
    # Bars (low, high]: bar i holds the logits in ((i - 1) w, i w], so the bars at or left of 0 hold exactly the
    # logits PBO counts (<= 0).
    index = np.ceil(logits / LOGIT_BIN_WIDTH).astype(np.int64)
    lowest, highest = int(index.min()), int(index.max())
    counts = np.bincount(index - lowest, minlength=highest - lowest + 1)
    bins = [
        {
            "low": (lowest + i - 1) * LOGIT_BIN_WIDTH,
            "high": (lowest + i) * LOGIT_BIN_WIDTH,
            "count": int(count),
        }
        for i, count in enumerate(counts)
    ]
    probability = result.probability
    return {
        "probability": probability,
        "combinations": result.combinations,
        "blocks": DEFAULT_BLOCKS,
        "logits": [round(float(v), 6) for v in logits],
        "histogram": {"bin_width": LOGIT_BIN_WIDTH, "bins": bins},
        "sentence": (
            f"Probability of backtest overfitting {probability:.2f}: in {probability * 100:.0f} % of "
            f"{result.combinations:,} splits of the days into two halves, the best point of one half ranked at or "
            "below the median of the other."
        ),
    }


def sweep_robustness_safe(*, sweep: Sweep) -> dict[str, Any]:
    """:func:`sweep_robustness`, or the document of an absent one saying why when it raises: working out whether
    the best point is luck must never leave a sweep unfinished."""
    try:
        return sweep_robustness(sweep=sweep)
    except Exception as exc:  # the sweep's own result stands without its robustness
        logger.exception("sweep %s: robustness failed", sweep.pk)
        return _absent(f"internal error {type(exc).__name__}: {exc}")
