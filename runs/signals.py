"""The seam at the end of every run: :data:`run_finished`, for what reacts to a finished run (notifications).

A receiver is called once per run, after its ``run_finished`` row is written, whether the run finished itself
(:meth:`runs.recorder.RunRecorder.finish`) or was found dead (:func:`runs.reaper.runs_reap`, status
``interrupted``). Receivers are called with :meth:`django.dispatch.Signal.send_robust`: one that raises is logged
with its traceback and neither stops the others nor changes the run.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger(__name__)

#: Sent with ``sender`` = the run's :class:`runs.models.Step` and ``summary`` = the run's summary (the payload of
#: its ``run_finished`` row: ``run_id``, ``step``, ``status``, ``started_at``, ``finished_at``, ``errors``, ...).
run_finished = Signal()


def run_finished_send(step: str, summary: dict[str, Any]) -> None:
    """Send :data:`run_finished` to every receiver; log, never raise, what a receiver raised."""
    for receiver, outcome in run_finished.send_robust(sender=step, summary=summary):
        if isinstance(outcome, Exception):
            logger.error(
                "a receiver of run_finished (%s) failed for run %s",
                getattr(receiver, "__qualname__", receiver),
                summary.get("run_id"),
                exc_info=outcome,
            )
