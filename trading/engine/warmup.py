"""Compile the engine's Numba functions into their on-disk cache: ``python -m trading.engine.warmup``.

Numba compiles a function the first time it is called with given argument types and, with ``cache=True``, keeps
the machine code in ``NUMBA_CACHE_DIR`` (or ``__pycache__`` beside the module). The Docker image runs this once
at build, so no web or worker process pays the compilation (several seconds) on its first simulation or daily
step. It runs a small backtest with every rule switched on, a sweep of two points with the moments and PBO of their
curves, and one boundary of the live path, which calls every compiled function with the argument types the app uses.
"""

from __future__ import annotations

import time

import numpy as np

from trading.engine.backtest import backtest
from trading.engine.criteria import criteria_parse
from trading.engine.overfitting import probability_of_backtest_overfitting, returns_moments_of_curves
from trading.engine.portfolio import PortfolioBook, portfolio_backtest
from trading.engine.step import InstrumentAtBoundary, OpenTrade, step_entries, step_exits, trade_close_at
from trading.engine.sweep import sweep_statistics
from trading.engine.types import SECONDS_PER_DAY, CandleArrays
from trading.engine.vocabulary import ExitReason

_CRITERIA = {
    "version": 1,
    "side": "long",
    "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"indicator": "sma", "period": 2}},
    "exit": {"left": {"indicator": "close"}, "op": "<", "right": {"indicator": "sma", "period": 2}},
    "stop_loss_ratio": 0.05,
    "take_profit_ratio": 0.1,
    "trailing_stop_ratio": 0.03,
    "max_holding_days": 3,
    # Every limit, so the live open step's first halting strategy does not compile its functions.
    "limits": {
        "max_open_positions": 2,
        "max_exposure_ratio": 0.9,
        "daily_loss_limit_ratio": 0.05,
        "max_drawdown_halt_ratio": 0.2,
        "drawdown_resume_days": 5,
        "cooldown_days_after_stop_loss": 1,
    },
}


def warm() -> float:
    """Call every compiled function once; return the seconds it took (compiling, or loading the cache)."""
    began = time.perf_counter()
    criteria = criteria_parse(_CRITERIA)
    close = np.array([100.0, 103.0, 101.0, 106.0, 99.0, 104.0, 108.0, 102.0, 110.0, 107.0])
    candles = CandleArrays(
        symbol="WARM",
        open_time_seconds=np.arange(close.shape[0], dtype=np.int64) * SECONDS_PER_DAY,
        open=close,
        high=close * 1.02,
        low=close * 0.97,
        close=close,
        volume=np.ones_like(close),
    )
    result = backtest(
        criteria=criteria,
        instruments=[candles],
        start_time_seconds=2 * SECONDS_PER_DAY,
        end_time_seconds=9 * SECONDS_PER_DAY,
        starting_cash=1000.0,
        close_at_end=True,
    )
    sweep_statistics(  # the sweep kernel: the simulator's sweeps and walk-forwards
        criteria=[criteria, criteria],
        instruments=[candles],
        start_time_seconds=2 * SECONDS_PER_DAY,
        end_time_seconds=9 * SECONDS_PER_DAY,
        starting_cash=1000.0,
        close_at_end=True,
        keep_curves=True,
    )
    atr_sized = criteria_parse(
        {
            **{k: v for k, v in _CRITERIA.items() if k != "stop_loss_ratio"},
            "sizing": {"method": "risk", "value": 0.01, "stop": {"atr": 2, "multiple": 2}},
        }
    )
    portfolio_backtest(  # the portfolio kernel's books, with risk sizing on an ATR stop
        books=[PortfolioBook("a", criteria, [candles], 0.5), PortfolioBook("b", atr_sized, [candles], 0.5)],
        start_time_seconds=2 * SECONDS_PER_DAY,
        end_time_seconds=9 * SECONDS_PER_DAY,
        starting_cash=1000.0,
        limits=criteria.limits,
    )
    curves = np.vstack([result.equity_curve, result.equity_curve * 1.01])
    moments = returns_moments_of_curves(curves, starting_cash=1000.0, blocks=4)  # a sweep's robustness
    probability_of_backtest_overfitting(np.stack([m.blocks for m in moments]))
    here = InstrumentAtBoundary(
        symbol="WARM",
        index=3,
        open_time_seconds=3 * SECONDS_PER_DAY,
        open=106.0,
        high=108.0,
        low=104.0,
        close=106.0,
        entry_signal=True,
        exit_signal=True,
        next_index=-1,
        next_time_seconds=4 * SECONDS_PER_DAY,
        next_price=99.0,
    )
    entered = step_entries(
        criteria=criteria,
        market={"WARM": here},
        open_trades={},
        cash=1000.0,
        starting_cash=1000.0,
        boundary_seconds=4 * SECONDS_PER_DAY,
        stop_loss_exits={"WARM": 2 * SECONDS_PER_DAY},
    ).trades
    open_trades = {t.symbol: OpenTrade(trade=t, trail_reference=t.entry_price) for t in result.trades[:1]}
    step_exits(criteria=criteria, market={"WARM": here}, open_trades=open_trades)
    for trade in entered:
        trade_close_at(
            trade, criteria, index=4, time=5 * SECONDS_PER_DAY, raw_price=99.0, reason=ExitReason.MANUAL
        )
    return time.perf_counter() - began


if __name__ == "__main__":
    print(f"engine compiled and cached in {warm():.1f} s")
