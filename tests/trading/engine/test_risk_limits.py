"""Risk-based sizing and risk limits (docs/criteria.md "Risk-based sizing", "Risk limits"), hand-worked.

Each case is a few daily candles of one to three instruments, worked by hand in its comments: the sizing formula
to the last digit, each limit firing once, the refusals and halts the run reports, the parse errors with their
paths; then the sweep kernel over a grid of limit values against single runs, and the live step functions
replayed boundary by boundary against the backtest.

Notation: day ``d`` is the candle opening at ``d * 86400`` (1970-01-01 + d); boundary ``d`` is its open, where
the signal of candle ``d - 1`` acts. Candles are ``(open, high, low, close)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.oracle.test_engine_against_oracle import cmp, criteria_doc, ind
from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import Criteria, CriteriaError, criteria_parse
from trading.engine.step import (
    InstrumentAtBoundary,
    LimitState,
    OpenTrade,
    step_entries,
    step_risk_exits,
    step_signal_exits,
)
from trading.engine.sweep import sweep_statistics
from trading.engine.types import CandleArrays, Halt, LimitRefusal, Trade
from trading.engine.vocabulary import RiskLimit

D = 86_400
ALWAYS = cmp(ind("close"), ">", 0)  # holds on every candle
UP_CANDLE = cmp(ind("close"), ">", ind("open"))  # holds on a candle that closed above its open
FLAT = (100.0, 100.0, 100.0, 100.0)

Row = tuple[float, float, float, float]


def candles(symbol: str, rows: list[Row], first_day: int = 0) -> CandleArrays:
    """Daily candles from ``(open, high, low, close)`` rows, the first opening on ``first_day``."""
    prices = np.array(rows, dtype=np.float64)
    open_, high, low, close = (np.ascontiguousarray(prices[:, k]) for k in range(4))
    return CandleArrays(
        symbol,
        (first_day + np.arange(len(rows), dtype=np.int64)) * D,
        open_,
        high,
        low,
        close,
        np.ones(len(rows)),
    )


def run(
    instruments: list[CandleArrays],
    start_day: int,
    end_day: int,
    cash: float = 1_000.0,
    close_at_end: bool = False,
    **fields: Any,
) -> BacktestResult:
    """The backtest of ``criteria_doc(**fields)`` (fee and slippage 0 unless given) from boundary ``start_day``
    to ``end_day``."""
    document = criteria_doc(**{"fee_rate": 0.0, "slippage_ratio": 0.0, **fields})
    return backtest(
        criteria=criteria_parse(document),
        instruments=instruments,
        start_time_seconds=start_day * D,
        end_time_seconds=end_day * D,
        starting_cash=cash,
        close_at_end=close_at_end,
    )


def entries(result: BacktestResult) -> list[tuple[str, int]]:
    """``(symbol, entry day)`` of every trade."""
    return [(t.symbol, t.entry_time_seconds // D) for t in result.trades]


# ---------------------------------------------------------------------------------------------------------------
# Risk-based sizing
# ---------------------------------------------------------------------------------------------------------------


def test_risk_sizing_on_the_stop_loss_loses_the_risk_at_the_stop_with_fee_and_slippage() -> None:
    # Cash 10,000; risk 2 % on a 10 % stop-loss; fee 0.1 %, slippage 0.2 %. The signal of day 0 enters at the
    # day-1 open 100:
    #   fill = 100 * 1.002 = 100.2; stop = 100.2 * 0.9 = 90.18
    #   a unit costs 100.2 * 1.001 = 100.3002 and returns at the stop 90.18 * 0.998 * 0.999 = 89.90964036
    #   quantity = 0.02 * 10,000 / (100.3002 - 89.90964036) = 200 / 10.39055964 = 19.24824137769...
    # Cost 19.248241 * 100.3002 = 1,930.6 <= the cash: not capped. Day 1's low 85 goes through the stop: the exit
    # fills at 90.18 * 0.998, and the trade loses exactly the 2 % of the equity, 200.
    x = candles("X", [FLAT, (100.0, 101.0, 85.0, 88.0), (88.0, 88.0, 88.0, 88.0)])
    result = run(
        [x],
        1,
        1,
        cash=10_000.0,
        entry=ALWAYS,
        stop_loss_ratio=0.1,
        sizing={"method": "risk", "value": 0.02, "stop": "stop_loss"},
        fee_rate=0.001,
        slippage_ratio=0.002,
        close_at_end=True,
    )
    [trade] = result.trades
    assert trade.entry_price == pytest.approx(100.2, rel=1e-15)
    assert trade.stop_loss_price == pytest.approx(90.18, rel=1e-15)
    assert trade.quantity == pytest.approx(200.0 / (100.3002 - 89.90964036), rel=1e-12)
    assert trade.quantity == pytest.approx(19.24824137769, rel=1e-11)
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(90.18 * 0.998, rel=1e-15)
    assert trade.pnl == pytest.approx(-200.0, rel=1e-12)
    assert result.refusals == [] and result.halts == []


def test_risk_sizing_is_capped_by_the_cash() -> None:
    # Risk 50 % on a 10 % stop-loss, no fee nor slippage, cash 1,000: the formula wants
    # 0.5 * 1,000 / (100 - 90) = 50 units (5,000), the cash buys 1,000 / 100 = 10.
    x = candles("X", [FLAT, FLAT])
    result = run(
        [x],
        1,
        1,
        entry=ALWAYS,
        stop_loss_ratio=0.1,
        sizing={"method": "risk", "value": 0.5, "stop": "stop_loss"},
    )
    [trade] = result.trades
    assert trade.quantity == 10.0
    assert trade.entry_fee == 0.0


def test_an_atr_stop_sets_the_stop_loss_and_sizes_on_it_and_is_refused_while_warming_up() -> None:
    # ATR over 2 candles, stop 2 ATRs below the fill, risk 1 %, cash 10,000, no fee nor slippage.
    #   day 0 (100, 102, 98, 100)
    #   day 1 (100, 104, 99, 102): TR = max(104 - 99, |104 - 100|, |99 - 100|) = 5
    #   day 2 (102, 105, 101, 103): TR = max(4, |105 - 102|, |101 - 102|) = 4; ATR[2] = (5 + 4) / 2 = 4.5
    #   day 3 (103, 104, 93, 95):   TR = max(11, |104 - 103|, |93 - 103|) = 11; ATR[3] = (4.5 * 1 + 11) / 2 = 7.75
    #   day 4 (95, 96, 94, 95)
    # Boundary 2: candle 1's ATR is still warming up (its first value is at index 2): refused, risk_stop.
    # Boundary 3: fill 103, stop 103 - 2 * 4.5 = 94, quantity 0.01 * 10,000 / (103 - 94) = 100 / 9 = 11.1111;
    #   day 3's low 93 goes through 94: out at 94, pnl (94 - 103) * 100 / 9 = -100 (1 % of the equity).
    # Boundary 4: equity 9,900, fill 95, stop 95 - 2 * 7.75 = 79.5, quantity 99 / 15.5 = 6.387096774...
    x = candles(
        "X",
        [
            (100.0, 102.0, 98.0, 100.0),
            (100.0, 104.0, 99.0, 102.0),
            (102.0, 105.0, 101.0, 103.0),
            (103.0, 104.0, 93.0, 95.0),
            (95.0, 96.0, 94.0, 95.0),
        ],
    )
    result = run(
        [x],
        2,
        4,
        cash=10_000.0,
        entry=ALWAYS,
        sizing={"method": "risk", "value": 0.01, "stop": {"atr": 2, "multiple": 2}},
    )
    assert result.refusals == [LimitRefusal(2 * D, "X", RiskLimit.RISK_STOP)]
    first, second = result.trades
    assert (first.entry_time_seconds, first.entry_price, first.stop_loss_price) == (3 * D, 103.0, 94.0)
    assert first.quantity == pytest.approx(100.0 / 9.0, rel=1e-14)
    assert (first.exit_reason, first.exit_price) == ("stop_loss", 94.0)
    assert first.pnl == pytest.approx(-100.0, rel=1e-12)
    assert (second.entry_time_seconds, second.entry_price) == (4 * D, 95.0)
    assert second.stop_loss_price == pytest.approx(79.5, rel=1e-14)
    assert second.quantity == pytest.approx(99.0 / 15.5, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Each limit
# ---------------------------------------------------------------------------------------------------------------


def test_max_open_positions_refuses_the_third_of_three_signals_in_symbol_order() -> None:
    # Three instruments signal on day 0; 30 % of the equity each, at most 2 open. Boundary 1: AAA and BBB enter,
    # CCC is refused; boundary 2: CCC's signal again (the other two are held, their signals are not entries).
    three = [candles(s, [FLAT] * 3) for s in ("CCC", "AAA", "BBB")]  # given out of order on purpose
    result = run(
        three,
        1,
        2,
        entry=ALWAYS,
        sizing={"method": "equity_fraction", "value": 0.3},
        limits={"max_open_positions": 2},
    )
    assert entries(result) == [("AAA", 1), ("BBB", 1)]
    assert [t.quantity for t in result.trades] == [3.0, 3.0]  # 300 / 100
    assert result.refusals == [
        LimitRefusal(1 * D, "CCC", RiskLimit.MAX_OPEN_POSITIONS),
        LimitRefusal(2 * D, "CCC", RiskLimit.MAX_OPEN_POSITIONS),
    ]


def test_max_exposure_cuts_a_spend_and_refuses_when_there_is_no_room() -> None:
    # 40 % of the equity each, at most 50 % exposed, equity 1,000 at prices 100. Boundary 1:
    #   AAA: 400 (4 units), exposure 400 <= 500;
    #   BBB: wants 400, room 500 - 400 = 100: cut to 1 unit;
    #   CCC: room 0: refused.
    three = [candles(s, [FLAT] * 2) for s in ("AAA", "BBB", "CCC")]
    result = run(
        three,
        1,
        1,
        entry=ALWAYS,
        sizing={"method": "equity_fraction", "value": 0.4},
        limits={"max_exposure_ratio": 0.5},
    )
    assert entries(result) == [("AAA", 1), ("BBB", 1)]
    assert [t.quantity for t in result.trades] == [4.0, 1.0]
    assert result.refusals == [LimitRefusal(1 * D, "CCC", RiskLimit.MAX_EXPOSURE)]


DAILY_LOSS_CANDLES = [
    FLAT,  # day 0: signal
    (100.0, 100.0, 89.0, 95.0),  # day 1: entered at 100, the 10 % stop at 90 is hit
    (95.0, 96.0, 94.0, 95.0),  # day 2
    (95.0, 96.0, 94.0, 95.0),  # day 3
]


def daily_loss_run() -> BacktestResult:
    # All in at 100 (10 units), 10 % stop-loss, daily loss limit 5 %.
    # Boundary 1 measures 1,000 (the account's first: the day's start is its own) and enters.
    # Boundary 2 (day 1 closed): the stop sold at 90, equity 900 < (1 - 0.05) * 1,000 = 950: the halt begins,
    #   the signal of day 1 is refused.
    # Boundary 3 (day 2 closed): a new day, starting from 900 (the equity at boundary 2); 900 is no loss: entries
    #   again, 900 / 95 units at 95.
    return run(
        [candles("X", DAILY_LOSS_CANDLES)],
        1,
        3,
        entry=ALWAYS,
        stop_loss_ratio=0.1,
        limits={"daily_loss_limit_ratio": 0.05},
    )


def test_a_daily_loss_halt_refuses_one_boundary_then_the_next_day_enters_again() -> None:
    result = daily_loss_run()
    first, second = result.trades
    assert (first.exit_reason, first.exit_price, first.pnl) == ("stop_loss", 90.0, -100.0)
    assert (second.entry_time_seconds, second.entry_price) == (3 * D, 95.0)
    assert second.quantity == pytest.approx(900.0 / 95.0, rel=1e-15)
    assert result.refusals == [LimitRefusal(2 * D, "X", RiskLimit.DAILY_LOSS)]
    assert result.halts[0] == Halt(2 * D, RiskLimit.DAILY_LOSS, True, 900.0, 1_000.0)


def test_the_end_of_a_daily_loss_halt_is_reported() -> None:
    # docs/criteria.md: "A run reports ... each halt's beginning and end (boundary, limit, equity, and the equity
    # it was measured from: the day's start, or the peak)". The halt of day 1 ends with its day: boundary 3 is the
    # first of day 2, whose starting equity is 900, where the equity is 900.
    assert daily_loss_run().halts == [
        Halt(2 * D, RiskLimit.DAILY_LOSS, True, 900.0, 1_000.0),
        Halt(3 * D, RiskLimit.DAILY_LOSS, False, 900.0, 900.0),
    ]


def drawdown_instruments(aaa_opens: list[float]) -> list[CandleArrays]:
    """AAA: an up candle on day 0 (its one signal: entered at 100 on boundary 1), then candles opening at
    ``aaa_opens`` from day 2 on (each flat at its open). BBB: opening at 50 every day, an up candle (close 50.5)
    on days 1 to 5 (its signals at boundaries 2 to 6)."""
    aaa = [(99.0, 100.0, 99.0, 100.0), FLAT] + [(p, p, p, p) for p in aaa_opens]
    bbb = [(50.0, 50.0, 50.0, 50.0)] + [(50.0, 51.0, 50.0, 50.5)] * 5 + [(50.0, 50.0, 50.0, 50.0)]
    return [candles("AAA", aaa), candles("BBB", bbb)]


def test_a_drawdown_halt_ends_when_the_equity_recovers() -> None:
    # Half of the equity per entry, drawdown halt at 10 %. Boundary 1: AAA 500 / 100 = 5 units; cash 500; peak
    # 1,000. Boundary 2: AAA opens at 70: equity 500 + 5 * 70 = 850 < 900: halt (peak 1,000); BBB's signal of day
    # 1 is refused. Boundary 3: AAA opens at 90: 950 >= 900: the halt ends; BBB enters with 0.5 * 950 = 475, 9.5
    # units at 50.
    result = run(
        drawdown_instruments([70.0, 90.0, 90.0]),
        1,
        3,
        entry=UP_CANDLE,
        sizing={"method": "equity_fraction", "value": 0.5},
        limits={"max_drawdown_halt_ratio": 0.1},
    )
    assert entries(result) == [("AAA", 1), ("BBB", 3)]
    assert result.trades[1].quantity == 9.5
    assert result.refusals == [LimitRefusal(2 * D, "BBB", RiskLimit.MAX_DRAWDOWN)]
    assert result.halts == [
        Halt(2 * D, RiskLimit.MAX_DRAWDOWN, True, 850.0, 1_000.0),
        Halt(3 * D, RiskLimit.MAX_DRAWDOWN, False, 950.0, 1_000.0),
    ]


def test_a_drawdown_halt_ends_by_its_resume_days_and_the_peak_is_reset() -> None:
    # As above, but AAA stays at 70 (equity 850 from boundary 2 on), with drawdown_resume_days 2. Boundary 2: the
    # halt begins (BBB refused); boundary 3: one day since, still halted (BBB refused); boundary 4: two days since:
    # the halt ends and the peak is reset to 850, BBB enters with 0.5 * 850 = 425 (8.5 units). Boundary 5: the
    # equity is still 850, below the old line of 900 but not below the new one (0.9 * 850 = 765): no halt.
    result = run(
        drawdown_instruments([70.0, 70.0, 70.0, 70.0, 70.0]),
        1,
        5,
        entry=UP_CANDLE,
        sizing={"method": "equity_fraction", "value": 0.5},
        limits={"max_drawdown_halt_ratio": 0.1, "drawdown_resume_days": 2},
    )
    assert entries(result) == [("AAA", 1), ("BBB", 4)]
    assert result.trades[1].quantity == 8.5
    assert result.refusals == [
        LimitRefusal(2 * D, "BBB", RiskLimit.MAX_DRAWDOWN),
        LimitRefusal(3 * D, "BBB", RiskLimit.MAX_DRAWDOWN),
    ]
    assert result.halts == [
        Halt(2 * D, RiskLimit.MAX_DRAWDOWN, True, 850.0, 1_000.0),
        Halt(4 * D, RiskLimit.MAX_DRAWDOWN, False, 850.0, 850.0),
    ]
    # Without the resume rule the account stays halted: BBB never enters.
    halted = run(
        drawdown_instruments([70.0, 70.0, 70.0, 70.0, 70.0]),
        1,
        5,
        entry=UP_CANDLE,
        sizing={"method": "equity_fraction", "value": 0.5},
        limits={"max_drawdown_halt_ratio": 0.1},
    )
    assert entries(halted) == [("AAA", 1)]
    assert [r.boundary_seconds // D for r in halted.refusals] == [2, 3, 4, 5]


def test_a_cooldown_refuses_the_next_days_entry_after_a_stop_loss_and_a_take_profit_starts_none() -> None:
    # All in, 10 % stop-loss and take-profit, cooldown 1 day.
    #   boundary 1: enter at 100; day 1's low 89 hits the stop at 90 (the exit is timed at day 1's open)
    #   boundary 2: 2 <= 1 + 1: refused (cooldown)
    #   boundary 3: enter at 100 (900 / 100 = 9 units); day 3's high 111 hits the take-profit at 110
    #   boundary 4: no cooldown after a take-profit: enter at 105
    x = candles(
        "X",
        [
            FLAT,
            (100.0, 100.0, 89.0, 95.0),
            (95.0, 100.0, 95.0, 100.0),
            (100.0, 111.0, 99.0, 105.0),
            (105.0, 106.0, 104.0, 105.0),
        ],
    )
    result = run(
        [x],
        1,
        4,
        entry=ALWAYS,
        stop_loss_ratio=0.1,
        take_profit_ratio=0.1,
        limits={"cooldown_days_after_stop_loss": 1},
    )
    assert entries(result) == [("X", 1), ("X", 3), ("X", 4)]
    assert [t.exit_reason for t in result.trades] == ["stop_loss", "take_profit", None]
    assert result.trades[1].quantity == 9.0
    assert result.refusals == [LimitRefusal(2 * D, "X", RiskLimit.COOLDOWN)]


# ---------------------------------------------------------------------------------------------------------------
# Disagreements with docs/criteria.md found by the oracle (tests/oracle/test_limits_against_oracle.py)
# ---------------------------------------------------------------------------------------------------------------


def test_without_room_a_signal_without_a_stop_is_refused_by_the_exposure_limit_listed_first() -> None:
    # docs/criteria.md: "An entry signal is refused by the first of these that applies, in this order: ...
    # 4. max_exposure_ratio ... 5. With risk-based sizing, risk_stop". ATR over 1 candle, 2 ATRs, risk 1 %,
    # exposure at most 20 % of 1,000.
    #   AAA: day 1 (100, 101, 99, 100): TR = 2 = ATR[1]; boundary 2: fill 100, stop 96, quantity 10 / 4 = 2.5
    #     (250), cut to the room 200: 2 units; no room is left.
    #   BBB: its data starts on day 1: its ATR on candle 1 (its first) is undefined. Both limits apply; the
    #     exposure limit comes first.
    aaa = candles("AAA", [FLAT, (100.0, 101.0, 99.0, 100.0), FLAT])
    bbb = candles("BBB", [(100.0, 101.0, 99.0, 100.0), FLAT], first_day=1)
    result = run(
        [aaa, bbb],
        2,
        2,
        entry=ALWAYS,
        sizing={"method": "risk", "value": 0.01, "stop": {"atr": 1, "multiple": 2}},
        limits={"max_exposure_ratio": 0.2},
    )
    assert [(t.symbol, t.quantity, t.stop_loss_price) for t in result.trades] == [("AAA", 2.0, 96.0)]
    assert result.refusals == [LimitRefusal(2 * D, "BBB", RiskLimit.MAX_EXPOSURE)]


def test_the_close_at_end_settlement_reports_no_halt_after_the_runs_last_boundary() -> None:
    # All in at 100 on boundary 1; the run ends at boundary 2; day 2 falls to 80. With close_at_end the risk
    # exits of day 2 are settled after the last boundary, and the position is sold at 80 (end_of_data); but no
    # entry can be made there: it is not a boundary of the run (the curve's times end at boundary 2), and the
    # same run without close_at_end reports no halt. A 5 % daily loss limit must report none in either.
    x = candles("X", [FLAT, FLAT, (100.0, 100.0, 80.0, 80.0)])
    common: dict[str, Any] = {"entry": ALWAYS, "limits": {"daily_loss_limit_ratio": 0.05}}
    open_at_end = run([x], 1, 2, **common)
    closed_at_end = run([x], 1, 2, close_at_end=True, **common)
    assert closed_at_end.trades[0].exit_reason == "end_of_data"
    assert open_at_end.halts == []
    assert closed_at_end.halts == [], closed_at_end.halts


def test_an_instrument_that_never_trades_does_not_change_the_halts_of_another() -> None:
    # AAA is bought all in at 100 on boundary 1 and its data ends with day 4 at 110 (no close_at_end: it stays
    # open, marked at 110 on the curve: 1,100 from boundary 4 on). BBB's data goes on to day 7; BBB never
    # trades (no cash left). With AAA alone the run reports no halt; adding BBB must not make one: the equity
    # never fell (the curve is 1,000, 1,000, 1,000, 1,100, ... 1,100).
    # Found: with BBB, boundaries 6 and 7 have neither AAA's candle t nor its next candle, AAA is valued at its
    # entry price 100 there (equity 1,000 after 1,100) and a daily loss halt "begins" at boundary 6; alone, those
    # boundaries are skipped (the one-instrument shortcut of backtest.py) and the limits never see them.
    aaa = candles("AAA", [FLAT, FLAT, FLAT, FLAT, (100.0, 110.0, 100.0, 110.0)])
    bbb = candles("BBB", [(50.0, 50.0, 50.0, 50.0)] * 8)
    common: dict[str, Any] = {"entry": ALWAYS, "limits": {"daily_loss_limit_ratio": 0.03}}
    alone = run([aaa], 1, 7, **common)
    together = run([aaa, bbb], 1, 7, **common)
    assert entries(together) == entries(alone) == [("AAA", 1)]
    assert together.equity_curve.tolist() == [1_000.0, 1_000.0, 1_000.0, 1_100.0, 1_100.0, 1_100.0, 1_100.0]
    assert alone.halts == []
    assert together.halts == [], together.halts


# ---------------------------------------------------------------------------------------------------------------
# Parse errors
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"limits": {"drawdown_resume_days": 3}},
            [("limits.drawdown_resume_days", "resumes a drawdown halt: set max_drawdown_halt_ratio too")],
        ),
        (
            {"sizing": {"method": "risk", "value": 0.01, "stop": "stop_loss"}},
            [("sizing.stop", 'is "stop_loss", so stop_loss_ratio must be set (the stop sized on)')],
        ),
        (
            {
                "stop_loss_ratio": 0.1,
                "sizing": {"method": "risk", "value": 0.01, "stop": {"atr": 14, "multiple": 2}},
            },
            [
                (
                    "sizing.stop",
                    "an ATR stop sets each trade's stop-loss: remove stop_loss_ratio, or size on it with "
                    '"stop_loss"',
                )
            ],
        ),
        (
            {
                "limits": {
                    "max_open_positions": 0,
                    "max_exposure_ratio": 1.5,
                    "daily_loss_limit_ratio": 1.0,
                    "max_drawdown_halt_ratio": 0,
                    "cooldown_days_after_stop_loss": 0,
                }
            },
            [
                ("limits.max_open_positions", "must be an integer >= 1 or null, was 0"),
                ("limits.max_exposure_ratio", "must be > 0 and <= 1, was 1.5"),
                ("limits.daily_loss_limit_ratio", "must be > 0 and < 1, was 1.0"),
                ("limits.max_drawdown_halt_ratio", "must be > 0 and < 1, was 0"),
                ("limits.cooldown_days_after_stop_loss", "must be an integer >= 1 or null, was 0"),
            ],
        ),
        (
            {"sizing": {"method": "risk", "value": 1.0, "stop": {"atr": 0, "multiple": 101}}},
            [
                ("sizing.value", "must be > 0 and < 1, was 1.0"),
                ("sizing.stop.atr", "must be an integer >= 1, was 0"),
                ("sizing.stop.multiple", "must be > 0 and <= 100, was 101"),
            ],
        ),
        (
            {"limits": {"max_positions": 3}},
            [
                (
                    "limits.max_positions",
                    "unknown field; expected one of cooldown_days_after_stop_loss, daily_loss_limit_ratio, "
                    "drawdown_resume_days, max_drawdown_halt_ratio, max_exposure_ratio, max_open_positions",
                )
            ],
        ),
    ],
    ids=[
        "resume_days_without_drawdown_halt",
        "stop_loss_stop_without_ratio",
        "atr_stop_with_ratio",
        "limits_out_of_range",
        "risk_value_and_atr_out_of_range",
        "unknown_limit",
    ],
)
def test_parse_errors_name_their_paths(fields: dict[str, Any], errors: list[tuple[str, str]]) -> None:
    with pytest.raises(CriteriaError) as raised:
        criteria_parse(criteria_doc(entry=ALWAYS, **fields))
    assert raised.value.errors == errors


def test_limits_and_risk_sizing_parse_into_the_criteria() -> None:
    criteria = criteria_parse(
        criteria_doc(
            entry=ALWAYS,
            sizing={"method": "risk", "value": 0.01, "stop": {"atr": 14, "multiple": 2.5}},
            limits={"max_drawdown_halt_ratio": 0.2, "drawdown_resume_days": 30, "max_open_positions": None},
        )
    )
    assert (criteria.sizing.method, criteria.sizing.value) == ("risk", 0.01)
    assert (criteria.sizing.atr_period, criteria.sizing.atr_multiple) == (14, 2.5)
    assert criteria.limits.max_drawdown_halt_ratio == 0.2 and criteria.limits.drawdown_resume_days == 30
    assert criteria.limits.max_open_positions is None and criteria.limits.daily_loss_limit_ratio is None


# ---------------------------------------------------------------------------------------------------------------
# The sweep kernel
# ---------------------------------------------------------------------------------------------------------------


def walk(symbol: str, seed: int, days: int = 60) -> CandleArrays:
    """A random walk of daily candles (seeded), wide enough for stops, halts and cooldowns to fire."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.cumprod(1.0 + rng.normal(0.0, 0.04, days))
    open_ = np.concatenate(([100.0], close[:-1])) * (1.0 + rng.normal(0.0, 0.01, days))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.03, days))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.03, days))
    return CandleArrays(symbol, np.arange(days, dtype=np.int64) * D, open_, high, low, close, np.ones(days))


