"""How long a 10,000-point sweep takes from its API call to the stored heatmap, and the memory it takes (issue 15:
<= 10 s on 2 cores, within 500 MB).

    .venv/bin/python benchmarks/sweep_api_10000.py [--database-url postgres://...] [--repeat 3]

The grid: SMA fast 2..101 (100 values) x SMA slow 20..218 by 2 (100 values) of the shipped "SMA 20/50 trend"
example (8 % stop-loss), over every stored BTC day (2014-12-01 .. 2024-04-20, the shipped history). The timing
starts at ``POST /api/sweeps/`` (a user with the sweep permissions, through DRF's test client: the view, its
checks of every grid point, the save) and ends when the sweep page with its heatmap of 10,000 cells has been
rendered after the sweep is done. Two ways, both printed:

- the embedded mode of ``make run`` (no ``REDIS_URL``): the chunks run one after the other in a background thread
  of this process, so on one core;
- with ``--redis-url`` (the default; empty to skip): the production way, this process configured for Redis and a
  real Celery worker with ``--workers`` processes (2: the machine's cores) consuming the simulator's queue, the
  chunks fanned out to them as a chord.

Peak memory: this process's peak resident set (``ru_maxrss``: Django, the compiled engine, the candles and, in the
embedded mode, the sweep itself; the baseline before the first sweep printed beside it), and each worker
process's (``VmHWM``). The sweep's robustness (its deflated Sharpe ratio and PBO) is worked out after it is marked
done, so it is not in these times; the last line gives how long it took after.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import DEFAULT_DATABASE_URL, django_setup, example_criteria
from _processes import celery_worker_start, memory_mb, worker_pids

AXES = [
    {"path": "entry.all[0].left.period", "start": 2, "stop": 101, "step": 1},
    {"path": "entry.all[0].right.period", "start": 20, "stop": 218, "step": 2},
]


def peak_mb() -> float:
    """This process's peak resident set so far, MB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_sweep(user: Any) -> tuple[float, float, int, float]:
    """POST the sweep, wait until it is done, render its page; return (seconds to done, seconds to the rendered
    page, points saved, seconds until its robustness was saved after it was done)."""
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
    rendered = time.perf_counter() - began
    while not Sweep.objects.get(pk=pk).robustness:
        time.sleep(0.05)
    return done, rendered, sweep.points.count(), time.perf_counter() - began - done


def table(title: str, rows: list[tuple[float, float, int, float]]) -> None:
    print(title)
    print("| sweep | points saved | API call to done, s | API call to the rendered heatmap, s | goal |")
    print("|---|---|---|---|---|")
    for n, (done, page, points, _) in enumerate(rows, 1):
        print(f"| {n} | {points:,} | {done:.2f} | {page:.2f} | <= 10 |")
    print("robustness saved after done: " + ", ".join(f"{r[3]:.1f} s" for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"))
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stage", choices=["embedded", "worker"], default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.stage:
        print(f"database: {args.database_url.split('@')[-1]}   cores: {os.cpu_count()}")
        stages = ["embedded"] + (["worker"] if args.redis_url else [])
        for stage in stages:  # each in a process of its own: its own peak memory, its own Celery settings
            command = [sys.executable, __file__, "--stage", stage, "--database-url", args.database_url]
            command += [
                "--redis-url",
                args.redis_url,
                "--workers",
                str(args.workers),
                "--repeat",
                str(args.repeat),
            ]
            subprocess.run(command, check=True)  # noqa: S603
        return
    embedded = args.stage == "embedded"
    django_setup(args.database_url, "" if embedded else args.redis_url)
    from django.contrib.auth.models import Permission, User

    user, _ = User.objects.get_or_create(username="bench-sweeps")
    user.user_permissions.set(Permission.objects.filter(codename__in=["add_sweep", "view_sweep"]))
    user = User.objects.get(pk=user.pk)
    from trading.engine.warmup import warm

    warm()  # load the compiled engine (the server does at start: BARTER_ENGINE_WARM_AT_START)
    baseline = peak_mb()
    if embedded:
        rows = [one_sweep(user) for _ in range(args.repeat)]
        table("embedded mode (no broker): the sweep in a background thread of this process, one core", rows)
        print(
            f"peak resident memory: {peak_mb():.0f} MB (before the first sweep {baseline:.0f} MB; goal < 500)"
        )
        return
    from django.conf import settings

    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "DJANGO_SETTINGS_MODULE": "barter_site.settings.local",
        "DJANGO_DEBUG": "False",
        "BARTER_SIMULATOR_SWEEP_WORKERS": str(args.workers),
    }
    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-simulator"
    with tempfile.TemporaryDirectory() as folder:
        worker = celery_worker_start(env, queue, args.workers, Path(folder) / "worker.log")
        try:
            from barter_site.celery_app import app

            deadline = time.time() + 60
            while not app.control.ping(timeout=0.5) and time.time() < deadline:
                time.sleep(0.5)
            one_sweep(user)  # the worker processes load the compiled engine once
            rows = [one_sweep(user) for _ in range(args.repeat)]
            peaks = [memory_mb(pid, "VmHWM") for pid in worker_pids(worker.pid)]
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    table(
        f"Celery worker with {args.workers} processes on the simulator queue (Redis), the API in this process",
        rows,
    )
    print(
        f"peak resident memory: worker processes {', '.join(f'{p:.0f}' for p in peaks)} MB; this process "
        f"{peak_mb():.0f} MB (goal < 500 each)"
    )


if __name__ == "__main__":
    main()
