"""Issue 16, a portfolio run in a real browser: the form with two saved strategies and their weights, submitted,
answers with the run's page, which draws the account's equity curve beside buy and hold (lightweight-charts) and
shows the members' table. Screenshots go to the artifacts directory (tests/browser/conftest.py)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import LiveBrowser

CHART_STATE = """
() => {
  const box = document.getElementById("chart-equity");
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  return {
    drawn: box.dataset.drawn,
    canvases: box.querySelectorAll("canvas").length,
    points: data.equity.time.length,
    holdPoints: data.equity.buy_and_hold.length,
    last: data.equity.equity[data.equity.equity.length - 1],
  };
}
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_portfolio_of_two_saved_strategies_run_from_the_form(live_browser: LiveBrowser) -> None:
    from django.core.management import call_command

    from instruments.models import Instrument
    from simulator.models import PortfolioSimulation, RunStatus
    from tests.trading.factories import StrategyFactory, sma_cross_criteria

    call_command("load_shipped_history", verbosity=0)
    bitcoin, ethereum = (Instrument.objects.get(coingecko_id=c) for c in ("bitcoin", "ethereum"))
    trend = StrategyFactory.create(name="btc trend", criteria=sma_cross_criteria(), instruments=[bitcoin])
    other = StrategyFactory.create(name="eth trend", criteria=sma_cross_criteria(), instruments=[ethereum])

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#portfolio-form"},
            {"do": "fill", "selector": f"#id_weight_{trend.pk}", "value": "60"},
            {"do": "fill", "selector": f"#id_weight_{other.pk}", "value": "40"},
            {"do": "fill", "selector": "#id_start", "value": "2018-01-01"},
            {"do": "fill", "selector": "#id_end", "value": "2019-12-31"},
            {"do": "fill", "selector": "#id_name", "value": "btc 60 / eth 40"},
            {"do": "screenshot", "path": "portfolio-form.png", "fullPage": True},
            {"do": "click", "selector": "#portfolio-run-button"},
            {"do": "waitForUrl", "name": "page", "url": "**/simulator/portfolios/*/"},
            {"do": "waitFor", "selector": "#chart-equity canvas"},
            {"do": "waitFor", "selector": "#chart-equity[data-drawn=true]", "state": "attached"},
            {"do": "evaluate", "name": "chart", "function": CHART_STATE},
            {"do": "count", "name": "members", "selector": "#portfolio-members-table tbody tr"},
            {
                "do": "text",
                "name": "first pnl",
                "selector": "#portfolio-members-table tbody tr [data-field=pnl]",
            },
            {"do": "count", "name": "correlation", "selector": "#portfolio-correlation tbody tr"},
            {"do": "screenshot", "path": "portfolio-page.png", "fullPage": True},
            {"do": "screenshot", "path": "portfolio-equity.png", "selector": "#chart-equity"},
        ],
        login_next="/simulator/portfolios/new/",
    )

    record = PortfolioSimulation.objects.get()
    assert record.status == RunStatus.DONE, record.error
    assert result.step("page")["url"].endswith(f"/simulator/portfolios/{record.pk}/")
    assert [(m["name"], m["weight"]) for m in record.members] == [("btc trend", 0.6), ("eth trend", 0.4)]
    chart = result.step("chart")["value"]
    assert chart["drawn"] == "true" and chart["canvases"] >= 1
    # 2018-01-01 .. 2019-12-31: 730 days, a point each (the account is valued every day, gaps included).
    assert chart["points"] == chart["holdPoints"] == 730
    assert chart["last"] == pytest.approx(record.equity_curve["equity"][-1], abs=0.01)
    assert result.step("members")["count"] == 2
    assert result.step("first pnl")["text"] == f"{float(record.attribution[0]['pnl']):,.2f}"
    assert result.step("correlation")["count"] == 2
    assert not result.page_errors
