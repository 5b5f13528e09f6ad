"""Celery tasks of the trading cycle: thin wrappers over the services, with primitive arguments.

``trading.daily_cycle`` is what Celery beat starts every day (``CELERY_BEAT_SCHEDULE``): the self-hosted
alternative to the GitHub Action that calls the three sync endpoints.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from celery import Task, chain, chord, group, shared_task
from celery.canvas import Signature
from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.collect import as_of_validate
from instruments.models import Instrument
from instruments.tasks import (
    REDELIVERED_WHEN_LOST,
    collect_finished,
    collect_lost_record,
    retry_when_locked,
    sync_instrument_task,
)
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


logger = logging.getLogger(__name__)


@shared_task(name="trading.sync_new_trades", bind=True, **REDELIVERED_WHEN_LOST)
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


@shared_task(name="trading.sync_close_positions", bind=True, **REDELIVERED_WHEN_LOST)
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
def daily_cycle_rescue_task(self: Task, as_of: str) -> dict[str, Any]:
    """The daily chain's error callback: a collect task failed, so the chord will not start open and close.

    Records in ``History`` each active instrument whose collect for ``as_of`` never finished (a failed collect
    run saying it was lost and why), then runs the open step and the close step for ``as_of``, the close step
    even when the open step fails. Both are idempotent: what already ran for the day reports ``skipped``.

    Args:
        as_of: ISO date of the chain's day.

    Returns:
        ``{"as_of", "collect_lost": [CoinGecko ids], "open": status or error, "close": status or error}``.
    """
    day = date.fromisoformat(as_of)
    lost = []
    try:
        for coingecko_id in (
            Instrument.objects.active().order_by("coingecko_id").values_list("coingecko_id", flat=True)
        ):
            if not collect_finished(as_of=day, coingecko_id=coingecko_id):
                collect_lost_record(
                    as_of=day,
                    coingecko_id=coingecko_id,
                    why="its task failed (killed past its time limit, or its worker lost) and was not run again",
                )
                lost.append(coingecko_id)
        outcome: dict[str, Any] = {"as_of": as_of, "collect_lost": lost}
        for name, step, kind in (
            ("open", sync_new_trades, Step.OPEN),
            ("close", sync_close_positions, Step.CLOSE),
        ):
            try:
                outcome[name] = step(as_of=day)["status"]
            except RunInProgressError:
                raise
            except StepDayError as exc:  # a chain rescued after midnight: recorded as the task would
                outcome[name] = step_day_refused(step=kind, as_of=as_of, error=exc)["status"]
            except Exception as exc:  # the close step must still run after a failed open step
                message = exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
                logger.exception("daily cycle rescue for %s: the %s step failed", as_of, name)
                outcome[name] = f"error: {message}"
    except RunInProgressError as exc:
        raise retry_when_locked(self, exc) from exc
    logger.warning("daily cycle for %s rescued after a lost task: %s", as_of, outcome)
    return outcome
