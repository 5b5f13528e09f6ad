"""Issue 15, a walk-forward in a real browser: its page draws the stitched out-of-sample equity curve and its
drawdown (lightweight-charts), the folds table, in-sample beside out-of-sample, and the list links to it.
Screenshots go to the artifacts directory (tests/browser/conftest.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from simulator.models import RunStatus
from tests.browser.conftest import LiveBrowser

CHART_STATE = """
() => {
  const box = document.getElementById("chart-equity");
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  return {
    drawn: box.dataset.drawn,
    canvases: box.querySelectorAll("canvas").length,
    points: data.equity.time.length,
    last: data.equity.equity[data.equity.equity.length - 1],
    drawdownDrawn: document.getElementById("chart-drawdown").dataset.drawn,
  };
}
"""


def _crossover() -> dict[str, Any]:
    from tests.trading.factories import sma_cross_criteria

    document = sma_cross_criteria()
    document["params"] = {"fast": 10, "slow": 40}
    document["entry"]["all"][0]["left"]["period"] = {"param": "fast"}
    document["entry"]["all"][0]["right"]["period"] = {"param": "slow"}
    document["exit"]["any"][0]["left"]["period"] = {"param": "fast"}
    document["exit"]["any"][0]["right"]["period"] = {"param": "slow"}
    return document


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_walk_forward_page_draws_the_stitched_curve_and_the_folds(live_browser: LiveBrowser) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from simulator.services.requests import simulation_request_check
    from simulator.services.walk_forwards import walk_forward_create, walk_forward_run

    call_command("load_shipped_history", verbosity=0)
    user = User.objects.get(username=live_browser.username)
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2017, 1, 1),
        end=date(2021, 12, 31),
        starting_cash=Decimal("10000"),
        criteria=_crossover(),
    )
    record = walk_forward_create(
        request=request,
        axes=[
            {"path": "params.fast", "values": [5, 10, 20]},
            {"path": "params.slow", "values": [30, 50, 100]},
        ],
        constraints=["fast < slow"],
        statistic="sharpe_ratio",
        rule="plateau",
        train_days=365,
        test_days=90,
        created_by=user,
        name="fast x slow, rolling 365/90",
    )
    record = walk_forward_run(walk_forward_id=record.pk)
    assert record.status == RunStatus.DONE, record.error
    folds = record.result["folds"]

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#chart-equity canvas"},
            {"do": "waitFor", "selector": "#chart-equity[data-drawn=true]", "state": "attached"},
            {"do": "evaluate", "name": "chart", "function": CHART_STATE},
            {"do": "count", "name": "folds", "selector": "#folds tbody tr"},
            {"do": "count", "name": "overall", "selector": "#overall tbody tr"},
            {"do": "text", "name": "efficiency", "selector": "#walk-forward-efficiency"},
            {"do": "screenshot", "path": "walk-forward-page.png", "fullPage": True},
            {"do": "screenshot", "path": "walk-forward-curve.png", "selector": "#chart-equity"},
            {"do": "click", "selector": "nav.subnav a[href='/simulator/walk-forwards/']"},
            {"do": "waitFor", "selector": "#walk-forwards"},
            {"do": "count", "name": "listed", "selector": "#walk-forwards tbody tr"},
            {"do": "screenshot", "path": "walk-forward-list.png", "fullPage": False},
        ],
        login_next=f"/simulator/walk-forwards/{record.pk}/",
    )

    chart = result.step("chart")["value"]
    assert chart["drawn"] == "true" and chart["drawdownDrawn"] == "true"
    assert chart["canvases"] >= 1
    # (2021-12-31 - 2017-01-01 + 1 - 365) // 90 = 16 folds of 90 days.
    assert len(folds) == 16
    assert chart["points"] == 16 * 90
    assert chart["last"] == pytest.approx(folds[-1]["final_equity"], abs=0.01)
    assert result.step("folds")["count"] == 16
    assert result.step("overall")["count"] > 20
    assert "Walk-forward efficiency" in result.step("efficiency")["text"]
    assert result.step("listed")["count"] == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_walk_forward_started_from_the_form_shows_its_folds(live_browser: LiveBrowser) -> None:
    """The form's sweep section (the grid) and its walk-forward fields; a bad step first (its error next to the
    field), then a good one, which answers with the walk-forward's page (the test settings run it in the
    request)."""
    from django.core.management import call_command

    from instruments.models import Instrument
    from simulator.models import WalkForward

    call_command("load_shipped_history", verbosity=0)
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#simulator-form"},
            {"do": "select", "selector": "#id_instruments", "value": [str(bitcoin.pk)]},
            {"do": "fill", "selector": "input[name='start']", "value": "2018-01-01"},
            {"do": "fill", "selector": "input[name='end']", "value": "2020-12-31"},
            {"do": "fill", "selector": "input[name='name']", "value": "fast period, anchored"},
            {"do": "click", "selector": "#sweep summary"},
            {"do": "select", "selector": "#id_sweep_path_1", "value": "entry.all[0].left.period"},
            {"do": "fill", "selector": "#id_sweep_start_1", "value": "4"},
            {"do": "fill", "selector": "#id_sweep_stop_1", "value": "16"},
            {"do": "fill", "selector": "#id_sweep_step_1", "value": "2"},
            {"do": "fill", "selector": "#id_wf_train_days", "value": "365"},
            {"do": "fill", "selector": "#id_wf_test_days", "value": "120"},
            {"do": "fill", "selector": "#id_wf_step_days", "value": "60"},
            {"do": "check", "selector": "#id_wf_anchored"},
            {"do": "select", "selector": "#id_wf_rule", "value": "plateau"},
            {"do": "click", "selector": "#walk-forward-button"},
            {"do": "waitFor", "selector": "[data-error-for=wf_step_days] li"},
            {"do": "text", "name": "step error", "selector": "[data-error-for=wf_step_days]"},
            {"do": "screenshot", "path": "walk-forward-form-error.png", "selector": "#walk-forward-fields"},
            {"do": "fill", "selector": "#id_wf_step_days", "value": ""},
            {"do": "click", "selector": "#walk-forward-button"},
            {"do": "waitForUrl", "name": "page", "url": "**/simulator/walk-forwards/*/"},
            {"do": "waitFor", "selector": "#chart-equity[data-drawn=true]", "state": "attached"},
            {"do": "count", "name": "folds", "selector": "#folds tbody tr"},
            {"do": "text", "name": "summary", "selector": "#walk-forward-summary"},
            {"do": "screenshot", "path": "walk-forward-from-form.png", "fullPage": True},
        ],
        login_next="/simulator/",
    )

    assert "must be a whole number of days >= test_days (120)" in result.step("step error")["text"]
    record = WalkForward.objects.get()
    assert result.step("page")["url"].endswith(f"/simulator/walk-forwards/{record.pk}/")
    assert (record.anchored, record.rule, record.train_days, record.test_days, record.step_days) == (
        True,
        "plateau",
        365,
        120,
        120,
    )
    # 2018-01-01 .. 2020-12-31 is 1,096 days: (1096 - 365 - 120) // 120 + 1 = 6 folds.
    assert len(record.result["folds"]) == 6
    assert result.step("folds")["count"] == 6
    assert "anchored" in result.step("summary")["text"]
