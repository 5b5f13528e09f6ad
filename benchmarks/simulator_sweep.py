"""How long a sweep of 1,000 parameter sets over the stored BTC daily history takes (issue 4's goal: <= 5 s on
two cores).

    .venv/bin/python benchmarks/simulator_sweep.py [--database-url postgres://...] [--redis-url redis://...]

The grid: SMA fast 5..50 by 5 (10 values) x SMA slow 20..218 by 2 (100 values) of an SMA crossover with an 8 %
stop-loss, over every stored BTC day (2014-12-01 .. 2024-04-20, 3,429 boundaries; the shipped history). Two
timings: the sweep in this process (no broker: Celery runs the chunks one after the other), and, with Redis, the
same sweep fanned out as a Celery group over a real worker with ``--workers`` processes, from ``sweep_start`` to
the sweep being marked done (saving every point included).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import DEFAULT_DATABASE_URL, ROOT, django_setup, example_criteria

AXES = [
    {"path": "entry.all[0].left.period", "start": 5, "stop": 50, "step": 5},
    {"path": "entry.all[0].right.period", "start": 20, "stop": 218, "step": 2},
]


def run_sweep(*, wait_seconds: float) -> tuple[float, int]:
    """Create and start the sweep; wait until it is done; return (seconds, points saved)."""
    from django.db import transaction

    from simulator.launch import sweep_start
    from simulator.models import RunStatus, Sweep
    from simulator.services.requests import simulation_request_check
    from simulator.services.sweeps import sweep_create

    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2014, 12, 1),
        end=date(2024, 4, 20),
        starting_cash=Decimal("10000"),
        criteria=example_criteria(),
    )
    sweep = sweep_create(request=request, axes=AXES, statistic="sharpe_ratio", name="benchmark")
    began = time.perf_counter()
    with transaction.atomic():
        sweep_start(sweep=sweep)
    while True:
        sweep.refresh_from_db()
        if sweep.status in (RunStatus.DONE, RunStatus.FAILED):
            break
        if time.perf_counter() - began > wait_seconds:
            raise SystemExit(f"the sweep did not finish in {wait_seconds} s; is the worker running?")
        time.sleep(0.02)
    seconds = time.perf_counter() - began
    if sweep.status != RunStatus.DONE:
        raise SystemExit(f"the sweep failed: {sweep.error}")
    return seconds, Sweep.objects.get(pk=sweep.pk).points.count()


def with_worker(database_url: str, redis_url: str, workers: int) -> tuple[float, int]:
    """Run the sweep on a real Celery worker with ``workers`` processes (this process configured for Redis)."""
    django_setup(database_url, redis_url)
    from barter_site.celery_app import app

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "DJANGO_SETTINGS_MODULE": "barter_site.settings.local",
        "DJANGO_DEBUG": "False",
        "BARTER_SIMULATOR_SWEEP_WORKERS": str(workers),
    }
    command = [sys.executable, "-m", "celery", "-A", "barter_site", "worker", "--loglevel=WARNING"]
    command += [f"--concurrency={workers}", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: S603
    try:
        deadline = time.time() + 60
        while not app.control.ping(timeout=0.5) and time.time() < deadline:
            time.sleep(0.5)
        run_sweep(wait_seconds=120)  # the worker processes import and load the compiled code once
        return run_sweep(wait_seconds=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
        help="broker of the worker run; empty to skip it",
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--stage", choices=["all", "worker"], default="all", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "worker":
        seconds, points = with_worker(args.database_url, args.redis_url, args.workers)
        print(f"{seconds} {points}")
        return

    django_setup(args.database_url)  # no broker: Celery runs every task in this process
    seconds, points = run_sweep(wait_seconds=600)
    rows = [(f"1,000-point sweep in this process (1 core), {points} points saved", seconds, "")]
    if args.redis_url:
        done = subprocess.run(  # noqa: S603
            [
                *(sys.executable, __file__, "--stage", "worker", "--database-url", args.database_url),
                *("--redis-url", args.redis_url, "--workers", str(args.workers)),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        seconds_text, points_text = done.stdout.strip().splitlines()[-1].split()
        rows.append(
            (
                f"the same on a Celery worker, {args.workers} processes, {points_text} points saved",
                float(seconds_text),
                "<= 5",
            )
        )
    print(f"database: {args.database_url.split('@')[-1]}   cores: {os.cpu_count()}")
    print("| measure | seconds | goal |")
    print("|---|---|---|")
    for name, value, goal in rows:
        print(f"| {name} | {value:.2f} | {goal} |")


if __name__ == "__main__":
    main()
