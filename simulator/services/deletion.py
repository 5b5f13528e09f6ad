"""Deleting saved runs and sweeps.

Who may: the views and the API check ``simulator.delete_simulation`` / ``simulator.delete_sweep`` (403 without)
and that the run is one the user may see (their own; any for a superuser: 404 otherwise); these services only
delete. Work still going on is refused, not cancelled: a run or sweep that is pending or running belongs to a
worker that would write to it again (the simulator has no way to stop a worker mid-run); once it is done or
failed (a lost worker's is failed by :mod:`simulator.reaper`) it can be deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from rest_framework import status

from barter_site.errors import ApplicationError
from simulator.models import FINISHED_STATUSES, Simulation, Sweep


class SimulatorWorkInProgressError(ApplicationError):
    """The run or sweep is still pending or running: it cannot be deleted until it has finished (409)."""

    http_status = status.HTTP_409_CONFLICT
    retryable = True


def simulation_delete(*, simulation: Simulation) -> None:
    """Delete ``simulation`` (a sweep's point that pointed at it forgets it: opening the point runs it again).

    Raises:
        SimulatorWorkInProgressError: it is still pending or running (checked on the locked row).
    """
    with transaction.atomic():
        locked = Simulation.objects.select_for_update().only("id", "status").get(pk=simulation.pk)
        if locked.status not in FINISHED_STATUSES:
            raise SimulatorWorkInProgressError(
                f"run {simulation.pk} is still {locked.status}: it can be deleted once it has finished (a run "
                "whose worker was lost is failed after BARTER_HEARTBEAT_STALE_SECONDS)",
                {"id": simulation.pk, "status": locked.status},
            )
        locked.delete()


@dataclass(frozen=True)
class SweepDeleted:
    """What deleting a sweep removed: its grid points, and the runs of its points that belonged to it alone."""

    points: int
    simulations: int


def sweep_delete(*, sweep: Sweep) -> SweepDeleted:
    """Delete ``sweep``, its grid points and the full runs made of its points (``Simulation.sweep`` is this
    sweep: they are listed nowhere else). A run of another origin that a point pointed at is kept.

    Raises:
        SimulatorWorkInProgressError: the sweep, or a run of one of its points, is still pending or running.
    """
    with transaction.atomic():
        locked = Sweep.objects.select_for_update().only("id", "status").get(pk=sweep.pk)
        runs = Simulation.objects.select_for_update().filter(sweep=locked)
        busy = [s.pk for s in runs.only("id", "status") if s.status not in FINISHED_STATUSES]
        if locked.status not in FINISHED_STATUSES or busy:
            what = (
                f"sweep {sweep.pk} is still {locked.status}"
                if not busy
                else f"runs {busy} of sweep {sweep.pk} are still running"
            )
            raise SimulatorWorkInProgressError(
                f"{what}: it can be deleted once it has finished", {"id": sweep.pk, "status": locked.status}
            )
        points = locked.points.count()
        simulations = runs.count()
        runs.delete()
        locked.delete()
    return SweepDeleted(points=points, simulations=simulations)
