"""Monte Carlo of a run's trades (trading/engine/monte_carlo.py), against hand-worked paths and a loop oracle."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.engine.monte_carlo import (
    FAN_PERCENTILES,
    MAX_FAN_POINTS,
    MAX_PATH_TRADES,
    MAX_PATHS,
    monte_carlo_trades,
    proportion_interval,
    trade_returns,
)


def oracle_path(start: float, returns: list[float]) -> tuple[list[float], float, int]:
    """Equity path, maximum drawdown and longest drawdown (trades), with plain loops (an independent oracle)."""
    equity = [start]
    for r in returns:
        equity.append(equity[-1] * (1 + r))
    peak = start
    worst = 0.0
    run = longest = 0
    for value in equity[1:]:
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak)
        run = run + 1 if value < peak else 0
        longest = max(longest, run)
    return equity, worst, longest


# Start 100; trades +10 %, -10 %, -10 % in exit order. The three distinct orders (each 2 of the 6 permutations):
#   +10, -10, -10: 110, 99, 89.1   peak 110, trough 89.1: drawdown 20.9 / 110 = 0.19;  under water 2 trades
#   -10, +10, -10:  90, 99, 89.1   peak 100, trough 89.1: drawdown 10.9 / 100 = 0.109; under water 3 trades
#   -10, -10, +10:  90, 81, 89.1   peak 100, trough 81:   drawdown 19 / 100 = 0.19;    under water 3 trades
HAND_RETURNS = [0.10, -0.10, -0.10]
HAND_ORDERS = [
    ((0.10, -0.10, -0.10), [100, 110, 99, 89.1], 0.19, 2),
    ((-0.10, 0.10, -0.10), [100, 90, 99, 89.1], 0.109, 3),
    ((-0.10, -0.10, 0.10), [100, 90, 81, 89.1], 0.19, 3),
]


@pytest.mark.parametrize(("order", "path", "drawdown", "longest"), HAND_ORDERS)
def test_hand_worked_orders_match_the_oracle_and_the_engines_actual_path(
    order: tuple[float, ...], path: list[float], drawdown: float, longest: int
) -> None:
    equity, worst, run = oracle_path(100.0, list(order))
    assert equity == pytest.approx(path)
    assert worst == pytest.approx(drawdown)
    assert run == longest
    result = monte_carlo_trades(np.array(order), starting_equity=100.0, paths=10, seed=1)
    np.testing.assert_allclose(result.actual_equity, path)
    assert result.actual_max_drawdown_ratio == pytest.approx(drawdown)
    assert result.actual_longest_drawdown_trades == longest


def test_trade_returns_compound_back_to_the_realised_path() -> None:
    # pnl 10, -11, -9.9 from 100: equity 110, 99, 89.1; returns 10/100, -11/110, -9.9/99.
    returns = trade_returns(np.array([10.0, -11.0, -9.9]), starting_equity=100.0)
    np.testing.assert_allclose(returns, HAND_RETURNS)
    result = monte_carlo_trades(returns, starting_equity=100.0, paths=5)
    np.testing.assert_allclose(result.actual_equity, [100, 110, 99, 89.1])
    assert result.actual_equity[-1] == pytest.approx(100 + 10 - 11 - 9.9)


def test_reshuffle_distribution_is_that_of_the_six_permutations() -> None:
    oracle = [oracle_path(100.0, [HAND_RETURNS[i] for i in p]) for p in itertools.permutations(range(3))]
    result = monte_carlo_trades(
        np.array(HAND_RETURNS),
        starting_equity=100.0,
        method="reshuffle",
        paths=6000,
        seed=7,
        drawdown_limit_ratio=0.15,
    )
    # Every path is one of the permutations' paths.
    worst_values = np.array([worst for _, worst, _ in oracle])
    longest_values = np.array([longest for _, _, longest in oracle])
    assert np.isclose(result.max_drawdown_ratio[:, None], worst_values[None, :]).any(axis=1).all()
    assert set(result.longest_drawdown_trades.tolist()) <= set(longest_values.tolist())
    # Each permutation is equally likely: P(drawdown 0.19) = 4/6, P(longest 3) = 4/6 (2 permutations per order).
    assert np.mean(np.isclose(result.max_drawdown_ratio, 0.19)) == pytest.approx(4 / 6, abs=0.03)
    assert np.mean(result.longest_drawdown_trades == 3) == pytest.approx(4 / 6, abs=0.03)
    assert np.mean(result.longest_drawdown_trades == 2) == pytest.approx(2 / 6, abs=0.03)
    # Beyond 15 %: the paths at 0.19, counted directly.
    assert (
        result.drawdown_beyond_limit_probability == np.count_nonzero(result.max_drawdown_ratio > 0.15) / 6000
    )
    assert result.drawdown_beyond_limit_probability == pytest.approx(4 / 6, abs=0.03)
    # Percentiles: with 2/3 at 0.19 and 1/3 at 0.109, the 5th is 0.109 and the 50th and 95th 0.19.
    np.testing.assert_allclose(result.max_drawdown_ratio_percentiles, [0.109, 0.19, 0.19])
    np.testing.assert_allclose(result.final_equity, 89.1)


def test_same_seed_same_paths_other_seed_other_paths() -> None:
    returns = np.random.default_rng(3).normal(0.001, 0.02, 60)
    for method in ("reshuffle", "bootstrap"):
        a = monte_carlo_trades(returns, starting_equity=1000.0, method=method, paths=200, seed=42)
        b = monte_carlo_trades(returns, starting_equity=1000.0, method=method, paths=200, seed=42)
        c = monte_carlo_trades(returns, starting_equity=1000.0, method=method, paths=200, seed=43)
        np.testing.assert_array_equal(a.max_drawdown_ratio, b.max_drawdown_ratio)
        np.testing.assert_array_equal(a.final_equity, b.final_equity)
        np.testing.assert_array_equal(a.fan_equity, b.fan_equity)
        assert not np.array_equal(a.max_drawdown_ratio, c.max_drawdown_ratio)


def test_reshuffle_keeps_the_final_equity_bootstrap_does_not() -> None:
    returns = np.random.default_rng(5).normal(0.002, 0.03, 40)
    product = 500.0 * np.prod(1 + returns)
    shuffled = monte_carlo_trades(returns, starting_equity=500.0, method="reshuffle", paths=300, seed=1)
    np.testing.assert_allclose(shuffled.final_equity, product, rtol=1e-12)
    np.testing.assert_allclose(shuffled.final_equity_percentiles, product, rtol=1e-12)
    assert shuffled.max_drawdown_ratio.std() > 0  # the paths differ
    booted = monte_carlo_trades(returns, starting_equity=500.0, method="bootstrap", paths=300, seed=1)
    assert booted.final_equity.std() > 0


def test_bootstrap_draws_a_trade_more_than_once() -> None:
    # Trades +10 % and -10 % from 100: reshuffled, always 110 * 0.9 = 99. Bootstrapped, four equally likely draws:
    # (+,+) 121, (+,-) 99, (-,+) 99, (-,-) 81.
    returns = np.array([0.10, -0.10])
    shuffled = monte_carlo_trades(returns, starting_equity=100.0, method="reshuffle", paths=400, seed=2)
    np.testing.assert_allclose(shuffled.final_equity, 99.0)
    booted = monte_carlo_trades(returns, starting_equity=100.0, method="bootstrap", paths=4000, seed=2)
    finals = np.round(booted.final_equity, 9)
    assert set(finals.tolist()) == {121.0, 99.0, 81.0}
    assert np.mean(finals == 121.0) == pytest.approx(0.25, abs=0.03)
    assert np.mean(finals == 99.0) == pytest.approx(0.5, abs=0.03)
    # One trade drawn n times: every path is that trade repeated.
    single = monte_carlo_trades(np.array([0.05]), starting_equity=100.0, method="bootstrap", paths=50, seed=0)
    np.testing.assert_allclose(single.final_equity, 105.0)


@pytest.mark.parametrize("limit", [0.05, 0.2, 0.35, 0.6])
def test_drawdown_probability_is_the_direct_count(limit: float) -> None:
    returns = np.random.default_rng(11).normal(0.0, 0.05, 80)
    result = monte_carlo_trades(returns, starting_equity=1.0, paths=700, seed=9, drawdown_limit_ratio=limit)
    beyond = int((result.max_drawdown_ratio > limit).sum())
    assert result.drawdown_beyond_limit_probability == beyond / 700
    low, high = result.drawdown_beyond_limit_interval
    assert 0 <= low <= beyond / 700 <= high <= 1


def test_percentiles_and_fan_against_numpy_over_the_paths() -> None:
    returns = np.random.default_rng(13).normal(0.001, 0.02, 30)
    result = monte_carlo_trades(returns, starting_equity=10_000.0, method="bootstrap", paths=500, seed=4)
    np.testing.assert_allclose(
        result.final_equity_percentiles, np.percentile(result.final_equity, [5, 50, 95])
    )
    np.testing.assert_allclose(
        result.longest_drawdown_trades_percentiles, np.percentile(result.longest_drawdown_trades, [5, 50, 95])
    )
    assert result.fan_equity.shape == (len(FAN_PERCENTILES), 31)
    np.testing.assert_array_equal(result.fan_trade_numbers, np.arange(31))
    np.testing.assert_allclose(result.fan_equity[:, 0], 10_000.0)
    np.testing.assert_allclose(result.fan_equity[:, -1], np.percentile(result.final_equity, FAN_PERCENTILES))
    assert (np.diff(result.fan_equity, axis=0) >= 0).all()  # 5th <= 25th <= ... at every trade
    assert result.final_equity.dtype == np.float64
    assert result.longest_drawdown_trades.dtype == np.int64


def test_a_long_run_has_a_fan_of_at_most_max_fan_points() -> None:
    returns = np.random.default_rng(1).normal(0.0, 0.01, 2000)
    result = monte_carlo_trades(returns, starting_equity=1.0, paths=20, seed=0)
    assert result.fan_trade_numbers.size <= MAX_FAN_POINTS
    assert result.fan_trade_numbers[0] == 0
    assert result.fan_trade_numbers[-1] == 2000
    assert result.fan_equity.shape == (5, result.fan_trade_numbers.size)
    assert result.actual_equity.shape == (2001,)


def test_many_paths_in_chunks_match_the_oracle_path_by_path() -> None:
    # More paths than one chunk holds (2**20 // 600 = 1747): figures per path still those of the loop oracle.
    returns = np.random.default_rng(8).normal(0.0, 0.03, 600)
    result = monte_carlo_trades(returns, starting_equity=1.0, method="bootstrap", paths=1800, seed=6)
    rng = np.random.default_rng(6)
    first = returns[rng.integers(0, 600, size=(600, 1747))]
    for path in (0, 5, 1746):
        _, worst, longest = oracle_path(1.0, first[:, path].tolist())
        assert result.max_drawdown_ratio[path] == pytest.approx(worst, rel=1e-9)
        assert result.longest_drawdown_trades[path] == longest


def test_a_ruining_trade_puts_the_path_at_zero_with_full_drawdown() -> None:
    result = monte_carlo_trades(np.array([0.5, -1.0, 0.2]), starting_equity=10.0, paths=50, seed=0)
    np.testing.assert_allclose(result.final_equity, 0.0)
    np.testing.assert_allclose(result.max_drawdown_ratio, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "shuffle"}, "method must be one of"),
        ({"paths": 0}, "paths must be"),
        ({"paths": MAX_PATHS + 1}, "paths must be"),
        ({"paths": 10.0}, "paths must be"),
        ({"paths": True}, "paths must be"),
        ({"seed": -1}, "seed must be"),
        ({"seed": "1"}, "seed must be"),
        ({"drawdown_limit_ratio": 0.0}, "drawdown_limit_ratio"),
        ({"drawdown_limit_ratio": 1.0}, "drawdown_limit_ratio"),
        ({"drawdown_limit_ratio": math.nan}, "drawdown_limit_ratio"),
        ({"starting_equity": 0.0}, "starting_equity"),
        ({"trade_returns_ratio": np.array([])}, "at least one trade"),
        ({"trade_returns_ratio": np.array([[0.1]])}, "1-D"),
        ({"trade_returns_ratio": np.array([0.1, math.nan])}, "finite"),
        ({"trade_returns_ratio": np.array([-1.5])}, ">= -1"),
        ({"trade_returns_ratio": np.zeros(MAX_PATH_TRADES // 1000 + 1), "paths": 1000}, "at most"),
    ],
)
def test_bad_input_raises_value_error(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"trade_returns_ratio": np.array([0.1, -0.05]), "starting_equity": 100.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        monte_carlo_trades(**arguments)


@pytest.mark.parametrize(
    ("pnl", "start", "message"),
    [
        ([10.0, math.nan], 100.0, "open trade"),
        ([10.0], 0.0, "starting_equity"),
        ([-100.0, 5.0], 100.0, "ruined"),
        ([-150.0], 100.0, "cannot owe"),
        ([[1.0]], 100.0, "1-D"),
    ],
)
def test_trade_returns_bad_input(pnl: list[Any], start: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trade_returns(np.array(pnl), starting_equity=start)


def test_proportion_interval_is_scipys_clopper_pearson() -> None:
    # 0 of 10: the exact upper bound is 1 - 0.025 ** (1 / 10) = 0.3084971078...
    low, high = proportion_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(1 - 0.025 ** (1 / 10))


@settings(max_examples=40, deadline=None)
@given(
    returns=st.lists(st.floats(-0.9, 2.0, allow_nan=False), min_size=1, max_size=25),
    method=st.sampled_from(["reshuffle", "bootstrap"]),
    seed=st.integers(0, 2**32),
)
def test_figures_stay_in_their_ranges(returns: list[float], method: str, seed: int) -> None:
    result = monte_carlo_trades(np.array(returns), starting_equity=100.0, method=method, paths=30, seed=seed)
    assert ((result.max_drawdown_ratio >= 0) & (result.max_drawdown_ratio <= 1)).all()
    assert ((result.longest_drawdown_trades >= 0) & (result.longest_drawdown_trades <= len(returns))).all()
    assert (result.final_equity >= 0).all()
    if method == "reshuffle":
        np.testing.assert_allclose(result.final_equity, 100.0 * np.prod(1 + np.array(returns)), rtol=1e-9)
    _, worst, longest = oracle_path(100.0, returns)
    assert result.actual_max_drawdown_ratio == pytest.approx(worst, abs=1e-12)
    assert result.actual_longest_drawdown_trades == longest


def test_importing_the_module_does_not_import_scipy_and_the_step_path_does_not_import_it() -> None:
    # scipy is imported inside proportion_interval only. (numba itself loads scipy when it is installed, so the
    # step path is checked for not importing this module rather than for scipy.)
    code = (
        "import sys, trading.engine.monte_carlo; print('scipy' in sys.modules); "
        "import trading.engine.step, trading.engine.backtest; "
        "print([m for m in sys.modules if m.startswith('trading') and m != 'trading.engine.monte_carlo' "
        "and 'monte_carlo' in m])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)  # noqa: S603
    assert out.stdout.split() == ["False", "[]"]
    step = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, trading.engine.step; print('trading.engine.monte_carlo' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert step.stdout.strip() == "False"
