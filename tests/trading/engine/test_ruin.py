"""A ruined account (its equity reaches 0) does not fail a run: the curve is clamped at 0 from the ruin on and the
statistics are those of a wiped-out account (trading/engine/statistics.py, "Ruin")."""

from __future__ import annotations

import numpy as np
import pytest

from trading.engine.backtest import backtest
from trading.engine.criteria import criteria_parse
from trading.engine.examples import sma_cross_criteria
from trading.engine.statistics import backtest_statistics, equity_at_ruin
from trading.engine.types import RUIN_TOLERANCE_RATIO, CandleArrays


def test_fees_that_eat_the_account_ruin_it_and_the_run_has_statistics() -> None:
    n = 1500
    times = np.arange(n, dtype=np.int64) * 86_400 + 17_000 * 86_400
    price = 100 + 10 * np.sin(np.arange(n) * 2 * np.pi / 6)  # an SMA 2/3 cross every few days
    candles = CandleArrays("X", times, price.copy(), price + 1, price - 1, price.copy(), np.ones(n))
    criteria = {**sma_cross_criteria(fast_period=2, slow_period=3), "fee_rate": 0.09, "slippage_ratio": 0.05}

    result = backtest(
        criteria=criteria_parse(criteria),
        instruments=[candles],
        start_time_seconds=int(times[10]),
        end_time_seconds=int(times[-1]),
        starting_cash=10_000.0,
        close_at_end=True,
    )

    _, ruin = equity_at_ruin(result.equity_curve, starting_cash=10_000.0)
    assert ruin is not None and 0 < ruin < n - 11
    assert np.all(result.equity_curve[ruin:] == 0.0) and np.all(result.equity_curve[:ruin] > 0)
    # A ruined account enters no more: no trade starts after the candle of the ruin.
    assert result.trades and max(t.entry_time_seconds for t in result.trades) <= int(result.times[ruin])
    figures = result.statistics
    assert figures["total_return_ratio"] == -1.0
    assert figures["max_drawdown_ratio"] == 1.0
    assert figures["cagr_ratio"] == -1.0
    assert figures["calmar_ratio"] == -1.0
    assert figures["final_equity"] == 0.0
    # Sharpe over the returns up to the ruin only: the same figure as for the curve cut at the ruin.
    cut = backtest_statistics(
        equity_curve=result.equity_curve[: ruin + 1],
        buy_and_hold_curve=result.buy_and_hold_curve[: ruin + 1],
        exposure=result.exposure[: ruin + 1],
        trades=[],
        candle_seconds=86_400,
        starting_cash=10_000.0,
    )
    assert figures["sharpe_ratio"] == cut["sharpe_ratio"] and figures["sharpe_ratio"] is not None
    assert figures["sortino_ratio"] == cut["sortino_ratio"]


def test_rounding_below_zero_is_zero_and_real_debt_is_an_error() -> None:
    tiny = -0.5 * RUIN_TOLERANCE_RATIO * 10_000.0
    curve, ruin = equity_at_ruin(np.array([10_000.0, 5.0, tiny, tiny]), starting_cash=10_000.0)

    assert ruin == 2
    assert curve.tolist() == [10_000.0, 5.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="cannot owe money"):
        equity_at_ruin(np.array([10_000.0, -1.0]), starting_cash=10_000.0)


def test_a_curve_that_is_not_ruined_has_the_same_statistics_as_before() -> None:
    equity = np.array([101.0, 99.0, 104.0, 103.0])
    figures = backtest_statistics(
        equity_curve=equity,
        buy_and_hold_curve=equity,
        exposure=np.ones(4, dtype=bool),
        trades=[],
        candle_seconds=86_400,
        starting_cash=100.0,
    )
    returns = np.diff(np.r_[100.0, equity]) / np.r_[100.0, equity][:-1]

    assert equity_at_ruin(equity)[1] is None
    assert figures["total_return_ratio"] == pytest.approx(0.03)
    assert figures["sharpe_ratio"] == pytest.approx(returns.mean() / returns.std(ddof=1) * np.sqrt(365))
    assert figures["max_drawdown_ratio"] == pytest.approx(2.0 / 101.0)
