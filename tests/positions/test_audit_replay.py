"""The daily audit (positions.audit, docs/audit.md) of a paper strategy replayed over the shipped history: every
day audited shows no drift (the replay makes the backtest's trades: tests/trading/test_parity.py)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from instruments.models import Instrument
from positions.audit import audit_day, cumulative_drift
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.cycle.replay import day_range
from positions.execution.paper import ReplayBroker
from positions.models import Position, StrategyAudit
from runs.models import History, HistoryKind
from trading.models import Strategy

RSI_TP_HOLD = {
    "version": 1,
    "side": "long",
    "entry": {"all": [{"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 40}}]},
    "exit": None,
    "take_profit_ratio": 0.06,
    "stop_loss_ratio": 0.1,
    "max_holding_days": 7,
    "fee_rate": 0.001,
    "slippage_ratio": 0.001,
    "sizing": {"method": "equity_fraction", "value": 0.3},
}
BREAKOUT_TRAILING = {
    "version": 1,
    "side": "long",
    "entry": {
        "left": {"indicator": "close"},
        "op": ">",
        "right": {"indicator": "highest", "period": 10, "source": "high", "shift": 1},
    },
    "exit": {"left": {"indicator": "rsi", "period": 14}, "op": ">", "right": {"value": 80}},
    "trailing_stop_ratio": 0.06,
    "fee_rate": 0.002,
    "slippage_ratio": 0.0005,
    "sizing": {"method": "equity_fraction", "value": 0.45},
}
#: name -> (criteria, instruments, first and last day, the exit reasons its days must hold)
CASES = {
    "rsi-take-profit-stop-holding": (
        RSI_TP_HOLD,
        ["bitcoin", "ethereum", "litecoin"],
        (date(2019, 7, 1), date(2019, 10, 15)),
        {"stop_loss", "take_profit", "max_holding"},
    ),
    "breakout-trailing-signal": (
        BREAKOUT_TRAILING,
        ["bitcoin", "ethereum"],
        (date(2019, 3, 15), date(2019, 7, 15)),
        {"trailing_stop", "signal"},
    ),
}


def _replayed(name: str, criteria: dict[str, Any], coins: list[str], start: date, end: date) -> Strategy:
    """An enabled paper strategy whose open and close steps ran each day from ``start`` to ``end`` at the stored
    opens (the replay broker): live, as far as the audit can tell, with the parity of the replay."""
    strategy = Strategy.objects.create(name=name, criteria=criteria, starting_cash=10_000, is_enabled=True)
    strategy.instruments.set(Instrument.objects.filter(coingecko_id__in=coins))
    broker = ReplayBroker()
    for day in day_range(start, end):
        sync_new_trades(as_of=day, broker=broker, strategies=[strategy])
        sync_close_positions(as_of=day, broker=broker, strategies=[strategy])
    return strategy


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_replayed_paper_strategy_audited_every_day_shows_no_drift(shipped_history: None, name: str) -> None:
    criteria, coins, (start, end), reasons = CASES[name]
    strategy = _replayed(name, criteria, coins, start, end)
    closed = Position.objects.for_strategy(strategy).closed()
    assert set(closed.values_list("exit_reason", flat=True)) >= reasons  # the days audited hold every kind

    for day in day_range(start, end - timedelta(days=1)):
        (audit,) = audit_day(as_of=day)
        where = day.isoformat()
        assert audit.missed == [] and audit.extra == [] and audit.signal_mismatches == 0, where
        assert audit.open_mismatches == 0, where
        assert audit.backtest_entries == audit.live_entries, where
        assert audit.backtest_exits == audit.live_exits, where
        assert audit.cash_drift == 0 and audit.fee_drift == 0 and audit.slippage_cost == 0, where
        assert audit.slippage_bps in (None, Decimal(0)), where
        assert [r["instrument"] for r in audit.open_live] == [r["instrument"] for r in audit.open_backtest], (
            where
        )
    audits = StrategyAudit.objects.filter(strategy=strategy)
    assert audits.count() == (end - start).days
    assert (
        sum(len(a.fills) for a in audits)
        == 2 * Position.objects.for_strategy(strategy).closed().count()
        + Position.objects.for_strategy(strategy).open().count()
    )
    drift = cumulative_drift(strategy)
    assert drift["signal_mismatches"] == 0 and drift["fee_drift"] == 0 and drift["slippage_cost"] == 0
    assert drift["fills"] == sum(len(a.fills) for a in audits) > 0
    assert not History.objects.filter(kind=HistoryKind.SIGNAL_MISMATCH).exists()
