"""Celery tasks of the instruments app: thin wrappers over services, with primitive arguments."""

from __future__ import annotations

import logging
import random
from datetime import date
from typing import Any

from celery import Task, shared_task

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from instruments.sync import sync_data
from positions.history import run_start
from positions.locks import RunInProgressError
from positions.models import HistoryKind, RunStatus, Step

logger = logging.getLogger(__name__)

#: How many times a step task refused the run lock (``RunInProgressError``) asks again before giving up.
RUN_LOCK_MAX_RETRIES = 12
#: The first retry's wait and the longest one, seconds (the wait doubles each retry, with jitter).
RUN_LOCK_RETRY_BASE_SECONDS = 1.0
RUN_LOCK_RETRY_MAX_SECONDS = 60.0


def run_lock_countdown_seconds(retries: int) -> float:
    """Return how long a task refused the run lock waits before retry ``retries + 1``, seconds.

    ``base * 2 ** retries`` capped at :data:`RUN_LOCK_RETRY_MAX_SECONDS`, times a random factor in [0.5, 1]
    so that the losers of one race do not all come back at the same moment.

    Args:
        retries: the retries made so far (Celery's ``request.retries``, from 0).
    """
    ceiling = min(RUN_LOCK_RETRY_BASE_SECONDS * 2**retries, RUN_LOCK_RETRY_MAX_SECONDS)
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def retry_when_locked(task: Task, exc: RunInProgressError) -> Exception:
    """Return the ``Retry`` to raise for a task refused the run lock (the run in progress does the work).

    When it runs again the run in progress has finished, so it finds nothing left to do (candles stored,
    strategies ``skipped``) and the chain goes on. After :data:`RUN_LOCK_MAX_RETRIES` the error itself is
    raised.

    Args:
        task: the bound task.
        exc: the refusal.
    """
    countdown = run_lock_countdown_seconds(task.request.retries)
    logger.info("%s: %s; retrying in %.1f s", task.name, exc.message, countdown)
    return task.retry(exc=exc, countdown=countdown, max_retries=RUN_LOCK_MAX_RETRIES)


@shared_task(name="instruments.sync_data", bind=True)
def sync_data_task(
    self: Task, as_of: str | None = None, instruments: list[str] | None = None
) -> dict[str, Any]:
    """Run the collect step (:func:`instruments.sync.sync_data`) and return its summary.

    A run refused the run lock (another collect run of the day is in progress) is retried later.

    Args:
        as_of: ISO date (``YYYY-MM-DD``) or None for today UTC.
        instruments: CoinGecko ids or None for every active instrument.
    """
    try:
        return sync_data(as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments)
    except RunInProgressError as exc:
        raise retry_when_locked(self, exc) from exc


@shared_task(name="instruments.sync_instrument", bind=True)
def sync_instrument_task(self: Task, as_of: str, coingecko_id: str) -> dict[str, Any]:
    """Run the collect step for one instrument: one task of the daily cycle's fan-out (``trading.daily_cycle``).

    The service already turns a CoinGecko or data failure into an error line of its summary. This task never
    raises either, because a raising member of the fan-out would stop the open and close steps that follow it:
    what escapes the service (an instrument deleted since the fan-out, a database error) is logged, recorded in
    ``History`` as a failed collect run when the database allows, and returned as a ``failed`` summary. The
    exception is a run refused the run lock (another collect of this instrument and day is in progress): the
    task is retried later (Celery's ``Retry``, which does not fail the chord), and only when the retries run
    out is it recorded as failed.

    Args:
        as_of: ISO date (``YYYY-MM-DD``) of the run; the days before it are collected.
        coingecko_id: the instrument's CoinGecko coin id.

    Returns:
        The collect summary of :func:`instruments.sync.sync_data`, with ``results`` holding this instrument only.
    """
    try:
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


def _failed_collect(*, as_of: str, coingecko_id: str, message: str, error: Exception) -> dict[str, Any]:
    summary: dict[str, Any] = {
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
