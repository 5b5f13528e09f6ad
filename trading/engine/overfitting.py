"""Is the best point of a sweep luck? The deflated Sharpe ratio and the probability of backtest overfitting.

Pure numpy; scipy's distributions are imported inside the functions that need them, so importing this module
(and the engine's live step path, which does not use it) does not load scipy. Public API:

- :func:`expected_maximum_sharpe_ratio`: the Sharpe ratio the best of N trials of no skill is expected to show;
- :func:`probabilistic_sharpe_ratio`: the probability that the true Sharpe ratio is above a benchmark;
- :func:`deflated_sharpe_ratio`: that probability with the benchmark at the expected maximum of the trials;
- :func:`returns_moments`: the per-candle returns' count, skewness, kurtosis and per-block moments of an equity
  curve (what a sweep keeps of each grid point, so it never holds every curve at once);
- :func:`probability_of_backtest_overfitting`: PBO by combinatorially symmetric cross-validation (CSCV) from those
  block moments.

Every Sharpe ratio here is **per candle, not annualised**: ``mean(r) / std(r, ddof=1)`` of the per-candle simple
returns ``r`` of :func:`trading.engine.statistics.backtest_statistics` (risk-free 0). Multiply by
``sqrt(candles per year)`` to annualise; divide an annualised one by it before passing it here.

Sources:

- D. H. Bailey and M. López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection Bias, Backtest
  Overfitting and Non-Normality", Journal of Portfolio Management 40(5), 2014, pp. 94-107: equations (2)
  (expected maximum), (3) (PSR) and (4) (DSR), and its numerical example (tested in
  ``tests/trading/engine/test_overfitting.py``).
- D. H. Bailey, J. M. Borwein, M. López de Prado and Q. J. Zhu, "The Probability of Backtest Overfitting",
  Journal of Computational Finance 20(4), 2017 (working paper 2013-2015), section 2 (CSCV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numba import njit

from trading.engine.statistics import _RETURN_ROUNDING, equity_at_ruin

#: The Euler-Mascheroni constant (Bailey and López de Prado 2014, equation 2).
EULER_MASCHERONI = 0.5772156649015329

#: How many contiguous blocks CSCV splits the candles into by default (the paper's S = 16: 12,870 combinations).
DEFAULT_BLOCKS = 16

#: Variance below this times the sum of squares / (count - 1) is rounding of summed moments: no dispersion.
_VARIANCE_ROUNDING = 64.0 * float(np.finfo(np.float64).eps)

#: Index of the count, the sum and the sum of squares in the last axis of the block moments.
COUNT, SUM, SUM_OF_SQUARES = 0, 1, 2


def expected_maximum_sharpe_ratio(trials: int, trials_sharpe_variance: float) -> float:
    """Return the expected maximum of ``trials`` Sharpe ratios of strategies without skill (true Sharpe 0).

    ``E[max SR] = sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))``, ``g`` the Euler-Mascheroni
    constant, ``Z`` the standard normal distribution function: Bailey and López de Prado (2014), equation (2)
    with a mean of 0 (the false strategy theorem). The units are those of the Sharpe ratios whose variance is
    given: per candle here (not annualised).

    Args:
        trials: N, the number of independent trials (grid points run), >= 2.
        trials_sharpe_variance: V, the variance across the trials of their Sharpe ratios, >= 0, in squared
            Sharpe units (per candle, not annualised).

    Returns:
        The expected maximum Sharpe ratio, per candle, >= 0.

    Raises:
        ValueError: ``trials`` < 2 (the expected maximum of one trial needs its mean, not this formula), or the
            variance negative or not finite.
    """
    from scipy.stats import norm

    if isinstance(trials, bool) or int(trials) != trials or trials < 2:
        raise ValueError(f"trials must be an integer >= 2; was {trials!r}")
    if not (math.isfinite(trials_sharpe_variance) and trials_sharpe_variance >= 0):
        raise ValueError(f"trials_sharpe_variance must be finite and >= 0; was {trials_sharpe_variance!r}")
    n = float(trials)
    factor = (1.0 - EULER_MASCHERONI) * norm.ppf(1.0 - 1.0 / n) + EULER_MASCHERONI * norm.ppf(
        1.0 - 1.0 / (n * math.e)
    )
    return float(math.sqrt(trials_sharpe_variance) * factor)


def probabilistic_sharpe_ratio(
    sharpe_ratio: float,
    benchmark_sharpe_ratio: float,
    observations: int,
    skewness: float,
    kurtosis: float,
) -> float:
    """Return the probability that the true Sharpe ratio is above ``benchmark_sharpe_ratio``.

    ``PSR = Z((SR - SR0) * sqrt(T - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2))``: Bailey and López de Prado
    (2014), equation (3) (from Mertens' standard error of the Sharpe ratio of non-normal returns).

    Args:
        sharpe_ratio: SR, the observed Sharpe ratio, per candle (not annualised).
        benchmark_sharpe_ratio: SR0, per candle (not annualised).
        observations: T, the number of returns the Sharpe ratio is over, >= 2.
        skewness: g3 of the returns (0 for normal returns).
        kurtosis: g4 of the returns, **not** excess (3 for normal returns).

    Returns:
        A probability in [0, 1].

    Raises:
        ValueError: ``observations`` < 2, an input not finite, or ``1 - g3 SR + (g4 - 1) / 4 SR^2 <= 0`` (moments
            that cannot come from one series: the variance of the Sharpe ratio would not be positive).
    """
    from scipy.stats import norm

    if isinstance(observations, bool) or int(observations) != observations or observations < 2:
        raise ValueError(f"observations must be an integer >= 2; was {observations!r}")
    for name, value in (
        ("sharpe_ratio", sharpe_ratio),
        ("benchmark_sharpe_ratio", benchmark_sharpe_ratio),
        ("skewness", skewness),
        ("kurtosis", kurtosis),
    ):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite; was {value!r}")
    spread = 1.0 - skewness * sharpe_ratio + (kurtosis - 1.0) / 4.0 * sharpe_ratio**2
    if not spread > 0:
        raise ValueError(
            f"1 - skewness * SR + (kurtosis - 1) / 4 * SR^2 must be > 0; was {spread!r} (skewness {skewness!r}, "
            f"kurtosis {kurtosis!r}, SR {sharpe_ratio!r}): is the kurtosis the excess one? give the full one"
        )
    z = (sharpe_ratio - benchmark_sharpe_ratio) * math.sqrt(observations - 1.0) / math.sqrt(spread)
    return float(norm.cdf(z))


def deflated_sharpe_ratio(
    sharpe_ratio: float,
    observations: int,
    skewness: float,
    kurtosis: float,
    trials: int,
    trials_sharpe_variance: float,
) -> float:
    """Return the deflated Sharpe ratio: the probability that the true Sharpe ratio of the best of ``trials``
    is above 0, once the selection among them is accounted for.

    :func:`probabilistic_sharpe_ratio` with the benchmark at :func:`expected_maximum_sharpe_ratio` (Bailey and
    López de Prado 2014, equation 4). All Sharpe figures per candle, not annualised.

    Args:
        sharpe_ratio: the chosen trial's Sharpe ratio, per candle.
        observations: the number of its returns, >= 2.
        skewness, kurtosis: of its returns (kurtosis not excess: 3 for normal returns).
        trials: the number of trials it was chosen from, >= 2.
        trials_sharpe_variance: the variance of the trials' per-candle Sharpe ratios, >= 0.

    Returns:
        A probability in [0, 1].

    Raises:
        ValueError: as :func:`expected_maximum_sharpe_ratio` and :func:`probabilistic_sharpe_ratio`.
    """
    benchmark = expected_maximum_sharpe_ratio(trials, trials_sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe_ratio, benchmark, observations, skewness, kurtosis)


@dataclass(frozen=True)
class ReturnsMoments:
    """What a sweep keeps of one grid point's per-candle returns.

    Attributes:
        count: how many returns (the candles up to the end, or up to a ruin), >= 0.
        sharpe_ratio: ``mean / std(ddof=1)``, per candle, not annualised; None for fewer than 2 returns or no
            dispersion (the report's Sharpe ratio is None then too).
        skewness: the sample skewness (biased, ``scipy.stats.skew``), None where undefined.
        kurtosis: the sample kurtosis, **not** excess (3 for normal returns; ``scipy.stats.kurtosis(...,
            fisher=False)``), None where undefined.
        blocks: shape (S, 3), float64: per contiguous block of the candles, the count, sum and sum of squares of
            its returns (:func:`block_moments`).
    """

    count: int
    sharpe_ratio: float | None
    skewness: float | None
    kurtosis: float | None
    blocks: np.ndarray


def block_moments(
    returns: np.ndarray, blocks: int = DEFAULT_BLOCKS, *, candles: int | None = None
) -> np.ndarray:
    """Return the count, sum and sum of squares of ``returns`` in each of ``blocks`` contiguous blocks of candles.

    The blocks split the ``candles`` (default: as many as returns) as ``numpy.array_split`` does: as equal as can
    be, the first ones one longer when the count does not divide; so every trial over the same candles has the
    same blocks. ``returns`` may be shorter than ``candles`` (a ruined account has no return after its ruin): the
    blocks past its end are empty (all 0), and so is a block when there are fewer candles than blocks.

    Args:
        returns: shape (T,), float64, per-candle returns in time order, from the first candle on.
        blocks: S, the number of blocks, >= 1.
        candles: the number of candles the blocks split, >= T; default T.

    Returns:
        shape (S, 3), float64: ``[:, COUNT]``, ``[:, SUM]``, ``[:, SUM_OF_SQUARES]``.

    Raises:
        ValueError: ``returns`` not 1-D, ``blocks`` < 1, or ``candles`` < T.
    """
    array = np.asarray(returns, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"returns must be 1-D, shape (T,); was shape {array.shape}")
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1; was {blocks!r}")
    length = array.size if candles is None else int(candles)
    if length < array.size:
        raise ValueError(f"candles must be >= the number of returns, {array.size}; was {candles!r}")
    moments = np.zeros((blocks, 3), dtype=np.float64)
    for i, positions in enumerate(np.array_split(np.arange(length), blocks)):
        part = array[positions[0] : positions[-1] + 1] if positions.size else array[:0]
        moments[i] = (part.size, part.sum(), np.dot(part, part))
    return moments


def returns_moments(
    equity_curve: np.ndarray, *, starting_cash: float, blocks: int = DEFAULT_BLOCKS
) -> ReturnsMoments:
    """Return the moments of the per-candle returns of an equity curve that the DSR and PBO need.

    The returns are :func:`trading.engine.statistics.backtest_statistics`'s: over the anchored curve
    ``[starting_cash, equity_curve...]``, up to a ruin (:func:`~trading.engine.statistics.equity_at_ruin`: after
    it they are 0 / 0), so ``sharpe_ratio * sqrt(candles per year)`` is the report's Sharpe ratio.

    Args:
        equity_curve: shape (n,), float64, quote currency, the equity at each candle's close, finite and >= 0.
        starting_cash: the equity at the first candle's open, quote currency, > 0.
        blocks: S for CSCV, >= 1.

    Returns:
        A :class:`ReturnsMoments`.

    Raises:
        ValueError: as :func:`~trading.engine.statistics.equity_at_ruin`, or ``starting_cash`` not finite and > 0.
    """
    equity, _ = equity_at_ruin(equity_curve, starting_cash=float(starting_cash))
    return returns_moments_of_curves(equity.reshape(1, -1), starting_cash=starting_cash, blocks=blocks)[0]


def returns_moments_of_curves(
    equity_curves: np.ndarray, *, starting_cash: float, blocks: int = DEFAULT_BLOCKS
) -> list[ReturnsMoments]:
    """:func:`returns_moments` of many curves over the same candles (a sweep's points), in one compiled pass.

    Args:
        equity_curves: shape (P, n), float64, quote currency: ruin-clamped equity curves (exactly 0 from a ruin
            on, as :func:`~trading.engine.statistics.equity_at_ruin` leaves them and the sweep kernel keeps them).
        starting_cash: the equity at the first candle's open, quote currency, > 0.
        blocks: S for CSCV, >= 1.

    Returns:
        One :class:`ReturnsMoments` a curve. The skewness and kurtosis are the biased sample moments
        ``m3 / m2 ** 1.5`` and ``m4 / m2 ** 2`` (``m_k`` the mean of ``(r - mean) ** k``), as ``scipy.stats.skew``
        and ``scipy.stats.kurtosis(fisher=False)`` compute them (the tests compare).

    Raises:
        ValueError: ``starting_cash`` not finite and > 0, ``blocks`` < 1, or the curves not 2-D.
    """
    if not (math.isfinite(starting_cash) and starting_cash > 0):
        raise ValueError(f"starting_cash must be finite and > 0; was {starting_cash!r}")
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1; was {blocks!r}")
    curves = np.ascontiguousarray(equity_curves, dtype=np.float64)
    if curves.ndim != 2:
        raise ValueError(f"equity_curves must be 2-D, shape (P, n); was shape {curves.shape}")
    # The blocks split the candles as numpy.array_split does (block_moments).
    n = curves.shape[1]
    sizes = np.full(blocks, n // blocks, dtype=np.int64)
    sizes[: n % blocks] += 1
    bounds = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    counts, figures, moments = _moments_of_curves(curves, float(starting_cash), bounds, _RETURN_ROUNDING)
    return [
        ReturnsMoments(
            int(count),
            _finite_or_none(row[0]),
            _finite_or_none(row[1]),
            _finite_or_none(row[2]),
            block,
        )
        for count, row, block in zip(counts.tolist(), figures.tolist(), moments, strict=True)
    ]


@njit(cache=True, error_model="numpy")
def _moments_of_curves(
    curves: np.ndarray, starting_cash: float, bounds: np.ndarray, rounding: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each curve: the count of its returns (up to its ruin, its first value <= 0), ``(sharpe, skewness,
    kurtosis)`` (NaN where undefined: fewer than 2 returns, or returns that count as equal as the report's
    Sharpe ratio counts them) and the per-block ``(count, sum, sum of squares)`` between ``bounds``."""
    points, n = curves.shape
    blocks = bounds.shape[0] - 1
    counts = np.zeros(points, dtype=np.int64)
    figures = np.full((points, 3), np.nan)
    moments = np.zeros((points, blocks, 3))
    returns = np.empty(n)
    for p in range(points):
        count = n
        for j in range(n):
            if curves[p, j] <= 0.0:
                count = j + 1
                break
        previous = starting_cash
        lowest = np.inf
        highest = -np.inf
        largest = 0.0
        total = 0.0
        for j in range(count):
            r = curves[p, j] / previous - 1.0
            previous = curves[p, j]
            returns[j] = r
            total += r
            lowest = min(lowest, r)
            highest = max(highest, r)
            largest = max(largest, abs(r))
        counts[p] = count
        for b in range(blocks):
            stop = min(bounds[b + 1], count)
            for j in range(bounds[b], stop):
                moments[p, b, 0] += 1.0
                moments[p, b, 1] += returns[j]
                moments[p, b, 2] += returns[j] * returns[j]
        if count < 2 or not highest - lowest > rounding * (1.0 + largest):
            continue
        mean = total / count
        m2 = 0.0
        m3 = 0.0
        m4 = 0.0
        for j in range(count):
            d = returns[j] - mean
            m2 += d * d
            m3 += d * d * d
            m4 += d * d * d * d
        std = np.sqrt(m2 / (count - 1))
        if not std > 0:
            continue
        m2 /= count
        m3 /= count
        m4 /= count
        figures[p, 0] = mean / std
        figures[p, 1] = m3 / m2**1.5
        figures[p, 2] = m4 / (m2 * m2)
    return counts, figures, moments


@dataclass(frozen=True)
class OverfittingProbability:
    """The result of :func:`probability_of_backtest_overfitting`.

    Attributes:
        probability: PBO, the share of combinations whose in-sample best ranks at or below the median out of
            sample (logit <= 0), in [0, 1].
        logits: shape (C,), float64, one logit ``ln(w / (1 - w))`` per combination, in the order of
            ``itertools.combinations(range(S), S // 2)``.
        combinations: C, ``comb(S, S // 2)``.
    """

    probability: float
    logits: np.ndarray
    combinations: int


def probability_of_backtest_overfitting(block_moments: np.ndarray) -> OverfittingProbability:
    """Return the probability of backtest overfitting of N trials by combinatorially symmetric cross-validation.

    Bailey, Borwein, López de Prado and Zhu (2015), section 2: the T candles are split into S contiguous blocks
    (here given as each trial's per-block moments, so the T x N matrix of returns is never held). For each of
    the ``C(S, S/2)`` ways to choose S/2 blocks as the in-sample set (the rest out of sample):

    1. each trial's Sharpe ratio in sample and out of sample, from the summed moments of the union of its
       blocks: ``mean / std(ddof=1)``, per candle (0 where the union has fewer than 2 returns or no
       dispersion: no return to reward);
    2. ``n*`` = the trial with the best in-sample Sharpe ratio (the lowest index on a tie);
    3. its relative rank out of sample ``w = rank / (N + 1)``, rank 1 the worst and N the best; ties take the
       average rank (``scipy.stats.rankdata(method="average")``'s, counted for that one trial without sorting),
       so N trials with equal Sharpe ratios put ``n*`` at the median, logit 0;
    4. the logit ``ln(w / (1 - w))``.

    PBO is the share of logits <= 0: how often the in-sample best is at or below the out-of-sample median.

    One compiled pass per pair of complementary combinations, after a matrix product for their moments;
    12,870 combinations (S = 16) of 10,000 trials take 4 to 6 s on two cores under load
    (``tests/trading/engine/test_overfitting.py`` measures it).

    Args:
        block_moments: shape (N, S, 3), float64: for each trial and block, the count, sum and sum of squares of
            its per-candle returns (:func:`block_moments`); every trial over the same candles. N >= 2, S even
            and >= 2.

    Returns:
        An :class:`OverfittingProbability`.

    Raises:
        ValueError: a wrong shape, fewer than 2 trials, S odd or < 2, or a value not finite.
    """
    moments = np.asarray(block_moments, dtype=np.float64)
    if moments.ndim != 3 or moments.shape[2] != 3:
        raise ValueError(f"block_moments must have shape (N, S, 3); was {moments.shape}")
    trials, blocks, _ = moments.shape
    if trials < 2:
        raise ValueError(f"PBO compares trials: give at least 2; was {trials}")
    if blocks < 2 or blocks % 2:
        raise ValueError(f"the number of blocks S must be even and >= 2; was {blocks}")
    if not np.isfinite(moments).all():
        raise ValueError("block_moments must be finite")
    chosen = np.array(list(combinations(range(blocks), blocks // 2)), dtype=np.intp)
    count = chosen.shape[0]
    # in_sample[c, s]: block s is in sample in combination c. Moments of a union of blocks are sums, so each
    # combination's in-sample moments are a matrix product: (C, S) @ (S, N) per moment; out of sample the rest.
    in_sample = np.zeros((count, blocks), dtype=np.float64)
    np.put_along_axis(in_sample, chosen, 1.0, axis=1)
    totals = moments.sum(axis=1)  # (N, 3)
    logits = np.empty(count, dtype=np.float64)
    # In itertools' (lexicographic) order the complement of combination i is combination C - 1 - i: the out of
    # sample of one is the in sample of the other. So each Sharpe ratio of a half is computed once for the pair,
    # and only the first half of the combinations needs the (C/2, S) @ (S, N) products.
    half = count // 2
    # Batches bound the (batch, N) arrays: 100 x 10,000 float64 is 8 MB per array.
    batch = max(1, min(half, 1_000_000 // trials))
    for first in range(0, half, batch):
        stop = min(first + batch, half)
        mask = in_sample[first:stop]
        inside = [np.ascontiguousarray(mask @ moments[:, :, k].T) for k in range(3)]  # each (b, N)
        logits_in, logits_out = _pair_logits(
            inside[COUNT],
            inside[SUM],
            inside[SUM_OF_SQUARES],
            totals[:, COUNT],
            totals[:, SUM],
            totals[:, SUM_OF_SQUARES],
        )
        logits[first:stop] = logits_in
        logits[count - stop : count - first] = logits_out[::-1]
    return OverfittingProbability(float(np.count_nonzero(logits <= 0.0)) / count, logits, count)


@njit(cache=True)
def _sharpe_from_moments(count: float, total: float, squares: float) -> float:
    """``mean / std(ddof=1)`` from summed moments; 0 where there are fewer than 2 returns or the variance is not
    positive (sums of squares lose the variance below about 64 eps * squares / (count - 1): no dispersion)."""
    if count < 2:
        return 0.0
    mean = total / count
    variance = (squares - total * mean) / (count - 1.0)
    if not variance > _VARIANCE_ROUNDING * abs(squares) / (count - 1.0):
        return 0.0
    return float(mean / np.sqrt(variance))


@njit(cache=True)
def _pair_logits(
    count_in: np.ndarray,
    sum_in: np.ndarray,
    squares_in: np.ndarray,
    count_all: np.ndarray,
    sum_all: np.ndarray,
    squares_all: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1 to 4 of :func:`probability_of_backtest_overfitting` for a batch of combinations and their
    complements.

    Args:
        count_in, sum_in, squares_in: shape (b, N), float64, each trial's moments over the chosen blocks of each
            combination of the batch.
        count_all, sum_all, squares_all: shape (N,), float64, each trial's moments over all the blocks (over the
            complement: all - chosen).

    Returns:
        ``(logits, complement_logits)``, each shape (b,), float64: the logit of the in-sample best's relative rank
        out of sample, with the chosen blocks in sample, and with the complement in sample.
    """
    rows, trials = count_in.shape
    logits = np.empty(rows, dtype=np.float64)
    complement_logits = np.empty(rows, dtype=np.float64)
    first = np.empty(trials, dtype=np.float64)
    second = np.empty(trials, dtype=np.float64)
    for c in range(rows):
        for j in range(trials):
            first[j] = _sharpe_from_moments(count_in[c, j], sum_in[c, j], squares_in[c, j])
            second[j] = _sharpe_from_moments(
                count_all[j] - count_in[c, j], sum_all[j] - sum_in[c, j], squares_all[j] - squares_in[c, j]
            )
        logits[c] = _chosen_logit(first, second)
        complement_logits[c] = _chosen_logit(second, first)
    return logits, complement_logits


@njit(cache=True)
def _chosen_logit(sharpe_in: np.ndarray, sharpe_out: np.ndarray) -> float:
    """``ln(w / (1 - w))`` for ``w`` the relative rank out of sample of the best trial in sample (the first on a
    tie). The rank is the average rank (``scipy.stats.rankdata(method="average")``) of that trial alone: 1 + the
    trials below it + half the others equal to it."""
    trials = sharpe_in.shape[0]
    best = 0
    for j in range(1, trials):
        if sharpe_in[j] > sharpe_in[best]:
            best = j
    chosen = sharpe_out[best]
    below = 0
    equal = 0
    for j in range(trials):
        if sharpe_out[j] < chosen:
            below += 1
        elif sharpe_out[j] == chosen:
            equal += 1
    relative = (below + (equal + 1) / 2.0) / (trials + 1.0)
    return float(np.log(relative / (1.0 - relative)))


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
