"""The live side of the risk limits (issue 16): a halt is shown on the dashboard beside the strategy, as the
kill switch's automatic twin, and resetting a strategy's limits in the admin asks for the permissions it needs.

That the open step decides within the limits exactly as the backtest (and records each refusal and halt in
History) is tests/trading/test_parity.py's ``rsi-limits`` and ``breakout-atr-risk`` strategies.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.test import Client

from positions.limits import limit_state_read, limit_state_save
from positions.models import LimitState
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.trading.factories import PositionFactory
from trading.engine.step import LimitState as EngineLimitState
from trading.models import Portfolio, PortfolioStrategy, Strategy

pytestmark = pytest.mark.django_db
TODAY = date(2024, 4, 23)


def _strategy(name: str, backend: str = "paper") -> Strategy:
    return Strategy.objects.create(
        name=name,
        criteria={
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
            "limits": {"max_drawdown_halt_ratio": 0.1, "daily_loss_limit_ratio": 0.05},
        },
        execution_backend=backend,
        exchange_id="binance" if backend == "exchange" else "",
        is_enabled=True,
    )


def test_the_state_round_trips_through_the_database_to_the_engines_floats() -> None:
    strategy = _strategy("round-trip")
    state = EngineLimitState(
        day=19835,
        day_start_equity=10_123.456789012345,
        last_equity=9_000.5,
        halt_day=19835,
        peak_equity=12_345.678901234567,
        drawdown_halt_seconds=19835 * 86_400,
    )
    limit_state_save(strategy, TODAY, state)
    read = limit_state_read(strategy)
    # Exact on PostgreSQL (numeric); SQLite keeps a decimal as a REAL of about 15 significant digits.
    for name in ("day_start_equity", "last_equity", "peak_equity"):
        assert math.isclose(getattr(read, name), getattr(state, name), rel_tol=1e-14), name
    assert (read.day, read.halt_day, read.drawdown_halt_seconds) == (19835, 19835, 19835 * 86_400)
    limit_state_save(strategy, TODAY, EngineLimitState())  # the same row, updated
    assert LimitState.objects.get(strategy=strategy).peak_equity is None
    assert limit_state_read(_strategy("fresh")) == EngineLimitState()


@time_machine.travel(datetime(2024, 4, 23, 9, 0, tzinfo=UTC), tick=False)
def test_the_dashboard_says_which_strategy_a_limit_halts(client: Client) -> None:
    halted = _strategy("drawdown-halted")
    LimitState.objects.create(
        strategy=halted,
        as_of=date(2024, 4, 20),
        peak_equity=Decimal("12000"),
        drawdown_halt_since=datetime(2024, 4, 19, tzinfo=UTC),
    )
    today = _strategy("daily-halted-today")
    LimitState.objects.create(strategy=today, as_of=TODAY, day=date(2024, 4, 22), halt_day=date(2024, 4, 22))
    yesterday = _strategy("daily-halted-yesterday")  # a daily halt ends with its day
    LimitState.objects.create(
        strategy=yesterday, as_of=date(2024, 4, 22), day=date(2024, 4, 21), halt_day=date(2024, 4, 21)
    )
    client.force_login(User.objects.create_superuser("boss", password="unused-password-123"))
    page = client.get("/").content.decode()
    rows = {
        name: page.split(f'data-strategy="{name}"')[1].split("</tr>")[0]
        for name in ("drawdown-halted", "daily-halted-today", "daily-halted-yesterday")
    }
    assert (
        "halted by max_drawdown_halt_ratio since 2024-04-19 (peak 12,000.00); exits still run"
        in rows["drawdown-halted"]
    )
    assert (
        "halted for today by daily_loss_limit_ratio (2024-04-22&#x27;s loss); exits still run"
        in rows["daily-halted-today"]
    )
    assert 'data-field="halt"' not in rows["daily-halted-yesterday"]


def _staff(*codenames: str) -> Client:
    user = User.objects.create_user("-".join(codenames), password="unused-password-123", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_resetting_the_limits_needs_the_delete_permission_and_trade_live_for_an_exchange_strategy() -> None:
    paper = LimitState.objects.create(strategy=_strategy("paper"), as_of=TODAY)
    live = LimitState.objects.create(strategy=_strategy("live", backend="exchange"), as_of=TODAY)

    viewer = _staff("view_limitstate")
    assert viewer.post(f"/admin/positions/limitstate/{paper.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LimitState.objects.filter(pk=paper.pk).exists()

    deleter = _staff("view_limitstate", "delete_limitstate")
    assert deleter.post(f"/admin/positions/limitstate/{paper.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not LimitState.objects.filter(pk=paper.pk).exists()
    assert deleter.post(f"/admin/positions/limitstate/{live.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LimitState.objects.filter(pk=live.pk).exists()

    User.objects.get(username="view_limitstate-delete_limitstate").user_permissions.add(
        Permission.objects.get(codename="trade_live")
    )
    assert deleter.post(f"/admin/positions/limitstate/{live.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not LimitState.objects.filter(pk=live.pk).exists()


@time_machine.travel(datetime(2024, 4, 23, 9, 0, tzinfo=UTC), tick=False)
def test_the_dashboard_shows_each_portfolio_with_its_cash_equity_members_and_halt(client: Client) -> None:
    """Cash and equity worked by hand: starting 1,000; an open position of 2 units entered at 100 with a fee of
    0.2 (cash -200.2), marked at the newest close 120 (+240); a closed one of 1 unit at 100 (fee 0.1) sold at 110
    (fee 0.11): -100.1 + 109.89. Cash 1,000 - 200.2 - 100.1 + 109.89 = 809.59; equity 809.59 + 240 = 1,049.59."""
    coin = InstrumentFactory.create(symbol="BTC")
    CandleFactory.create(instrument=coin, open=Decimal("119"), close=Decimal("120"))
    portfolio = Portfolio.objects.create(name="core", starting_cash=Decimal("1000"), is_enabled=True)
    a, b = _strategy("trend"), _strategy("dip")
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=a, weight=Decimal("0.6"), order=0)
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=b, weight=Decimal("0.4"), order=1)
    PositionFactory.create(strategy=a, portfolio=portfolio, instrument=coin, quantity=Decimal("2"))
    PositionFactory.create(strategy=b, portfolio=portfolio, instrument=coin, closed=True)
    PositionFactory.create(strategy=b, instrument=coin)  # not the portfolio's (opened before it joined)
    LimitState.objects.create(
        portfolio=portfolio,
        as_of=TODAY,
        peak_equity=Decimal("1200"),
        drawdown_halt_since=datetime(2024, 4, 20, tzinfo=UTC),
    )
    client.force_login(User.objects.create_superuser("boss", password="unused-password-123"))
    page = client.get("/").content.decode()
    row = page.split('data-portfolio="core"')[1].split("</tr>")[0]
    assert 'data-field="cash">809.59<' in row
    assert 'data-field="equity">1,049.59<' in row
    assert "trend 60 %, dip 40 %" in row
    assert "halted by max_drawdown_halt_ratio since 2024-04-20; exits still run" in row


def test_the_dashboards_portfolios_cost_five_queries_however_many(client: Client) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from positions.selectors import portfolio_lines

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            portfolio_lines({}, TODAY)
        return len(captured.captured_queries)

    assert count() == 1  # none: the portfolios' query alone
    for n in range(3):
        portfolio = Portfolio.objects.create(name=f"p{n}")
        strategy = _strategy(f"member{n}")
        PortfolioStrategy.objects.create(portfolio=portfolio, strategy=strategy, weight=Decimal("0.5"))
        PositionFactory.create(strategy=strategy, portfolio=portfolio)
        LimitState.objects.create(portfolio=portfolio, as_of=TODAY)
        assert count() == 5
