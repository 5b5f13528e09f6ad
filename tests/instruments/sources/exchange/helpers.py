"""Helpers of the exchange source tests: an instrument on an exchange, the stored days, the backfill command."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from instruments.models import Instrument, InstrumentOHLC
from tests.fakes.exchanges import FakeBinance, FakeBybit
from tests.instruments.factories import InstrumentFactory

NEW_YEAR_2025 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
FAKES = {"binance": (FakeBinance, "/api/v3/klines"), "bybit": (FakeBybit, "/v5/market/kline")}


def exchange_instrument(exchange_id: str, market_symbol: str = "BTC/USDT") -> Instrument:
    return InstrumentFactory.create(
        coingecko_id="bitcoin",
        symbol="BTC",
        candle_source=Instrument.CandleSource.EXCHANGE,
        exchange_id=exchange_id,
        market_symbol=market_symbol,
    )


def as_stored(value: Decimal) -> object:
    """PostgreSQL gives ``value`` back exactly; SQLite keeps decimals as floats (15 significant digits)."""
    if connection.vendor == "sqlite":
        return pytest.approx(value, rel=Decimal("1e-15"))
    return value


def stored_days(instrument: Instrument) -> dict[date, tuple[Decimal | None, ...]]:
    rows = InstrumentOHLC.objects.for_instrument(instrument).values_list(
        "open_time", "open", "high", "low", "close", "volume"
    )
    return {t.date(): tuple(values) for t, *values in rows}


def backfill(*args: str) -> str:
    out = StringIO()
    call_command("backfill", *args, stdout=out)
    return out.getvalue()


def summary_of(output: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(output[output.index("\n{") + 1 :])  # JSON: values of any type
    return summary