def sma_cross_with(**fields: Any) -> Criteria:
    return criteria_parse(
        criteria_doc(
            entry=cmp(ind("close"), ">", ind("sma", 3, source="close")),
            exit=cmp(ind("close"), "<", ind("sma", 5, source="close")),
            fee_rate=0.001,
            slippage_ratio=0.0005,
            **fields,
        )
    )


@pytest.mark.parametrize("close_at_end", [False, True])
def test_every_point_of_a_grid_over_limit_values_and_atr_stops_equals_its_single_run(
    close_at_end: bool,
) -> None:
    instruments = [walk("AAA", 1), walk("BBB", 2), walk("CCC", 3)]
    grid = [
        sma_cross_with(
            stop_loss_ratio=0.05,
            sizing={"method": "equity_fraction", "value": 0.5},
            limits={
                "max_open_positions": positions,
                "daily_loss_limit_ratio": daily,
                "max_drawdown_halt_ratio": 0.15,
                "drawdown_resume_days": 5,
                "cooldown_days_after_stop_loss": 2,
            },
        )
        for positions in (1, 2, 3)
        for daily in (0.01, 0.03, None)
    ] + [
        sma_cross_with(
            sizing={"method": "risk", "value": risk, "stop": {"atr": period, "multiple": 2}},
            limits={"max_exposure_ratio": exposure, "cooldown_days_after_stop_loss": 1},
        )
        for risk in (0.01, 0.05)
        for period in (3, 10)
        for exposure in (0.3, 1.0)
    ]
    options: dict[str, Any] = {
        "start_time_seconds": 5 * D,
        "end_time_seconds": 59 * D,
        "starting_cash": 10_000.0,
        "close_at_end": close_at_end,
    }
    swept = sweep_statistics(criteria=grid, instruments=instruments, keep_curves=True, **options)
    assert swept.equity_curves is not None
    fired: set[str] = set()
    for n, point in enumerate(grid):
        single = backtest(criteria=point, instruments=instruments, **options)
        assert swept.errors[n] == ""
        assert swept.statistics[n] == single.statistics, f"point {n}"
        np.testing.assert_array_equal(swept.equity_curves[n], single.equity_curve)
        fired |= {str(r.limit) for r in single.refusals}
    # The grid is not vacuous: every limit refused some entry in some point's single run.
    assert fired == {str(limit) for limit in RiskLimit}, fired
    assert len({s["final_equity"] for s in swept.statistics if s}) > 10


