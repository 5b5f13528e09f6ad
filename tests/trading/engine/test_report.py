"""Tests of ``trading.engine.report``: MAE/MFE over the backtest's own trades, cumulative P&L, breakdowns and
monthly returns, each worked by hand; invariants with hypothesis. Pure: no database."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.engine.backtest import backtest
from trading.engine.criteria import criteria_parse
from trading.engine.report import cumulative_pnl, monthly_returns, trade_excursions, trade_groups
from trading.engine.types import CandleArrays

DAY = 86_400
BASE: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "entry": {"all": [{"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}]},
}

# Six daily candles (open, high, low, close). The entry condition holds on every close, so a position opens at the
# open of candle 1 and, once closed, again at the next open.
ROWS = [
    (100.0, 105.0, 95.0, 100.0),
    (100.0, 110.0, 90.0, 102.0),
    (102.0, 120.0, 101.0, 118.0),
    (118.0, 119.0, 80.0, 85.0),
    (85.0, 90.0, 84.0, 88.0),
    (88.0, 95.0, 87.0, 90.0),
]


def candles(rows: Sequence[tuple[float, float, float, float]], symbol: str = "BTC") -> CandleArrays:
    table = np.array(rows, dtype=np.float64)
    n = table.shape[0]
    return CandleArrays(
        symbol=symbol,
        open_time_seconds=np.arange(n, dtype=np.int64) * DAY,
        open=table[:, 0].copy(),
        high=table[:, 1].copy(),
        low=table[:, 2].copy(),
        close=table[:, 3].copy(),
        volume=np.full(n, np.nan),
    )


def run(**changes: Any) -> tuple[Any, CandleArrays]:
    series = candles(ROWS)
    result = backtest(
        criteria=criteria_parse({**BASE, **changes}),
        instruments=[series],
        start_time_seconds=0,
        end_time_seconds=5 * DAY,
        starting_cash=1_000.0,
        candle_seconds=DAY,
        close_at_end=True,
    )
    return result, series


@pytest.mark.parametrize(
    ("case", "changes", "expected"),
    [
        (
            # Stop 10 %. Trade 1: entry at candle 1's open 100, stop 90 hit inside candle 1 (low 90): only that
            # candle's open (100) and the fill (90) count, not its high 110 (which may have come after the stop):
            # MAE 90/100 - 1 = -0.1, MFE 0. Trade 2: entry at candle 2's open 102, held through candle 2 (high 120,
            # low 101), stopped inside candle 3 at 91.8 (its open 118 counts): MAE 91.8/102 - 1 = -0.1, MFE
            # 120/102 - 1. Trade 3: entry at candle 4's open 85, end of data at candle 5's close 90: candles 4 and
            # 5 held through (lows 84, 87; highs 90, 95): MAE 84/85 - 1, MFE 95/85 - 1.
            "stop-loss",
            {"stop_loss_ratio": 0.1},
            [(-0.1, 0.0), (-0.1, 120 / 102 - 1), (84 / 85 - 1, 95 / 85 - 1)],
        ),
        (
            # Signal exit when the close is above 110 (candle 2's 118): the exit fills at candle 3's open 118;
            # candles 1 and 2 held through (lows 90, 101; highs 110, 120): MAE -0.1, MFE 0.2. Then entry at candle
            # 4's open 85 (close 118 > 110 held on candle 2 only), end of data as above.
            "signal",
            {"exit": {"any": [{"left": {"indicator": "close"}, "op": ">", "right": {"value": 110}}]}},
            [(-0.1, 0.2), (84 / 85 - 1, 95 / 85 - 1)],
        ),
        (
            # No exit: one trade from candle 1's open to the end of data, candles 1..5 held: lowest low 80,
            # highest high 120
            "held to the end",
            {},
            [(-0.2, 0.2)],
        ),
    ],
)
def test_excursions_worked_by_hand(
    case: str, changes: dict[str, Any], expected: list[tuple[float, float]]
) -> None:
    result, series = run(**changes)
    mae, mfe = trade_excursions(result.trade_log, [series])
    assert list(zip(mae.tolist(), mfe.tolist(), strict=True)) == [
        (pytest.approx(a, rel=1e-12, abs=1e-15), pytest.approx(f, rel=1e-12, abs=1e-15)) for a, f in expected
    ]


def test_excursions_with_slippage_are_measured_from_the_entry_fill() -> None:
    # 1 % slippage: the entry fills at 101 (candle 1's open 100 * 1.01), the end-of-data sale at 90 * 0.99; the
    # lowest price seen is candle 3's low 80, the highest candle 2's high 120
    result, series = run(slippage_ratio=0.01)
    mae, mfe = trade_excursions(result.trade_log, [series])
    assert mae.tolist() == [pytest.approx(80 / 101 - 1)]
    assert mfe.tolist() == [pytest.approx(120 / 101 - 1)]


def test_an_open_trade_has_no_excursions() -> None:
    series = candles(ROWS)
    result = backtest(
        criteria=criteria_parse(BASE),
        instruments=[series],
        start_time_seconds=0,
        end_time_seconds=5 * DAY,
        starting_cash=1_000.0,
        candle_seconds=DAY,
        close_at_end=False,
    )
    mae, mfe = trade_excursions(result.trade_log, [series])
    assert len(result.trade_log) == 1 and math.isnan(mae[0]) and math.isnan(mfe[0])


_price = st.floats(min_value=1.0, max_value=1_000.0, allow_nan=False)


@st.composite
def _ohlc(draw: st.DrawFn) -> list[tuple[float, float, float, float]]:
    rows = []
    for _ in range(draw(st.integers(min_value=3, max_value=40))):
        open_, close = draw(_price), draw(_price)
        high = max(open_, close) * (1 + draw(st.floats(min_value=0, max_value=0.2)))
        low = min(open_, close) * (1 - draw(st.floats(min_value=0, max_value=0.2)))
        rows.append((open_, high, low, close))
    return rows


@settings(max_examples=60, deadline=None)
@given(rows=_ohlc(), stop=st.none() | st.floats(min_value=0.01, max_value=0.3))
def test_excursions_bound_each_trade(
    rows: list[tuple[float, float, float, float]], stop: float | None
) -> None:
    """MAE <= 0 <= MFE; the exit is inside them (the fill is a price the trade saw); they lie within the lowest
    low and highest high of the trade's candles, entry to exit."""
    series = candles(rows)
    exit_ = {"any": [{"left": {"indicator": "close"}, "op": "<", "right": {"indicator": "open"}}]}
    result = backtest(
        criteria=criteria_parse({**BASE, "exit": exit_, "stop_loss_ratio": stop}),
        instruments=[series],
        start_time_seconds=0,
        end_time_seconds=(len(rows) - 1) * DAY,
        starting_cash=1_000.0,
        candle_seconds=DAY,
        close_at_end=True,
    )
    log = result.trade_log
    mae, mfe = trade_excursions(log, [series])
    for row in range(len(log)):
        entry = float(log.entry_price[row])
        assert mae[row] <= 0.0 <= mfe[row]
        moved = float(log.exit_price[row]) / entry - 1
        assert mae[row] <= moved * (1 + 1e-12) + 1e-12 and moved <= mfe[row] * (1 + 1e-12) + 1e-12
        window = slice(int(log.entry_index[row]), int(log.exit_index[row]) + 1)
        assert entry * (1 + mae[row]) >= series.low[window].min() * (1 - 1e-12)
        assert entry * (1 + mfe[row]) <= series.high[window].max() * (1 + 1e-12)


