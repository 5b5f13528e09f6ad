"""Runs that never finished: closed as ``interrupted`` by the next run of their lock
(:func:`runs_interrupted_finish`) or, when their heartbeat stopped, by the reaper (:func:`runs_reap`: Celery
beat, or a request in the embedded mode).

Runs without a lock (``import_ohlc``, a manual close) and runs whose day is never run again have no next run to
close them: the reaper appends ``interrupted`` for every run whose beats stopped ("worker lost: no heartbeat
since ...").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from runs.locks import run_lock_try, runs_unfinished
from runs.models import History, HistoryKind, RunHeartbeat, RunStatus, Step
from runs.recorder import RunRecorder, history_append
from runs.signals import run_finished_send

logger = logging.getLogger(__name__)

#: Describes what an interrupted run kept: gets the run's id, returns ``{"kept": sentence, ...details}``.
KeptDescriber = Callable[[uuid.UUID], dict[str, Any]]


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
    history_append(
        started.run_id,
        Step(started.step),
        HistoryKind.RUN_FINISHED,
        status=RunStatus.INTERRUPTED,
        message=message,
        payload=summary,
        created_at=found_at,
    )
    RunHeartbeat.objects.filter(run_id=started.run_id).delete()
    run_finished_send(started.step, summary)
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
