"""The backtest: the boundary steps of :mod:`trading.engine.step`, run over history, with shared cash.

Boundary ``b`` is the open of the candle starting at ``b`` (the live cycle's ``as_of`` day ``b``): candle
``t = b - candle_seconds`` has closed, and its signals act at the open of ``b``. A backtest from ``start`` to
``end`` runs every boundary ``start <= b <= end``, exactly as the cycle replayed day by day over those days.
Indicators use every candle given, including those before ``start``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trading.engine.conditions import Signals, signals_compute
from trading.engine.criteria import Criteria
from trading.engine.exits import END_OF_DATA, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP
from trading.engine.step import InstrumentAtBoundary, OpenTrade, step_entries, step_exits, trade_close_at
from trading.engine.types import SECONDS_PER_DAY, CandleArrays, Trade


@dataclass
class BacktestResult:
    """What a backtest made.

    Attributes:
        trades: every trade, closed and open, in entry order (then symbol).
        times: shape (n,), int64, seconds since epoch: the open time of each candle of the curves.
        equity_curve: shape (n,), float64, quote currency: cash plus open positions at each candle's close.
        buy_and_hold_curve: shape (n,), float64: the starting cash split equally across the instruments,
            each share bought at its first open in the range (no fee) and marked at the closes.
        exposure: shape (n,), bool: a position was open at some point of the candle.
        statistics: :func:`trading.engine.statistics.backtest_statistics` of the above.
    """

    trades: list[Trade]
    times: np.ndarray
    equity_curve: np.ndarray
    buy_and_hold_curve: np.ndarray
    exposure: np.ndarray
    statistics: dict[str, Any] = field(default_factory=dict)


RISK_REASONS = (STOP_LOSS, TAKE_PROFIT, TRAILING_STOP)


def _index_at(open_time: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """Index of the candle opening exactly at each moment, or -1."""
    positions = np.searchsorted(open_time, moments)
    clipped = np.minimum(positions, max(open_time.shape[0] - 1, 0))
    found = (
        (positions < open_time.shape[0]) & (open_time[clipped] == moments)
        if open_time.shape[0]
        else positions < 0
    )
    return np.where(found, clipped, -1)


def market_at(
    candles: CandleArrays,
    signals: Signals,
    *,
    t: int,
    next_index: int | None,
    next_time: int | None,
    next_price: float | None,
) -> InstrumentAtBoundary:
    """Return an instrument at a boundary, candle ``t`` being its last completed candle (or -1 for none)."""
    if t < 0:
        return InstrumentAtBoundary(
            symbol=candles.symbol,
            index=None,
            next_index=next_index,
            next_time=next_time,
            next_price=next_price,
        )
    return InstrumentAtBoundary(
        symbol=candles.symbol,
        index=t,
        open_time=int(candles.open_time[t]),
        open=float(candles.open[t]),
        high=float(candles.high[t]),
        low=float(candles.low[t]),
        close=float(candles.close[t]),
        entry_signal=bool(signals.entry[t]),
        exit_signal=bool(signals.exit[t]),
        next_index=next_index,
        next_time=next_time,
        next_price=next_price,
    )


def backtest(
    *,
    criteria: Criteria,
    instruments: Sequence[CandleArrays],
    start_time: int,
    end_time: int,
    starting_cash: float,
    candle_seconds: int = SECONDS_PER_DAY,
    close_at_end: bool = False,
) -> BacktestResult:
    """Run ``criteria`` over the candles of one or several instruments that share one cash balance.

    Args:
        criteria: parsed criteria.
        instruments: each instrument's candles (all of them: indicators warm up before ``start_time``);
            symbols must be unique.
        start_time, end_time: the first and last boundary, seconds since epoch, multiples of ``candle_seconds``.
        starting_cash: quote currency, > 0.
        candle_seconds: candle length (86,400 for daily candles).
        close_at_end: close what is still open at the last close in the range (exit reason ``end_of_data``)
            instead of reporting it open.

    Returns:
        :class:`BacktestResult`.

    Raises:
        ValueError: ``end_time < start_time``, or symbols repeat.
    """
    if end_time < start_time:
        raise ValueError(f"end_time {end_time} is before start_time {start_time}")
    symbols = [c.symbol for c in instruments]
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"instrument symbols must be unique, got {symbols}")
    boundaries = np.arange(start_time, end_time + 1, candle_seconds, dtype=np.int64)
    signals = {c.symbol: signals_compute(criteria, c) for c in instruments}
    last_index = {c.symbol: _index_at(c.open_time, boundaries - candle_seconds) for c in instruments}
    next_index = {c.symbol: _index_at(c.open_time, boundaries) for c in instruments}

    cash = float(starting_cash)
    open_trades: dict[str, OpenTrade] = {}
    done: list[Trade] = []
    for position, boundary in enumerate(boundaries):
        market: dict[str, InstrumentAtBoundary] = {}
        for candles in instruments:
            symbol = candles.symbol
            nxt = int(next_index[symbol][position])
            market[symbol] = market_at(
                candles,
                signals[symbol],
                t=int(last_index[symbol][position]),
                next_index=nxt if nxt >= 0 else None,
                next_time=int(boundary) if nxt >= 0 else None,
                next_price=float(candles.open[nxt]) if nxt >= 0 else None,
            )
        entered, cash = step_entries(criteria=criteria, market=market, open_trades=open_trades, cash=cash)
        for trade in entered:
            open_trades[trade.symbol] = OpenTrade(trade=trade, trail_reference=trade.entry_price)
        closed, open_trades = step_exits(criteria=criteria, market=market, open_trades=open_trades)
        for trade in closed:
            cash += trade.exit_price * trade.quantity - trade.exit_fee  # type: ignore[operator]
        done.extend(closed)

    by_symbol = {c.symbol: c for c in instruments}
    remaining = [o.trade for o in open_trades.values()]
    if close_at_end:
        closing: list[Trade] = []
        for trade in remaining:
            candles = by_symbol[trade.symbol]
            last = int(np.searchsorted(candles.open_time, end_time, side="right")) - 1
            closing.append(
                trade_close_at(
                    trade,
                    criteria,
                    index=last,
                    time=int(candles.open_time[last]) + candle_seconds,
                    raw_price=float(candles.close[last]),
                    reason=END_OF_DATA,
                )
            )
        remaining = closing
    trades = sorted(done + remaining, key=lambda t: (t.entry_time, t.symbol))
    times = boundaries
    equity, exposure = _curves(trades, instruments, times, starting_cash)
    buy_and_hold = _buy_and_hold(instruments, times, starting_cash)
    from trading.engine.statistics import backtest_statistics

    statistics = backtest_statistics(
        equity_curve=equity,
        buy_and_hold_curve=buy_and_hold,
        exposure=exposure,
        trades=trades,
        candle_seconds=candle_seconds,
        starting_cash=starting_cash,
    )
    return BacktestResult(trades, times, equity, buy_and_hold, exposure, statistics)


def _closes_on(candles: CandleArrays, times: np.ndarray) -> np.ndarray:
    """The close of the last candle opened at or before each time (NaN before the first candle)."""
    idx = np.searchsorted(candles.open_time, times, side="right") - 1
    closes = np.where(idx >= 0, candles.close[np.maximum(idx, 0)], np.nan)
    return np.asarray(closes, dtype=np.float64)


def _curves(
    trades: list[Trade], instruments: Sequence[CandleArrays], times: np.ndarray, starting_cash: float
) -> tuple[np.ndarray, np.ndarray]:
    """Equity at each candle's close, and exposure, rebuilt from the trades (see :class:`BacktestResult`).

    A trade entered at the open of candle ``s`` and exited at candle ``k`` is held at the closes of
    ``s .. k-1``; its cost leaves the cash at ``s`` and its proceeds arrive at ``k``. ``k`` is the candle of a
    risk exit (which happens inside it, so the candle counts as exposed), the candle at whose open a signal or
    max-holding exit fills, or the last candle for ``end_of_data``.
    """
    n = times.shape[0]
    cash_delta = np.zeros(n)
    held_value = np.zeros(n)
    exposure = np.zeros(n, dtype=bool)
    closes = {c.symbol: _closes_on(c, times) for c in instruments}
    for trade in trades:
        start = int(np.searchsorted(times, trade.entry_time))
        if start >= n:
            continue
        cash_delta[start] -= trade.cost
        if trade.exit_time is None or trade.exit_price is None or trade.exit_fee is None:
            end, exposed_until = n, n
        else:
            end = (
                n - 1
                if trade.exit_reason == END_OF_DATA
                else min(int(np.searchsorted(times, trade.exit_time)), n - 1)
            )
            cash_delta[end] += trade.exit_price * trade.quantity - trade.exit_fee
            exposed_until = end + 1 if trade.exit_reason in (*RISK_REASONS, END_OF_DATA) else end
        held_value[start:end] += trade.quantity * np.nan_to_num(closes[trade.symbol][start:end])
        exposure[start:exposed_until] = True
    return starting_cash + np.cumsum(cash_delta) + held_value, exposure


def _buy_and_hold(instruments: Sequence[CandleArrays], times: np.ndarray, starting_cash: float) -> np.ndarray:
    share = starting_cash / max(len(instruments), 1)
    total = np.zeros(times.shape[0])
    for candles in instruments:
        first = _index_at(candles.open_time, times)
        available = np.flatnonzero(first >= 0)
        if available.size == 0:
            total += share
            continue
        bought_at = int(available[0])
        quantity = share / float(candles.open[first[bought_at]])
        value = quantity * _closes_on(candles, times)
        value[:bought_at] = share
        total += value
    return total
