"""Celery tasks of the positions app: thin wrappers over the daily cycle, with primitive arguments.

``trading.daily_cycle`` is what Celery beat starts every day (``CELERY_BEAT_SCHEDULE``): the self-hosted
alternative to the GitHub Action that calls the three sync endpoints. The task names keep their ``trading.``
prefix, so queued messages and the beat schedule still find them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import Task, chain, chord, group, shared_task
from celery.canvas import Signature
from django.utils import timezone

from barter_site.days import as_of_validate
from barter_site.tasks import REDELIVERED_WHEN_LOST, retry_when_locked
from instruments.models import Instrument
from instruments.tasks import sync_instrument_task
from positions.cycle.close import sync_close_positions
from positions.cycle.daily import daily_cycle_rescue, step_day_refused
from positions.cycle.open import sync_new_trades
from positions.cycle.run import StepDayError
from runs.locks import RunInProgressError
from runs.models import Step


@shared_task(name="trading.sync_new_trades", bind=True, **REDELIVERED_WHEN_LOST)
def sync_new_trades_task(
    self: Task[Any, Any], as_of: str | None = None, instruments: list[str] | None = None
) -> dict[str, Any]:
    """The open step (:func:`positions.cycle.open.sync_new_trades`); ``as_of`` is an ISO date or None for today.

    Refused the run lock (another open run of the day is in progress), it retries later
    (:func:`instruments.tasks.retry_when_locked`) and then reports each strategy ``skipped``. A day other than
    today is refused for the live strategies and recorded as a failed run
    (:func:`positions.cycle.daily.step_day_refused`).
    """
    try:
        return sync_new_trades(as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments)
    except RunInProgressError as exc:
        raise retry_when_locked(self, exc) from exc
    except StepDayError as exc:
        return step_day_refused(step=Step.OPEN, as_of=as_of, error=exc)


@shared_task(name="trading.sync_close_positions", bind=True, **REDELIVERED_WHEN_LOST)
def sync_close_positions_task(
    self: Task[Any, Any], as_of: str | None = None, instruments: list[str] | None = None
) -> dict[str, Any]:
    """The close step (:func:`positions.cycle.close.sync_close_positions`); ``as_of``, retries and a refused day as
    for open."""
    try:
        return sync_close_positions(
            as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments
        )
    except RunInProgressError as exc:
        raise retry_when_locked(self, exc) from exc
    except StepDayError as exc:
        return step_day_refused(step=Step.CLOSE, as_of=as_of, error=exc)


@shared_task(name="trading.daily_cycle", **REDELIVERED_WHEN_LOST)
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
    collected is an error in its run's summary and the open and close steps still run. A collect whose worker
    dies is run again (``reject_on_worker_lost``); one that fails anyway (killed past its time limit, or lost
    too often) fails the chord, whose error callback :func:`daily_cycle_rescue_task` records which
    instruments' collect was lost and runs open and close itself. Running the chain twice
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
    trading = chain(sync_new_trades_task.si(day), sync_close_positions_task.si(day))
    if not coingecko_ids:
        # Without instruments there is nothing to collect, and an empty group would make an empty chord.
        return trading
    # The error callback sits on the body: the chord calls it when a collect task failed (and so the body will
    # not run), and the body's tasks call it when open or close raise, so close still gets its chance.
    trading.link_error(daily_cycle_rescue_task.si(day))
    return chord(group(sync_instrument_task.si(day, coingecko_id) for coingecko_id in coingecko_ids), trading)


@shared_task(name="trading.daily_cycle_rescue", bind=True, **REDELIVERED_WHEN_LOST)
def daily_cycle_rescue_task(self: Task[Any, Any], as_of: str) -> dict[str, Any]:
    """The daily chain's error callback (:func:`positions.cycle.daily.daily_cycle_rescue`): records the lost
    collects of ``as_of`` and runs open and close; refused a run lock, it retries later.

    Args:
        as_of: ISO date of the chain's day.

    Returns:
        ``{"as_of", "collect_lost": [CoinGecko ids], "open": status or error, "close": status or error}``.
    """
    try:
        return daily_cycle_rescue(as_of=as_of)
    except RunInProgressError as exc:
        raise retry_when_locked(self, exc) from exc
