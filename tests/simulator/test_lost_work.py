"""Nothing hangs: a simulation or sweep whose worker died, or that met an unexpected error, ends ``failed`` with
the reason, and its page stops polling (issue 11, item 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from simulator.launch import sweep_start
from simulator.models import RunStatus, Simulation, Sweep, SweepPoint
from simulator.reaper import simulations_reap
from simulator.services import simulations
from simulator.services.requests import SimulationRequest, simulation_request_check
from simulator.services.simulations import simulation_create, simulation_run
from simulator.services.sweeps import sweep_create
from tests.simulator.test_views import END, START, TREND

pytestmark = pytest.mark.django_db


@pytest.fixture
def trader(db: None) -> User:
    return User.objects.create_user("trader")


@pytest.fixture
def logged_in(client: Client, trader: User) -> Client:
    client.force_login(trader)
    return client


def request_of(**overrides: Any) -> SimulationRequest:
    return simulation_request_check(
        instruments=["bitcoin"], start=START, end=END, starting_cash="10000", criteria=TREND, **overrides
    )


def test_an_unexpected_error_fails_the_simulation_with_its_message(
    shipped_history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("close")

    monkeypatch.setattr(simulations, "engine_run", broken)
    simulation = simulation_create(request=request_of())

    done = simulation_run(simulation=simulation)

    simulation.refresh_from_db()
    assert done.status == simulation.status == RunStatus.FAILED
    assert simulation.error == "internal error KeyError: 'close'"
    assert simulation.progress_ratio == 1.0


def test_an_unexpected_error_in_a_sweep_chunk_fails_the_sweep_with_its_message(
    shipped_history: None,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unsupported operand")

    monkeypatch.setattr(simulations, "engine_sweep", broken)
    sweep = sweep_create(
        request=request_of(),
        axes=[{"path": "entry.all[0].left.period", "start": 5, "stop": 20, "step": 5}],
    )
    with django_capture_on_commit_callbacks(execute=True):
        sweep_start(sweep=sweep)

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.FAILED
    # One chunk a point here (2 workers x 4 chunks for 4 points); the first error is kept, the count added.
    assert sweep.error == (
        "grid points 0..0 failed: internal error TypeError: unsupported operand; 4 of 4 grid points are missing"
    )


def _stale(minutes: int = 10) -> datetime:
    return datetime.now(tz=UTC) - timedelta(minutes=minutes)


def test_a_simulation_whose_worker_died_at_5_percent_is_failed_and_its_page_stops_polling(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    simulation = simulation_create(request=request_of(), created_by=trader)
    last = _stale()
    # What a worker killed right after it started the run leaves: running at 5 %, beats stopped.
    Simulation.objects.filter(pk=simulation.pk).update(
        status=RunStatus.RUNNING, progress_ratio=0.05, heartbeat_at=last
    )
    polling = logged_in.get(f"/simulator/runs/{simulation.pk}/progress/").content.decode()
    assert 'hx-trigger="every 500ms"' in polling

    assert simulations_reap() == {
        "simulations": [simulation.pk],
        "sweeps": [],
        "walk_forwards": [],
        "portfolio_simulations": [],
    }

    simulation.refresh_from_db()
    assert simulation.status == RunStatus.FAILED
    assert simulation.error == f"worker lost: no heartbeat since {last.isoformat()} (the run was at 5%)"
    progress = logged_in.get(f"/simulator/runs/{simulation.pk}/progress/")
    assert progress["HX-Refresh"] == "true" and "hx-trigger" not in progress.content.decode()
    assert f"The run failed: worker lost: no heartbeat since {last.isoformat()}" in progress.content.decode()
    page = logged_in.get(f"/simulator/runs/{simulation.pk}/").content.decode()
    assert "hx-trigger" not in page and "worker lost: no heartbeat since" in page
    assert simulations_reap() == {
        "simulations": [],
        "sweeps": [],
        "walk_forwards": [],
        "portfolio_simulations": [],
    }


def test_a_sweep_whose_chunk_was_killed_at_1750_of_2000_is_failed_and_its_page_stops_polling(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    sweep = sweep_create(
        request=request_of(),
        axes=[
            {"path": "entry.all[0].left.period", "start": 1, "stop": 40, "step": 1},
            {"path": "stop_loss_ratio", "start": 0.01, "stop": 0.5, "step": 0.01},
        ],
        created_by=trader,
    )
    assert sweep.total == 2000
    last = _stale()
    Sweep.objects.filter(pk=sweep.pk).update(status=RunStatus.RUNNING, heartbeat_at=last)
    SweepPoint.objects.bulk_create(
        SweepPoint(sweep=sweep, index=i, values={}, statistics={}) for i in range(1750)
    )
    assert (
        'hx-trigger="every 500ms"'
        in logged_in.get(f"/simulator/sweeps/{sweep.pk}/progress/").content.decode()
    )

    assert simulations_reap() == {
        "simulations": [],
        "sweeps": [sweep.pk],
        "walk_forwards": [],
        "portfolio_simulations": [],
    }

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.FAILED
    assert (
        sweep.error == f"worker lost: no heartbeat since {last.isoformat()}; 1,750 of 2,000 grid points done"
    )
    progress = logged_in.get(f"/simulator/sweeps/{sweep.pk}/progress/")
    assert progress["HX-Refresh"] == "true" and "hx-trigger" not in progress.content.decode()
    page = logged_in.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()
    assert "hx-trigger" not in page and f"The sweep failed: {sweep.error}" in page


def test_running_work_that_beats_is_left_alone(shipped_history: None, trader: User) -> None:
    simulation = simulation_create(request=request_of(), created_by=trader)
    Simulation.objects.filter(pk=simulation.pk).update(
        status=RunStatus.RUNNING, progress_ratio=0.4, heartbeat_at=datetime.now(tz=UTC)
    )
    assert simulations_reap() == {
        "simulations": [],
        "sweeps": [],
        "walk_forwards": [],
        "portfolio_simulations": [],
    }
    simulation.refresh_from_db()
    assert simulation.status == RunStatus.RUNNING


def test_without_a_broker_the_first_request_reaps_and_later_ones_wait_for_the_interval(
    shipped_history: None,
    logged_in: Client,
    trader: User,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from barter_site import heartbeat
    from runs.models import History, HistoryKind, RunHeartbeat, Step
    from runs.recorder import run_start

    settings.BARTER_REAPER_ON_REQUEST = True  # the test settings turn it off for the query-count tests
    monkeypatch.setattr(heartbeat, "_last_run", {})  # as in a process that just started
    simulation = simulation_create(request=request_of(), created_by=trader)
    Simulation.objects.filter(pk=simulation.pk).update(status=RunStatus.RUNNING, heartbeat_at=_stale())
    run = run_start(step=Step.IMPORT, params={})
    run.heartbeat_stop()
    RunHeartbeat.objects.update(beat_at=_stale())

    logged_in.get("/simulator/runs/")  # the first request after start-up

    simulation.refresh_from_db()
    assert simulation.status == RunStatus.FAILED and simulation.error.startswith("worker lost: ")
    finished = History.objects.get(run_id=run.run_id, kind=HistoryKind.RUN_FINISHED)
    assert finished.status == "interrupted" and finished.payload["found_by"] == "reaper"

    later = simulation_create(request=request_of(), created_by=trader)
    Simulation.objects.filter(pk=later.pk).update(status=RunStatus.RUNNING, heartbeat_at=_stale())
    logged_in.get("/simulator/runs/")  # within BARTER_REAPER_INTERVAL_SECONDS: not again
    later.refresh_from_db()
    assert later.status == RunStatus.RUNNING


def test_work_waiting_in_a_dead_servers_background_pool_is_failed_but_work_queued_on_a_broker_is_not(
    shipped_history: None, trader: User
) -> None:
    waiting = simulation_create(request=request_of(), created_by=trader)
    queued = simulation_create(request=request_of(), created_by=trader)
    last = _stale()
    # Waiting in the embedded pool: the server's process beat for it (background_submit), then died.
    Simulation.objects.filter(pk=waiting.pk).update(heartbeat_at=last)
    # Queued on a broker: no beat until a worker starts it, and the queue outlives any worker.
    Simulation.objects.filter(pk=queued.pk).update(created_at=last)

    assert simulations_reap() == {
        "simulations": [waiting.pk],
        "sweeps": [],
        "walk_forwards": [],
        "portfolio_simulations": [],
    }

    waiting.refresh_from_db()
    queued.refresh_from_db()
    assert waiting.status == RunStatus.FAILED
    assert waiting.error == f"worker lost: no heartbeat since {last.isoformat()} (the run was at 0%)"
    assert queued.status == RunStatus.PENDING


def test_the_background_pool_beats_for_its_work_until_it_ends(
    shipped_history: None, trader: User, settings: Settings
) -> None:
    from simulator.background import background_submit

    settings.BARTER_SIMULATOR_BACKGROUND_THREADS = (
        0  # in the caller, to see the beat before and the end after
    )
    simulation = simulation_create(request=request_of(), created_by=trader)
    seen: list[Any] = []

    def work() -> None:
        seen.append(Simulation.objects.get(pk=simulation.pk).heartbeat_at)

    background_submit(
        work,
        what="test",
        beat=lambda: Simulation.objects.filter(pk=simulation.pk).update(heartbeat_at=datetime.now(tz=UTC)),
    )
    assert seen and seen[0] is not None  # it beat before the work began
