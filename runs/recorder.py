"""Writing ``History``: one run of a step is a ``run_started`` row, its events, and a ``run_finished`` row.

Rows are written in autocommit, outside any transaction of the work they describe, so that a rolled-back
instrument still leaves its error on record. Nothing here updates a row.

Every run beats (:class:`runs.models.RunHeartbeat`, from :func:`run_start` to :meth:`RunRecorder.finish`). A run
that never finishes is closed as ``interrupted`` by the next run of its lock (:func:`runs.locked.run_locked`) or
by the reaper (:func:`runs.reaper.runs_reap`).
"""

from __future__ import annotations

import os
import socket
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from barter_site.heartbeat import Heartbeat
from runs.models import History, HistoryKind, RunHeartbeat, RunStatus, Step
from runs.signals import run_finished_send


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
        instrument: Any = None,  # an instruments.Instrument: runs imports no app above it
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
        return history_append(
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
        history_append(
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
        run_finished_send(self.step, result)
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

    The heartbeat (:class:`runs.models.RunHeartbeat`, beaten every ``BARTER_HEARTBEAT_SECONDS`` by a thread
    of this process) stops at :meth:`RunRecorder.finish`, or when the recorder is dropped unfinished; then the
    next run of the same lock or :func:`runs.reaper.runs_reap` finishes the run as ``interrupted``.

    Args:
        step: the step being run.
        params: the run's inputs (JSON-serialisable), stored in the row's payload; ``"lock"`` is the run lock
            key when the run holds one (:func:`runs.locked.run_locked`).
    """
    started_at = timezone.now()
    run_id = uuid.uuid4()
    history_append(
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


def history_append(
    run_id: uuid.UUID,
    step: Step,
    kind: HistoryKind,
    *,
    instrument: Any = None,  # an instruments.Instrument: runs imports no app above it
    strategy: Any = None,
    position: Any = None,
    status: str = "",
    message: str = "",
    payload: dict[str, Any],
    created_at: datetime | None = None,
) -> History:
    """Append one ``History`` row and return it (every argument is a column; ``created_at`` defaults to now).

    The one writer of rows: the recorder's events and ``run_finished``, and the reaper's ``interrupted`` rows.
    """
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
