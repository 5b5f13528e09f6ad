"""A named-parameter crossover sweep in a real browser (issue 14): the builder makes the SMA periods parameters
(fast, slow) shared by entry and exit, the sweep runs fast 5..50 x slow 20..200 with fast < slow on the shipped BTC
history, and the heatmap shows the cells that break the constraint as skipped."""

from __future__ import annotations

import pytest

from simulator.models import RunStatus, Sweep
from tests.browser.conftest import LiveBrowser

HEATMAP_CELLS = """
() => [...document.querySelectorAll("#heatmap td")].map((td) => ({
  index: Number(td.dataset.index),
  skipped: td.classList.contains("skipped"),
  text: td.textContent.trim(),
  link: !!td.querySelector("a"),
}))
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_fast_slow_parameter_sweep_with_fast_below_slow_skips_the_other_cells(
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
            {"do": "fill", "selector": "input[name='start']", "value": "2018-01-01"},
            {"do": "fill", "selector": "input[name='end']", "value": "2023-12-31"},
            # "Make this a parameter" on the entry's fast SMA, renamed fast; then the slow one, renamed slow.
            {"do": "click", "selector": "[data-make-param='entry-0-left_period']"},
            {"do": "waitFor", "selector": "[data-param-row='sma_period']"},
            {"do": "fill", "selector": "input[name='param-0-name']", "value": "fast"},
            {"do": "click", "selector": "[data-make-param='entry-0-right_period']"},
            {"do": "waitFor", "selector": "[data-param-row='fast']"},
            {"do": "fill", "selector": "input[name='param-1-name']", "value": "slow"},
            # The exit picks the same parameters.
            {"do": "fill", "selector": "input[name='exit-0-left_period']", "value": "$fast"},
            {"do": "fill", "selector": "input[name='exit-0-right_period']", "value": "$slow"},
            {
                "do": "click",
                "selector": "#sweep summary",
            },  # leaves the field: its change lists the parameters
            {
                "do": "waitFor",
                "selector": "#id_sweep_path_2 option[value='params.slow']",
                "state": "attached",
            },
            {"do": "select", "selector": "#id_sweep_path_1", "value": "params.fast"},
            {"do": "fill", "selector": "#id_sweep_start_1", "value": "5"},
            {"do": "fill", "selector": "#id_sweep_stop_1", "value": "50"},
            {"do": "fill", "selector": "#id_sweep_step_1", "value": "5"},
            {"do": "select", "selector": "#id_sweep_path_2", "value": "params.slow"},
            {"do": "fill", "selector": "#id_sweep_start_2", "value": "20"},
            {"do": "fill", "selector": "#id_sweep_stop_2", "value": "200"},
            {"do": "fill", "selector": "#id_sweep_step_2", "value": "20"},
            {"do": "fill", "selector": "#id_sweep_constraints", "value": "fast < slow"},
            {"do": "screenshot", "path": "param-sweep-form.png", "selector": "#simulator-form"},
            {"do": "click", "selector": "#sweep-button"},
            {"do": "waitForUrl", "name": "sweep", "url": "**/simulator/sweeps/*/"},
            {"do": "waitFor", "selector": "#heatmap", "timeoutMs": 150000},
            {"do": "evaluate", "name": "cells", "function": HEATMAP_CELLS},
            {"do": "text", "name": "summary", "selector": "#sweep-summary"},
            {"do": "screenshot", "path": "param-sweep-heatmap.png"},
        ],
        login_next="/simulator/",
        timeout_seconds=240,
    )

    sweep = Sweep.objects.get()
    assert result.step("sweep")["url"].endswith(f"/simulator/sweeps/{sweep.pk}/")
    assert sweep.status == RunStatus.DONE, sweep.error
    assert sweep.constraints == ["fast < slow"]
    assert [a["path"] for a in sweep.axes] == ["params.fast", "params.slow"]
    # Entry and exit both refer to the two parameters: one axis moves both SMAs of a side.
    entry, exit_ = sweep.criteria["entry"]["all"][0], sweep.criteria["exit"]["any"][0]
    assert entry["left"]["period"] == exit_["left"]["period"] == {"param": "fast"}
    assert entry["right"]["period"] == exit_["right"]["period"] == {"param": "slow"}
    assert sweep.criteria["params"] == {"fast": 10, "slow": 20}

    cells = result.step("cells")["value"]
    assert len(cells) == 100
    fast = [5 + 5 * (c["index"] // 10) for c in cells]
    slow = [20 + 20 * (c["index"] % 10) for c in cells]
    assert [c["skipped"] for c in cells] == [f >= s for f, s in zip(fast, slow, strict=True)]
    assert all(c["text"] == "skipped" and not c["link"] for c in cells if c["skipped"])
    assert all(c["link"] and c["text"] != "skipped" for c in cells if not c["skipped"])
    assert "fast < slow" in result.step("summary")["text"]
    assert result.page_errors == []
    assert live_browser.artifact("param-sweep-heatmap.png").stat().st_size > 10_000