# ---------------------------------------------------------------------------------------------------------------
# The live step functions replayed
# ---------------------------------------------------------------------------------------------------------------


def market(
    instruments: list[CandleArrays], criteria: Criteria, boundary: int
) -> dict[str, InstrumentAtBoundary]:
    """Every instrument at ``boundary`` (seconds), read off its candles: candle t (opening a day before) and the
    next open, with the criteria's entry signal on t (``close > open``, or every candle), as the live cycle
    would see them replayed."""
    out = {}
    for c in instruments:
        times = c.open_time_seconds.tolist()
        t = times.index(boundary - D) if boundary - D in times else None
        nxt = times.index(boundary) if boundary in times else None
        fields: dict[str, Any] = {}
        if t is not None:
            fields = {
                "open_time_seconds": boundary - D,
                "open": float(c.open[t]),
                "high": float(c.high[t]),
                "low": float(c.low[t]),
                "close": float(c.close[t]),
                "entry_signal": bool(c.close[t] > c.open[t])
                if criteria.document["entry"] == UP_CANDLE
                else True,
            }
        if nxt is not None:
            fields |= {"next_index": nxt, "next_time_seconds": boundary, "next_price": float(c.open[nxt])}
        out[c.symbol] = InstrumentAtBoundary(symbol=c.symbol, index=t, **fields)
    return out


