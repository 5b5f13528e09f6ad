"""The open step of a portfolio (issue 16) beyond the parity test (tests/trading/test_parity.py): a member the run
does not trade still counts in the portfolio's equity, and a claim lost to another run keeps nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from instruments.models import Instrument
from positions.accounts import portfolio_cash
from positions.cycle import open as open_step
from positions.cycle.open import sync_new_trades
from positions.cycle.run import claims_create
from positions.execution.paper import ReplayBroker
from positions.models import Position, StrategyStep
from trading.models import Portfolio, PortfolioStrategy, Strategy
from trading.selectors import candles_before

pytestmark = pytest.mark.django_db
DAY = date(2019, 6, 3)
ALWAYS = {
    "version": 1,
    "side": "long",
    "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
    "fee_rate": 0.001,
    "slippage_ratio": 0.0,
    "sizing": {"method": "equity_fraction", "value": 1.0},
}


def _portfolio() -> tuple[Portfolio, Strategy, Strategy, Instrument, Instrument]:
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")
    ethereum = Instrument.objects.get(coingecko_id="ethereum")
    portfolio = Portfolio.objects.create(name="pf", starting_cash=Decimal("10000"), is_enabled=True)
    trader = Strategy.objects.create(name="trader", criteria=ALWAYS, is_enabled=True)
    trader.instruments.set([bitcoin])
    holder = Strategy.objects.create(name="holder", criteria=ALWAYS, is_enabled=False)
    holder.instruments.set([ethereum])
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=trader, weight=Decimal("0.5"), order=0)
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=holder, weight=Decimal("0.5"), order=1)
    return portfolio, trader, holder, bitcoin, ethereum


def _open(instrument: Instrument) -> float:
    """The open of ``DAY`` (the replay broker's fill price)."""
    candles = candles_before(instrument, datetime(2019, 6, 4, tzinfo=UTC))
    return float(candles.open[-1])


def test_a_member_the_run_does_not_trade_enters_nothing_but_counts_in_the_budgets(
    shipped_history: None,
) -> None:
    """Worked by hand: the holder (not traded by this run) holds 10 ETH bought at 200 with a fee of 2: cash 10,000 -
    2,002 = 7,998; equity 7,998 + 10 * ETH's open. The trader's budget is half of it; all of it is spent at BTC's
    open with the 0.1 % fee: quantity = min(0.5 * equity, cash) / (open * 1.001)."""
    portfolio, trader, holder, bitcoin, ethereum = _portfolio()
    Position.objects.create(
        strategy=holder,
        portfolio=portfolio,
        instrument=ethereum,
        quantity=Decimal("10"),
        entry_price=Decimal("200"),
        entry_fee=Decimal("2"),
        entry_at=datetime(2019, 5, 1, tzinfo=UTC),
    )
    summary = sync_new_trades(as_of=DAY, broker=ReplayBroker(), strategies=[trader])
    by_strategy = {line["strategy"]: line for line in summary["results"]}
    assert by_strategy["trader"]["action"] == "opened"
    assert "not traded by this run" in by_strategy["holder"]["reason"]
    equity = 7_998.0 + 10 * _open(ethereum)
    [entry] = Position.objects.filter(strategy=trader)
    assert entry.portfolio == portfolio
    assert float(entry.quantity) == pytest.approx(
        min(0.5 * equity, 7_998.0) / (_open(bitcoin) * 1.001), rel=1e-9
    )
    assert not Position.objects.filter(strategy=holder, entry_at__date=DAY).exists()
    assert float(portfolio_cash(portfolio)) == pytest.approx(
        7_998.0 - float(entry.entry_price * entry.quantity + entry.entry_fee)
    )


def test_a_claim_lost_to_another_run_keeps_nothing_of_the_portfolio(
    shipped_history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, trader, holder, _, _ = _portfolio()
    real = claims_create

    def lost_for_the_holder(strategy: Strategy, *args: Any) -> Any:
        claims = real(strategy, *args)
        return None if strategy == holder else claims

    monkeypatch.setattr(open_step, "claims_create", lost_for_the_holder)
    summary = sync_new_trades(as_of=DAY, broker=ReplayBroker(), strategies=[trader, holder])
    assert {line["action"] for line in summary["results"]} == {"skipped"}
    assert not StrategyStep.objects.exists()  # the trader's claims, made before, were rolled back
    assert not Position.objects.exists()
