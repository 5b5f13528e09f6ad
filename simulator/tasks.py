"""Celery tasks of the simulator: thin wrappers over :mod:`simulator.services`, with primitive arguments.

``simulator.run_simulation``, ``simulator.run_portfolio_simulation``, ``simulator.sweep_chunk``,
``simulator.sweep_finish`` and ``simulator.walk_forward`` go to the simulator's own queue
(``CELERY_TASK_ROUTES``), so trading steps never wait behind them. They are acknowledged late but not
redelivered when their worker dies (a run that killed its worker, out of memory say, would kill the next one
too): the reaper (``simulator.reap``, on the default queue) fails them instead, from their stopped heartbeat.
"""

from __future__ import annotations

from celery import shared_task

from simulator.reaper import simulations_reap
from simulator.services.portfolios import portfolio_simulation_run_queued
from simulator.services.simulations import simulation_run_queued
from simulator.services.sweeps import sweep_chunk_run_guarded, sweep_finish
from simulator.services.walk_forwards import walk_forward_run


@shared_task(name="simulator.run_simulation")
def run_simulation_task(simulation_id: int) -> str:
    """Run a saved simulation (:func:`simulator.services.simulation_run_queued`); store its progress as it goes.

    Every error is caught and stored on the simulation (status ``failed``), so the task itself succeeds.
    """
    return simulation_run_queued(simulation_id=simulation_id)


@shared_task(name="simulator.run_portfolio_simulation")
def run_portfolio_simulation_task(portfolio_simulation_id: int) -> str:
    """Run a saved portfolio run (:func:`simulator.services.portfolios.portfolio_simulation_run_queued`): every
    error is stored on it (status ``failed``), so the task itself succeeds."""
    return portfolio_simulation_run_queued(portfolio_simulation_id=portfolio_simulation_id)


@shared_task(name="simulator.sweep_chunk")
def sweep_chunk_task(sweep_id: int, first: int, stop: int) -> int:
    """Run grid points ``first`` .. ``stop - 1`` of a sweep (:func:`simulator.services.sweep_chunk_run_guarded`:
    an unexpected error fails the sweep with its message and the chord still reaches ``sweep_finish``)."""
    return sweep_chunk_run_guarded(sweep_id=sweep_id, first=first, stop=stop)


@shared_task(name="simulator.sweep_finish")
def sweep_finish_task(sweep_id: int) -> str:
    """Mark a sweep done once its chunks have run (:func:`simulator.services.sweep_finish`)."""
    return str(sweep_finish(sweep_id=sweep_id).status)


@shared_task(name="simulator.walk_forward")
def walk_forward_task(walk_forward_id: int) -> str:
    """Run a saved walk-forward (:func:`simulator.services.walk_forwards.walk_forward_run`: every error is stored
    on it, status ``failed``, so the task itself succeeds)."""
    return str(walk_forward_run(walk_forward_id=walk_forward_id).status)


@shared_task(name="simulator.reap")
def reap_task() -> dict[str, list[int]]:
    """Fail the simulations, portfolio runs, sweeps and walk-forwards whose worker died
    (:func:`simulator.reaper.simulations_reap`)."""
    return simulations_reap()
