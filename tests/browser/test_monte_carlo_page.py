"""Issue 15, a run's Monte Carlo of the trades in a real browser: the fan chart drawn under the equity curve with its
percentile table and drawdown sentence, a redraw with the bootstrap, and a bad number of paths shown next to its
field. Screenshots are kept as artifacts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tests.browser.conftest import LiveBrowser
from tests.trading.factories import sma_cross_criteria

FAN_STATE = """
() => {
  const box = document.getElementById("chart-monte-carlo");
  const data = JSON.parse(document.getElementById("monte-carlo-data").textContent);
  return {
    drawn: box.dataset.drawn,
    canvases: box.querySelectorAll("canvas").length,
    height: box.getBoundingClientRect().height,
    rows: document.querySelectorAll("#monte-carlo-table tbody tr").length,
    method: document.getElementById("monte-carlo-table").dataset.method,
    paths: Number(document.getElementById("monte-carlo-table").dataset.paths),
    bands: data.equity.length,
    points: data.trade_numbers.length,
    actual: data.actual.length,
  };
}
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_runs_monte_carlo_fan_is_drawn_and_redrawn_and_bad_input_is_shown(
    live_browser: LiveBrowser,
) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from simulator.launch import simulation_start
    from simulator.services.requests import simulation_request_check

    call_command("load_shipped_history", verbosity=0)
    user = User.objects.get(username=live_browser.username)
    run = simulation_start(
        request=simulation_request_check(
            instruments=["bitcoin"],
            start=date(2019, 1, 1),
            end=date(2021, 12, 31),
            starting_cash=Decimal("10000"),
            criteria=sma_cross_criteria(stop_loss_ratio=0.05),
        ),
        created_by=user,
        name="SMA 10/20, 5 % stop",
    )
    n_trades = len(run.trades)
    assert n_trades >= 10

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#chart-monte-carlo canvas"},
            {"do": "waitFor", "selector": "#chart-monte-carlo[data-drawn=true]", "state": "attached"},
            {"do": "evaluate", "name": "reshuffled", "function": FAN_STATE},
            {"do": "text", "name": "sentence", "selector": "#monte-carlo-sentence"},
            {"do": "screenshot", "path": "monte-carlo-section.png", "selector": "#monte-carlo"},
            {"do": "select", "selector": "#id_mc-method", "value": "bootstrap"},
            {"do": "fill", "selector": "#id_mc-paths", "value": "500"},
            {"do": "fill", "selector": "#id_mc-seed", "value": "7"},
            {"do": "fill", "selector": "#id_mc-drawdown_limit_pct", "value": "20"},
            {"do": "click", "selector": "#monte-carlo-form button[type=submit]"},
            {"do": "waitFor", "selector": "#monte-carlo-table[data-method=bootstrap]", "state": "attached"},
            {"do": "waitFor", "selector": "#chart-monte-carlo[data-drawn=true]", "state": "attached"},
            {"do": "evaluate", "name": "booted", "function": FAN_STATE},
            {"do": "text", "name": "booted sentence", "selector": "#monte-carlo-sentence"},
            {"do": "screenshot", "path": "monte-carlo-bootstrap.png", "selector": "#monte-carlo"},
            {"do": "fill", "selector": "#id_mc-paths", "value": "0"},
            {"do": "click", "selector": "#monte-carlo-form button[type=submit]"},
            {"do": "waitFor", "selector": "[data-error-for=mc-paths]", "state": "attached"},
            {"do": "text", "name": "error", "selector": "[data-error-for=mc-paths]"},
            {"do": "count", "name": "charts after error", "selector": "#chart-monte-carlo"},
            {"do": "screenshot", "path": "monte-carlo-bad-paths.png", "selector": "#monte-carlo"},
        ],
        login_next=f"/simulator/runs/{run.pk}/",
    )

    reshuffled = result.step("reshuffled")["value"]
    assert reshuffled["drawn"] == "true"
    assert reshuffled["canvases"] >= 1 and reshuffled["height"] > 200
    assert reshuffled["rows"] == 3
    assert (reshuffled["method"], reshuffled["paths"]) == ("reshuffle", 1000)
    assert reshuffled["bands"] == 5
    assert reshuffled["points"] == reshuffled["actual"] == n_trades + 1
    assert (
        "of the 1,000 reshuffle paths the maximum drawdown went beyond 30 %"
        in result.step("sentence")["text"]
    )
    booted = result.step("booted")["value"]
    assert (booted["method"], booted["paths"]) == ("bootstrap", 500)
    assert "went beyond 20 %" in result.step("booted sentence")["text"]
    assert "greater than or equal to 1" in result.step("error")["text"]
    assert result.step("charts after error")["count"] == 0
    assert result.page_errors == []
    for name in ("monte-carlo-section.png", "monte-carlo-bootstrap.png"):
        assert live_browser.artifact(name).stat().st_size > 10_000
