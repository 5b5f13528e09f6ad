"""Runs beat while they work, and the reaper finishes the ones whose beats stopped, never a live one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from django.utils import timezone
from pytest_django import Settings

from runs.locked import run_locked
from runs.models import History, HistoryKind, RunHeartbeat, RunStatus, Step
from runs.reaper import runs_reap
from runs.recorder import run_start

pytestmark = pytest.mark.django_db(transaction=True)


def wait_until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    stop = timezone.now() + timedelta(seconds=seconds)
    while not predicate():
        assert timezone.now() < stop, "timed out"
        threading.Event().wait(0.02)


def test_a_run_beats_while_it_works_and_stops_when_it_finishes(settings: Settings) -> None:
    settings.BARTER_HEARTBEAT_SECONDS = 0.05
    recorder = run_start(step=Step.IMPORT, params={"instrument": "bitcoin"})
    first = RunHeartbeat.objects.get(run_id=recorder.run_id)
    assert first.beat_at == recorder.started_at and first.lock == ""

    wait_until(lambda: RunHeartbeat.objects.get(run_id=recorder.run_id).beat_at > first.beat_at)
    assert runs_reap() == []  # beating: alive

    recorder.finish(status=RunStatus.OK, summary={})
    assert not RunHeartbeat.objects.exists()
    assert recorder.heartbeat is not None and recorder.heartbeat._thread is not None
    assert not recorder.heartbeat._thread.is_alive()


def test_a_run_whose_beats_stopped_is_finished_as_interrupted_with_the_reason() -> None:
    recorder = run_start(step=Step.IMPORT, params={"instrument": "bitcoin"})
    recorder.heartbeat_stop()  # as when its process dies
    last = timezone.now() - timedelta(minutes=10)
    RunHeartbeat.objects.filter(run_id=recorder.run_id).update(beat_at=last)

    (summary,) = runs_reap()  # the default stale limit is 5 minutes

    finished = History.objects.get(run_id=recorder.run_id, kind=HistoryKind.RUN_FINISHED)
    assert finished.status == RunStatus.INTERRUPTED and summary["found_by"] == "reaper"
    assert summary["reason"].startswith(f"worker lost: no heartbeat since {last.isoformat()} (pid ")
    assert summary["kept"] == "what its recorded events say it committed (none)"
    assert runs_reap() == []


def test_the_reaper_leaves_a_run_that_holds_its_lock_even_when_its_beats_are_late() -> None:
    holding, release = threading.Event(), threading.Event()
    run_ids: list[str] = []

    def run() -> None:
        with run_locked(step=Step.COLLECT, as_of=date(2024, 12, 2), scope="all", params={}) as recorder:
            run_ids.append(str(recorder.run_id))
            holding.set()
            release.wait(10)
            recorder.finish(status=RunStatus.OK, summary={})

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert holding.wait(10)
        # Stale by the clock, but its lock is held: a live run (a slow one), not a dead one.
        assert runs_reap(stale_seconds=0) == []
        assert not History.objects.filter(kind=HistoryKind.RUN_FINISHED).exists()
    finally:
        release.set()
        thread.join(10)
    (finished,) = History.objects.filter(kind=HistoryKind.RUN_FINISHED)
    assert finished.status == RunStatus.OK and str(finished.run_id) == run_ids[0]
