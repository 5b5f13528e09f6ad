"""Celery tasks of the positions app: the reaper of runs whose worker died (Celery beat, ``reap-runs``)."""

from __future__ import annotations

from celery import shared_task

from positions.history import runs_reap


@shared_task(name="positions.reap_runs")
def reap_runs_task() -> list[str]:
    """Finish as ``interrupted`` every run whose heartbeat stopped (:func:`positions.history.runs_reap`).

    Returns:
        The ids of the runs finished.
    """
    return [summary["run_id"] for summary in runs_reap()]
