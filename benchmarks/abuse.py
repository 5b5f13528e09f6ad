"""Bounded cost under abuse: what one gunicorn worker and /healthz do while a token holder pushes the simulator.

Starts gunicorn with the production settings (``barter_site.settings.production``, ``gunicorn.conf.py``) on
127.0.0.1, on SQLite (a fresh file) or PostgreSQL (``--database postgres``), and prints:

(a) the peak RSS of each gunicorn worker (``VmHWM`` of ``/proc/<pid>/status``) while ``--simulations`` (8) clients
    each run the largest simulation the limits allow (20 instruments with a daily candle on every day from
    2009-01-03 to yesterday, criteria of 200 comparisons over 400 different indicators); a client answered 503
    (every inline slot taken) waits the ``Retry-After`` and tries again, as the form's user would; a run queued
    (too heavy for a request: ``BARTER_SIMULATOR_INLINE_CANDLE_SERIES``) is polled until done, by the simulator
    queue's Celery worker with ``--redis-url`` (its children's peaks are printed too), else by the background
    threads of the gunicorn worker that took it (the embedded mode); goal < 400 MB;
(b) the p50/p99/max of ``GET /healthz`` polled every 100 ms during that load; goal p99 < 1 s;
(c) with ``--redis-url``: the wait of a close step (``trading.sync_close_positions``) sent while a 10,000-point
    sweep runs, with a Celery worker on the default queue and one on ``--simulator-queue``; goal < 5 s. When the
    app does not route the sweep's tasks to that queue, it says so and measures nothing.

Loopback only; every loop is bounded by ``--max-seconds``; gunicorn and the workers are stopped at the end. A
script that prints figures, never a test:

    .venv/bin/python benchmarks/abuse.py                       # SQLite
    .venv/bin/python benchmarks/abuse.py --database postgres --database-url postgres://postgres@127.0.0.1/b
    .venv/bin/python benchmarks/abuse.py --redis-url redis://127.0.0.1:6379/4   # adds (c)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _abuse_data import FIRST_DAY, largest_criteria, prepare_database  # noqa: E402
from _processes import Server, call, celery_worker_start, memory_mb, percentile, pss_mb, worker_pids  # noqa: E402


def simulation_outcome(server: Server, token: str, created: dict[str, Any], deadline: float) -> str:
    """The final status of a created simulation: at once when it ran in the request, else polled every 0.5 s."""
    simulation = created
    while simulation["status"] in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        code, _, _, content = call(f"{server.url}/api/simulations/{created['id']}/", token=token, timeout=10)
        if code == 200:
            simulation = json.loads(content)
    inline = "inline" if created["status"] not in ("pending", "running") else "queued"
    return f"{simulation['status']} ({inline})"


def load_and_health(
    server: Server, token: str, body: bytes, clients: int, max_seconds: float
) -> dict[str, Any]:
    """(a) and (b): ``clients`` threads each get one simulation done (retrying 503s), /healthz polled meanwhile."""
    stop = threading.Event()
    health: list[float] = []
    health_failures: list[int] = []
    outcomes: list[dict[str, Any]] = []
    rss_now: dict[int, float] = {}
    deadline = time.monotonic() + max_seconds

    def poll_health() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            status, _, seconds, _ = call(f"{server.url}/healthz", timeout=10)
            health.append(seconds)
            if status != 200:
                health_failures.append(status)
            time.sleep(0.1)

    total_pss = [0.0]

    def sample_memory() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            pids = worker_pids(server.process.pid)
            for pid in pids:
                rss_now[pid] = max(rss_now.get(pid, 0.0), memory_mb(pid, "VmRSS"))
            # What the machine holds: master and workers, shared pages counted once.
            total_pss[0] = max(total_pss[0], sum(pss_mb(pid) for pid in [server.process.pid, *pids]))
            time.sleep(0.1)

    def client() -> None:
        tries, busy, began = 0, 0, time.perf_counter()
        while time.monotonic() < deadline:
            tries += 1
            status, headers, _, content = call(f"{server.url}/api/simulations/", token=token, body=body)
            if status == 503:
                busy += 1
                time.sleep(
                    min(float(headers.get("Retry-After", "1")), 5.0) * (0.5 + secrets.randbelow(100) / 100)
                )
                continue
            # 201: done in the request, or queued (too heavy for one) and waited for as its page does.
            outcome = (
                simulation_outcome(server, token, json.loads(content), deadline) if status == 201 else status
            )
            outcomes.append(
                {"status": outcome, "tries": tries, "busy": busy, "seconds": time.perf_counter() - began}
            )
            return
        outcomes.append(
            {"status": "gave up", "tries": tries, "busy": busy, "seconds": time.perf_counter() - began}
        )

    watchers = [threading.Thread(target=poll_health), threading.Thread(target=sample_memory)]
    for thread in watchers:
        thread.start()
    time.sleep(1.0)  # a few /healthz before the load
    began = time.perf_counter()
    users = [threading.Thread(target=client) for _ in range(clients)]
    for thread in users:
        thread.start()
    for thread in users:
        thread.join()
    elapsed = time.perf_counter() - began
    time.sleep(0.5)
    peaks = {pid: memory_mb(pid, "VmHWM") for pid in worker_pids(server.process.pid)}
    stop.set()
    for thread in watchers:
        thread.join()
    return {
        "elapsed": elapsed,
        "outcomes": outcomes,
        "peak_rss_mb": peaks,
        "sampled_rss_mb": rss_now,
        "total_pss_mb": total_pss[0],
        "health": health,
        "health_failures": health_failures,
    }


def close_step_wait(args: argparse.Namespace, env: dict[str, str], log_dir: Path) -> None:
    """(c): a close step sent while a 10,000-point sweep runs, each queue with its worker."""
    from django.conf import settings

    from barter_site.celery_app import app

    default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
    simulator_queue = args.simulator_queue or f"{default_queue}-simulator"
    routed = app.amqp.router.route({}, "simulator.sweep_chunk", args=(), kwargs={})
    routed_queue = getattr(routed.get("queue"), "name", routed.get("queue"))
    if routed_queue != simulator_queue:
        print(
            f"(c) NOT MEASURED: this code sends the sweep's chunks to queue {routed_queue!r}, not to the simulator "
            f"queue {simulator_queue!r} (it is not in this branch yet); a close step would wait behind them"
        )
        return
    workers = []
    try:
        for queue, concurrency in ((default_queue, 1), (simulator_queue, 2)):
            log = (log_dir / f"celery-{queue}.log").open("w")
            command = [sys.executable, "-m", "celery", "-A", "barter_site", "worker", "-Q", queue]
            command += ["--concurrency", str(concurrency), "--loglevel", "WARNING", "-n", f"{queue}@%h"]
            workers.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
            )
        time.sleep(8)  # the workers connect and register
        from simulator.launch import sweep_start
        from simulator.services.requests import simulation_request_check
        from simulator.services.sweeps import sweep_create

        request = simulation_request_check(
            instruments=args.instrument_ids[:2],
            start=FIRST_DAY + timedelta(days=400),
            end=args.last_day,
            starting_cash="10000",
            criteria={
                "version": 1,
                "side": "long",
                "entry": {
                    "left": {"indicator": "sma", "period": 10},
                    "op": ">",
                    "right": {"indicator": "sma", "period": 30},
                },
                "exit": {
                    "left": {"indicator": "sma", "period": 10},
                    "op": "<",
                    "right": {"indicator": "sma", "period": 30},
                },
            },
        )
        axes = [
            {"path": "entry.left.period", "start": 2, "stop": 101, "step": 1},
            {"path": "entry.right.period", "start": 2, "stop": 101, "step": 1},
        ]
        sweep = sweep_create(request=request, axes=axes, name="abuse benchmark")
        sweep_start(sweep=sweep)
        time.sleep(2)  # the chunks are queued and running
        sent = time.perf_counter()
        result = app.send_task("trading.sync_close_positions", args=[datetime.now(tz=UTC).date().isoformat()])
        result.get(timeout=args.max_seconds)
        waited = time.perf_counter() - sent
        sweep.refresh_from_db()
        print(
            f"(c) close step sent during a {sweep.total:,}-point sweep: done after {waited:.2f} s (goal < 5 s); "
            f"sweep {sweep.points.count():,} of {sweep.total:,} points done by then"
        )
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/barter_bench"),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", ""),
        help="Redis for (c) (default BENCH_REDIS_URL); without it (c) is not measured.",
    )
    parser.add_argument("--simulator-queue", default="", help="default: <BARTER_CELERY_QUEUE>-simulator")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (fly.toml: 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (gunicorn.conf.py: 4)")
    parser.add_argument("--simulations", type=int, default=8, help="concurrent clients of (a) and (b)")
    parser.add_argument(
        "--inline-concurrency", type=int, default=0, help="BARTER_SIMULATOR_INLINE_CONCURRENCY"
    )
    parser.add_argument("--max-seconds", type=float, default=600, help="bound of each measurement")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="barter-abuse-"))
    database_url = f"sqlite:///{work / 'abuse.sqlite3'}" if args.database == "sqlite" else args.database_url
    began = time.perf_counter()
    token, ids, last = prepare_database(database_url, args.redis_url)
    args.instrument_ids, args.last_day = ids, last
    print(
        f"database {args.database}: {len(ids)} instruments x {(last - FIRST_DAY).days + 1:,} daily candles "
        f"ready in {time.perf_counter() - began:.1f} s; logs in {work}"
    )

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_DEBUG")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "barter_site.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "DATABASE_URL": database_url,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_LOG_LEVEL": "WARNING",
            "BARTER_NUM_PROXIES": "0",
        }
    )
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    if args.inline_concurrency:
        env["BARTER_SIMULATOR_INLINE_CONCURRENCY"] = str(args.inline_concurrency)
    criteria = largest_criteria()
    body = json.dumps(
        {"instruments": ids, "start": FIRST_DAY.isoformat(), "end": last.isoformat(), "criteria": criteria}
    ).encode()

    simulator_worker = None
    simulator_peaks: dict[int, float] = {}
    if args.redis_url:
        # Runs too heavy for a request go to the simulator's queue (BARTER_SIMULATOR_INLINE_CANDLE_SERIES); this
        # is the worker that runs them, as fly.toml's worker process group does.
        simulator_queue = args.simulator_queue or f"{env.get('BARTER_CELERY_QUEUE', 'celery')}-simulator"
        simulator_worker = celery_worker_start(env, simulator_queue, 2, work / "celery-simulator-load.log")
    server = Server(env, args.workers, args.threads, work / "gunicorn.log")
    try:
        server.wait_ready()
        began = time.perf_counter()
        status, _, _, content = call(f"{server.url}/api/simulations/", token=token, body=body)
        outcome = simulation_outcome(server, token, json.loads(content), time.monotonic() + args.max_seconds)
        print(
            f"one largest-allowed simulation alone: HTTP {status}, {outcome} after "
            f"{time.perf_counter() - began:.2f} s; body {len(body):,} bytes, criteria "
            f"{len(json.dumps(criteria, separators=(',', ':'))):,} bytes"
        )
        # The workers' peaks so far are one simulation's; (a) wants the load's: restart for clean peaks.
        server.stop()
        server = Server(env, args.workers, args.threads, work / "gunicorn-load.log")
        server.wait_ready()
        figures = load_and_health(server, token, body, args.simulations, args.max_seconds)
        if simulator_worker is not None:
            simulator_peaks = {pid: memory_mb(pid, "VmHWM") for pid in worker_pids(simulator_worker.pid)}
    finally:
        server.stop()
        if simulator_worker is not None:
            simulator_worker.send_signal(signal.SIGTERM)
            try:
                simulator_worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                simulator_worker.kill()

    statuses: dict[str, int] = {}
    for outcome in figures["outcomes"]:
        statuses[str(outcome["status"])] = statuses.get(str(outcome["status"]), 0) + 1
    seconds = [o["seconds"] for o in figures["outcomes"]]
    busy = sum(o["busy"] for o in figures["outcomes"])
    print(
        f"(a) {args.simulations} clients x 1 largest-allowed simulation on {args.workers} workers x "
        f"{args.threads} threads: {statuses} in {figures['elapsed']:.1f} s (each {min(seconds):.1f} .. "
        f"{max(seconds):.1f} s; {busy} answers 503 + Retry-After on the way)"
    )
    for pid, peak in sorted(figures["peak_rss_mb"].items()):
        print(
            f"    worker {pid}: peak RSS {peak:.0f} MB (VmHWM; sampled max "
            f"{figures['sampled_rss_mb'].get(pid, 0):.0f} MB) (goal < 400)"
        )
    print(
        f"    gunicorn master and workers together: peak PSS {figures['total_pss_mb']:.0f} MB (sampled every "
        "0.1 s; what the machine needs for the web process)"
    )
    for pid, peak in sorted(simulator_peaks.items()):
        print(
            f"    simulator Celery worker child {pid}: peak RSS {peak:.0f} MB (VmHWM; it ran the queued "
            "simulations, the warm-up's included)"
        )
    health = figures["health"]
    print(
        f"(b) /healthz during the load: {len(health)} calls, p50 {statistics.median(health) * 1000:.0f} ms, "
        f"p99 {percentile(health, 0.99) * 1000:.0f} ms, max {max(health) * 1000:.0f} ms (goal p99 < 1000 ms); "
        f"not 200: {figures['health_failures'] or 'none'}"
    )

    if args.redis_url:
        close_step_wait(args, env, work)
    else:
        print("(c) NOT MEASURED: needs --redis-url (a Celery worker on Redis and the simulator queue)")


if __name__ == "__main__":
    main()
