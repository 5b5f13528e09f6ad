"""Celery tasks of the instruments app: thin wrappers over services, with primitive arguments."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from barter_site.errors import ApplicationError
from barter_site.tasks import REDELIVERED_WHEN_LOST, RUN_LOCK_MAX_RETRIES, retry_when_locked
from instruments.collect import sync_data
from instruments.models import Instrument
from runs.locked import run_locked
from runs.locks import RunInProgressError, run_lock_key, run_scope
from runs.models import History, HistoryKind, RunStatus, Step
from runs.recorder import run_start

logger = logging.getLogger(__name__)

#: How many times one instrument's collect for a day may lose its worker (its run left ``interrupted`` or
#: unfinished) before the next delivery gives up on it for the day, so that a task that kills its worker every
#: time (out of memory, say) cannot hold the daily chain back for ever.
COLLECT_LOST_MAX = 3


@shared_task(name="instruments.sync_data", bind=True, **REDELIVERED_WHEN_LOST)
def sync_data_task(
    self: Task[Any, Any], as_of: str | None = None, instruments: list[str] | None = None
) -> dict[str, Any]:
    """Run the collect step (:func:`instruments.collect.sync_data`) and return its summary.

    A run refused the run lock (another collect run of the day is in progress) is retried later.

    Args:
        as_of: ISO date (``YYYY-MM-DD``) or None for today UTC.
        instruments: CoinGecko ids or None for every active instrument.
    """
    try:
        return sync_data(as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments)
    except RunInProgressError as exc:
        raise retry_when_locked(self, exc) from exc


@shared_task(
    name="instruments.sync_instrument",
    bind=True,
    time_limit=settings.BARTER_COLLECT_TIME_LIMIT_SECONDS,
    **REDELIVERED_WHEN_LOST,
)
def sync_instrument_task(self: Task[Any, Any], as_of: str, coingecko_id: str) -> dict[str, Any]:
    """Run the collect step for one instrument: one task of the daily cycle's fan-out (``trading.daily_cycle``).

    The service already turns a CoinGecko or data failure into an error line of its summary. This task never
    raises either, because a raising member of the fan-out would stop the open and close steps that follow it:
    what escapes the service (an instrument deleted since the fan-out, a database error) is logged, recorded in
    ``History`` as a failed collect run when the database allows, and returned as a ``failed`` summary. The
    exception is a run refused the run lock (another collect of this instrument and day is in progress): the
    task is retried later (Celery's ``Retry``, which does not fail the chord), and only when the retries run
    out is it recorded as failed.

    When the worker process running it dies (SIGKILL, out of memory), the task is put back in the queue and run
    again (``reject_on_worker_lost``); the new run marks the lost one ``interrupted`` in ``History``. After
    :data:`COLLECT_LOST_MAX` lost runs of this instrument and day it is not tried again: a failed collect run
    says so, and the chain goes on to open and close. A run that outlives ``BARTER_COLLECT_TIME_LIMIT_SECONDS``
    is killed; the chord then fails and :func:`positions.tasks.daily_cycle_rescue_task` records the lost collect
    and runs open and close.

    Args:
        as_of: ISO date (``YYYY-MM-DD``) of the run; the days before it are collected.
        coingecko_id: the instrument's CoinGecko coin id.

    Returns:
        The collect summary of :func:`instruments.collect.sync_data`, with ``results`` holding this instrument only.
    """
    try:
        lost = collect_runs_lost(as_of=date.fromisoformat(as_of), coingecko_id=coingecko_id)
        if lost >= COLLECT_LOST_MAX:
            return collect_lost_record(
                as_of=date.fromisoformat(as_of),
                coingecko_id=coingecko_id,
                why=f"its worker was lost {lost} times (killed mid-run); it is not tried again for this day",
            )
        return sync_data(as_of=date.fromisoformat(as_of), instruments=[coingecko_id])
    except RunInProgressError as exc:
        if self.request.retries < RUN_LOCK_MAX_RETRIES:
            raise retry_when_locked(self, exc) from exc
        logger.warning("collect of %s for %s: %s; giving up", coingecko_id, as_of, exc.message)
        return _failed_collect(as_of=as_of, coingecko_id=coingecko_id, message=exc.message, error=exc)
    except Exception as exc:
        if isinstance(exc, ApplicationError):
            message = exc.message
            logger.warning("collect of %s for %s failed: %s", coingecko_id, as_of, message)
        else:
            message = f"internal error {type(exc).__name__}: {exc}"
            logger.exception("collect of %s for %s failed", coingecko_id, as_of)
        return _failed_collect(as_of=as_of, coingecko_id=coingecko_id, message=message, error=exc)


def _failed_collect_summary(*, as_of: str, coingecko_id: str, message: str) -> dict[str, Any]:
    """The summary of a collect of one instrument that did nothing: its one result line carries ``message``."""
    return {
        "as_of": as_of,
        "results": [
            {
                "instrument": coingecko_id,
                "candles_added": 0,
                "candles_updated": 0,
                "days_missing": 0,
                "error": message,
            }
        ],
    }


def _failed_collect(*, as_of: str, coingecko_id: str, message: str, error: Exception) -> dict[str, Any]:
    summary = _failed_collect_summary(as_of=as_of, coingecko_id=coingecko_id, message=message)
    try:
        recorder = run_start(step=Step.COLLECT, params={"as_of": as_of, "instruments": [coingecko_id]})
        recorder.event(
            HistoryKind.ERROR,
            instrument=Instrument.objects.filter(coingecko_id=coingecko_id).first(),
            message=message,
            payload={"error": type(error).__name__, "retryable": getattr(error, "retryable", False)},
        )
        return recorder.finish(status=RunStatus.FAILED, summary=summary)
    except Exception:
        logger.exception("could not record the failed collect of %s in History", coingecko_id)
        return {
            "run_id": None,
            "step": str(Step.COLLECT),
            "status": str(RunStatus.FAILED),
            **summary,
            "errors": [{"instrument": coingecko_id, "message": message}],
        }


def _collect_runs(*, as_of: date, coingecko_id: str) -> tuple[set[Any], dict[Any, str]]:
    """The run ids of the one-instrument collect runs of ``coingecko_id`` for ``as_of``, and the status of each
    finished one."""
    key = run_lock_key(step=Step.COLLECT, as_of=as_of, scope=run_scope(instruments=[coingecko_id]))
    started = set(
        History.objects.filter(kind=HistoryKind.RUN_STARTED, payload__lock=key).values_list(
            "run_id", flat=True
        )
    )
    finished = dict(
        History.objects.filter(kind=HistoryKind.RUN_FINISHED, run_id__in=started).values_list(
            "run_id", "status"
        )
    )
    return started, finished


def collect_runs_lost(*, as_of: date, coingecko_id: str) -> int:
    """How many collect runs of one instrument and day never finished or were finished as ``interrupted``."""
    started, finished = _collect_runs(as_of=as_of, coingecko_id=coingecko_id)
    return sum(
        1 for run_id in started if finished.get(run_id, RunStatus.INTERRUPTED) == RunStatus.INTERRUPTED
    )


def collect_finished(*, as_of: date, coingecko_id: str) -> bool:
    """True when a one-instrument collect run of ``coingecko_id`` for ``as_of`` finished (ok, partial, failed)."""
    _, finished = _collect_runs(as_of=as_of, coingecko_id=coingecko_id)
    return any(status != RunStatus.INTERRUPTED for status in finished.values())


def collect_lost_record(*, as_of: date, coingecko_id: str, why: str) -> dict[str, Any]:
    """Record, as a failed collect run of one instrument and day, that its collect was lost; return the summary.

    The run takes the instrument's run lock, so the lost runs before it are finished as ``interrupted``.

    Args:
        as_of: the run's day.
        coingecko_id: the instrument whose collect was lost.
        why: what happened, for the message (``"its task failed: TimeLimitExceeded"``).

    Raises:
        RunInProgressError: a collect of that instrument and day is running now (it is not lost).
    """
    message = (
        f"the collect of {coingecko_id} for {as_of.isoformat()} was lost: {why}; open and close run on the "
        "stored candles, and the next collect fills the missing days"
    )
    with run_locked(
        step=Step.COLLECT,
        as_of=as_of,
        scope=run_scope(instruments=[coingecko_id]),
        params={"as_of": as_of.isoformat(), "instruments": [coingecko_id]},
    ) as recorder:
        recorder.event(
            HistoryKind.ERROR,
            instrument=Instrument.objects.filter(coingecko_id=coingecko_id).first(),
            message=message,
            payload={"error": "CollectLost", "retryable": True, "why": why},
        )
        summary = _failed_collect_summary(as_of=as_of.isoformat(), coingecko_id=coingecko_id, message=message)
        return recorder.finish(status=RunStatus.FAILED, summary=summary)
