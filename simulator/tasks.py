"""Celery tasks of the simulator: thin wrappers over :mod:`simulator.services`, with primitive arguments."""

from __future__ import annotations

from celery import shared_task

from simulator.models import Simulation
from simulator.services import simulation_run, sweep_chunk_run, sweep_finish


@shared_task(name="simulator.run_simulation")
def run_simulation_task(simulation_id: int) -> str:
    """Run a saved simulation (:func:`simulator.services.simulation_run`); store its progress as it goes."""
    simulation = Simulation.objects.get(pk=simulation_id)

    def progress(ratio: float) -> None:
        Simulation.objects.filter(pk=simulation_id).update(progress_ratio=min(max(ratio, 0.0), 1.0))

    return str(simulation_run(simulation=simulation, progress=progress).status)


@shared_task(name="simulator.sweep_chunk")
def sweep_chunk_task(sweep_id: int, first: int, stop: int) -> int:
    """Run grid points ``first`` .. ``stop - 1`` of a sweep (:func:`simulator.services.sweep_chunk_run`)."""
    return sweep_chunk_run(sweep_id=sweep_id, first=first, stop=stop)


@shared_task(name="simulator.sweep_finish")
def sweep_finish_task(sweep_id: int) -> str:
    """Mark a sweep done once its chunks have run (:func:`simulator.services.sweep_finish`)."""
    return str(sweep_finish(sweep_id=sweep_id).status)
