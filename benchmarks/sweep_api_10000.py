"""How long a 10,000-point sweep takes from its API call to the stored heatmap, and the memory it takes (issue 15:
<= 10 s on 2 cores, within 500 MB).

    .venv/bin/python benchmarks/sweep_api_10000.py [--database-url postgres://...] [--repeat 3]

The grid: SMA fast 2..101 (100 values) x SMA slow 20..218 by 2 (100 values) of the shipped "SMA 20/50 trend"
example (8 % stop-loss), over every stored BTC day (2014-12-01 .. 2024-04-20, the shipped history). The timing
starts at ``POST /api/sweeps/`` (a user with the sweep permissions, through DRF's test client: the view, its
checks of every grid point, the save) and ends when the sweep page with its heatmap of 10,000 cells has been
rendered after the sweep is done: in the embedded mode of ``make run`` (no ``REDIS_URL``), the chunks run one
after the other in a background thread of this process, so it is one core. Peak memory is this process's peak
resident set (``ru_maxrss``), Django, the compiled engine and the candles included; the baseline before the first
sweep is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import DEFAULT_DATABASE_URL, django_setup, example_criteria

AXES = [
    {"path": "entry.all[0].left.period", "start": 2, "stop": 101, "step": 1},
    {"path": "entry.all[0].right.period", "start": 20, "stop": 218, "step": 2},
]


def peak_mb() -> float:
    """This process's peak resident set so far, MB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_sweep(user: Any) -> tuple[float, float, int]:
    """POST the sweep, wait until it is done, render its page; return (seconds to done, seconds to the rendered
    page, points saved)."""
    from django.test import Client
    from rest_framework.test import APIClient

    from simulator.models import RunStatus, Sweep

    api = APIClient(HTTP_HOST="127.0.0.1")
    api.force_authenticate(user)
    began = time.perf_counter()
    response = api.post(
        "/api/sweeps/",
        {
            "instruments": ["bitcoin"],
            "start": "2014-12-01",
            "end": "2024-04-20",
            "starting_cash": "10000",
            "criteria": example_criteria(),
            "axes": AXES,
            "statistic": "sharpe_ratio",
            "name": "benchmark 10,000",
        },
        format="json",
    )
    if response.status_code != 201:
        raise SystemExit(f"POST /api/sweeps/ answered {response.status_code}: {response.content[:500]!r}")
    pk = response.json()["id"]
    while True:
        sweep = Sweep.objects.get(pk=pk)
        if sweep.status in (RunStatus.DONE, RunStatus.FAILED):
            break
        if time.perf_counter() - began > 600:
            raise SystemExit("the sweep did not finish in 600 s")
        time.sleep(0.02)
    done = time.perf_counter() - began
    if sweep.status != RunStatus.DONE:
        raise SystemExit(f"the sweep failed: {sweep.error}")
    page = Client(HTTP_HOST="127.0.0.1")
    page.force_login(user)
    html = page.get(f"/simulator/sweeps/{pk}/")
    if html.status_code != 200 or b"heatmap" not in html.content.lower():
        raise SystemExit(f"the sweep page answered {html.status_code} without its heatmap")
    return done, time.perf_counter() - began, sweep.points.count()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    django_setup(args.database_url)  # no REDIS_URL: the embedded mode's background thread runs the sweep
    from django.contrib.auth.models import Permission, User

    user, _ = User.objects.get_or_create(username="bench-sweeps")
    user.user_permissions.set(Permission.objects.filter(codename__in=["add_sweep", "view_sweep"]))
    user = User.objects.get(pk=user.pk)
    from trading.engine.warmup import warm

    warm()  # load the compiled engine (the server does at start: BARTER_ENGINE_WARM_AT_START)
    baseline = peak_mb()
    rows = [one_sweep(user) for _ in range(args.repeat)]
    print(f"database: {args.database_url.split('@')[-1]}   cores: {os.cpu_count()}")
    print("| sweep | points saved | API call to done, s | API call to the rendered heatmap, s | goal |")
    print("|---|---|---|---|---|")
    for n, (done, page, points) in enumerate(rows, 1):
        print(f"| {n} | {points:,} | {done:.2f} | {page:.2f} | <= 10 |")
    print(f"peak resident memory: {peak_mb():.0f} MB (before the first sweep {baseline:.0f} MB; goal < 500)")


if __name__ == "__main__":
    main()
