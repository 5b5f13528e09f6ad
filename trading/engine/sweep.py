"""Sweeps in the engine: many criteria run over the same candles and days, the work they share done once.

A point of a sweep equals the single run of its criteria exactly (:func:`trading.engine.backtest.backtest` with
the same arguments): the same trades, curves and statistics, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import Criteria
from trading.engine.types import SECONDS_PER_DAY, CandleArrays


def sweep_backtest(
    *,
    criteria: Sequence[Criteria],
    instruments: Sequence[CandleArrays],
    start_time_seconds: int,
    end_time_seconds: int,
    starting_cash: float,
    candle_seconds: int = SECONDS_PER_DAY,
    close_at_end: bool = False,
    finer: Mapping[str, CandleArrays] | None = None,
) -> list[BacktestResult]:
    """Backtest each of ``criteria`` over the same candles and boundaries.

    Each distinct indicator series (an operand of the criteria: indicator, parameters, shift) is computed once
    per instrument for the whole sweep.

    Args:
        criteria: the points' parsed criteria, in the order of the results.
        instruments, start_time_seconds, end_time_seconds, starting_cash, candle_seconds, close_at_end, finer:
            as :func:`trading.engine.backtest.backtest`, the same for every point.

    Returns:
        One :class:`~trading.engine.backtest.BacktestResult` per criteria, equal to ``backtest(criteria=c, ...)``.

    Raises:
        ValueError: as :func:`~trading.engine.backtest.backtest` (bad range, repeated symbols).
    """
    cache: dict[str, dict[Any, np.ndarray]] = {c.symbol: {} for c in instruments}
    return [
        backtest(
            criteria=point,
            instruments=instruments,
            start_time_seconds=start_time_seconds,
            end_time_seconds=end_time_seconds,
            starting_cash=starting_cash,
            candle_seconds=candle_seconds,
            close_at_end=close_at_end,
            finer=finer,
            indicator_cache=cache,
        )
        for point in criteria
    ]
