"""The simulator on a real Celery worker on Redis: its work has its own queue, so trading steps never wait behind
it, and a simulation whose worker is SIGKILLed ends ``failed`` with the reason instead of ``running`` for ever."""

from __future__ import annotations

import os
import signal
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest
from pytest_django import Settings

from positions.tasks import sync_close_positions_task
from simulator.launch import sweep_start
from simulator.models import RunStatus, Simulation, Sweep
from simulator.reaper import simulations_reap
from simulator.services.requests import SimulationRequest, simulation_request_check
from simulator.services.simulations import simulation_create
from simulator.services.sweeps import sweep_create
from simulator.tasks import run_simulation_task
from tests.fakes.coingecko import FakeCoinGecko
from tests.ops.test_celery_cycle import pool_children, wait_for, worker_running
from tests.servers import database_url
from tests.simulator.candles import bitcoin_days
from tests.trading.factories import sma_cross_criteria

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

START, END = date(2018, 1, 1), date(2019, 12, 31)


def request_of() -> SimulationRequest:
    return simulation_request_check(
        instruments=["bitcoin"], start=START, end=END, starting_cash="10000", criteria=sma_cross_criteria()
    )


def test_a_close_step_queued_behind_a_sweep_starts_at_once_on_the_trading_queue(
    fake_coingecko: FakeCoinGecko, settings: Settings, tmp_path: Path
) -> None:
    bitcoin_days()
    sweep = sweep_create(
        request=request_of(),
        axes=[
            {"path": "entry.all[0].left.period", "start": 2, "stop": 101, "step": 1},
            {"path": "stop_loss_ratio", "start": 0.01, "stop": 0.5, "step": 0.01},
        ],
    )
    assert sweep.total == 5000
    # A worker for the trading queue only: simulator work waits for its own workers and never takes this one.
    with worker_running(
        fake_base_url=fake_coingecko.base_url,
        redis_url=settings.REDIS_URL,
        log=tmp_path / "worker.log",
        concurrency=1,
        now="2019-12-31T00:40:00+00:00",  # the close step's day is the worker's today
    ) as worker:
        sweep_start(sweep=sweep)  # sent at once: no transaction is open
        queued = time.monotonic()
        close = sync_close_positions_task.apply_async(args=["2019-12-31"], queue=worker.queue)
        summary = worker.result(close.id)
        waited = time.monotonic() - queued

    assert summary["step"] == "close" and summary["status"] == "ok"
    assert waited < 5, waited
    sweep.refresh_from_db()
    assert sweep.status == RunStatus.PENDING and not sweep.points.exists()  # still queued, on its own queue
    print(f"\nclose step queued behind a 5,000-point sweep: started and finished in {waited:.2f} s")


def test_a_simulation_whose_worker_child_is_sigkilled_mid_run_is_failed_by_the_reaper(
    fake_coingecko: FakeCoinGecko, settings: Settings, tmp_path: Path
) -> None:
    bitcoin_days()
    simulation = simulation_create(request=request_of())
    with (
        worker_running(
            fake_base_url=fake_coingecko.base_url,
            redis_url=settings.REDIS_URL,
            log=tmp_path / "worker.log",
            concurrency=1,
            queues="{queue}-simulator",
            now=None,  # heartbeats are compared with this process's real clock
        ) as worker,
        psycopg.connect(database_url()) as blocker,
    ):
        # The run marks itself running at 5 %, then reads the candles: the test's lock holds it there.
        blocker.execute("LOCK TABLE instruments_instrumentohlc IN ACCESS EXCLUSIVE MODE")
        (child,) = pool_children(worker.process.pid)
        run_simulation_task.delay(simulation.pk)
        wait_for(
            lambda: Simulation.objects.filter(pk=simulation.pk, status=RunStatus.RUNNING).exists(),
            "the simulation running",
            worker,
        )
        os.kill(child, signal.SIGKILL)
        blocker.rollback()
        wait_for(lambda: "WorkerLostError" in worker.log.read_text(), "the worker noticing", worker)

    simulation.refresh_from_db()
    assert (simulation.status, simulation.progress_ratio) == (RunStatus.RUNNING, 0.05)  # what was left
    beat = simulation.heartbeat_at
    assert beat is not None
    # Its beat is recent: it could be working.
    assert simulations_reap() == {
        "simulations": [],
        "sweeps": [],
        "walk_forwards": [],
        "portfolio_simulations": [],
    }
    assert simulations_reap(stale_seconds=0) == {
        "simulations": [simulation.pk],
        "sweeps": [],
        "walk_forwards": [],
        "portfolio_simulations": [],
    }
    simulation.refresh_from_db()
    assert simulation.status == RunStatus.FAILED
    assert simulation.error == f"worker lost: no heartbeat since {beat.isoformat()} (the run was at 5%)"
    assert not Sweep.objects.exists()
