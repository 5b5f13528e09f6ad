"""The simulator's reaper: simulations and sweeps whose worker died are failed with the reason.

A queued simulation or a sweep's chunk beats (``heartbeat_at``) from a thread of the process running it. When
that process dies (SIGKILL, out of memory, a redeploy) the beats stop and the work would stay ``running`` for
ever, its page polling. :func:`simulations_reap` (Celery beat's ``reap-simulations``; without a broker, a request
now and then, the first after start-up included) fails each one whose last beat is older than
``BARTER_HEARTBEAT_STALE_SECONDS``, saying so; its page then stops polling and shows the message.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q

from simulator.models import PortfolioSimulation, RunStatus, Simulation, Sweep, WalkForward

logger = logging.getLogger(__name__)


def simulations_reap(*, stale_seconds: float | None = None) -> dict[str, list[int]]:
    """Fail every running simulation and sweep whose heartbeat is stale (or that never beat since it started),
    and every one waiting in the embedded mode's background pool whose process stopped beating for it.

    The simulation's error reads ``"worker lost: no heartbeat since <time> (the run was at 5 %)"``; the sweep's
    ``"worker lost: no heartbeat since <time>; 1,750 of 2,000 grid points done"``. Each row is updated only if
    it is still running with that stale beat, so a run that beats or finishes meanwhile is left alone.

    Args:
        stale_seconds: beats older than this are stale; None reads ``BARTER_HEARTBEAT_STALE_SECONDS``.

    Returns:
        ``{"simulations": [ids failed], "sweeps": [ids failed], "walk_forwards": [ids failed],
        "portfolio_simulations": [ids failed]}`` (a walk-forward's error reads ``"worker lost: no heartbeat since
        <time> (it was at 40 %)"``, a portfolio run's as a simulation's).
    """
    stale = settings.BARTER_HEARTBEAT_STALE_SECONDS if stale_seconds is None else stale_seconds
    cutoff = datetime.now(tz=UTC) - timedelta(seconds=stale)
    # Running work beats; so does work waiting in the embedded mode's background pool (pending, with a beat).
    # Pending work without any beat waits in the broker's queue, which outlives a worker: it is left alone.
    dead = Q(status=RunStatus.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    ) | Q(status=RunStatus.PENDING, heartbeat_at__lt=cutoff)
    reaped: dict[str, list[int]] = {
        "simulations": [],
        "sweeps": [],
        "walk_forwards": [],
        "portfolio_simulations": [],
    }
    runs: tuple[tuple[str, type[Simulation] | type[PortfolioSimulation]], ...] = (
        ("simulations", Simulation),
        ("portfolio_simulations", PortfolioSimulation),
    )
    for key, model in runs:
        for run in model.objects.filter(dead).only("id", "status", "heartbeat_at", "progress_ratio"):
            since = _since(run.heartbeat_at)
            message = f"worker lost: no heartbeat since {since} (the run was at {run.progress_ratio:.0%})"
            changed = model.objects.filter(
                pk=run.pk, status=run.status, heartbeat_at=run.heartbeat_at
            ).update(status=RunStatus.FAILED, error=message, progress_ratio=1.0)
            if changed:
                reaped[key].append(run.pk)
    for sweep in (
        Sweep.objects.filter(dead)
        .annotate(done=Count("points"))
        .only("id", "status", "heartbeat_at", "total")
    ):
        since = _since(sweep.heartbeat_at)
        done: int = sweep.done
        message = f"worker lost: no heartbeat since {since}; {done:,} of {sweep.total:,} grid points done"
        changed = Sweep.objects.filter(
            pk=sweep.pk, status=sweep.status, heartbeat_at=sweep.heartbeat_at
        ).update(status=RunStatus.FAILED, error=message)
        if changed:
            reaped["sweeps"].append(sweep.pk)
    for record in WalkForward.objects.filter(dead).only("id", "status", "heartbeat_at", "progress_ratio"):
        since = _since(record.heartbeat_at)
        message = f"worker lost: no heartbeat since {since} (it was at {record.progress_ratio:.0%})"
        changed = WalkForward.objects.filter(
            pk=record.pk, status=record.status, heartbeat_at=record.heartbeat_at
        ).update(status=RunStatus.FAILED, error=message, progress_ratio=1.0)
        if changed:
            reaped["walk_forwards"].append(record.pk)
    if any(reaped.values()):
        logger.warning("reaped simulator work whose worker was lost: %s", reaped)
    return reaped


def _since(beat_at: datetime | None) -> str:
    return beat_at.isoformat() if beat_at is not None else "it started"
