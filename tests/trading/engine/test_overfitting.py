"""The deflated Sharpe ratio and the probability of backtest overfitting (trading/engine/overfitting.py)."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from itertools import combinations

import numpy as np
import pytest
from scipy.stats import kurtosis, norm, rankdata, skew

from trading.engine.overfitting import (
    DEFAULT_BLOCKS,
    block_moments,
    deflated_sharpe_ratio,
    expected_maximum_sharpe_ratio,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    returns_moments,
)
from trading.engine.statistics import backtest_statistics

# The numerical example of Bailey and López de Prado (2014), "The Deflated Sharpe Ratio", section "A numerical
# example": a strategy with an annualised Sharpe ratio of 2.5 over 5 years of daily returns (T = 1,250, 250
# days a year), chosen as the best of N = 100 trials whose annualised Sharpe ratios have a variance of 1/2;
# its returns have skewness -3 and kurtosis 10. The paper prints SR0 = 0.1132 per day (annualised about 1.79)
# and DSR = 0.9004.
DAYS_PER_YEAR = 250
EXAMPLE_SHARPE_PER_DAY = 2.5 / math.sqrt(DAYS_PER_YEAR)
EXAMPLE_VARIANCE_PER_DAY = 0.5 / DAYS_PER_YEAR


def test_the_expected_maximum_of_the_papers_example_is_its_printed_figure() -> None:
    benchmark = expected_maximum_sharpe_ratio(100, EXAMPLE_VARIANCE_PER_DAY)
    assert round(benchmark, 4) == 0.1132
    assert round(benchmark * math.sqrt(DAYS_PER_YEAR), 2) == 1.79
    # The paper's equation (2), written here from scipy's normal quantile function.
    gamma = 0.5772156649015329
    by_hand = math.sqrt(EXAMPLE_VARIANCE_PER_DAY) * (
        (1 - gamma) * norm.ppf(1 - 1 / 100) + gamma * norm.ppf(1 - 1 / (100 * math.e))
    )
    assert benchmark == pytest.approx(by_hand, rel=1e-12)


def test_the_deflated_sharpe_ratio_of_the_papers_example_is_its_printed_figure() -> None:
    dsr = deflated_sharpe_ratio(EXAMPLE_SHARPE_PER_DAY, 1250, -3.0, 10.0, 100, EXAMPLE_VARIANCE_PER_DAY)
    assert round(dsr, 4) == 0.9004
    # Equation (3) by hand, with the benchmark of equation (2).
    sr, sr0 = EXAMPLE_SHARPE_PER_DAY, 0.11317200186513214
    z = (sr - sr0) * math.sqrt(1249) / math.sqrt(1 + 3 * sr + (10 - 1) / 4 * sr**2)
    assert dsr == pytest.approx(norm.cdf(z), abs=1e-9)


def test_the_psr_is_one_half_at_the_benchmark_and_grows_with_the_track_record() -> None:
    assert probabilistic_sharpe_ratio(0.1, 0.1, 500, 0.0, 3.0) == pytest.approx(0.5)
    short = probabilistic_sharpe_ratio(0.05, 0.0, 100, 0.0, 3.0)
    long = probabilistic_sharpe_ratio(0.05, 0.0, 1000, 0.0, 3.0)
    assert 0.5 < short < long < 1
    # Negative skewness and fat tails make the same Sharpe ratio less certain.
    assert probabilistic_sharpe_ratio(0.05, 0.0, 1000, -3.0, 10.0) < long


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: expected_maximum_sharpe_ratio(1, 0.1), "trials must be an integer >= 2"),
        (lambda: expected_maximum_sharpe_ratio(10, -0.1), "trials_sharpe_variance"),
        (lambda: probabilistic_sharpe_ratio(0.1, 0.0, 1, 0.0, 3.0), "observations"),
        (lambda: probabilistic_sharpe_ratio(1.0, 0.0, 100, 3.0, 0.0), "is the kurtosis the excess one"),
        (lambda: probabilistic_sharpe_ratio(math.nan, 0.0, 100, 0.0, 3.0), "sharpe_ratio must be finite"),
    ],
)
def test_bad_input_says_what_is_wrong(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_returns_moments_match_the_reports_sharpe_ratio_and_scipys_moments() -> None:
    rng = np.random.default_rng(7)
    equity = 1000.0 * np.cumprod(1 + rng.normal(0.001, 0.02, 400))
    moments = returns_moments(equity, starting_cash=1000.0)
    returns = np.diff(np.concatenate(([1000.0], equity))) / np.concatenate(([1000.0], equity[:-1]))
    report = backtest_statistics(
        equity_curve=equity,
        buy_and_hold_curve=equity,
        exposure=np.ones(400, dtype=bool),
        trades=[],
        candle_seconds=86_400,
        starting_cash=1000.0,
    )
    assert moments.count == 400
    assert moments.sharpe_ratio is not None and report["sharpe_ratio"] is not None
    assert moments.sharpe_ratio * math.sqrt(365) == pytest.approx(report["sharpe_ratio"], rel=1e-9)
    assert moments.skewness == pytest.approx(skew(returns), rel=1e-9)
    assert moments.kurtosis == pytest.approx(kurtosis(returns, fisher=False), rel=1e-9)
    assert moments.blocks.shape == (DEFAULT_BLOCKS, 3)
    assert moments.blocks[:, 0].sum() == 400
    assert moments.blocks[:, 1].sum() == pytest.approx(returns.sum())
    assert moments.blocks[0, 1] == pytest.approx(returns[:25].sum())


def test_a_flat_curve_has_no_sharpe_ratio_and_a_ruin_stops_the_returns() -> None:
    flat = returns_moments(np.full(50, 1000.0), starting_cash=1000.0)
    assert (flat.sharpe_ratio, flat.skewness, flat.kurtosis) == (None, None, None)
    # Ruined at the fifth candle of eight: 5 returns, the last -1; the blocks are those of the 8 candles (2 each),
    # as for every other trial over them, the last one empty.
    ruined = returns_moments(
        np.array([900.0, 990.0, 495.0, 500.0, 0.0, 0.0, 0.0, 0.0]), starting_cash=1000.0, blocks=4
    )
    assert ruined.count == 5
    assert ruined.blocks[:, 0].tolist() == [2, 2, 1, 0]
    assert ruined.blocks[2, 1] == -1.0
    # Block 0: 900 / 1000 - 1 = -0.1 and 990 / 900 - 1 = 0.1; block 1: 495 / 990 - 1 = -0.5 and 500 / 495 - 1.
    assert ruined.blocks[0].tolist() == pytest.approx([2, 0.0, 0.02])
    assert ruined.blocks[1].tolist() == pytest.approx([2, -0.5 + 5 / 495, 0.25 + (5 / 495) ** 2])


def _pbo_by_slicing(returns: np.ndarray, blocks: int) -> tuple[float, list[float]]:
    """CSCV written straight from the paper over the full T x N matrix: slice rows, Sharpe by numpy."""
    parts = np.array_split(np.arange(returns.shape[0]), blocks)
    trials = returns.shape[1]
    logits = []
    for chosen in combinations(range(blocks), blocks // 2):
        rows_in = np.concatenate([parts[i] for i in chosen])
        rows_out = np.concatenate([parts[i] for i in range(blocks) if i not in chosen])
        sample_in, sample_out = returns[rows_in], returns[rows_out]
        sharpe_in = sample_in.mean(axis=0) / sample_in.std(axis=0, ddof=1)
        sharpe_out = sample_out.mean(axis=0) / sample_out.std(axis=0, ddof=1)
        best = int(np.argmax(sharpe_in))
        rank = rankdata(sharpe_out)[best]
        omega = rank / (trials + 1)
        logits.append(math.log(omega / (1 - omega)))
    return sum(1 for v in logits if v <= 0) / len(logits), logits


def test_pbo_of_a_small_case_equals_the_papers_procedure_over_the_whole_matrix() -> None:
    rng = np.random.default_rng(2015)
    returns = rng.normal(0.0, 0.01, size=(40, 3)) + np.array([0.0005, 0.0, -0.0003])
    moments = np.stack([block_moments(returns[:, j], 4) for j in range(3)])
    result = probability_of_backtest_overfitting(moments)
    expected, logits = _pbo_by_slicing(returns, 4)
    assert result.combinations == 6
    assert result.logits == pytest.approx(logits, rel=1e-9)
    assert result.probability == expected


def test_a_trial_better_in_every_block_is_never_overfit() -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(0.0, 0.01, size=(800, 20))
    returns = noise.copy()
    returns[:, 0] = np.abs(noise[:, 0]) + 0.002  # gains every candle: the best Sharpe ratio in any sample
    moments = np.stack([block_moments(returns[:, j], 16) for j in range(20)])
    result = probability_of_backtest_overfitting(moments)
    assert result.combinations == 12_870
    assert result.probability == 0.0
    assert np.allclose(result.logits, math.log(20 / 21 / (1 - 20 / 21)))


def test_pure_noise_is_overfit_about_half_the_time() -> None:
    rng = np.random.default_rng(11)
    returns = rng.normal(0.0, 0.01, size=(1000, 200))
    moments = np.stack([block_moments(returns[:, j], 16) for j in range(200)])
    result = probability_of_backtest_overfitting(moments)
    assert 0.35 < result.probability < 0.65


def test_pbo_of_equal_trials_puts_the_chosen_one_at_the_median() -> None:
    returns = np.tile(np.random.default_rng(5).normal(0.0, 0.01, size=(64, 1)), (1, 5))
    moments = np.stack([block_moments(returns[:, j], 8) for j in range(5)])
    result = probability_of_backtest_overfitting(moments)
    assert np.allclose(result.logits, 0.0)
    assert result.probability == 1.0


@pytest.mark.parametrize(
    ("shape", "message"),
    [((1, 16, 3), "at least 2"), ((5, 15, 3), "even"), ((5, 16), "shape")],
)
def test_pbo_refuses_bad_shapes(shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(np.ones(shape))


def test_pbo_of_ten_thousand_trials_and_sixteen_blocks_takes_seconds() -> None:
    rng = np.random.default_rng(1)
    counts = np.full((10_000, 16, 1), 100.0)
    sums = rng.normal(0.0, 0.1, size=(10_000, 16, 1))
    squares = 100 * 0.01**2 + sums**2 / 100 + rng.uniform(0, 0.001, size=(10_000, 16, 1))
    moments = np.concatenate([counts, sums, squares], axis=2)
    began = time.perf_counter()
    result = probability_of_backtest_overfitting(moments)
    elapsed = time.perf_counter() - began
    assert result.combinations == 12_870
    assert elapsed < 20, f"12,870 combinations of 10,000 trials took {elapsed:.1f} s"


def test_importing_the_module_does_not_import_scipy_stats() -> None:
    # numba imports scipy's top package when it is installed; the distributions are scipy.stats.
    code = "import sys, trading.engine.overfitting; print('scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603 - fixed program and arguments
    assert out.stdout.strip() == "False"
