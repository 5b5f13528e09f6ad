"""The missed-run alarm (issue 17) with a frozen clock: no successful close step for today by
``BARTER_RUN_DEADLINE`` raises it once a day; the deadline's parser; the Celery task and ``check_missed_run``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime, time
from io import StringIO
from pathlib import Path
from unittest.mock import patch
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from pytest_django import Settings

from barter_site.settings.barter import time_of_day_parse
from notifications.alarm import missed_run_message, missed_run_record
from notifications.events import Message, NotificationEvent
from notifications.models import Delivery
from notifications.tasks import missed_run_check_task
from runs.models import History, HistoryKind, RunStatus, Step
from runs.recorder import run_start
from tests.fakes.clock import clock_command
from tests.fakes.notify_servers import Webhook
from tests.notifications.conftest import webhook_url
from tests.servers import database_url

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
TODAY = date(2026, 12, 3)
YESTERDAY = date(2026, 12, 2)
BEFORE_DEADLINE = datetime(2026, 12, 3, 2, 59, 59, tzinfo=UTC)
AT_DEADLINE = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)
AFTER_DEADLINE = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def deadline_0300(settings: Settings) -> None:
    settings.BARTER_RUN_DEADLINE = time(3, 0)


def close_run(*, at: datetime, as_of: date, status: RunStatus, step: Step = Step.CLOSE) -> str:
    """Record one finished run of ``step`` for ``as_of``, its rows stamped ``at``, through the real recorder."""
    with time_machine.travel(at, tick=False):
        recorder = run_start(step=step, params={"as_of": as_of.isoformat()})
        summary = recorder.finish(status=status, summary={"as_of": as_of.isoformat(), "results": []})
    return str(summary["run_id"])


def alarm_rows() -> list[History]:
    return list(History.objects.filter(kind=HistoryKind.RUN_MISSED).order_by("created_at"))


def test_before_the_deadline_nothing_is_missed() -> None:
    assert missed_run_message(now=BEFORE_DEADLINE) is None
    assert missed_run_record(now=BEFORE_DEADLINE) is None
    assert alarm_rows() == []


def test_at_the_deadline_without_a_close_run_the_alarm_is_raised_and_recorded_once() -> None:
    with time_machine.travel(AT_DEADLINE, tick=False):
        message = missed_run_record(now=AT_DEADLINE)

    assert message is not None
    assert message.event == NotificationEvent.MISSED_RUN
    assert message.key == "missed_run:2026-12-03"
    assert message.title == "Barter: no daily cycle for 2026-12-03 by 03:00 UTC"
    assert "by 03:00 UTC (BARTER_RUN_DEADLINE)" in message.body
    assert "Last successful daily cycle: never" in message.body
    for what in ("GitHub Action daily-cycle", "Celery beat", "/healthz?max_run_age_hours=", "docs/deploy.md"):
        assert what in message.body
    (row,) = alarm_rows()
    assert (row.step, row.kind, row.created_at) == (Step.NOTIFY, HistoryKind.RUN_MISSED, AT_DEADLINE)
    assert row.payload == {
        "key": "missed_run:2026-12-03",
        "day": "2026-12-03",
        "deadline": "03:00",
        "last_cycle": None,
    }
    assert row.message == message.title
    # A run id of its own: no other row shares it.
    assert History.objects.filter(run_id=row.run_id).count() == 1


def test_a_second_check_the_same_day_returns_the_same_alarm_and_writes_nothing() -> None:
    first = missed_run_record(now=AT_DEADLINE)
    second = missed_run_record(now=AFTER_DEADLINE)
    read_only = missed_run_message(now=AFTER_DEADLINE)

    assert first is not None and second == first and read_only == first
    assert len(alarm_rows()) == 1


def test_the_next_day_has_its_own_alarm_and_row() -> None:
    missed_run_record(now=AFTER_DEADLINE)
    tomorrow = missed_run_record(now=datetime(2026, 12, 4, 3, 10, tzinfo=UTC))

    assert tomorrow is not None and tomorrow.key == "missed_run:2026-12-04"
    assert [row.payload["day"] for row in alarm_rows()] == ["2026-12-03", "2026-12-04"]


@pytest.mark.parametrize("status", [RunStatus.OK, RunStatus.PARTIAL])
def test_a_close_run_done_for_today_means_nothing_is_missed(status: RunStatus) -> None:
    close_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC), as_of=TODAY, status=status)

    assert missed_run_message(now=AFTER_DEADLINE) is None
    assert missed_run_record(now=AFTER_DEADLINE) is None
    assert alarm_rows() == []


def test_a_close_run_only_for_yesterday_raises_the_alarm_naming_it() -> None:
    run_id = close_run(at=datetime(2026, 12, 2, 0, 42, 7, tzinfo=UTC), as_of=YESTERDAY, status=RunStatus.OK)

    message = missed_run_record(now=AFTER_DEADLINE)

    assert message is not None
    assert (
        "Last successful daily cycle: the close step of 2026-12-02, finished 2026-12-02 00:42 UTC (ok)."
        in (message.body)
    )
    (row,) = alarm_rows()
    assert row.payload["last_cycle"] == {
        "run_id": run_id,
        "as_of": "2026-12-02",
        "finished_at": "2026-12-02T00:42:07+00:00",
        "status": "ok",
    }


@pytest.mark.parametrize("status", [RunStatus.FAILED, RunStatus.INTERRUPTED])
def test_a_close_run_today_that_did_not_succeed_raises_the_alarm(status: RunStatus) -> None:
    close_run(at=datetime(2026, 12, 2, 0, 41, tzinfo=UTC), as_of=YESTERDAY, status=RunStatus.PARTIAL)
    close_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC), as_of=TODAY, status=status)

    message = missed_run_message(now=AFTER_DEADLINE)

    assert message is not None
    assert "the close step of 2026-12-02, finished 2026-12-02 00:41 UTC (partial)" in message.body


def test_an_open_step_done_today_is_not_a_daily_cycle() -> None:
    close_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC), as_of=TODAY, status=RunStatus.OK, step=Step.OPEN)

    assert missed_run_message(now=AFTER_DEADLINE) is not None


def test_a_close_run_for_today_finished_after_the_deadline_ends_the_alarm() -> None:
    assert missed_run_record(now=AFTER_DEADLINE) is not None
    close_run(at=datetime(2026, 12, 3, 10, 0, tzinfo=UTC), as_of=TODAY, status=RunStatus.OK)

    assert missed_run_record(now=datetime(2026, 12, 3, 10, 10, tzinfo=UTC)) is None
    assert len(alarm_rows()) == 1


def test_the_deadline_off_raises_nothing(settings: Settings) -> None:
    settings.BARTER_RUN_DEADLINE = None

    assert missed_run_message(now=datetime(2026, 12, 3, 23, 59, tzinfo=UTC)) is None
    assert missed_run_record(now=datetime(2026, 12, 3, 23, 59, tzinfo=UTC)) is None
    assert alarm_rows() == []


def test_the_day_is_the_utc_day_of_now(settings: Settings) -> None:
    settings.BARTER_RUN_DEADLINE = time(1, 0)
    # 22:30 on 2 December in New York is 03:30 UTC on 3 December: the alarm of 3 December.
    now = datetime(2026, 12, 2, 22, 30, tzinfo=ZoneInfo("America/New_York"))
    message = missed_run_message(now=now)

    assert message is not None and message.key == "missed_run:2026-12-03"


# --- BARTER_RUN_DEADLINE's parser


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("03:00", time(3, 0)),
        ("00:00", time(0, 0)),
        ("23:59", time(23, 59)),
        (" 07:45 ", time(7, 45)),
        ("", None),
    ],
)
def test_the_deadline_parses_hh_mm_or_empty(value: str, expected: time | None) -> None:
    assert time_of_day_parse("BARTER_RUN_DEADLINE", value, default="03:00") == expected


@pytest.mark.parametrize(
    "value", ["24:00", "12:60", "3:00", "03:00:00", "0300", "noon", "-1:00", "03:00 UTC"]
)
def test_a_bad_deadline_is_improperly_configured_saying_how_to_fix_it(value: str) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        time_of_day_parse("BARTER_RUN_DEADLINE", value, default="03:00")

    assert str(raised.value) == (
        "BARTER_RUN_DEADLINE must be a time of day HH:MM (24-hour, UTC) from 00:00 to 23:59, e.g. '03:00', or "
        f"empty to turn it off; was {value!r}"
    )


_PRINT_DEADLINE = """
import django
from django.conf import settings
django.setup()
print(settings.BARTER_RUN_DEADLINE)
"""


def _settings_with_deadline(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: item for key, item in os.environ.items() if key != "BARTER_RUN_DEADLINE"}
    env["DJANGO_SETTINGS_MODULE"] = "barter_site.settings.local"
    if value is not None:
        env["BARTER_RUN_DEADLINE"] = value
    return subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", _PRINT_DEADLINE], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(("value", "printed"), [(None, "03:00:00"), ("04:15", "04:15:00"), ("", "None")])
def test_the_deadline_comes_from_the_environment(value: str | None, printed: str) -> None:
    done = _settings_with_deadline(value)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == printed


def test_a_bad_deadline_in_the_environment_stops_startup() -> None:
    done = _settings_with_deadline("25:00")

    assert done.returncode != 0
    assert "ImproperlyConfigured: BARTER_RUN_DEADLINE must be a time of day HH:MM" in done.stderr
    assert "was '25:00'" in done.stderr


# --- Celery beat's task and the management command


def test_beat_checks_for_a_missed_run_every_10_minutes() -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["missed-run-check"]

    assert entry == {"task": "notifications.missed_run_check", "schedule": 600.0}
    assert missed_run_check_task.name == "notifications.missed_run_check"


def test_the_task_records_the_alarm_and_returns_its_key_and_title() -> None:
    with time_machine.travel(AFTER_DEADLINE, tick=False):
        first = missed_run_check_task.delay().get()
        second = missed_run_check_task.delay().get()

    assert (
        first
        == second
        == {"key": "missed_run:2026-12-03", "title": "Barter: no daily cycle for 2026-12-03 by 03:00 UTC"}
    )
    assert len(alarm_rows()) == 1


def test_the_task_returns_none_when_nothing_is_missed() -> None:
    with time_machine.travel(BEFORE_DEADLINE, tick=False):
        assert missed_run_check_task.delay().get() is None


def _command() -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("check_missed_run", stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_the_command_prints_the_alarm_and_exits_1_when_the_run_is_missed() -> None:
    with time_machine.travel(AFTER_DEADLINE, tick=False):
        out, error = _command()
        again, error_again = _command()

    assert error is not None and error.returncode == 1
    assert str(error) == "the daily cycle is missed (missed_run:2026-12-03)"
    assert out.startswith("Barter: no daily cycle for 2026-12-03 by 03:00 UTC\nNo close step for 2026-12-03")
    assert again == out and error_again is not None and error_again.returncode == 1
    assert len(alarm_rows()) == 1


def test_the_command_exits_0_saying_why_nothing_is_missed(settings: Settings) -> None:
    with time_machine.travel(BEFORE_DEADLINE, tick=False):
        before, before_error = _command()
    close_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC), as_of=TODAY, status=RunStatus.OK)
    with time_machine.travel(AFTER_DEADLINE, tick=False):
        done, done_error = _command()
    settings.BARTER_RUN_DEADLINE = None
    off, off_error = _command()

    assert before_error is done_error is off_error is None
    assert (
        before.strip()
        == "Nothing missed: the deadline of 2026-12-03 is 03:00 UTC, later than now (02:59 UTC)."
    )
    assert done.strip() == "Nothing missed: a close step for 2026-12-03 finished ok or partial."
    assert off.strip() == "The missed-run alarm is off (BARTER_RUN_DEADLINE is empty)."
    assert alarm_rows() == []


def _manage_at(
    now: datetime, *arguments: str, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {key: item for key, item in os.environ.items() if key != "BARTER_RUN_DEADLINE"}
    env.update({"DJANGO_SETTINGS_MODULE": "barter_site.settings.local", "DATABASE_URL": database_url()})
    env.update(env_extra or {})
    return subprocess.run(  # noqa: S603 (our own interpreter and script)
        clock_command(now, "manage.py", *arguments),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_command_exit_status_as_cron_sees_it() -> None:
    """``manage.py check_missed_run`` in a process of its own, its clock set: 1 when missed, then 0 once done."""
    missed = _manage_at(AFTER_DEADLINE, "check_missed_run")
    close_run(at=datetime(2026, 12, 3, 9, 40, tzinfo=UTC), as_of=TODAY, status=RunStatus.OK)
    done = _manage_at(datetime(2026, 12, 3, 9, 50, tzinfo=UTC), "check_missed_run")

    assert missed.returncode == 1, missed.stderr
    assert missed.stdout.startswith("Barter: no daily cycle for 2026-12-03 by 03:00 UTC\n")
    assert "CommandError: the daily cycle is missed (missed_run:2026-12-03)" in missed.stderr
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Nothing missed: a close step for 2026-12-03 finished ok or partial."
    assert [row.payload["day"] for row in alarm_rows()] == ["2026-12-03"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_process_that_ends_right_after_the_alarm_still_sends_it(webhook: tuple[Webhook, int]) -> None:
    """Without a broker the alarm is sent by a background thread; ``check_missed_run`` run by cron exits at once,
    and its exit waits for the send (``BARTER_NOTIFY_EXIT_WAIT_SECONDS``) instead of killing it."""
    state, port = webhook
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}  # the embedded mode
    env_extra = {"BARTER_NOTIFY_URLS": webhook_url(port, "cron")}
    with patch.dict(os.environ, env, clear=True):
        missed = _manage_at(AFTER_DEADLINE, "check_missed_run", env_extra=env_extra)

    assert missed.returncode == 1, missed.stderr
    [(path, body, _)] = state.received  # received before the process ended
    assert path.startswith("/hooks/cron/")
    assert body["title"] == "Barter: no daily cycle for 2026-12-03 by 03:00 UTC"
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.SENT and delivery.key == "missed_run:2026-12-03"


def test_message_is_the_notifications_message_type() -> None:
    message = missed_run_message(now=AFTER_DEADLINE)

    assert isinstance(message, Message)
