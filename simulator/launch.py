"""Sending the simulator's work: in this request, as a Celery task on the simulator's queue, or without a broker
in a background thread of this process (:mod:`simulator.background`).

The only module of the simulator that imports :mod:`simulator.tasks`; the tasks import the services, and the
services import neither, so there is no import cycle between them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import chord, current_app
from django.conf import settings
from django.db import transaction

from barter_site.errors import ApplicationError
from simulator.background import background_submit, embedded
from simulator.models import PortfolioSimulation, RunStatus, Simulation, Sweep, WalkForward
from simulator.services.inline import inline_slot
from simulator.services.portfolios import (
    PortfolioRequest,
    portfolio_candle_cost,
    portfolio_simulation_create,
    portfolio_simulation_run,
    portfolio_simulation_run_queued,
)
from simulator.services.requests import SimulationRequest
from simulator.services.simulations import (
    simulation_candle_count,
    simulation_candle_series,
    simulation_create,
    simulation_run,
    simulation_run_queued,
)
from simulator.services.sweeps import sweep_chunks, sweep_run_in_process
from simulator.services.walk_forwards import walk_forward_run
from simulator.tasks import (
    run_portfolio_simulation_task,
    run_simulation_task,
    sweep_chunk_task,
    sweep_finish_task,
    walk_forward_task,
)
from trading.models import Strategy


class TaskQueueUnavailableError(ApplicationError):
    """The task queue (Celery's broker and result store, Redis at ``REDIS_URL``) did not answer, so the work
    was not queued. Nothing ran; try again once Redis is back (``/healthz`` says whether it answers)."""

    http_status = 503
    retryable = True


#: What Celery raises when Redis cannot be reached while sending: kombu's OperationalError (broker), redis-py's
#: errors, socket errors, and the RuntimeError the Redis result consumer raises once its reconnects are spent.
QUEUE_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.RedisError,
    OSError,
    RuntimeError,
)


def task_send(send: Callable[[], object], *, what: str) -> None:
    """Call ``send`` (which enqueues Celery work) and turn a queue that does not answer into a clear error.

    Without a broker (``CELERY_TASK_ALWAYS_EAGER``) the work runs in-process inside ``send`` and its own errors
    propagate unchanged; only a real broker's connection failures are translated.

    Args:
        send: enqueues, e.g. ``lambda: task.delay(pk)``.
        what: the work, for the message (``"simulation 12"``).

    Raises:
        TaskQueueUnavailableError: (HTTP 503) sending failed on a connection error, after Celery's own retries
            (``CELERY_TASK_PUBLISH_RETRY_POLICY``, ``CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS``).
    """
    if current_app.conf.task_always_eager:
        send()
        return
    try:
        send()
    except QUEUE_ERRORS as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise TaskQueueUnavailableError(
            f"the task queue (Redis at REDIS_URL) did not answer, so {what} was not started ({reason}); "
            "try again when Redis is back",
            extra={"queue": "redis", "retryable": True},
        ) from exc


def simulation_start(
    *,
    request: SimulationRequest,
    created_by: Any = None,
    name: str = "",
    source_strategy: Strategy | None = None,
) -> Simulation:
    """Save a simulation and run it: in this request when it reads at most ``BARTER_SIMULATOR_INLINE_CANDLES``
    candles and at most ``BARTER_SIMULATOR_INLINE_CANDLE_SERIES`` candle series
    (:func:`~simulator.services.simulations.simulation_candle_series`; about a second of work and tens of MB at
    most), else as the Celery task ``simulator.run_simulation`` on the simulator's queue, or without a broker in
    a background thread of this process (:mod:`simulator.background`); the result page polls its progress either
    way.

    Raises:
        TaskQueueUnavailableError: the run had to be queued and the broker did not answer (once the current
            transaction commits; at once outside one); the saved run is then ``failed`` with that message.
        SimulatorBusyError: (HTTP 503, ``Retry-After``) every inline slot of this process is taken; nothing is
            saved.
    """
    candles = simulation_candle_count(request)
    if (
        candles <= settings.BARTER_SIMULATOR_INLINE_CANDLES
        and simulation_candle_series(request, candles=candles)
        <= settings.BARTER_SIMULATOR_INLINE_CANDLE_SERIES
    ):
        with inline_slot(candles=candles):  # SimulatorBusyError before anything is saved
            simulation = simulation_create(
                request=request, created_by=created_by, name=name, source_strategy=source_strategy
            )
            return simulation_run(simulation=simulation)
    simulation = simulation_create(
        request=request, created_by=created_by, name=name, source_strategy=source_strategy
    )
    if embedded():
        # No broker: a background thread of this process, never this request (simulator.background).
        transaction.on_commit(
            lambda: background_submit(
                lambda: simulation_run_queued(simulation_id=simulation.pk),
                what=f"simulation {simulation.pk}",
                beat=lambda: Simulation.objects.filter(pk=simulation.pk).update(
                    heartbeat_at=datetime.now(tz=UTC)
                ),
            )
        )
        return simulation

    def send() -> None:
        try:
            task_send(lambda: run_simulation_task.delay(simulation.pk), what=f"simulation {simulation.pk}")
        except TaskQueueUnavailableError as exc:
            # The run was saved but will never be picked up: say so on it, rather than leave it pending.
            Simulation.objects.filter(pk=simulation.pk, status=RunStatus.PENDING).update(
                status=RunStatus.FAILED, error=exc.message, progress_ratio=1.0
            )
            raise

    transaction.on_commit(send)
    return simulation


def sweep_start(*, sweep: Sweep) -> None:
    """Start a saved sweep once the current transaction commits: its grid fanned out as a Celery chord of chunks
    on the simulator's queue (``simulator.sweep_chunk``, then ``simulator.sweep_finish``); without a broker,
    every chunk in turn in a background thread of this process (:mod:`simulator.background`), never in the
    request. The sweep stays ``pending`` until a chunk starts (then ``running``, with a heartbeat).

    Raises:
        TaskQueueUnavailableError: the broker did not answer (once the current transaction commits; at once
            outside one); the sweep is then ``failed`` with that message.
    """
    chunks = sweep_chunks(sweep.total, settings.BARTER_SIMULATOR_SWEEP_WORKERS)
    if embedded():
        transaction.on_commit(
            lambda: background_submit(
                lambda: sweep_run_in_process(sweep_id=sweep.pk, chunks=chunks),
                what=f"sweep {sweep.pk}",
                beat=lambda: Sweep.objects.filter(pk=sweep.pk).update(heartbeat_at=datetime.now(tz=UTC)),
            )
        )
        return
    header = [sweep_chunk_task.si(sweep.pk, first, stop) for first, stop in chunks]

    def send() -> None:
        try:
            task_send(lambda: chord(header)(sweep_finish_task.si(sweep.pk)), what=f"sweep {sweep.pk}")
        except TaskQueueUnavailableError as exc:
            Sweep.objects.filter(pk=sweep.pk, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
                status=RunStatus.FAILED, error=exc.message
            )
            raise

    transaction.on_commit(send)


def walk_forward_start(*, walk_forward: WalkForward) -> None:
    """Start a saved walk-forward once the current transaction commits: the Celery task ``simulator.walk_forward``
    on the simulator's queue, or without a broker a background thread of this process
    (:mod:`simulator.background`), never the request. It stays ``pending`` until it starts (then ``running``,
    with a heartbeat and its progress after each fold).

    Raises:
        TaskQueueUnavailableError: the broker did not answer (once the current transaction commits; at once
            outside one); the walk-forward is then ``failed`` with that message.
    """
    pk = walk_forward.pk
    if embedded():
        transaction.on_commit(
            lambda: background_submit(
                lambda: walk_forward_run(walk_forward_id=pk),
                what=f"walk-forward {pk}",
                beat=lambda: WalkForward.objects.filter(pk=pk).update(heartbeat_at=datetime.now(tz=UTC)),
            )
        )
        return

    def send() -> None:
        try:
            task_send(lambda: walk_forward_task.delay(pk), what=f"walk-forward {pk}")
        except TaskQueueUnavailableError as exc:
            WalkForward.objects.filter(pk=pk, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
                status=RunStatus.FAILED, error=exc.message, progress_ratio=1.0
            )
            raise

    transaction.on_commit(send)


def portfolio_simulation_start(
    *, request: PortfolioRequest, created_by: Any = None, name: str = ""
) -> PortfolioSimulation:
    """Save a portfolio run and run it as :func:`simulation_start` runs a simulation: in this request when its
    members read at most ``BARTER_SIMULATOR_INLINE_CANDLES`` candles and ``BARTER_SIMULATOR_INLINE_CANDLE_SERIES``
    candle series in all (:func:`~simulator.services.portfolios.portfolio_candle_cost`), else as the Celery task
    ``simulator.run_portfolio_simulation`` on the simulator's queue, or without a broker in a background thread of
    this process; the result page polls its progress either way.

    Raises:
        TaskQueueUnavailableError: the run had to be queued and the broker did not answer; the saved run is then
            ``failed`` with that message.
        SimulatorBusyError: (HTTP 503, ``Retry-After``) every inline slot of this process is taken; nothing is
            saved.
    """
    candles, series = portfolio_candle_cost(request)
    if (
        candles <= settings.BARTER_SIMULATOR_INLINE_CANDLES
        and series <= settings.BARTER_SIMULATOR_INLINE_CANDLE_SERIES
    ):
        with inline_slot(candles=candles):  # SimulatorBusyError before anything is saved
            record = portfolio_simulation_create(request=request, created_by=created_by, name=name)
            return portfolio_simulation_run(record=record)
    record = portfolio_simulation_create(request=request, created_by=created_by, name=name)
    pk = record.pk
    if embedded():
        transaction.on_commit(
            lambda: background_submit(
                lambda: portfolio_simulation_run_queued(portfolio_simulation_id=pk),
                what=f"portfolio run {pk}",
                beat=lambda: PortfolioSimulation.objects.filter(pk=pk).update(
                    heartbeat_at=datetime.now(tz=UTC)
                ),
            )
        )
        return record

    def send() -> None:
        try:
            task_send(lambda: run_portfolio_simulation_task.delay(pk), what=f"portfolio run {pk}")
        except TaskQueueUnavailableError as exc:
            PortfolioSimulation.objects.filter(pk=pk, status=RunStatus.PENDING).update(
                status=RunStatus.FAILED, error=exc.message, progress_ratio=1.0
            )
            raise

    transaction.on_commit(send)
    return record
