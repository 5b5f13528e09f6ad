"""The run page's report in a real browser (issue 14): an SMA crossover on the shipped BTC history shows the new
statistics, the trades' duration, MAE, MFE and cumulative P&L, the breakdowns and the monthly returns."""

from __future__ import annotations

import pytest

from simulator.models import Simulation
from tests.browser.conftest import LiveBrowser

# What the report shows, read from the page as a user sees it (innerText).
REPORT = """
() => {
  const text = (element) => (element ? element.innerText.trim() : null);
  const statistic = (key) => text(document.querySelector(`#statistics tr[data-key="${key}"] td[data-field="value"]`));
  const keys = ["volatility_ratio", "avg_drawdown_ratio", "sqn", "avg_win", "avg_loss", "avg_win_ratio",
                "avg_loss_ratio", "largest_win", "largest_loss", "max_consecutive_losses", "max_trade_duration_days"];
  const firstTrade = document.querySelector("#trades tbody tr");
  const rows = (selector) => [...document.querySelectorAll(selector)].map((row) => [...row.cells].map(text));
  return {
    statistics: Object.fromEntries(keys.map((key) => [key, statistic(key)])),
    tradeHeadings: [...document.querySelectorAll("#trades thead th")].map(text),
    firstTrade: firstTrade ? [...firstTrade.cells].map(text) : [],
    reasons: rows("#breakdown-exit-reason tbody tr"),
    instruments: rows("#breakdown-instrument tbody tr"),
    years: rows("#monthly-returns tbody tr"),
    monthlyColoured: document.querySelectorAll("#monthly-returns td.gain, #monthly-returns td.loss").length,
  };
}
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_sma_crossover_report_shows_its_figures_breakdowns_and_monthly_returns(
    live_browser: LiveBrowser,
) -> None:
    from django.core.management import call_command

    from instruments.models import Instrument

    call_command("load_shipped_history", verbosity=0)
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#simulator-form"},
            {"do": "select", "selector": "#id_instruments", "value": [str(bitcoin.pk)]},
            {"do": "fill", "selector": "input[name='start']", "value": "2019-01-01"},
            {"do": "fill", "selector": "input[name='end']", "value": "2021-12-31"},
            {"do": "fill", "selector": "input[name='entry-0-left_period']", "value": "10"},
            {"do": "fill", "selector": "input[name='entry-0-right_period']", "value": "30"},
            {"do": "fill", "selector": "input[name='exit-0-left_period']", "value": "10"},
            {"do": "fill", "selector": "input[name='exit-0-right_period']", "value": "30"},
            {"do": "fill", "selector": "input[name='stop_loss_pct']", "value": "8"},
            {"do": "click", "selector": "#run-button"},
            {"do": "waitForUrl", "name": "result", "url": "**/simulator/runs/*/"},
            {"do": "waitFor", "selector": "#monthly-returns"},
            {"do": "evaluate", "name": "report", "function": REPORT},
            {"do": "screenshot", "path": "report-statistics.png", "selector": "#statistics"},
            {"do": "screenshot", "path": "report-trades.png", "selector": "#trades"},
            {"do": "screenshot", "path": "report-breakdowns.png", "selector": ".breakdowns"},
            {"do": "screenshot", "path": "report-monthly.png", "selector": "#monthly-returns"},
            {"do": "screenshot", "path": "report-page.png"},
        ],
        login_next="/simulator/",
    )

    simulation = Simulation.objects.get()
    statistics = simulation.statistics
    report = result.step("report")["value"]
    shown = report["statistics"]
    assert shown["sqn"] == f"{statistics['sqn']:,.2f}"
    assert shown["volatility_ratio"] == f"{statistics['volatility_ratio'] * 100:,.2f} %"
    assert shown["largest_loss"] == f"{statistics['largest_loss']:,.2f} USD"
    assert shown["max_consecutive_losses"] == str(statistics["max_consecutive_losses"])
    assert all(value and value != "\u2014" for value in shown.values()), shown
    assert report["tradeHeadings"][-5:] == ["P&L %", "MAE", "MFE", "Cumulative P&L", "Exit reason"]
    assert "Duration" in report["tradeHeadings"]
    first = simulation.trades[0]
    assert report["firstTrade"][report["tradeHeadings"].index("MAE")] == f"{first['mae_ratio'] * 100:,.2f} %"
    assert sum(int(row[1]) for row in report["reasons"]) == statistics["n_trades"]
    assert [row[0] for row in report["instruments"]] == ["BTC"]
    assert [row[0] for row in report["years"]] == ["2019", "2020", "2021"]
    assert all(len(row) == 14 for row in report["years"])  # year, 12 months, the year's total
    assert report["monthlyColoured"] >= 30
    assert result.page_errors == []
    assert live_browser.artifact("report-page.png").stat().st_size > 10_000
