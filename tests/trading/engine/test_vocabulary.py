"""The engine's vocabulary: one table of exit reasons and one of statistics, read by the kernel, models and pages."""

from __future__ import annotations

import numpy as np

from positions.models import Position
from trading.engine import layout
from trading.engine.statistics import backtest_statistics
from trading.engine.vocabulary import (
    EXIT_CODES,
    NO_EXIT,
    STATISTIC_BY_KEY,
    STATISTICS,
    STATISTICS_KEYS,
    ExitReason,
    exit_reason_text,
    exit_reason_value,
)


def test_every_exit_reason_has_its_own_code_and_the_kernel_uses_them() -> None:
    codes = [reason.code for reason in ExitReason]
    assert len(set(codes)) == len(codes) and NO_EXIT not in codes
    assert (
        layout.STOP_LOSS_CODE,
        layout.TAKE_PROFIT_CODE,
        layout.TRAILING_STOP_CODE,
        layout.SIGNAL_CODE,
        layout.MAX_HOLDING_CODE,
        layout.END_OF_DATA_CODE,
        layout.MANUAL_CODE,
    ) == (1, 2, 3, 4, 5, 6, 7)
    assert {exit_reason_value(code) for code in codes} == {
        "signal",
        "stop_loss",
        "take_profit",
        "trailing_stop",
        "max_holding",
        "end_of_data",
        "manual",
    }
    assert exit_reason_value(NO_EXIT) is None
    assert {reason.value: reason.code for reason in ExitReason} == EXIT_CODES


def test_the_position_model_stores_the_tables_values_with_its_labels() -> None:
    assert Position.ExitReason is ExitReason
    field = Position._meta.get_field("exit_reason")
    assert list(field.choices or []) == [
        ("signal", "Signal"),
        ("stop_loss", "Stop Loss"),
        ("take_profit", "Take Profit"),
        ("trailing_stop", "Trailing Stop"),
        ("max_holding", "Max Holding"),
        ("manual", "Manual"),
        ("end_of_data", "End Of Data"),
    ]
    # a StrEnum member is its stored string, which is what this checks (mypy takes the two literals for disjoint)
    assert Position.ExitReason.STOP_LOSS == "stop_loss"  # type: ignore[comparison-overlap]


def test_exit_reasons_read_as_running_text() -> None:
    assert exit_reason_text("trailing_stop") == "trailing stop"
    assert exit_reason_text("") == "" and exit_reason_text(None) == ""
    assert exit_reason_text("liquidated") == "liquidated"  # a value of an older run is shown as it is


def test_the_statistics_specification_lists_what_backtest_statistics_returns_in_order() -> None:
    equity = np.array([100.0, 90.0, 120.0])
    computed = backtest_statistics(
        equity_curve=equity,
        buy_and_hold_curve=equity,
        exposure=np.ones(3, dtype=bool),
        trades=[],
        candle_seconds=86_400,
        starting_cash=100.0,
    )
    assert tuple(computed) == STATISTICS_KEYS == tuple(s.key for s in STATISTICS)
    assert len(set(STATISTICS_KEYS)) == len(STATISTICS_KEYS)


def test_units_are_in_the_keys_and_lower_is_better_only_for_losses_and_costs() -> None:
    for statistic in STATISTICS:
        if statistic.key.endswith("_ratio"):
            assert statistic.unit in ("ratio", "number"), statistic.key
        if statistic.key.endswith("_days"):
            assert statistic.unit == "days", statistic.key
    lower = {s.key for s in STATISTICS if not s.higher_is_better}
    # risks (drawdowns, volatility, losing streaks) and costs
    assert lower == {
        "max_drawdown_ratio",
        "max_drawdown_duration_days",
        "total_fees",
        "volatility_ratio",
        "avg_drawdown_ratio",
        "max_consecutive_losses",
    }
    assert STATISTIC_BY_KEY["n_trades"].unit == "count"