def test_the_live_steps_replayed_boundary_by_boundary_make_the_backtests_trades_and_refusals() -> None:
    # Three instruments, entries on every candle, 33 % of the equity each, fee 0.1 %, at most 2 open, 8 % stop-loss,
    # a 3 % daily loss limit and a 2-day cooldown after a stop-loss. Worked by hand:
    #   boundary 1: equity 1,000; AAA and BBB enter at 100, 330 / 100.1 = 3.2967033 units each (fee 0.32967);
    #     cash 340; CCC refused (max_open_positions); boundaries 2 and 3 the same for CCC (equity 999.3407).
    #   day 3: AAA's low 90 goes through its stop 92: sold at 92, proceeds 3.2967033 * 92 * 0.999 = 302.9934.
    #   boundary 4: equity 340 + 302.9934 + 3.2967033 * 94 (BBB's open) = 952.8835 < 0.97 * 999.3407 (the day's
    #     start, boundary 3's equity) = 969.3604: the daily loss halt; AAA and CCC refused by it.
    #   boundary 5: a new day from 952.8835, no loss: AAA refused by its cooldown (5 <= 3 + 2); CCC enters (one
    #     position open), 0.33 * 952.8835 / 100.1 = 3.1413742 units.
    #   boundaries 6 and 7: AAA refused (max_open_positions: BBB and CCC are open).
    rows_aaa = [FLAT, FLAT, FLAT, (100.0, 100.0, 90.0, 90.0), (90.0, 91.0, 89.0, 90.0)] + [
        (90.0, 91.0, 89.0, 90.0)
    ] * 3
    rows_bbb = [FLAT, FLAT, FLAT, (100.0, 100.0, 94.0, 94.0)] + [(94.0, 95.0, 93.0, 94.0)] * 4
    rows_ccc = [FLAT] * 8
    instruments = [candles("AAA", rows_aaa), candles("BBB", rows_bbb), candles("CCC", rows_ccc)]
    criteria = criteria_parse(
        criteria_doc(
            entry=ALWAYS,
            stop_loss_ratio=0.08,
            sizing={"method": "equity_fraction", "value": 0.33},
            fee_rate=0.001,
            slippage_ratio=0.0,
            limits={
                "max_open_positions": 2,
                "daily_loss_limit_ratio": 0.03,
                "cooldown_days_after_stop_loss": 2,
            },
        )
    )
    start, end, cash0 = 1, 7, 1_000.0
    expected = backtest(
        criteria=criteria,
        instruments=instruments,
        start_time_seconds=start * D,
        end_time_seconds=end * D,
        starting_cash=cash0,
    )
    cash = cash0
    state = LimitState()
    open_trades: dict[str, OpenTrade] = {}
    stops: dict[str, int] = {}
    trades: list[Trade] = []
    refusals: list[LimitRefusal] = []
    halts: list[Halt] = []
    for day in range(start, end + 1):
        here = market(instruments, criteria, day * D)
        closed, open_trades = step_risk_exits(criteria=criteria, market=here, open_trades=open_trades)
        for trade in closed:
            assert trade.exit_price is not None and trade.exit_fee is not None
            cash += trade.exit_price * trade.quantity - trade.exit_fee
            if trade.exit_reason == "stop_loss":
                assert trade.exit_time_seconds is not None
                stops[trade.symbol] = trade.exit_time_seconds
        made = step_entries(
            criteria=criteria,
            market=here,
            open_trades=open_trades,
            cash=cash,
            starting_cash=cash0,
            boundary_seconds=day * D,
            limit_state=state,
            stop_loss_exits=stops,
        )
        state, cash = made.limit_state, made.cash
        refusals += [LimitRefusal(day * D, symbol, limit) for symbol, limit in sorted(made.refused.items())]
        halts += made.halts
        # The signal exits concern the trades open during t (not those just entered).
        signal_closed, still = step_signal_exits(criteria=criteria, market=here, open_trades=open_trades)
        for trade in signal_closed:
            assert trade.exit_price is not None and trade.exit_fee is not None
            cash += trade.exit_price * trade.quantity - trade.exit_fee
        open_trades = still | {
            t.symbol: OpenTrade(trade=t, trail_reference=t.entry_price) for t in made.trades
        }
        trades += [*closed, *signal_closed]
        trades += made.trades
    by_entry = {(t.symbol, t.entry_time_seconds): t for t in trades if not t.is_open}
    for open_trade in open_trades.values():
        by_entry[(open_trade.trade.symbol, open_trade.trade.entry_time_seconds)] = open_trade.trade
    replayed = sorted(by_entry.values(), key=lambda t: (t.entry_time_seconds, t.symbol))
    assert len(replayed) == len(expected.trades)
    for mine, theirs in zip(replayed, expected.trades, strict=True):
        for name in ("symbol", "entry_time_seconds", "exit_time_seconds", "exit_reason"):
            assert getattr(mine, name) == getattr(theirs, name), (name, mine, theirs)
        for name in ("entry_price", "quantity", "entry_fee", "exit_price", "pnl"):
            a, b = getattr(mine, name), getattr(theirs, name)
            assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-12), (name, mine, theirs)
    assert refusals == expected.refusals
    assert halts == expected.halts
    assert [(r.boundary_seconds // D, r.symbol, r.limit) for r in refusals] == [
        (1, "CCC", RiskLimit.MAX_OPEN_POSITIONS),
        (2, "CCC", RiskLimit.MAX_OPEN_POSITIONS),
        (3, "CCC", RiskLimit.MAX_OPEN_POSITIONS),
        (4, "AAA", RiskLimit.DAILY_LOSS),
        (4, "CCC", RiskLimit.DAILY_LOSS),
        (5, "AAA", RiskLimit.COOLDOWN),
        (6, "AAA", RiskLimit.MAX_OPEN_POSITIONS),
        (7, "AAA", RiskLimit.MAX_OPEN_POSITIONS),
    ]
    assert [(t.symbol, t.entry_time_seconds // D, t.exit_reason) for t in replayed] == [
        ("AAA", 1, "stop_loss"),
        ("BBB", 1, None),
        ("CCC", 5, None),
    ]
    assert replayed[0].exit_price == 92.0
    assert replayed[2].quantity == pytest.approx(
        0.33 * (340.0 + 3.2967033 * 92 * 0.999 + 3.2967033 * 94) / 100.1, rel=1e-7
    )
