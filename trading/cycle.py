"""The daily cycle as one call: collect, open, close (the order the GitHub Action and Celery beat use too)."""

from __future__ import annotations

from datetime import date
from typing import Any

from instruments.sync import sync_data
from trading.services import sync_close_positions, sync_new_trades


def run_cycle(*, as_of: date | None = None) -> list[dict[str, Any]]:
    """Run the collect, open and close steps for ``as_of`` (default today UTC) and return their summaries.

    A step's failure is inside its summary (status and errors); the next step runs regardless, on whatever
    candles are stored.
    """
    return [
        sync_data(as_of=as_of),
        sync_new_trades(as_of=as_of),
        sync_close_positions(as_of=as_of),
    ]
