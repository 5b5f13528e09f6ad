"""The last successful daily cycle and whether a day has one (:mod:`runs.selectors`), read from ``History``."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from runs.models import RunStatus, Step
from runs.recorder import run_start
from runs.selectors import close_run_succeeded_for, last_daily_cycle

pytestmark = pytest.mark.django_db


def finished_run(*, at: datetime, as_of: date, status: RunStatus, step: Step = Step.CLOSE) -> str:
    """One run of ``step`` for ``as_of`` through the real recorder, its rows stamped ``at``; its run id."""
    with time_machine.travel(at, tick=False):
        recorder = run_start(step=step, params={"as_of": as_of.isoformat()})
        return str(recorder.finish(status=status, summary={"as_of": as_of.isoformat()})["run_id"])


def test_without_a_close_run_there_is_no_daily_cycle() -> None:
    finished_run(
        at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC),
        as_of=date(2026, 12, 3),
        status=RunStatus.OK,
        step=Step.OPEN,
    )

    assert last_daily_cycle() is None
    assert close_run_succeeded_for(date(2026, 12, 3)) is False


def test_the_latest_day_wins_over_a_later_replay_of_an_older_day() -> None:
    today = finished_run(
        at=datetime(2026, 12, 3, 0, 41, 5, tzinfo=UTC), as_of=date(2026, 12, 3), status=RunStatus.PARTIAL
    )
    # A replay of a past day finishes later but closes an older day: it does not make the cycle look fresher.
    finished_run(at=datetime(2026, 12, 3, 14, 0, tzinfo=UTC), as_of=date(2026, 11, 20), status=RunStatus.OK)
    # Nor does a failed or interrupted close step of a later day count.
    finished_run(
        at=datetime(2026, 12, 4, 0, 41, tzinfo=UTC), as_of=date(2026, 12, 4), status=RunStatus.FAILED
    )
    finished_run(
        at=datetime(2026, 12, 4, 1, 0, tzinfo=UTC), as_of=date(2026, 12, 4), status=RunStatus.INTERRUPTED
    )

    cycle = last_daily_cycle()

    assert cycle is not None
    assert (str(cycle.run_id), cycle.as_of, cycle.finished_at, cycle.status) == (
        today,
        date(2026, 12, 3),
        datetime(2026, 12, 3, 0, 41, 5, tzinfo=UTC),
        "partial",
    )
    assert close_run_succeeded_for(date(2026, 12, 3)) is True
    assert close_run_succeeded_for(date(2026, 11, 20)) is True
    assert close_run_succeeded_for(date(2026, 12, 4)) is False


def test_of_two_close_runs_of_one_day_the_later_is_the_last() -> None:
    finished_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC), as_of=date(2026, 12, 3), status=RunStatus.OK)
    later = finished_run(
        at=datetime(2026, 12, 3, 6, 0, tzinfo=UTC), as_of=date(2026, 12, 3), status=RunStatus.OK
    )

    cycle = last_daily_cycle()

    assert cycle is not None and str(cycle.run_id) == later