# --- cumulative P&L -------------------------------------------------------------------------------------------


def test_cumulative_pnl_runs_in_exit_order() -> None:
    # table (entry) order: A exits day 5 (+10), B exits day 2 (-4), C open, D exits day 2 too (+1, after B: ties
    # keep the table order). Exit order B, D, A: running -4, -3, 7
    exit_time = np.array([5 * DAY, 2 * DAY, -1, 2 * DAY], dtype=np.int64)
    pnl = np.array([10.0, -4.0, np.nan, 1.0])
    result = cumulative_pnl(exit_time, pnl)
    assert result[[0, 1, 3]].tolist() == [7.0, -4.0, -3.0]
    assert math.isnan(result[2])


def test_cumulative_pnl_of_no_trade_is_empty() -> None:
    assert cumulative_pnl(np.array([], dtype=np.int64), np.array([])).shape == (0,)


# --- breakdowns -----------------------------------------------------------------------------------------------


def test_trade_groups_worked_by_hand() -> None:
    # signal: +10 (0.10, 2 days), -5 (-0.05, 1 day); stop_loss: -8 (-0.08, 1 day); open trade: no group.
    # run span 10 days. signal: 2 trades, win rate 1/2, total 5, mean ratio 0.025, time in market 3/10
    keys = ["signal", "stop_loss", "signal", "signal"]
    groups = trade_groups(
        keys,
        np.array([10.0, -8.0, -5.0, np.nan]),
        np.array([0.10, -0.08, -0.05, np.nan]),
        np.array([2 * DAY, DAY, DAY, 0], dtype=np.float64),
        10 * DAY,
    )
    assert [(g.key, g.n_trades) for g in groups] == [("signal", 2), ("stop_loss", 1)]
    signal, stop = groups
    assert signal.win_rate_ratio == 0.5 and signal.total_pnl == 5.0
    assert signal.avg_pnl_ratio == pytest.approx(0.025) and signal.time_in_market_ratio == pytest.approx(0.3)
    assert stop.win_rate_ratio == 0.0 and stop.total_pnl == -8.0 and stop.avg_pnl_ratio == -0.08
    assert stop.time_in_market_ratio == pytest.approx(0.1)


