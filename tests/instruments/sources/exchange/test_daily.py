"""Candles from exchanges through ccxt: Binance and Bybit answered by ``responses`` from real Binance candles.

The fakes (``tests/fakes/exchanges.py``) serve Binance's real BTCUSDT days of 2024, rolled up from the real
one-minute klines, in each exchange's documented layout and paging rules; ccxt's real code builds the requests
and parses the answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses
import time_machine
from pytest_django import Settings

from instruments.collect import sync_data
from instruments.models import InstrumentOHLC
from instruments.sources.base import DailyFetch
from instruments.sources.coingecko.client import CoinGeckoClient
from runs.models import History, HistoryKind
from tests.fakes.exchanges import FakeBinance, FakeBybit, binance_days_2024
from tests.instruments.factories import InstrumentFactory
from tests.instruments.sources.exchange.helpers import (
    FAKES,
    NEW_YEAR_2025,
    as_stored,
    backfill,
    exchange_instrument,
    stored_days,
    summary_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])
@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_a_year_is_backfilled_across_pages_and_equals_the_real_days(
    exchange_id: str, rsps: responses.RequestsMock
) -> None:
    fake_class, klines_path = FAKES[exchange_id]
    fake = fake_class(rsps, days=binance_days_2024(), now=NEW_YEAR_2025)
    bitcoin = exchange_instrument(exchange_id)

    output = backfill(
        "--instrument", "bitcoin", "--source", "exchange", "--since", "2024-01-01", "--page-limit", "100"
    )

    summary = summary_of(output)
    assert summary["status"] == "ok"
    assert summary["results"] == [
        {
            "instrument": "bitcoin",
            "candles_added": 366,
            "candles_updated": 0,
            "days_missing": 0,
            "error": None,
        }
    ]
    assert f"bitcoin from exchange:{exchange_id} since 2024-01-01: 366 day(s) missing, 366 added" in output
    # 366 days in pages of 100 days: 100 + 100 + 100 + 66, each an explicit window of whole UTC days.
    pages = fake.calls_to(klines_path)
    assert len(pages) == 4
    start_key, end_key = ("startTime", "endTime") if exchange_id == "binance" else ("start", "end")
    starts = [datetime.fromtimestamp(int(p.params[start_key]) / 1000, UTC).date() for p in pages]
    assert starts == [date(2024, 1, 1), date(2024, 4, 10), date(2024, 7, 19), date(2024, 10, 27)]
    assert [int(p.params["limit"]) for p in pages] == [100] * 4
    assert int(pages[-1].params[end_key]) == int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000) - 1

    stored = stored_days(bitcoin)
    real = {d.day.date(): d.prices() for d in binance_days_2024()}
    assert len(stored) == len(real) == 366
    for day, prices in real.items():
        assert stored[day] == tuple(as_stored(p) for p in prices), day
    assert set(InstrumentOHLC.objects.values_list("source", flat=True)) == {f"exchange:{exchange_id}"}
    # 2024-01-01 as rolled up from its 1,440 real minutes.
    assert real[date(2024, 1, 1)] == (
        Decimal("42283.58"),
        Decimal("44184.10"),
        Decimal("42180.77"),
        Decimal("44179.55"),
        Decimal("27174.29903"),
    )
    synced = History.objects.get(kind=HistoryKind.CANDLES_SYNCED)
    assert synced.payload["source"] == f"exchange:{exchange_id}"
    assert (synced.payload["first_day"], synced.payload["last_day"]) == ("2024-01-01", "2024-12-31")
    assert synced.payload["requests"] == 4

    # A second run: nothing missing, nothing asked, nothing added.
    calls_before = len(fake.calls)
    again = summary_of(backfill("--instrument", "bitcoin", "--source", "exchange", "--since", "2024-01-01"))
    assert again["days_requested"] == 0
    assert again["results"][0]["candles_added"] == again["results"][0]["candles_updated"] == 0
    assert len(fake.calls) == calls_before


@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_only_the_days_not_stored_are_asked_for(rsps: responses.RequestsMock) -> None:
    fake = FakeBinance(rsps, days=binance_days_2024(), now=NEW_YEAR_2025)
    bitcoin = exchange_instrument("binance")
    backfill("--instrument", "bitcoin", "--source", "exchange", "--since", "2024-12-01")
    InstrumentOHLC.objects.filter(open_time__date=date(2024, 12, 10)).delete()
    fake.calls.clear()

    summary = summary_of(backfill("--instrument", "bitcoin", "--source", "exchange", "--since", "2024-12-01"))

    assert summary["days_requested"] == 1
    assert summary["results"][0]["candles_added"] == 1
    (page,) = fake.calls_to("/api/v3/klines")
    assert (int(page.params["startTime"]), int(page.params["endTime"])) == (
        int(datetime(2024, 12, 10, tzinfo=UTC).timestamp() * 1000),
        int(datetime(2024, 12, 11, tzinfo=UTC).timestamp() * 1000) - 1,
    )
    assert len(stored_days(bitcoin)) == 31


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])
def test_the_current_incomplete_day_is_never_stored(exchange_id: str, rsps: responses.RequestsMock) -> None:
    now = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    fake_class, klines_path = FAKES[exchange_id]
    fake = fake_class(rsps, days=binance_days_2024(), now=now)
    fake.ignore_end_time = True  # a misbehaving exchange (or proxy) sends today's moving candle anyway
    bitcoin = exchange_instrument(exchange_id)

    with time_machine.travel(now, tick=True):
        summary = summary_of(
            backfill("--instrument", "bitcoin", "--source", "exchange", "--since", "2024-06-01")
        )

    assert summary["results"][0]["candles_added"] == 30  # June 2024; 2024-07-01 is not over at 12:00
    assert max(stored_days(bitcoin)) == date(2024, 6, 30)
    end_key = "endTime" if exchange_id == "binance" else "end"
    today_ms = int(datetime(2024, 7, 1, tzinfo=UTC).timestamp() * 1000)
    assert all(int(p.params[end_key]) < today_ms for p in fake.calls_to(klines_path))


@pytest.mark.parametrize(
    ("failure", "ccxt_error", "words"),
    [
        (
            {
                "status": 429,
                "body": {
                    "code": -1003,
                    "msg": "Too many requests; current limit of IP is 6000 requests per minute.",
                },
                "headers": {"Retry-After": "30"},
            },
            "DDoSProtection",  # ccxt maps Binance's HTTP 429 to DDoSProtection, as its 418
            "throttled",
        ),
        (
            {
                "status": 418,
                "body": {
                    "code": -1003,
                    "msg": "Way too much request weight used; IP banned until 1735732800000.",
                },
            },
            "DDoSProtection",
            "throttled",
        ),
        (
            {"exception": requests.exceptions.ReadTimeout("read timed out")},
            "RequestTimeout",
            "did not answer",
        ),
    ],
    ids=["429", "418", "timeout"],
)
@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_a_failing_page_is_a_retryable_error_and_stores_nothing(
    rsps: responses.RequestsMock, failure: dict[str, Any], ccxt_error: str, words: str
) -> None:
    fake = FakeBinance(rsps, days=binance_days_2024(), now=NEW_YEAR_2025)
    fake.fail("/api/v3/klines", after=1, **failure)  # the second page fails
    bitcoin = exchange_instrument("binance")

    output = backfill(
        "--instrument", "bitcoin", "--source", "exchange", "--since", "2024-01-01", "--page-limit", "100"
    )

    summary = summary_of(output)
    assert summary["status"] == "failed"
    (result,) = summary["results"]
    assert result["candles_added"] == 0 and result["days_missing"] == 366
    assert words in result["error"] and "run again" in result["error"]
    assert "error: binance failed fetching 1d candles of BTC/USDT" in output
    assert not InstrumentOHLC.objects.exists()  # the first page's 100 days are not half-stored either
    error = History.objects.get(kind=HistoryKind.ERROR)
    assert error.payload["retryable"] is True
    assert error.payload["ccxt_error"] == ccxt_error
    assert error.instrument == bitcoin
    assert len(fake.calls_to("/api/v3/klines")) == 2


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])
@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_an_unknown_symbol_is_a_clear_error_that_is_not_retried(
    exchange_id: str, rsps: responses.RequestsMock
) -> None:
    fake_class, klines_path = FAKES[exchange_id]
    fake = fake_class(rsps, days=binance_days_2024(), now=NEW_YEAR_2025)
    exchange_instrument(exchange_id, market_symbol="NOPE/USDT")

    summary = summary_of(backfill("--instrument", "bitcoin", "--source", "exchange", "--since", "2024-12-01"))

    error = summary["results"][0]["error"]
    assert "NOPE/USDT" in error and "set the instrument's market_symbol" in error
    payload = History.objects.get(kind=HistoryKind.ERROR).payload
    assert (payload["retryable"], payload["ccxt_error"]) == (False, "BadSymbol")
    assert fake.calls_to(klines_path) == []  # the markets list already says the symbol does not exist


@time_machine.travel(datetime(2024, 12, 31, 0, 40, tzinfo=UTC), tick=True)
def test_the_collect_step_routes_by_candle_source(
    rsps: responses.RequestsMock, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BARTER_BACKFILL_DAYS = 5
    fake = FakeBybit(rsps, days=binance_days_2024(), now=datetime(2024, 12, 31, 0, 40, tzinfo=UTC))
    on_bybit = exchange_instrument("bybit")
    on_coingecko = InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH")
    asked_coingecko: list[tuple[str, list[date]]] = []

    def coingecko_fetch(
        client: CoinGeckoClient, *, coin_id: str, vs_currency: str, days: Sequence[date], now: datetime
    ) -> DailyFetch:
        asked_coingecko.append((coin_id, list(days)))
        return DailyFetch(source="coingecko:market_chart_hourly")

    monkeypatch.setattr("instruments.sources.coingecko.source.fetch_daily_candles", coingecko_fetch)

    summary = sync_data(as_of=date(2024, 12, 31))

    window = [date(2024, 12, 26) + timedelta(days=n) for n in range(5)]
    assert asked_coingecko == [("ethereum", window)]
    assert sorted(stored_days(on_bybit)) == window
    assert not InstrumentOHLC.objects.filter(instrument=on_coingecko).exists()
    assert set(InstrumentOHLC.objects.values_list("source", flat=True)) == {"exchange:bybit"}
    assert [r["candles_added"] for r in summary["results"]] == [5, 0]  # bitcoin (bybit), ethereum
    assert len(fake.calls_to("/v5/market/kline")) == 1
