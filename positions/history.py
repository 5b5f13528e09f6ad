"""Writing ``History``: one run of a step is a ``run_started`` row, its events, and a ``run_finished`` row.

Rows are written in autocommit, outside any transaction of the work they describe, so that a rolled-back
instrument still leaves its error on record. Nothing here updates a row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from instruments.models import Instrument
from positions.models import History, HistoryKind, RunStatus, Step


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
