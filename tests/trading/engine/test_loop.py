"""The compiled engine core: its indexing shortcuts, its trade log, and its per-boundary rules called from Python."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.engine import backtest as backtest_module
from trading.engine import layout, rules
from trading.engine.backtest import _index_at, _index_on, backtest
from trading.engine.criteria import criteria_parse
from trading.engine.types import CandleArrays, TradeLog

STEP = 60


@st.composite
def times_and_moments(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Candle open times (regular or with gaps) and moments around them, some not on the grid."""
    offsets = draw(st.lists(st.integers(0, 40), min_size=0, max_size=30, unique=True))
    open_time = 1_700_000_000 + STEP * np.array(sorted(offsets), dtype=np.int64)
    moments = 1_700_000_000 + np.array(draw(st.lists(st.integers(-200, 3000), max_size=40)), dtype=np.int64)
    return open_time, moments


@given(times_and_moments())
@settings(max_examples=300, deadline=None)
def test_index_shortcuts_agree_with_binary_search(data: tuple[np.ndarray, np.ndarray]) -> None:
    open_time, moments = data
    # With the step the arithmetic shortcut runs when the candles have no gaps; without it, binary search does.
    assert _index_at(open_time, moments, STEP).tolist() == _index_at(open_time, moments).tolist()
    assert _index_on(open_time, moments, STEP).tolist() == _index_on(open_time, moments).tolist()
    expected_on = np.searchsorted(open_time, moments, side="right") - 1
    assert _index_on(open_time, moments).tolist() == expected_on.tolist()


def _candles(closes: list[float]) -> CandleArrays:
    close = np.array(closes)
    return CandleArrays(
        symbol="BTC",
        open_time_seconds=np.arange(close.shape[0], dtype=np.int64) * 86_400,
        open=close,
        high=close * 1.01,
        low=close * 0.99,
        close=close,
        volume=np.ones_like(close),
    )


def test_trade_log_round_trips_through_trades() -> None:
    closes = [100, 101, 99, 105, 110, 104, 98, 103, 108, 111, 95, 97, 102, 104, 106] * 3
    criteria = criteria_parse(
        {
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"indicator": "sma", "period": 3}},
            "exit": {"left": {"indicator": "close"}, "op": "<", "right": {"indicator": "sma", "period": 3}},
            "stop_loss_ratio": 0.05,
            "take_profit_ratio": 0.08,
        }
    )
    candles = _candles([float(c) for c in closes])
    result = backtest(
        criteria=criteria,
        instruments=[candles],
        start_time_seconds=3 * 86_400,
        end_time_seconds=int(candles.open_time_seconds[-1]),
        starting_cash=1_000.0,
    )
    trades = result.trades
    assert len(trades) == len(result.trade_log) >= 3
    assert {t.exit_reason for t in trades} >= {"signal"}
    again = TradeLog.from_trades(trades)
    for name in ("entry_index", "entry_time_seconds", "exit_index", "exit_time_seconds", "exit_code"):
        assert getattr(again, name).tolist() == getattr(result.trade_log, name).tolist(), name
    for name in ("entry_price", "quantity", "entry_fee", "exit_price", "exit_fee", "pnl", "pnl_ratio"):
        np.testing.assert_array_equal(getattr(again, name), getattr(result.trade_log, name), err_msg=name)
    assert again.to_trades() == trades


def test_from_trades_refuses_a_closed_trade_without_its_pnl() -> None:
    closes = [100.0, 101.0, 102.0, 103.0, 99.0, 98.0]
    criteria = criteria_parse(
        {
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
            "exit": {"left": {"indicator": "close"}, "op": "<", "right": {"value": 100}},
        }
    )
    candles = _candles(closes)
    trade = backtest(
        criteria=criteria,
        instruments=[candles],
        start_time_seconds=86_400,
        end_time_seconds=5 * 86_400,
        starting_cash=100.0,
    ).trades[0]
    assert trade.exit_reason == "signal"
    trade.pnl = None
    with pytest.raises(ValueError, match="must have exit_time_seconds, exit_fee, pnl and pnl_ratio set"):
        TradeLog.from_trades([trade])


