"""Issue 16, "Deploy winners" in a real browser: a portfolio of two members and a run of each; propose with
``winners`` by ``sharpe_ratio``, read the table, confirm, then see the History row of the change and the new
weights in the portfolio's admin. Screenshots go to the artifacts directory (tests/browser/conftest.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from simulator.models import RunStatus
from tests.browser.conftest import LiveBrowser

DAY = 86_400

TABLE = """
() => Array.from(document.querySelectorAll("#deploy-table tbody tr")).map((tr) => ({
  strategy: tr.dataset.strategy,
  current: tr.querySelector("[data-field=current]").textContent.trim(),
  proposed: tr.querySelector("[data-field=proposed]").textContent.trim(),
  change: tr.querySelector("[data-field=change]").textContent.trim(),
  statistic: tr.querySelector("[data-field=statistic]").textContent.trim(),
  volatility: tr.querySelector("[data-field=volatility]").textContent.trim(),
  reason: tr.querySelector("[data-field=reason]").textContent.trim(),
}))
"""

CURRENT_WEIGHTS = """
() => Array.from(document.querySelectorAll("#deploy-current [data-field=weight]")).map((td) => td.textContent.trim())
"""

ADMIN_WEIGHTS = """
() => Array.from(document.querySelectorAll("input[name^='members-'][name$='-weight']"))
  .filter((input) => input.value !== "")
  .map((input) => input.value)
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_deploy_winners_end_to_end(live_browser: LiveBrowser) -> None:
    from django.contrib.auth.models import User

    from runs.models import History, HistoryKind
    from simulator.models import Simulation
    from tests.accounts import permissions
    from tests.trading.factories import StrategyFactory, sma_cross_criteria
    from trading.models import Portfolio, PortfolioStrategy

    user = User.objects.get(username=live_browser.username)
    # The admin shows a portfolio's members (an inline) to who may see or change PortfolioStrategy rows.
    user.user_permissions.add(
        *permissions("trading.view_portfolio", "trading.change_portfolio", "trading.change_portfoliostrategy")
    )
    portfolio = Portfolio.objects.create(name="core")
    runs: dict[str, Simulation] = {}
    # Trend: Sharpe 1.2, curve 10 000 -> 11 000 -> 9 900 -> 10 890 (daily returns +10 %, -10 %, +10 %).
    # Chop: Sharpe -0.4, the same curve at half the swings.
    figures: list[tuple[str, float, list[float]]] = [
        ("trend", 1.2, [10000, 11000, 9900, 10890]),
        ("chop", -0.4, [10000, 10500, 9975, 10473.75]),
    ]
    for order, (name, sharpe, equity) in enumerate(figures):
        strategy = StrategyFactory.create(
            name=name, criteria=sma_cross_criteria(stop_loss_ratio=0.05 + order / 100)
        )
        PortfolioStrategy.objects.create(
            portfolio=portfolio, strategy=strategy, weight=Decimal("0.5"), order=order
        )
        start = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
        runs[name] = Simulation.objects.create(
            name=f"{name} 2024",
            created_by=user,
            start=date(2024, 1, 1),
            end=date(2024, 1, 4),
            starting_cash=Decimal(10000),
            criteria=strategy.criteria,
            source_strategy=strategy,
            status=RunStatus.DONE,
            statistics={"sharpe_ratio": sharpe},
            equity_curve={"time": [start + DAY * i for i in range(4)], "equity": [float(e) for e in equity]},
        )
    members = {m.strategy.name: m for m in portfolio.members.select_related("strategy")}

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#deploy-form"},
            {
                "do": "select",
                "selector": f"#id_run_{members['trend'].pk}",
                "value": f"simulation:{runs['trend'].pk}",
            },
            {
                "do": "select",
                "selector": f"#id_run_{members['chop'].pk}",
                "value": f"simulation:{runs['chop'].pk}",
            },
            {"do": "select", "selector": "#id_rule", "value": "winners"},
            {"do": "select", "selector": "#id_statistic", "value": "sharpe_ratio"},
            {"do": "fill", "selector": "#id_threshold", "value": "0"},
            {"do": "click", "selector": "#deploy-propose"},
            {"do": "waitFor", "selector": "#deploy-table"},
            {"do": "evaluate", "name": "table", "function": TABLE},
            {"do": "screenshot", "path": "deploy-proposal.png", "fullPage": True},
            {"do": "click", "selector": "#deploy-confirm"},
            {"do": "waitFor", "selector": ".message.success"},
            {"do": "text", "name": "message", "selector": ".message.success"},
            {"do": "evaluate", "name": "after", "function": CURRENT_WEIGHTS},
            {"do": "screenshot", "path": "deploy-applied.png", "fullPage": True},
            {"do": "click", "selector": "#deploy-history"},
            {"do": "waitFor", "selector": ".field-payload"},
            {"do": "text", "name": "history", "selector": ".field-payload"},
            {"do": "text", "name": "history kind", "selector": ".field-kind"},
            {"do": "screenshot", "path": "deploy-history.png", "fullPage": True},
            {"do": "goto", "url": live_browser.url(f"/admin/trading/portfolio/{portfolio.pk}/change/")},
            {"do": "waitFor", "selector": "#deploy-winners-link"},
            {"do": "evaluate", "name": "admin weights", "function": ADMIN_WEIGHTS},
            {"do": "screenshot", "path": "deploy-admin.png", "fullPage": True},
        ],
        login_next=f"/simulator/deploy/{portfolio.pk}/",
    )

    table = {row["strategy"]: row for row in result.step("table")["value"]}
    assert (table["trend"]["current"], table["trend"]["proposed"], table["trend"]["change"]) == (
        "0.5",
        "1",
        "+0.5",
    )
    assert (table["chop"]["current"], table["chop"]["proposed"], table["chop"]["change"]) == (
        "0.5",
        "0",
        "-0.5",
    )
    assert table["trend"]["statistic"] == "1.20" and table["chop"]["statistic"] == "-0.40"
    # sqrt(12) / 30 = 11.55 % a day; half the swings, half the volatility.
    assert table["trend"]["volatility"] == "11.55 %" and table["chop"]["volatility"] == "5.77 %"
    assert "winner" in table["trend"]["reason"] and "loser" in table["chop"]["reason"]
    assert "trend 0.5 -> 1, chop 0.5 -> 0" in result.step("message")["text"]
    assert result.step("after")["value"] == ["1", "0"]
    history = result.step("history")["text"]
    assert '"old_weight": "0.500000"' in history and '"new_weight": "1.000000"' in history
    assert "Weights Changed" in result.step("history kind")["text"]
    assert result.step("admin weights")["value"] == ["1.000000", "0.000000"]
    row = History.objects.get(kind=HistoryKind.WEIGHTS_CHANGED)
    assert [m["new_weight"] for m in row.payload["members"]] == ["1.000000", "0.000000"]
