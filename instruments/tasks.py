"""Celery tasks of the instruments app: thin wrappers over services, with primitive arguments."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from celery import shared_task

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from instruments.sync import sync_data
from positions.history import run_start
from positions.models import HistoryKind, RunStatus, Step

logger = logging.getLogger(__name__)


@shared_task(name="instruments.sync_data")
def sync_data_task(as_of: str | None = None, instruments: list[str] | None = None) -> dict[str, Any]:
    """Run the collect step (:func:`instruments.sync.sync_data`) and return its summary.

    Args:
        as_of: ISO date (``YYYY-MM-DD``) or None for today UTC.
        instruments: CoinGecko ids or None for every active instrument.
    """
    return sync_data(as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments)


@shared_task(name="instruments.sync_instrument")
def sync_instrument_task(as_of: str, coingecko_id: str) -> dict[str, Any]:
    """Run the collect step for one instrument: one task of the daily cycle's fan-out (``trading.daily_cycle``).

    The service already turns a CoinGecko or data failure into an error line of its summary. This task never
    raises either, because a raising member of the fan-out would stop the open and close steps that follow it:
    what escapes the service (an instrument deleted since the fan-out, a database error) is logged, recorded in
    ``History`` as a failed collect run when the database allows, and returned as a ``failed`` summary.

    Args:
        as_of: ISO date (``YYYY-MM-DD``) of the run; the days before it are collected.
        coingecko_id: the instrument's CoinGecko coin id.

    Returns:
        The collect summary of :func:`instruments.sync.sync_data`, with ``results`` holding this instrument only.
    """
    try:
        return sync_data(as_of=date.fromisoformat(as_of), instruments=[coingecko_id])
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
