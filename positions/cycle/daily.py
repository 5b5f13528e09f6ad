"""The daily cycle as one call, and what the daily Celery chain does besides its steps.

:func:`run_cycle` runs collect, open and close in the order the GitHub Action and Celery beat use too;
:func:`step_day_refused` records a step task refused its day; :func:`daily_cycle_rescue` is the body of the chain's
error callback (``trading.daily_cycle_rescue``, :mod:`positions.tasks`).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.collect import sync_data
from instruments.models import Instrument
from instruments.tasks import collect_finished, collect_lost_record
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.cycle.run import StepDayError, step_day_validate
from runs.locks import RunInProgressError
from runs.models import HistoryKind, RunStatus, Step
from runs.recorder import run_start

logger = logging.getLogger(__name__)


def run_cycle(*, as_of: date | None = None) -> list[dict[str, Any]]:
    """Run the collect, open and close steps for ``as_of`` (default today UTC) and return their summaries.

    A step's failure is inside its summary (status and errors); the next step runs regardless, on whatever
    candles are stored.

    Raises:
        StepDayError: ``as_of`` is not today: the live open and close steps act only for today, so nothing is
            run (not even the collect); past days are for ``manage.py replay``.
    """
    today = timezone.now().date()
    step_day_validate(step="open", as_of=as_of or today, today=today, live=True)
    return [
        sync_data(as_of=as_of),
        sync_new_trades(as_of=as_of),
        sync_close_positions(as_of=as_of),
    ]


def step_day_refused(*, step: Step, as_of: str | None, error: StepDayError) -> dict[str, Any]:
    """Record a step task refused its day (:class:`~positions.cycle.run.StepDayError`) as a failed run in History.

    A task has nobody to answer a 400 to, so the refusal is a ``run_started`` row, an ``error`` event saying
    the rule and pointing at ``manage.py replay``, and a ``run_finished`` row of status ``failed``; nothing
    is traded. The chain goes on (the close step after a refused open step is refused and recorded alike).

    Returns:
        The failed run's summary (the shape of a step's summary, with no results).
    """
    recorder = run_start(step=step, params={"as_of": as_of, "refused": "as_of"})
    recorder.event(HistoryKind.ERROR, message=error.message, payload=error.as_dict())
    return recorder.finish(status=RunStatus.FAILED, summary={"as_of": as_of, "results": []})


def daily_cycle_rescue(*, as_of: str) -> dict[str, Any]:
    """The daily chain's error callback: a collect task failed, so the chord will not start open and close.

    Records in ``History`` each active instrument whose collect for ``as_of`` never finished (a failed collect
    run saying it was lost and why), then runs the open step and the close step for ``as_of``, the close step
    even when the open step fails. Both are idempotent: what already ran for the day reports ``skipped``.

    Args:
        as_of: ISO date of the chain's day.

    Raises:
        RunInProgressError: a step's run lock is held (the task retries).

    Returns:
        ``{"as_of", "collect_lost": [CoinGecko ids], "open": status or error, "close": status or error}``.
    """
    day = date.fromisoformat(as_of)
    lost = []
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
    logger.warning("daily cycle for %s rescued after a lost task: %s", as_of, outcome)
    return outcome
