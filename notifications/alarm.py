"""The missed-run alarm: no successful close step for today (UTC) by ``BARTER_RUN_DEADLINE``.

A daily system fails silently: a dead Celery beat, a disabled GitHub Action or an expired token leave no error
anywhere. After the deadline, :func:`missed_run_message` reads ``History`` (:mod:`runs.selectors`) and returns
the message to send on every channel; :func:`missed_run_record` also records the alarm once per day (one
``run_missed`` row). Both are called again and again (Celery beat's ``missed-run-check`` every 10 minutes,
``manage.py check_missed_run``): the message's key is the day, so a channel gets it once a day, and the row is
written once. :func:`missed_run_alarm` also sends it to every enabled channel.

A close step counts when it finished ``ok`` or ``partial`` for today (:mod:`runs.selectors` says why).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time

from django.conf import settings

from notifications.events import Message, NotificationEvent
from notifications.services import notify
from runs.locks import run_lock_try
from runs.models import History, HistoryKind, Step
from runs.recorder import history_append
from runs.selectors import DailyCycle, close_run_succeeded_for, last_daily_cycle


def missed_run_key(day: date) -> str:
    """The message key (and lock key) of the alarm of ``day``: ``"missed_run:2026-12-03"``."""
    return f"missed_run:{day.isoformat()}"


def _last_cycle_text(last: DailyCycle | None) -> str:
    if last is None:
        return "never (no close step has ever finished ok or partial)"
    return (
        f"the close step of {last.as_of.isoformat()}, finished {last.finished_at.astimezone(UTC):%Y-%m-%d %H:%M} "
        f"UTC ({last.status})"
    )


def _missed(*, now: datetime) -> tuple[date, time, DailyCycle | None] | None:
    """Return (today, the deadline, the last successful cycle) when today's run is missed, else None."""
    deadline: time | None = settings.BARTER_RUN_DEADLINE
    if deadline is None:
        return None
    now_utc = now.astimezone(UTC)
    today = now_utc.date()
    if now_utc < datetime.combine(today, deadline, tzinfo=UTC):
        return None
    if close_run_succeeded_for(today):
        return None
    return today, deadline, last_daily_cycle()


def _message(today: date, deadline: time, last: DailyCycle | None) -> Message:
    return Message(
        event=NotificationEvent.MISSED_RUN,
        key=missed_run_key(today),
        title=f"Barter: no daily cycle for {today.isoformat()} by {deadline:%H:%M} UTC",
        body=(
            f"No close step for {today.isoformat()} finished ok or partial by {deadline:%H:%M} UTC "
            "(BARTER_RUN_DEADLINE).\n"
            f"Last successful daily cycle: {_last_cycle_text(last)}.\n"
            "Check what starts the cycle: the GitHub Action daily-cycle (its latest run and its secrets) or Celery "
            "beat and a worker (their logs); then /healthz?max_run_age_hours=26 and the runs in the admin's "
            'History. docs/deploy.md, "Catch a dead server", says how.'
        ),
    )


def missed_run_message(*, now: datetime) -> Message | None:
    """Return the alarm when today's daily cycle is missed at ``now``, else None. Reads only.

    None when ``BARTER_RUN_DEADLINE`` is empty (the alarm is off), before today's deadline, or when a close step
    for today (UTC) finished ``ok`` or ``partial``.

    Args:
        now: an aware datetime; its UTC day is "today".

    Returns:
        A :class:`~notifications.events.Message` of event ``missed_run`` and key ``missed_run:<today>``; its body
        names the deadline, the last successful daily cycle (its day and finishing time, or never) and what to
        check.
    """
    missed = _missed(now=now)
    return None if missed is None else _message(*missed)


def missed_run_record(*, now: datetime) -> Message | None:
    """Return what :func:`missed_run_message` returns and, the first time a day's alarm is raised, record it.

    The record is one ``History`` row (step ``notify``, kind ``run_missed``, a run id of its own) whose payload is
    ``{"day", "deadline", "last_cycle": {"run_id", "as_of", "finished_at", "status"} | None, "key"}``. A later call
    the same day writes nothing more and returns the same message (its key makes the channels send it once), so
    callers may repeat it. Two callers at once are kept apart by the run lock of the alarm's key.

    Args:
        now: an aware datetime; its UTC day is "today".

    Returns:
        The day's alarm, or None when nothing is missed.
    """
    missed = _missed(now=now)
    if missed is None:
        return None
    today, deadline, last = missed
    message = _message(today, deadline, last)
    with run_lock_try(message.key) as taken:
        if taken and not _recorded(today):
            history_append(
                uuid.uuid4(),
                Step.NOTIFY,
                HistoryKind.RUN_MISSED,
                message=message.title,
                payload={
                    "key": message.key,
                    "day": today.isoformat(),
                    "deadline": f"{deadline:%H:%M}",
                    "last_cycle": None
                    if last is None
                    else {
                        "run_id": str(last.run_id),
                        "as_of": last.as_of.isoformat(),
                        "finished_at": last.finished_at.astimezone(UTC).isoformat(),
                        "status": last.status,
                    },
                },
            )
    return message


def _recorded(day: date) -> bool:
    """Whether the alarm of ``day`` already has its ``run_missed`` row."""
    return History.objects.filter(
        step=Step.NOTIFY, kind=HistoryKind.RUN_MISSED, payload__day=day.isoformat()
    ).exists()


def missed_run_alarm(*, now: datetime) -> Message | None:
    """Raise the alarm when today's daily cycle is missed: :func:`missed_run_record`, then the message to every
    enabled channel (:func:`notifications.services.notify`; its key makes each channel get it once a day, however
    often this is called). What Celery beat's ``missed-run-check``, the embedded mode's requests and
    ``manage.py check_missed_run`` call.

    Args:
        now: an aware datetime; its UTC day is "today".

    Returns:
        The day's alarm, or None when nothing is missed.
    """
    message = missed_run_record(now=now)
    if message is not None:
        notify([message])
    return message
