"""The seam at the end of a run: ``run_finished`` reaches its receivers once per run, however the run ended."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs.models import History, HistoryKind, RunHeartbeat, RunStatus, Step
from runs.reaper import runs_reap
from runs.recorder import run_start
from runs.signals import run_finished

pytestmark = pytest.mark.django_db


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def receiver(sender: str, summary: dict[str, Any], **_: Any) -> None:
        calls.append((sender, summary))

    run_finished.connect(receiver, weak=False, dispatch_uid="test-received")
    yield calls
    run_finished.disconnect(dispatch_uid="test-received")


def test_a_finished_run_reaches_the_receivers_with_its_stored_summary(
    received: list[tuple[str, dict[str, Any]]],
) -> None:
    recorder = run_start(step=Step.COLLECT, params={"as_of": "2024-04-21"})
    recorder.event(HistoryKind.ERROR, message="the bitcoin request failed")

    returned = recorder.finish(status=RunStatus.PARTIAL, summary={"as_of": "2024-04-21"})

    stored = History.objects.get(run_id=recorder.run_id, kind=HistoryKind.RUN_FINISHED).payload
    assert received == [(Step.COLLECT, returned)]
    assert returned == stored and stored["status"] == "partial" and len(stored["errors"]) == 1


def test_a_run_found_dead_reaches_them_as_interrupted(received: list[tuple[str, dict[str, Any]]]) -> None:
    recorder = run_start(step=Step.IMPORT, params={})
    recorder.heartbeat_stop()
    RunHeartbeat.objects.filter(run_id=recorder.run_id).update(beat_at=timezone.now() - timedelta(hours=1))

    (summary,) = runs_reap()

    assert received == [(Step.IMPORT, summary)]
    assert summary["status"] == "interrupted" and summary["run_id"] == str(recorder.run_id)


def test_a_failing_receiver_is_logged_and_changes_nothing(
    received: list[tuple[str, dict[str, Any]]], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("the channel is down")

    run_finished.connect(broken, weak=False, dispatch_uid="test-broken")
    try:
        with caplog.at_level(logging.ERROR, logger="runs.signals"):
            recorder = run_start(step=Step.OPEN, params={})
            summary = recorder.finish(status=RunStatus.OK, summary={})
    finally:
        run_finished.disconnect(dispatch_uid="test-broken")

    assert summary["status"] == "ok" and len(received) == 1  # the other receiver still ran
    (record,) = [r for r in caplog.records if r.name == "runs.signals"]
    assert record.exc_info is not None
    assert "the channel is down" in str(record.exc_info[1]) and summary["run_id"] in record.getMessage()