@pytest.mark.parametrize(
    ("open_", "high", "low", "stop", "take", "trail", "expected"),
    [
        # gap through the stop: filled at the open
        (90.0, 95.0, 85.0, 92.0, 120.0, np.nan, (layout.STOP_LOSS_CODE, 90.0)),
        # trailing level above the stop-loss is hit first
        (100.0, 101.0, 93.0, 90.0, np.nan, 95.0, (layout.TRAILING_STOP_CODE, 95.0)),
        # equal levels: the stop-loss is named
        (100.0, 101.0, 93.0, 95.0, np.nan, 95.0, (layout.STOP_LOSS_CODE, 95.0)),
        # stop and take-profit inside one candle: the stop (pessimistic)
        (100.0, 111.0, 89.0, 90.0, 110.0, np.nan, (layout.STOP_LOSS_CODE, 90.0)),
        (100.0, 111.0, 95.0, 90.0, 110.0, np.nan, (layout.TAKE_PROFIT_CODE, 110.0)),
    ],
)
def test_risk_exit_codes(
    open_: float, high: float, low: float, stop: float, take: float, trail: float, expected: tuple[int, float]
) -> None:
    assert rules.risk_exit_code(open_, high, low, stop, take, trail) == expected
    assert rules.risk_exit_code(100.0, 101.0, 99.0, np.nan, np.nan, np.nan)[0] == layout.NO_EXIT


@st.composite
def windows_over_walk(draw: st.DrawFn) -> tuple[CandleArrays, int, int, bool]:
    """A random walk of gapless daily candles and a run window that may start before, end after or miss them."""
    length = draw(st.integers(1, 60))
    steps = np.array(draw(st.lists(st.floats(-0.06, 0.06), min_size=length, max_size=length)))
    close = 100.0 * np.cumprod(1.0 + steps)
    open_ = np.concatenate(([100.0], close[:-1])) * (
        1.0 + np.array(draw(st.lists(st.floats(-0.02, 0.02), min_size=length, max_size=length)))
    )
    high = np.maximum(open_, close) * 1.02
    low = np.minimum(open_, close) * 0.98
    first_day = draw(st.integers(0, 20))
    candles = CandleArrays(
        symbol="BTC",
        open_time_seconds=(first_day + np.arange(length, dtype=np.int64)) * 86_400,
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=np.ones(length),
    )
    start_day = draw(st.integers(0, 90))
    end_day = draw(st.integers(start_day, 100))
    return candles, start_day * 86_400, end_day * 86_400, draw(st.booleans())


@given(windows_over_walk())
@settings(max_examples=200, deadline=None)
def test_views_of_gapless_candles_equal_the_gathered_columns(
    data: tuple[CandleArrays, int, int, bool],
) -> None:
    """One instrument of gapless candles runs on views of its arrays over the boundaries that have its candle t
    (backtest.py's fast path); the general path gathers every boundary's values by index. Both give the same
    run whatever the window: before, inside, past or around the data, with or without the end_of_data close."""
    candles, start, end, close_at_end = data
    criteria = criteria_parse(
        {
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"indicator": "sma", "period": 3}},
            "exit": {"left": {"indicator": "close"}, "op": "<", "right": {"indicator": "sma", "period": 5}},
            "stop_loss_ratio": 0.04,
            "take_profit_ratio": 0.05,
            "trailing_stop_ratio": 0.06,
            "max_holding_days": 4,
            "sizing": {"method": "equity_fraction", "value": 0.9},
            "fee_rate": 0.001,
            "slippage_ratio": 0.0005,
        }
    )

    def run() -> backtest_module.BacktestResult:
        return backtest(
            criteria=criteria,
            instruments=[candles],
            start_time_seconds=start,
            end_time_seconds=end,
            starting_cash=1_000.0,
            close_at_end=close_at_end,
        )

    fast = run()
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(backtest_module, "_gapless_offset", lambda *arguments: None)
        general = run()
    assert fast.trades == general.trades
    assert fast.equity_curve.tolist() == general.equity_curve.tolist()
    assert fast.buy_and_hold_curve.tolist() == general.buy_and_hold_curve.tolist()
    assert fast.exposure.tolist() == general.exposure.tolist()
    assert fast.statistics == general.statistics
