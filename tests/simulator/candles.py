"""Candles for simulator tests that need committed data (real servers and workers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from tests.instruments.factories import InstrumentFactory


def bitcoin_days(days: int = 1000) -> Instrument:
    """Bitcoin with ``days`` daily candles from 2017-06-01: a gentle zigzag, so SMA crosses happen."""
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    candles = []
    for n in range(days):
        price = Decimal(10_000 + 500 * ((n // 20) % 2) + 10 * (n % 20))
        candles.append(
            InstrumentOHLC(
                instrument=bitcoin,
                timeframe=Timeframe.D1,
                open_time=datetime(2017, 6, 1, tzinfo=UTC) + timedelta(days=n),
                open=price,
                high=price + 50,
                low=price - 50,
                close=price + 5,
                volume=Decimal(1),
                source="test",
            )
        )
    InstrumentOHLC.objects.bulk_create(candles)
    return bitcoin
