"""The sweep page's "Is the best point luck?" in Chromium (issue 15): a real sweep on the shipped BTC history
shows its deflated Sharpe line and the histogram of CSCV's logits."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tests.browser.conftest import LiveBrowser

BARS = """
() => [...document.querySelectorAll("#logit-histogram .bar")].map((bar) => ({
  count: Number(bar.dataset.count),
  height: bar.getBoundingClientRect().height,
  overfit: bar.classList.contains("overfit"),
}))
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_sweep_page_shows_its_deflated_sharpe_line_and_the_logit_histogram(
    live_browser: LiveBrowser,
) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from simulator.models import RunStatus
    from simulator.services.requests import simulation_request_check
    from simulator.services.sweeps import sweep_chunks, sweep_create, sweep_run_in_process
    from tests.simulator.test_param_sweeps import CROSSOVER

    call_command("load_shipped_history", verbosity=0)
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2018, 1, 1),
        end=date(2023, 12, 31),
        starting_cash=Decimal("10000"),
        criteria=CROSSOVER,
    )
    owner = get_user_model().objects.get(username=live_browser.username)
    sweep = sweep_create(
        request=request,
        axes=[
            {"path": "params.fast", "start": 5, "stop": 50, "step": 5},
            {"path": "params.slow", "start": 20, "stop": 200, "step": 20},
        ],
        constraints="fast < slow",
        statistic="sharpe_ratio",
        created_by=owner,
        name="fast x slow",
    )
    sweep_run_in_process(sweep_id=sweep.pk, chunks=sweep_chunks(sweep.total, 2))
    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE, sweep.error
    assert sweep.robustness["available"], sweep.robustness

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#sweep-robustness"},
            {"do": "text", "name": "dsr", "selector": "#robustness-dsr"},
            {"do": "text", "name": "pbo", "selector": "#robustness-pbo"},
            {"do": "evaluate", "name": "bars", "function": BARS},
            {"do": "screenshot", "path": "sweep-robustness.png", "selector": "#sweep-robustness"},
            {"do": "screenshot", "path": "sweep-page.png"},
        ],
        login_next=f"/simulator/sweeps/{sweep.pk}/",
    )

    robustness = sweep.robustness
    dsr_line = result.step("dsr")["text"]
    assert dsr_line.startswith(robustness["sentence"])
    assert f"Best of {robustness['trials']} trials: deflated Sharpe ratio" in dsr_line
    assert robustness["verdict"] in dsr_line
    assert result.step("pbo")["text"] == robustness["pbo"]["sentence"]
    bars = result.step("bars")["value"]
    assert [b["count"] for b in bars] == [b["count"] for b in robustness["pbo"]["histogram"]["bins"]]
    tallest = max(bars, key=lambda b: b["count"])
    assert tallest["height"] > 50  # drawn: the tallest bar fills the chart's height (8rem)
    assert [b["overfit"] for b in bars] == [b["high"] <= 0 for b in robustness["pbo"]["histogram"]["bins"]]
    assert result.page_errors == []
    assert live_browser.artifact("sweep-robustness.png").stat().st_size > 5_000
    print(f"\n{dsr_line}\n{result.step('pbo')['text']}")
