"""A parameter sweep driven in Chromium from the form to its heatmap, in both ways the simulator runs one:

- the embedded mode of ``make run``: ``manage.py runserver`` with no ``REDIS_URL``, the grid in a background
  thread of the server (issue 14: this failed out of the box, and no test ran a sweep through a real threaded
  server);
- with a broker: the same server with ``REDIS_URL``, and a real Celery worker process on the simulator's queue.

Both serve the test database, which the browser's user and the candles must be committed to: PostgreSQL (the
server is another process), so both are skipped without ``DATABASE_URL=postgres://...``; the worker's needs
``REDIS_URL`` too. Each checks that the POST answered at once with the progress page, that progress was shown
between 0 and the whole grid, then the heatmap of every point, another statistic chosen on the page (re-coloured
without running again), the table of the best points, and the list of sweeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command

from instruments.models import Instrument
from simulator.models import RunStatus, Sweep
from tests.browser.conftest import LiveBrowser, browser_on
from tests.ops.test_celery_cycle import worker_running
from tests.simulator.test_background import runserver

# fast 2..101 x slow 20..218 by 2: 10,000 grid points, some seconds of work on two cores even for the sweep kernel,
# so the page shows progress before the heatmap (benchmarks/sweep_api_10000.py's grid; the 1,000 points of issue
# 4's benchmark now take under a second, faster than the page's progress polls).
FAST = ("2", "101", "1")
SLOW = ("20", "218", "2")
POINTS = 100 * 100

# Wait (in the page) until the progress bar shows some points done but not all; return what it showed. The
# progress fragment is swapped by htmx every 500 ms, so it is looked up again each time.
PROGRESS_BETWEEN = """
async () => {
  const until = Date.now() + 90000;
  while (Date.now() < until) {
    const bar = document.querySelector("#sweep-progress progress");
    if (bar) {
      const done = Number(bar.getAttribute("value")), total = Number(bar.getAttribute("max"));
      if (done > 0 && done < total) {
        return {done, total, text: document.querySelector("#sweep-progress p").textContent.trim()};
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return null;
}
"""

HEATMAP_CELLS = """
() => {
  const cells = [...document.querySelectorAll("#heatmap td[data-index]")];
  return {
    cells: cells.length,
    pending: cells.filter((td) => td.textContent.trim() === "\\u2026").length,
    coloured: cells.filter((td) => (td.getAttribute("style") || "").startsWith("background: hsl(")).length,
    statistic: document.getElementById("heatmap").dataset.statistic,
  };
}
"""


def _sweep_steps(bitcoin: Instrument) -> list[dict[str, Any]]:
    """From the form to the sweep's heatmap, another statistic, and the list of sweeps."""
    return [
        {"do": "waitFor", "selector": "#simulator-form"},
        {"do": "select", "selector": "#id_instruments", "value": [str(bitcoin.pk)]},
        {"do": "fill", "selector": "input[name='start']", "value": "2014-12-01"},
        {"do": "fill", "selector": "input[name='end']", "value": "2024-04-20"},
        {"do": "fill", "selector": "input[name='name']", "value": "fast x slow"},
        {"do": "click", "selector": "#sweep summary"},
        {"do": "select", "selector": "#id_sweep_path_1", "value": "entry.all[0].left.period"},
        {"do": "fill", "selector": "#id_sweep_start_1", "value": FAST[0]},
        {"do": "fill", "selector": "#id_sweep_stop_1", "value": FAST[1]},
        {"do": "fill", "selector": "#id_sweep_step_1", "value": FAST[2]},
        {"do": "select", "selector": "#id_sweep_path_2", "value": "entry.all[0].right.period"},
        {"do": "fill", "selector": "#id_sweep_start_2", "value": SLOW[0]},
        {"do": "fill", "selector": "#id_sweep_stop_2", "value": SLOW[1]},
        {"do": "fill", "selector": "#id_sweep_step_2", "value": SLOW[2]},
        {"do": "select", "selector": "#id_sweep_statistic", "value": "sharpe_ratio"},
        {"do": "evaluate", "name": "posted", "expression": "Date.now()"},
        {"do": "click", "selector": "#sweep-button"},
        {"do": "waitForUrl", "name": "sweep page", "url": "**/simulator/sweeps/*/"},
        {"do": "evaluate", "name": "answered", "expression": "Date.now()"},
        {"do": "evaluate", "name": "progress", "function": PROGRESS_BETWEEN, "timeoutMs": 95000},
        {"do": "screenshot", "path": "1-sweep-progress.png", "fullPage": False},
        {"do": "waitFor", "name": "heatmap", "selector": "#heatmap", "timeoutMs": 120000},
        {"do": "evaluate", "name": "cells", "function": HEATMAP_CELLS},
        {"do": "text", "name": "best", "selector": "#sweep-best"},
        {"do": "count", "name": "top rows", "selector": "#top-points tbody tr"},
        {"do": "screenshot", "path": "2-sweep-heatmap-sharpe.png"},
        # Another statistic: the select submits its GET form; the map is re-coloured from the saved points.
        {"do": "select", "selector": "#id_statistic", "value": "max_drawdown_ratio"},
        {"do": "waitForUrl", "url": "**/simulator/sweeps/*/?statistic=max_drawdown_ratio"},
        {"do": "evaluate", "name": "drawdown cells", "function": HEATMAP_CELLS},
        {"do": "click", "selector": "#top-points th[data-key='n_trades'] button"},
        {"do": "screenshot", "path": "3-sweep-heatmap-drawdown.png"},
        {"do": "click", "selector": "nav.subnav a[href='/simulator/sweeps/']"},
        {"do": "waitFor", "selector": "#sweeps"},
        {"do": "text", "name": "listed", "selector": "#sweeps tbody tr"},
        {"do": "screenshot", "path": "4-sweep-list.png", "fullPage": False},
    ]


def _check(result: Any, browser: LiveBrowser) -> Sweep:
    sweep = Sweep.objects.get()
    assert (sweep.status, sweep.error, sweep.total) == (RunStatus.DONE, "", POINTS)
    assert sweep.points.filter(error="").count() == POINTS
    assert result.step("sweep page")["url"].endswith(f"/simulator/sweeps/{sweep.pk}/")
    # The POST answered with the sweep's page at once, while the grid still had most of its work to do.
    answered_ms = result.step("answered")["value"] - result.step("posted")["value"]
    progress = result.step("progress")["value"]
    assert progress is not None, "the page never showed a sweep part done"
    assert progress["total"] == POINTS and 0 < progress["done"] < POINTS
    assert progress["text"] == f"{progress['done']} of {POINTS} grid points done."
    cells = result.step("cells")["value"]
    assert cells == {
        "cells": POINTS,
        "pending": 0,
        "coloured": cells["coloured"],
        "statistic": "sharpe_ratio",
    }
    assert cells["coloured"] > POINTS * 0.9
    assert "Best Sharpe ratio" in result.step("best")["text"]
    assert result.step("top rows")["count"] == 20
    assert result.step("drawdown cells")["value"]["statistic"] == "max_drawdown_ratio"
    assert "fast x slow" in result.step("listed")["text"] and "done" in result.step("listed")["text"]
    assert result.page_errors == []
    for name in ("1-sweep-progress.png", "2-sweep-heatmap-sharpe.png", "3-sweep-heatmap-drawdown.png"):
        assert browser.artifact(name).stat().st_size > 10_000
    print(
        f"\n{POINTS}-point sweep in the browser: the POST answered with the progress page in {answered_ms} ms; "
        f"progress seen at {progress['done']} of {progress['total']}; the sweep ran in {sweep.duration_seconds:.1f} s"
    )
    return sweep


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sweep_in_the_browser_on_runserver_without_a_broker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    call_command("load_shipped_history", verbosity=0)
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")

    # As make run serves it: DEBUG on (manage.py's default), so runserver serves the static files too.
    with runserver(tmp_path / "server.log", env={"DJANGO_DEBUG": "True"}) as url:
        browser = browser_on(request, url, tmp_path, other_process=True)
        result = browser.run(_sweep_steps(bitcoin), login_next="/simulator/", timeout_seconds=300)

    _check(result, browser)
    assert "Traceback" not in (tmp_path / "server.log").read_text()


@pytest.mark.browser
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_sweep_in_the_browser_with_a_celery_worker_on_the_simulators_queue(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    call_command("load_shipped_history", verbosity=0)
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")

    with worker_running(
        fake_base_url="http://127.0.0.1:9",  # no CoinGecko call is made: the worker runs simulator tasks only
        redis_url=settings.REDIS_URL,
        log=tmp_path / "worker.log",
        concurrency=2,
        queues="{queue}-simulator",
        now=None,
    ) as worker:
        server_env = {
            "REDIS_URL": settings.REDIS_URL,
            "BARTER_CELERY_QUEUE": worker.queue,
            "DJANGO_DEBUG": "True",
        }
        with runserver(tmp_path / "server.log", env=server_env) as url:
            browser = browser_on(request, url, tmp_path, other_process=True)
            result = browser.run(_sweep_steps(bitcoin), login_next="/simulator/", timeout_seconds=300)
        log = worker.log.read_text()

    sweep = _check(result, browser)
    # The chunks ran on the worker (each task's success is logged with its name), none in the server.
    assert log.count("simulator.sweep_chunk[") >= 2 and "succeeded" in log
    assert "simulator.sweep_finish[" in log
    assert sweep.heartbeat_at is not None
