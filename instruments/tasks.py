"""Celery tasks of the instruments app: thin wrappers over services, with primitive arguments."""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import shared_task

from instruments.sync import sync_data


@shared_task(name="instruments.sync_data")
def sync_data_task(as_of: str | None = None, instruments: list[str] | None = None) -> dict[str, Any]:
    """Run the collect step (:func:`instruments.sync.sync_data`) and return its summary.

    Args:
        as_of: ISO date (``YYYY-MM-DD``) or None for today UTC.
        instruments: CoinGecko ids or None for every active instrument.
    """
    return sync_data(as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments)
