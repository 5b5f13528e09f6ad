"""Celery tasks of the runs app: the reaper of runs whose worker died (Celery beat, ``reap-runs``)."""

from __future__ import annotations

from celery import shared_task

from runs.reaper import runs_reap


@shared_task(name="positions.reap_runs")  # the name from the positions app: beat and queued messages use it
def reap_runs_task() -> list[str]:
    """Finish as ``interrupted`` every run whose heartbeat stopped (:func:`runs.reaper.runs_reap`).

    Returns:
        The ids of the runs finished.
    """
    return [summary["run_id"] for summary in runs_reap()]
