"""Reads of ``History`` that other apps ask about: the last successful daily cycle, and whether a day has one.

A daily cycle counts as done when its close step finished (the last of collect, open, close) with status ``ok``
or ``partial``: a partial close step did run, over every strategy it could, and its failures are recorded and
notified on their own (the ``step_failed`` notification); ``failed`` and ``interrupted`` close steps do not count.
Only the ``run_finished`` rows of the close step are read, by the index ``history_step_kind_time``.

The health view (:mod:`barter_site.health`) reaches :func:`last_daily_cycle` through the setting
``BARTER_HEALTH_LAST_DAILY_CYCLE`` because ``barter_site`` may import no app.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import F
from django.db.models.fields.json import KeyTextTransform

from runs.models import History, HistoryQuerySet, RunStatus, Step

#: The statuses of a close step that count as a daily cycle done (see the module's docstring).
CYCLE_DONE_STATUSES = (RunStatus.OK, RunStatus.PARTIAL)


@dataclass(frozen=True)
class DailyCycle:
    """One successful close step, as the missed-run alarm and ``/healthz`` see it.

    Attributes:
        run_id: the close step's run (``History.run_id``).
        as_of: the day it closed (UTC), from its summary's ``as_of``.
        finished_at: its ``run_finished`` row's time (aware UTC).
        status: ``ok`` or ``partial``.
    """

    run_id: uuid.UUID
    as_of: date
    finished_at: datetime
    status: str


def _close_runs_done() -> HistoryQuerySet:
    """The ``run_finished`` rows of close steps that ended ``ok`` or ``partial`` and name their ``as_of``."""
    return History.objects.runs_finished().filter(
        step=Step.CLOSE, status__in=CYCLE_DONE_STATUSES, payload__has_key="as_of"
    )


def last_daily_cycle() -> DailyCycle | None:
    """Return the successful close step of the latest day, or None when no close step ever succeeded.

    "Latest" is by the summary's ``as_of``, then by finishing time: a replay (``manage.py replay``) of past days
    finishes now but closes an old day, so it does not make a dead daily cycle look fresh.

    Returns:
        The :class:`DailyCycle` of that ``run_finished`` row, or None.
    """
    row = (
        _close_runs_done()
        .annotate(as_of_text=KeyTextTransform("as_of", "payload"))
        .order_by(F("as_of_text").desc(nulls_last=True), "-created_at", "-id")
        .only("run_id", "created_at", "status", "payload")
        .first()
    )
    if row is None:
        return None
    return DailyCycle(
        run_id=row.run_id,
        as_of=date.fromisoformat(str(row.payload["as_of"])),
        finished_at=row.created_at,
        status=row.status,
    )


def close_run_succeeded_for(day: date) -> bool:
    """Return whether a close step for ``day`` (its summary's ``as_of``, UTC) finished ``ok`` or ``partial``.

    Args:
        day: the daily cycle's day.
    """
    return _close_runs_done().filter(payload__as_of=day.isoformat()).exists()
