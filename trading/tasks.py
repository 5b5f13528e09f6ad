"""Celery tasks of the trading cycle: thin wrappers over the services, with primitive arguments."""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import shared_task

from trading.services import sync_close_positions, sync_new_trades


@shared_task(name="trading.sync_new_trades")
def sync_new_trades_task(as_of: str | None = None, instruments: list[str] | None = None) -> dict[str, Any]:
    """The open step (:func:`trading.services.sync_new_trades`); ``as_of`` is an ISO date or None for today."""
    return sync_new_trades(as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments)


@shared_task(name="trading.sync_close_positions")
def sync_close_positions_task(
    as_of: str | None = None, instruments: list[str] | None = None
) -> dict[str, Any]:
    """The close step (:func:`trading.services.sync_close_positions`); ``as_of`` as for the open step."""
    return sync_close_positions(as_of=date.fromisoformat(as_of) if as_of else None, instruments=instruments)
