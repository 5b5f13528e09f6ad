"""The collect step on a paid plan: daily candles from ``/coins/{id}/ohlc/range?interval=daily``, and secrets."""

from __future__ import annotations

import csv
import logging
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from pytest_django import Settings

from instruments.collect import sync_data
from instruments.models import InstrumentOHLC
from runs.models import History
from tests.conftest import FIXTURES
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.instruments.factories import InstrumentFactory

pytestmark = pytest.mark.django_db(transaction=True)


def binance_days_as_coingecko_rows(first: int, count: int) -> list[list[object]]:
    """Real Binance daily candles (2020) in CoinGecko's /ohlc layout: [CLOSE time in ms, o, h, l, c]."""
    with (FIXTURES / "ohlc" / "binance_btcusdt_day_2020.csv").open() as handle:
        rows = list(csv.DictReader(handle))[first : first + count]
    out: list[list[object]] = []
    for row in rows:
        opened = datetime.fromisoformat(row["datetime"]).replace(tzinfo=UTC)
        close_ms = int((opened + timedelta(days=1)).timestamp() * 1000)
        out.append([close_ms, *(float(row[k]) for k in ("open", "high", "low", "close"))])
    return out


@time_machine.travel(datetime(2020, 1, 11, 1, 0, tzinfo=UTC), tick=False)
def test_pro_plan_takes_daily_candles_from_ohlc_range(
    fake_coingecko: FakeCoinGecko, settings: Settings
) -> None:
    settings.COINGECKO_API_PLAN = "pro"
    settings.COINGECKO_API_KEY = "pro-secret-key"
    settings.BARTER_BACKFILL_DAYS = 10
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    fake_coingecko.add("/coins/bitcoin/ohlc/range", json_reply(binance_days_as_coingecko_rows(0, 10)))

    summary = sync_data(as_of=date(2020, 1, 11))

    (seen,) = fake_coingecko.requests_to("/coins/bitcoin/ohlc/range")
    assert seen.headers["x-cg-pro-api-key"] == "pro-secret-key"
    # 2020-01-01 00:00 .. 2020-01-11 00:00 UTC
    assert seen.query == {
        "vs_currency": ["usd"],
        "from": ["1577836800"],
        "to": ["1578700800"],
        "interval": ["daily"],
    }
    assert summary["status"] == "ok" and summary["results"][0]["candles_added"] == 10
    first = InstrumentOHLC.objects.filter(instrument=bitcoin).order_by("open_time").first()
    assert first is not None
    # binance_btcusdt_day_2020.csv line 2: 2020-01-01 00:00:00,7195.24,7255.00,7175.15,7200.85
    assert first.open_time == datetime(2020, 1, 1, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("7195.24"),
        Decimal("7255"),
        Decimal("7175.15"),
        Decimal("7200.85"),
    )
    assert first.source == "coingecko:ohlc_daily"


@time_machine.travel(datetime(2020, 1, 11, 1, 0, tzinfo=UTC), tick=False)
def test_the_api_key_never_reaches_logs_or_history(
    fake_coingecko: FakeCoinGecko, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "demo-key-that-must-stay-secret"
    settings.COINGECKO_API_KEY = secret
    settings.BARTER_BACKFILL_DAYS = 10
    InstrumentFactory.create(coingecko_id="bitcoin")
    fake_coingecko.add(
        "/coins/bitcoin/market_chart/range",
        json_reply(
            {"status": {"error_code": 429, "error_message": "rate limited"}},
            status=429,
            **{"Retry-After": "1"},
        ),
    )
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")

    summary = sync_data(as_of=date(2020, 1, 11))

    assert summary["status"] == "failed"
    assert (
        fake_coingecko.requests_to("/coins/bitcoin/market_chart/range")[0].headers["x-cg-demo-api-key"]
        == secret
    )
    assert (
        "/coins/bitcoin/market_chart/range?" in caplog.text
    )  # urllib3 logged each call and retry, with URLs...
    assert secret not in caplog.text  # ...which never holds the key
    for row in History.objects.all():
        assert secret not in f"{row.message} {row.payload}"
