"""Writing ``History``: one run of a step is a ``run_started`` row, its events, and a ``run_finished`` row.

Rows are written in autocommit, outside any transaction of the work they describe, so that a rolled-back
instrument still leaves its error on record. Nothing here updates a row.

A run of the collect, open or close step starts with :func:`run_locked`: it takes the step's run lock
(:mod:`positions.locks`), writes ``run_started`` with the lock key in its payload (``"lock"``), and closes every
earlier run of that key that never finished: such a run cannot be alive (it would hold the lock), so it was
interrupted (killed, or its database connection dropped), and it gets a ``run_finished`` row of status
``interrupted`` saying what it kept.

Every run also beats (:class:`positions.models.RunHeartbeat`, from :func:`run_start` to
:meth:`RunRecorder.finish`). Runs without a lock (``import_ohlc``, a manual close) and runs whose day is never run
again have no next run to close them: :func:`runs_reap` (Celery beat, or a request in the embedded mode) appends
``interrupted`` for every run whose beats stopped ("worker lost: no heartbeat since ...").
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import Count
from django.utils import timezone

from barter_site.errors import database_unavailable
from barter_site.heartbeat import Heartbeat
from instruments.models import Instrument
from positions.locks import run_lock, run_lock_try, runs_unfinished
from positions.models import History, HistoryKind, RunHeartbeat, RunStatus, Step

logger = logging.getLogger(__name__)

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
    heartbeat: Heartbeat | None = field(default=None, repr=False, compare=False)

    def heartbeat_stop(self) -> None:
        """Stop this run's beats (its record stays for the next run or the reaper when it never finishes)."""
        if self.heartbeat is not None:
            self.heartbeat.stop()

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
        self.heartbeat_stop()
        RunHeartbeat.objects.filter(run_id=self.run_id).delete()
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
    """Append a ``run_started`` row for a new run of ``step``, start its heartbeat, and return its recorder.

    The heartbeat (:class:`positions.models.RunHeartbeat`, beaten every ``BARTER_HEARTBEAT_SECONDS`` by a thread
    of this process) stops at :meth:`RunRecorder.finish`, or when the recorder is dropped unfinished; then the
    next run of the same lock or :func:`runs_reap` finishes the run as ``interrupted``.

    Args:
        step: the step being run.
        params: the run's inputs (JSON-serialisable), stored in the row's payload; ``"lock"`` is the run lock
            key when the run holds one (:func:`run_locked`).
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
    RunHeartbeat.objects.create(
        run_id=run_id,
        step=step,
        lock=str(params.get("lock") or ""),
        started_at=started_at,
        beat_at=started_at,
        pid=os.getpid(),
        host=socket.gethostname()[:255],
    )
    recorder = RunRecorder(run_id=run_id, step=step, started_at=started_at)
    alive = weakref.ref(recorder)

    def beat() -> None:
        if alive() is None:  # dropped without finish(): stop, and let the reaper see the run as lost
            heartbeat.stop()
            return
        RunHeartbeat.objects.filter(run_id=run_id).update(beat_at=timezone.now())

    heartbeat = Heartbeat(beat, name=f"{step} run {run_id}")
    recorder.heartbeat = heartbeat.start()
    return recorder


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


def events_kept(run_id: uuid.UUID) -> dict[str, Any]:
    """Describe what an interrupted run of any step kept: the events it recorded (each after its commit).

    Returns:
        ``{"kept": sentence, "events_recorded": {kind: count}}``.
    """
    counts = {
        row["kind"]: row["n"]
        for row in History.objects.filter(run_id=run_id)
        .exclude(kind__in=[HistoryKind.RUN_STARTED, HistoryKind.RUN_FINISHED])
        .values("kind")
        .annotate(n=Count("id"))
        .order_by("kind")
    }
    shown = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none"
    return {"kept": f"what its recorded events say it committed ({shown})", "events_recorded": counts}


def _interrupted_append(
    started: History, *, found_by: str, found_at: datetime, reason: str, details: dict[str, Any]
) -> dict[str, Any]:
    """Append the ``run_finished`` row of status ``interrupted`` of the run begun by ``started``; return its
    summary. ``reason`` says how it was found to be dead; ``details`` is the describer's (with ``kept``)."""
    lock = (started.payload or {}).get("lock")
    message = (
        f"{started.step} run {started.run_id} was interrupted ({reason}); found by {found_by} at "
        f"{found_at.isoformat()}; kept {details['kept']}"
    )
    summary = {
        "run_id": str(started.run_id),
        "step": str(started.step),
        "status": str(RunStatus.INTERRUPTED),
        "started_at": started.created_at.isoformat(),
        "finished_at": found_at.isoformat(),
        "as_of": (started.payload or {}).get("as_of"),
        "lock": lock,
        "found_by": found_by.removeprefix("run "),
        "found_at": found_at.isoformat(),
        "reason": reason,
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
    RunHeartbeat.objects.filter(run_id=started.run_id).delete()
    return summary


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
        appended.append(
            _interrupted_append(
                started,
                found_by=f"run {found_by.run_id}",
                found_at=found_at,
                reason="it never finished and its lock was free",
                details=kept(started.run_id),
            )
        )
    return appended


def runs_reap(*, stale_seconds: float | None = None) -> list[dict[str, Any]]:
    """Finish, as ``interrupted``, every run whose heartbeat stopped: its process died (SIGKILL, out of memory,
    the machine gone) before its ``run_finished`` row.

    A run whose last beat is older than ``stale_seconds`` gets a ``run_finished`` row of status ``interrupted``
    with ``reason`` ``"worker lost: no heartbeat since <time> (pid <pid> on <host>)"`` and ``found_by``
    ``"reaper"``. A run that holds a run lock is only reaped once its lock is free (a live run with late beats
    keeps it), and the lock is held while the row is written, so a new run of that lock cannot finish it twice.

    Args:
        stale_seconds: beats older than this are stale; None reads ``BARTER_HEARTBEAT_STALE_SECONDS``.

    Returns:
        The summaries appended, oldest run first.
    """
    stale = settings.BARTER_HEARTBEAT_STALE_SECONDS if stale_seconds is None else stale_seconds
    cutoff = timezone.now() - timedelta(seconds=stale)
    reaped = []
    for beat in RunHeartbeat.objects.filter(beat_at__lt=cutoff).order_by("started_at", "id"):
        if beat.lock:
            with run_lock_try(beat.lock) as taken:
                if taken:
                    summary = _reap_one(beat)
                    if summary is not None:
                        reaped.append(summary)
        else:
            summary = _reap_one(beat)
            if summary is not None:
                reaped.append(summary)
    if reaped:
        logger.warning(
            "reaped %d run(s) whose worker was lost: %s", len(reaped), [r["run_id"] for r in reaped]
        )
    return reaped


def _reap_one(beat: RunHeartbeat) -> dict[str, Any] | None:
    rows = History.objects.filter(run_id=beat.run_id)
    started = rows.filter(kind=HistoryKind.RUN_STARTED).first()
    if started is None or rows.filter(kind=HistoryKind.RUN_FINISHED).exists():
        beat.delete()  # finished meanwhile (or never recorded): nothing to say
        return None
    kept = candles_kept if beat.step == Step.COLLECT else events_kept
    return _interrupted_append(
        started,
        found_by="reaper",
        found_at=timezone.now(),
        reason=f"worker lost: no heartbeat since {beat.beat_at.isoformat()} (pid {beat.pid} on {beat.host})",
        details=kept(started.run_id),
    )


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
    recorder: RunRecorder | None = None
    try:
        with run_lock(step=step, as_of=as_of, scope=scope) as key:
            recorder = run_start(step=step, params={**params, "lock": key})
            runs_interrupted_finish(key=key, found_by=recorder, kept=kept)
            yield recorder
    except (OperationalError, InterfaceError) as exc:
        raise database_unavailable(exc, during=f"the {step} run for {as_of.isoformat()}") from exc
    finally:
        if recorder is not None:
            recorder.heartbeat_stop()  # finished, or left for the next run and the reaper
