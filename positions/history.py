"""Writing ``History``: one run of a step is a ``run_started`` row, its events, and a ``run_finished`` row.

Rows are written in autocommit, outside any transaction of the work they describe, so that a rolled-back
instrument still leaves its error on record. Nothing here updates a row.

A run of the collect, open or close step starts with :func:`run_locked`: it takes the step's run lock
(:mod:`positions.locks`), writes ``run_started`` with the lock key in its payload (``"lock"``), and closes every
earlier run of that key that never finished: such a run cannot be alive (it would hold the lock), so it was
interrupted (killed, or its database connection dropped), and it gets a ``run_finished`` row of status
``interrupted`` saying what it kept.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db import InterfaceError, OperationalError
from django.utils import timezone

from barter_site.errors import database_unavailable
from instruments.models import Instrument
from positions.locks import run_lock, runs_unfinished
from positions.models import History, HistoryKind, RunStatus, Step

#: Describes what an interrupted run kept: gets the run's id, returns ``{"kept": sentence, ...details}``.
KeptDescriber = Callable[[uuid.UUID], dict[str, Any]]


@dataclass
class RunRecorder:
    """Records the events of one run; made by :func:`run_start`.

    Attributes:
        run_id: the run's id, shared by all of its rows.
        step: the step this run is of.
        started_at: aware UTC time of the ``run_started`` row.
    """

    run_id: uuid.UUID
    step: Step
    started_at: datetime
    errors: list[dict[str, Any]] = field(default_factory=list)

    def event(
        self,
        kind: HistoryKind,
        *,
        instrument: Instrument | None = None,
        strategy: Any = None,
        position: Any = None,
        message: str = "",
        payload: dict[str, Any] | None = None,
    ) -> History:
        """Append one event row to this run. ``HistoryKind.ERROR`` events also count in the run's errors.

        Args:
            kind: what happened.
            instrument, strategy, position: what it concerns, where one applies.
            message: one line for people.
            payload: JSON details.
        """
        if kind == HistoryKind.ERROR:
            error: dict[str, Any] = {
                "instrument": instrument.coingecko_id if instrument else None,
                "message": message,
            }
            if strategy is not None:
                error["strategy"] = strategy.name
            self.errors.append(error)
        return _append(
            self.run_id,
            self.step,
            kind,
            instrument=instrument,
            strategy=strategy,
            position=position,
            message=message,
            payload=payload or {},
        )

    def finish(self, *, status: RunStatus, summary: dict[str, Any]) -> dict[str, Any]:
        """Append the ``run_finished`` row and return the run's summary.

        Args:
            status: how the run ended.
            summary: step-specific fields (``as_of``, ``results``...), merged into the summary.

        Returns:
            ``{"run_id", "step", "status", "started_at", "finished_at", "errors", **summary}``, JSON-ready
            (times as ISO 8601 strings); the same dict is stored as the row's payload.
        """
        finished_at = timezone.now()
        result = {
            "run_id": str(self.run_id),
            "step": str(self.step),
            "status": str(status),
            "started_at": self.started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
            **summary,
            "errors": self.errors,
        }
        _append(
            self.run_id,
            self.step,
            HistoryKind.RUN_FINISHED,
            status=status,
            message=f"{self.step} run {status} with {len(self.errors)} error(s)",
            payload=result,
            created_at=finished_at,
        )
        return result


def run_status(*, errors: int, succeeded: int) -> RunStatus:
    """Return ``ok`` without errors, ``failed`` when the errors left nothing done, ``partial`` otherwise.

    Args:
        errors: items (instruments, files...) that ended in an error.
        succeeded: items that did their work, wholly or in part.
    """
    if not errors:
        return RunStatus.OK
    return RunStatus.PARTIAL if succeeded else RunStatus.FAILED


def run_start(*, step: Step, params: dict[str, Any]) -> RunRecorder:
    """Append a ``run_started`` row for a new run of ``step`` and return its recorder.

    Args:
        step: the step being run.
        params: the run's inputs (JSON-serialisable), stored in the row's payload.
    """
    started_at = timezone.now()
    run_id = uuid.uuid4()
    _append(
        run_id,
        step,
        HistoryKind.RUN_STARTED,
        payload=params,
        created_at=started_at,
        message=f"{step} started",
    )
    return RunRecorder(run_id=run_id, step=step, started_at=started_at)


def _append(
    run_id: uuid.UUID,
    step: Step,
    kind: HistoryKind,
    *,
    instrument: Instrument | None = None,
    strategy: Any = None,
    position: Any = None,
    status: str = "",
    message: str = "",
    payload: dict[str, Any],
    created_at: datetime | None = None,
) -> History:
    return History.objects.create(
        run_id=run_id,
        step=step,
        kind=kind,
        status=status,
        instrument=instrument,
        strategy=strategy,
        position=position,
        message=message,
        payload=payload,
        created_at=created_at or timezone.now(),
    )


def candles_kept(run_id: uuid.UUID) -> dict[str, Any]:
    """Describe what an interrupted collect run kept: the candles of each instrument whose transaction committed.

    Args:
        run_id: the interrupted run.

    Returns:
        ``{"kept": sentence, "instruments_committed": [CoinGecko ids with a candles_synced event]}``.
    """
    synced = sorted(
        History.objects.filter(run_id=run_id, kind=HistoryKind.CANDLES_SYNCED, instrument__isnull=False)
        .values_list("instrument__coingecko_id", flat=True)
        .distinct()
    )
    return {
        "kept": (
            "the candles of every instrument whose transaction had committed"
            f" ({', '.join(synced) if synced else 'none recorded'}); the instrument being written was rolled"
            " back, and the days still missing are collected by the run that found it"
        ),
        "instruments_committed": synced,
    }


def runs_interrupted_finish(
    *, key: str, found_by: RunRecorder, kept: KeptDescriber = candles_kept
) -> list[dict[str, Any]]:
    """Append a ``run_finished`` row of status ``interrupted`` for each unfinished earlier run of lock ``key``.

    Call it only while holding the run lock of ``key``: then no other run of that key is alive, so an earlier
    ``run_started`` without ``run_finished`` belongs to a run that was killed or lost its database.

    Args:
        key: the lock key (``"collect:2024-12-03:all"``).
        found_by: the current run (its own ``run_started`` is skipped).
        kept: describes what an interrupted run kept (default: the collect step's candles).

    Returns:
        The summaries appended (as stored in the rows' payloads), oldest run first.
    """
    found_at = timezone.now()
    appended = []
    for started in reversed(runs_unfinished(key=key)):
        if started.run_id == found_by.run_id:
            continue
        details = kept(started.run_id)
        message = (
            f"{started.step} run {started.run_id} was interrupted (it never finished); found by run "
            f"{found_by.run_id} at {found_at.isoformat()}; kept {details['kept']}"
        )
        summary = {
            "run_id": str(started.run_id),
            "step": str(started.step),
            "status": str(RunStatus.INTERRUPTED),
            "started_at": started.created_at.isoformat(),
            "finished_at": found_at.isoformat(),
            "as_of": (started.payload or {}).get("as_of"),
            "lock": key,
            "found_by": str(found_by.run_id),
            "found_at": found_at.isoformat(),
            **details,
            "results": [],
            "errors": [{"instrument": None, "message": message}],
        }
        _append(
            started.run_id,
            Step(started.step),
            HistoryKind.RUN_FINISHED,
            status=RunStatus.INTERRUPTED,
            message=message,
            payload=summary,
            created_at=found_at,
        )
        appended.append(summary)
    return appended


@contextmanager
def run_locked(
    *,
    step: Step,
    as_of: date,
    scope: str,
    params: dict[str, Any],
    kept: KeptDescriber = candles_kept,
) -> Iterator[RunRecorder]:
    """Run a step under its run lock: lock, ``run_started``, close interrupted runs, then the ``with`` body.

    The ``run_started`` row is written before the interrupted runs are closed, so that a run refused the lock
    meanwhile names this run (the newest unfinished one) as the run in progress, not an interrupted one.

    Args:
        step: the step being run.
        as_of: the run's day (UTC).
        scope: ``all`` or what the run is limited to (:func:`positions.locks.run_scope`).
        params: the run's inputs, stored in ``run_started`` with ``"lock"`` added.
        kept: describes what an interrupted earlier run kept (:func:`runs_interrupted_finish`).

    Yields:
        The run's recorder; the body must end it with :meth:`RunRecorder.finish`.

    Raises:
        RunInProgressError: another run holds the lock (nothing is recorded).
        DatabaseUnavailableError: the database is unreachable or dropped the connection; what committed
            before is kept, and the next run marks this one ``interrupted`` and completes the work.
    """
    try:
        with run_lock(step=step, as_of=as_of, scope=scope) as key:
            recorder = run_start(step=step, params={**params, "lock": key})
            runs_interrupted_finish(key=key, found_by=recorder, kept=kept)
            yield recorder
    except (OperationalError, InterfaceError) as exc:
        raise database_unavailable(exc, during=f"the {step} run for {as_of.isoformat()}") from exc
