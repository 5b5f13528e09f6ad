"""Issue 14, the report in a real browser: the criteria's indicators on the candle chart with volume and a legend,
the log scale toggle, a click on a trade moving the chart to it, compare's marks and deleting a run."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from simulator.models import Simulation
from tests.accounts import permissions
from tests.browser.conftest import LiveBrowser
from tests.trading.factories import sma_cross_criteria

# What the candle chart of BTC drew: its data attributes (set by simulator.js as it draws) and the lines' labels
# from the page's chart data.
CHART_STATE = """
() => {
  const box = document.getElementById("chart-candles-BTC");
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  return {
    drawn: box.dataset.drawn,
    lines: Number(box.dataset.lines),
    panes: Number(box.dataset.panes),
    volumeBars: Number(box.dataset.volumeBars || 0),
    labels: data.indicators.BTC.lines.map((line) => line.label + " @" + line.pane),
    firstValues: data.indicators.BTC.lines.map((line) => line.values.filter((v) => v !== null).length),
    bars: data.candles.BTC.length,
    logScale: box.dataset.logScale || "false",
    from: Number(box.dataset.visibleFrom),
    to: Number(box.dataset.visibleTo),
  };
}
"""

# The trade row clicked (the third of the table) and the chart's visible range after the click.
CLICKED = """
() => {
  const row = document.querySelector("#trades tbody tr:nth-child(3)");
  const box = document.getElementById("chart-candles-BTC");
  return {
    entry: Number(row.dataset.entryTime),
    exit: Number(row.dataset.exitTime),
    selected: row.classList.contains("selected"),
    from: Number(box.dataset.visibleFrom),
    to: Number(box.dataset.visibleTo),
  };
}
"""


def _run(user: Any, criteria: dict[str, Any], name: str) -> Simulation:
    from simulator.launch import simulation_start
    from simulator.services.requests import simulation_request_check

    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2019, 1, 1),
        end=date(2021, 12, 31),
        starting_cash=Decimal("10000"),
        criteria=criteria,
    )
    return simulation_start(request=request, created_by=user, name=name)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_report_draws_indicators_moves_to_a_clicked_trade_compares_and_deletes(
    live_browser: LiveBrowser,
) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("load_shipped_history", verbosity=0)
    user = User.objects.get(username=live_browser.username)
    user.user_permissions.add(*permissions("simulator.delete_simulation"))
    trend = sma_cross_criteria(stop_loss_ratio=0.08, take_profit_ratio=0.4)
    trend["entry"] = {
        "all": [
            {
                "left": {"indicator": "sma", "period": 20},
                "op": "crosses_above",
                "right": {"indicator": "sma", "period": 50},
            },
            {"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 75}},
        ]
    }
    trend["exit"] = {
        "any": [
            {
                "left": {"indicator": "sma", "period": 20},
                "op": "crosses_below",
                "right": {"indicator": "sma", "period": 50},
            }
        ]
    }
    first = _run(user, trend, "SMA 20/50 with RSI")
    second = _run(user, sma_cross_criteria(stop_loss_ratio=0.03), "SMA 10/20, 3 % stop")
    assert first.statistics["n_trades"] >= 3

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#chart-candles-BTC canvas"},
            {"do": "waitFor", "selector": "#chart-candles-BTC[data-drawn=true]", "state": "attached"},
            {"do": "evaluate", "name": "before", "function": CHART_STATE},
            {"do": "text", "name": "legend", "selector": "#legend-BTC"},
            {"do": "text", "name": "words", "selector": "#run-criteria"},
            {"do": "screenshot", "path": "report-run-page.png", "fullPage": True},
            {"do": "screenshot", "path": "report-candle-chart.png", "selector": "#chart-candles-BTC"},
            {"do": "click", "selector": "#trades tbody tr:nth-child(3) td:nth-child(2)"},
            {"do": "waitFor", "selector": "#trades tbody tr.selected", "state": "attached"},
            {"do": "evaluate", "name": "clicked", "function": CLICKED},
            {"do": "screenshot", "path": "report-trade-clicked.png", "selector": "#chart-candles-BTC"},
            {"do": "check", "selector": "#log-scale"},
            {"do": "waitFor", "selector": "#chart-candles-BTC[data-log-scale=true]", "state": "attached"},
            {"do": "evaluate", "name": "log", "function": CHART_STATE},
            {"do": "screenshot", "path": "report-log-scale.png", "selector": "#chart-candles-BTC"},
            {"do": "goto", "url": live_browser.url(f"/simulator/compare/?ids={first.pk}&ids={second.pk}")},
            {"do": "waitFor", "selector": "#chart-compare canvas"},
            {"do": "count", "name": "best", "selector": "#compare td.best"},
            {"do": "count", "name": "holds", "selector": "#compare th.hold"},
            {"do": "count", "name": "differences", "selector": "#compare-criteria tr[data-difference]"},
            {"do": "screenshot", "path": "report-compare.png", "fullPage": True},
            {"do": "goto", "url": live_browser.url(f"/simulator/runs/{second.pk}/")},
            {"do": "click", "selector": "#delete-run summary"},
            {"do": "screenshot", "path": "report-delete-confirm.png", "selector": "#delete-run"},
            {"do": "click", "selector": "#delete-confirm"},
            {"do": "waitForUrl", "name": "after delete", "url": "**/simulator/runs/"},
            {"do": "text", "name": "deleted", "selector": ".messages"},
            {"do": "count", "name": "runs left", "selector": "#runs tbody tr"},
        ],
        login_next=f"/simulator/runs/{first.pk}/",
    )

    before = result.step("before")["value"]
    assert before["drawn"] == "true"
    assert before["labels"] == ["SMA(20) @price", "SMA(50) @price", "RSI(14) @rsi"]
    assert before["lines"] == 3 and before["panes"] == 2  # the candles' pane and RSI's
    assert before["volumeBars"] > 1000  # the shipped history has volumes
    assert min(before["firstValues"]) == before["bars"]  # warmed up before the start: a value on every bar
    legend = result.step("legend")["text"]
    for item in ("entry", "exit with a gain", "exit with a loss", "SMA(20)", "SMA(50)", "RSI(14)", "volume"):
        assert item in legend
    assert result.step("words")["text"].startswith(
        "Criteria: Enter long when SMA(20) crosses above SMA(50) and RSI(14) is below 75;"
    )
    # the whole run at first; the clicked trade's range (and a margin) after the click
    clicked = result.step("clicked")["value"]
    assert clicked["selected"]
    assert before["to"] - before["from"] > 1000 * 86_400  # the three years of the run
    assert clicked["from"] <= clicked["entry"] and clicked["exit"] <= clicked["to"]
    assert clicked["to"] - clicked["from"] < (before["to"] - before["from"]) / 2
    assert result.step("log")["value"]["logScale"] == "true"
    assert result.step("best")["count"] >= 5
    assert result.step("holds")["count"] == 1
    assert result.step("differences")["count"] >= 3  # the entry's periods, its RSI, the stops
    assert result.step("after delete")["url"].endswith("/simulator/runs/")
    assert f"Deleted {second.name}." in result.step("deleted")["text"]
    assert not Simulation.objects.filter(pk=second.pk).exists()
    assert result.step("runs left")["count"] == 1
    assert result.page_errors == []
    for name in (
        "report-run-page.png",
        "report-candle-chart.png",
        "report-trade-clicked.png",
        "report-compare.png",
    ):
        assert live_browser.artifact(name).stat().st_size > 10_000
