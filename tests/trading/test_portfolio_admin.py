"""The portfolio admin (issue 16): members' weights add up to at most 1, the portfolio's limits are checked with
their paths, and a member on an exchange (real money) needs ``trading.trade_live``."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from tests.instruments.factories import InstrumentFactory
from tests.trading.factories import PositionFactory
from trading.models import Portfolio, PortfolioStrategy, Strategy

pytestmark = pytest.mark.django_db
#: What a person editing portfolios holds: the portfolio's permissions and its members' (the inline).
PORTFOLIO_PERMISSIONS = (
    "add_portfolio",
    "view_portfolio",
    "change_portfolio",
    "add_portfoliostrategy",
    "view_portfoliostrategy",
    "change_portfoliostrategy",
    "delete_portfoliostrategy",
    "view_strategy",
)
CRITERIA = {
    "version": 1,
    "side": "long",
    "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
}


def _strategy(name: str, backend: str = "paper") -> Strategy:
    return Strategy.objects.create(
        name=name,
        criteria=CRITERIA,
        execution_backend=backend,
        exchange_id="binance" if backend == "exchange" else "",
    )


def _form(members: list[tuple[Strategy, str]], **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "core",
        "description": "",
        "starting_cash": "1000",
        "limits": "{}",
        "members-TOTAL_FORMS": str(len(members)),
        "members-INITIAL_FORMS": "0",
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for n, (strategy, weight) in enumerate(members):
        data[f"members-{n}-strategy"] = str(strategy.pk)
        data[f"members-{n}-weight"] = weight
        data[f"members-{n}-order"] = str(n)
    return data


def _client(*codenames: str) -> Client:
    user = User.objects.create_user("staff", password="unused-password-123", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def test_a_portfolio_is_saved_with_its_members_and_weights() -> None:
    client = _client(*PORTFOLIO_PERMISSIONS)
    a, b = _strategy("a"), _strategy("b")
    answer = client.post("/admin/trading/portfolio/add/", _form([(a, "0.6"), (b, "0.4")]))
    assert answer.status_code == 302, answer.content.decode()[:2000]
    portfolio = Portfolio.objects.get(name="core")
    assert [(m.strategy.name, str(m.weight)) for m in portfolio.members.all()] == [
        ("a", "0.600000"),
        ("b", "0.400000"),
    ]


def test_weights_above_one_and_bad_limits_are_refused_with_their_messages() -> None:
    client = _client(*PORTFOLIO_PERMISSIONS)
    a, b = _strategy("a"), _strategy("b")
    page = client.post(
        "/admin/trading/portfolio/add/",
        _form([(a, "0.7"), (b, "0.4")], limits='{"max_open_positions": 0, "daily_loss_limit_ratio": 2}'),
    ).content.decode()
    assert "the members&#x27; weights add up to 1.1; at most 1" in page
    assert "limits.max_open_positions: must be an integer &gt;= 1 or null, was 0" in page
    assert (
        "limits.daily_loss_limit_ratio: must be &gt; 0 and &lt; 1 or null" in page
        or "daily_loss_limit_ratio" in page
    )
    assert not Portfolio.objects.exists()
    page = client.post("/admin/trading/portfolio/add/", _form([(a, "1.5")])).content.decode()
    assert (
        "Ensure this value is less than or equal to 1" in page or "portfolio_strategy_weight_0_to_1" in page
    )
    assert not Portfolio.objects.exists()


def test_an_exchange_member_needs_trade_live() -> None:
    client = _client(*PORTFOLIO_PERMISSIONS)
    live = _strategy("live", backend="exchange")
    assert client.post("/admin/trading/portfolio/add/", _form([(live, "0.5")])).status_code == 403
    assert not PortfolioStrategy.objects.exists()
    User.objects.get(username="staff").user_permissions.add(Permission.objects.get(codename="trade_live"))
    assert client.post("/admin/trading/portfolio/add/", _form([(live, "0.5")])).status_code == 302
    assert PortfolioStrategy.objects.get().strategy == live


def test_a_strategy_joins_or_leaves_only_without_open_positions_of_another_account() -> None:
    client = _client(*PORTFOLIO_PERMISSIONS)
    a, b = _strategy("a"), _strategy("b")
    instrument = InstrumentFactory.create()
    PositionFactory.create(strategy=b, instrument=instrument)  # b's own account holds one
    page = client.post("/admin/trading/portfolio/add/", _form([(a, "0.5"), (b, "0.5")])).content.decode()
    assert "b holds open positions of its own account: close them before it joins" in page
    assert not Portfolio.objects.exists()

    assert client.post("/admin/trading/portfolio/add/", _form([(a, "0.5")])).status_code == 302
    portfolio = Portfolio.objects.get()
    member = PortfolioStrategy.objects.get()
    PositionFactory.create(strategy=a, instrument=instrument, portfolio=portfolio)
    leaving = _form(
        [],
        **{
            "members-TOTAL_FORMS": "1",
            "members-INITIAL_FORMS": "1",
            "members-0-id": str(member.pk),
            "members-0-portfolio": str(portfolio.pk),
            "members-0-strategy": str(a.pk),
            "members-0-weight": "0.5",
            "members-0-order": "0",
            "members-0-DELETE": "on",
        },
    )
    page = client.post(f"/admin/trading/portfolio/{portfolio.pk}/change/", leaving).content.decode()
    assert (
        "a holds open positions bought with this portfolio&#x27;s cash: close them before it leaves" in page
    )
    assert PortfolioStrategy.objects.filter(pk=member.pk).exists()
