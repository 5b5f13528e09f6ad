"""Celery tasks of the trading cycle: thin wrappers over the services, with primitive arguments.

``trading.daily_cycle`` is what Celery beat starts every day (``CELERY_BEAT_SCHEDULE``): the self-hosted
alternative to the GitHub Action that calls the three sync endpoints.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import Task, chain, group, shared_task
from celery.canvas import Signature
from django.utils import timezone

from instruments.models import Instrument
from instruments.sync import as_of_validate
from instruments.tasks import retry_when_locked, sync_instrument_task
from positions.history import run_start
from positions.locks import RunInProgressError
from positions.models import HistoryKind, RunStatus, Step
from trading.services import StepDayError, sync_close_positions, sync_new_trades


def step_day_refused(*, step: Step, as_of: str | None, error: StepDayError) -> dict[str, Any]:
    """Record a step task refused its day (:class:`~trading.services.StepDayError`) as a failed run in History.

    A task has nobody to answer a 400 to, so the refusal is a ``run_started`` row, an ``error`` event saying
    the rule and pointing at ``manage.py replay``, and a ``run_finished`` row of status ``failed``; nothing
    is traded. The chain goes on (the close step after a refused open step is refused and recorded alike).

    Returns:
        The failed run's summary (the shape of a step's summary, with no results).
    """
    recorder = run_start(step=step, params={"as_of": as_of, "refused": "as_of"})
    recorder.event(HistoryKind.ERROR, message=error.message, payload=error.as_dict())
    return recorder.finish(status=RunStatus.FAILED, summary={"as_of": as_of, "results": []})


@shared_task(name="trading.sync_new_trades", bind=True)
def sync_new_trades_task(
    self: Task, as_of: str | None = None, instruments: list[str] | None = None
) -> dict[str, Any]:
    """The open step (:func:`trading.services.sync_new_trades`); ``as_of`` is an ISO date or None for today.

    Refused the run lock (another open run of the day is in progress), it retries later
    (:func:`instruments.tasks.retry_when_locked`) and then reports each strategy ``skipped``. A day other than
    today is refused for the live strategies and recorded as a failed run (:func:`step_day_refused`).
    """
    try:
        return sync_new_trades(as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments)
    except RunInProgressError as exc:
        raise retry_when_locked(self, exc) from exc
    except StepDayError as exc:
        return step_day_refused(step=Step.OPEN, as_of=as_of, error=exc)


@shared_task(name="trading.sync_close_positions", bind=True)
def sync_close_positions_task(
    self: Task, as_of: str | None = None, instruments: list[str] | None = None
) -> dict[str, Any]:
    """The close step (:func:`trading.services.sync_close_positions`); ``as_of``, retries and a refused day as
    for open."""
    try:
        return sync_close_positions(
            as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments
        )
    except RunInProgressError as exc:
        raise retry_when_locked(self, exc) from exc
    except StepDayError as exc:
        return step_day_refused(step=Step.CLOSE, as_of=as_of, error=exc)


@shared_task(name="trading.daily_cycle")
def daily_cycle_task(as_of: str | None = None) -> str:
    """Start the daily cycle for ``as_of``: the chain built by :func:`daily_cycle_signature`.

    The day is fixed here, once, so a chain that runs past midnight still trades the day it started for.

    Args:
        as_of: ISO date (``YYYY-MM-DD``) or None for today UTC.

    Returns:
        The chain's id: the id of its last task (the close step), whose result is the close step's summary.

    Raises:
        ApplicationError: ``as_of`` lies in the future (nothing is started).
    """
    now = timezone.now()
    day = as_of_validate(date.fromisoformat(as_of) if as_of else now.date(), now=now)
    return str(daily_cycle_signature(as_of=day).apply_async().id)


def daily_cycle_signature(*, as_of: date) -> Signature:
    """Return the daily cycle as a Celery canvas: collect, then open, then close, for ``as_of``.

    Collect fans out as a group of ``instruments.sync_instrument`` tasks, one per active instrument, which
    workers run in parallel (CoinGecko's calls per minute are shared through the client's rate limiter); each
    records its own collect run in ``History``. The open step (``trading.sync_new_trades``) starts when every
    one of them has finished, and the close step (``trading.sync_close_positions``) after it: Celery makes the
    chain a chord whose header is the collect group and whose body is the chain open -> close (its join is
    counted in the Redis result backend). Collect tasks never raise, so an instrument that could not be
    collected is an error in its run's summary and the open and close steps still run. Running the chain twice
    for a day, even at once, is harmless: a step task refused its run lock (``RunInProgressError``) retries
    later, candles are upserted, and a strategy's open or close step handles each instrument once per day (a
    later run reports it ``skipped``). A day other than today is collected (backfill) but refused by the open and
    close tasks, which record the refusal as a failed run.

    Args:
        as_of: the run's day (UTC).

    Returns:
        The chain, not yet started (``.apply_async()`` starts it; eager without a broker).
    """
    day = as_of.isoformat()
    coingecko_ids = list(
        Instrument.objects.active().order_by("coingecko_id").values_list("coingecko_id", flat=True)
    )
    steps: list[Signature] = [sync_new_trades_task.si(day), sync_close_positions_task.si(day)]
    if coingecko_ids:
        # Without instruments there is nothing to collect, and an empty group would make an empty chord.
        steps.insert(0, group(sync_instrument_task.si(day, coingecko_id) for coingecko_id in coingecko_ids))
    return chain(*steps)
