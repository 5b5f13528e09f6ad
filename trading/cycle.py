"""The daily cycle as one call: collect, open, close (the order the GitHub Action and Celery beat use too)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils import timezone

from instruments.collect import sync_data
from trading.services import step_day_validate, sync_close_positions, sync_new_trades


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