def test_trade_groups_refuse_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="one value a trade"):
        trade_groups(["a"], np.array([1.0, 2.0]), np.array([0.1]), np.array([1.0]))


# --- monthly returns ------------------------------------------------------------------------------------------


def _day(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_monthly_returns_worked_by_hand() -> None:
    # Starting cash 100. Daily candles: 2023-12-30 (110), 2023-12-31 (99), 2024-01-01 (120), 2024-01-31 (132),
    # 2024-03-15 (66). December 2023: 99/100 - 1 = -0.01; January 2024: 132/99 - 1 = 1/3; February: no candle;
    # March: 66/132 - 1 = -0.5. Year 2023: -0.01; 2024: 66/99 - 1 = -1/3.
    times = np.array(
        [_day(d) for d in ("2023-12-30", "2023-12-31", "2024-01-01", "2024-01-31", "2024-03-15")]
    )
    rows = monthly_returns(times, np.array([110.0, 99.0, 120.0, 132.0, 66.0]), 100.0)
    assert [r.year for r in rows] == [2023, 2024]
    assert list(rows[0].months) == [None] * 11 + [pytest.approx(-0.01)]
    assert rows[0].year_ratio == pytest.approx(-0.01)
    assert list(rows[1].months) == [pytest.approx(1 / 3), None, pytest.approx(-0.5)] + [None] * 9
    assert rows[1].year_ratio == pytest.approx(-1 / 3)


def test_a_candle_belongs_to_the_month_of_its_open() -> None:
    # an hourly candle opening 2024-01-31 23:00 closes in February but is January's
    times = np.array([_day("2024-01-31") + 23 * 3_600, _day("2024-02-01")])
    rows = monthly_returns(times, np.array([105.0, 126.0]), 100.0)
    assert list(rows[0].months[:2]) == [pytest.approx(0.05), pytest.approx(0.2)]


def test_a_ruined_account_has_no_return_after_the_ruin() -> None:
    times = np.array([_day(d) for d in ("2024-01-15", "2024-02-15", "2024-03-15")])
    rows = monthly_returns(times, np.array([50.0, 0.0, 0.0]), 100.0)
    assert list(rows[0].months[:3]) == [pytest.approx(-0.5), -1.0, None]
    assert rows[0].year_ratio == -1.0


def test_monthly_returns_of_an_empty_curve() -> None:
    assert monthly_returns(np.array([], dtype=np.int64), np.array([]), 100.0) == []
    with pytest.raises(ValueError, match="one length"):
        monthly_returns(np.array([0]), np.array([1.0, 2.0]), 100.0)


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(st.integers(min_value=1, max_value=40 * DAY), min_size=1, max_size=50),
    values=st.data(),
    starting_cash=st.floats(min_value=1.0, max_value=1e6),
)
def test_months_and_years_compound_to_the_total_return(
    steps: list[int], values: st.DataObject, starting_cash: float
) -> None:
    times = _day("2020-01-01") + np.cumsum(np.array(steps, dtype=np.int64))
    equity = np.array(
        values.draw(
            st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=len(steps), max_size=len(steps))
        )
    )
    rows = monthly_returns(times, equity, starting_cash)
    total = equity[-1] / starting_cash
    months = [m for r in rows for m in r.months if m is not None]
    assert math.prod(1 + m for m in months) == pytest.approx(total, rel=1e-9)
    years = [r.year_ratio for r in rows]
    assert math.prod(1 + (y or 0.0) for y in years) == pytest.approx(total, rel=1e-9)
    assert all(len(r.months) == 12 for r in rows)
