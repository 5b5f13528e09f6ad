"""Candles from exchanges through ccxt: Binance and Bybit answered by ``responses`` from real Binance candles.

The fakes (``tests/fakes/exchanges.py``) serve Binance's real BTCUSDT days of 2024, rolled up from the real
one-minute klines, in each exchange's documented layout and paging rules; ccxt's real code builds the requests
and parses the answers.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import ccxt
import pytest
import requests
import responses
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from instruments.collect import sync_data
from instruments.models import Instrument, InstrumentOHLC
from instruments.sources.base import DailyFetch
from instruments.sources.exchange.client import (
    ExchangeAuthError,
    ExchangeConfigError,
    ExchangeRateLimitedError,
    ExchangeRejectedError,
    ExchangeSymbolError,
    ExchangeUnavailableError,
    exchange_client,
    exchange_clients_reset,
    exchange_error,
)
from instruments.sources.exchange.schemas import ExchangePayloadError, ohlcv_candles
from positions.models import History, HistoryKind
from tests.fakes.exchanges import DayKline, FakeBinance, FakeBybit, binance_days_2024
from tests.instruments.factories import InstrumentFactory

pytestmark = pytest.mark.django_db(transaction=True)

NEW_YEAR_2025 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
FAKES = {"binance": (FakeBinance, "/api/v3/klines"), "bybit": (FakeBybit, "/v5/market/kline")}
NO_KEYS = {
    exchange_id: {"api_key": "", "secret": "", "password": "", "sandbox": False}
    for exchange_id in ("binance", "bybit", "bitget")
}


@pytest.fixture(autouse=True)
def exchange_settings(settings):
    """No keys, no sandbox, and fresh ccxt objects before and after every test."""
    settings.BARTER_EXCHANGES = json.loads(json.dumps(NO_KEYS))
    exchange_clients_reset()
    yield settings
    exchange_clients_reset()


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def exchange_instrument(exchange_id: str, market_symbol: str = "BTC/USDT") -> Instrument:
    return InstrumentFactory(
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


def stored_days(instrument: Instrument) -> dict[date, tuple[Decimal, ...]]:
    rows = InstrumentOHLC.objects.for_instrument(instrument).values_list(
        "open_time", "open", "high", "low", "close", "volume"
    )
    return {t.date(): tuple(values) for t, *values in rows}


def backfill(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("backfill", *args, stdout=out)
    return out.getvalue()


def summary_of(output: str) -> dict:
    return json.loads(output[output.index("\n{") + 1 :])


@pytest.mark.parametrize("exchange_id", ["binance", "bybit"])
@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_a_year_is_backfilled_across_pages_and_equals_the_real_days(exchange_id, rsps):
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
def test_only_the_days_not_stored_are_asked_for(rsps):
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
def test_the_current_incomplete_day_is_never_stored(exchange_id, rsps):
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
def test_a_failing_page_is_a_retryable_error_and_stores_nothing(rsps, failure, ccxt_error, words):
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
def test_an_unknown_symbol_is_a_clear_error_that_is_not_retried(exchange_id, rsps):
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
def test_the_collect_step_routes_by_candle_source(rsps, settings, monkeypatch):
    settings.BARTER_BACKFILL_DAYS = 5
    fake = FakeBybit(rsps, days=binance_days_2024(), now=datetime(2024, 12, 31, 0, 40, tzinfo=UTC))
    on_bybit = exchange_instrument("bybit")
    on_coingecko = InstrumentFactory(coingecko_id="ethereum", symbol="ETH")
    asked_coingecko: list[tuple[str, list[date]]] = []

    def coingecko_fetch(client, *, coin_id, vs_currency, days, now):
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "exchange", "--since", "2024-13-01"], "--since must be a date like 2024-01-31"),
        (["--source", "kraken", "--since", "2024-01-01"], "--source must be one of exchange, coingecko"),
        (["--source", "coingecko", "--since", "2024-01-01"], "use --source exchange"),
        (["--source", "exchange", "--since", "2025-01-01"], "since must be before today (2025-01-01 UTC)"),
        (["--source", "exchange", "--since", "2024-01-01", "--page-limit", "5000"], "between 1 and 1000"),
    ],
)
@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_backfill_refuses_bad_input_saying_how_to_fix_it(args, message):
    exchange_instrument("binance")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        backfill("--instrument", "bitcoin", *args)
    assert not History.objects.exists()


def test_backfill_names_the_known_instruments_for_an_unknown_one():
    exchange_instrument("binance")
    with pytest.raises(CommandError, match=r"unknown instrument\(s\) 'dogecoin'.*bitcoin"):
        backfill("--instrument", "dogecoin", "--source", "exchange", "--since", "2024-01-01")


@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_a_coingecko_backfill_says_the_demo_plan_reaches_back_365_days(monkeypatch):
    InstrumentFactory(coingecko_id="bitcoin", symbol="BTC")
    asked: list[list[date]] = []
    monkeypatch.setattr(
        "instruments.sources.coingecko.source.fetch_daily_candles",
        lambda client, *, days, **kw: (
            asked.append(list(days)) or DailyFetch(source="coingecko:market_chart_hourly")
        ),
    )

    output = backfill("--instrument", "bitcoin", "--source", "coingecko", "--since", "2020-01-01")

    assert "CoinGecko's Demo plan reaches back 365 days: days before 2024-01-02 were not asked for" in output
    assert asked == [[date(2024, 1, 2) + timedelta(days=n) for n in range(365)]]


@pytest.mark.parametrize(
    "fields",
    [
        {"candle_source": "exchange"},
        {"candle_source": "exchange", "exchange_id": "binance"},
        {"candle_source": "exchange", "exchange_id": "kraken", "market_symbol": "BTC/USD"},
        {"candle_source": "coingecko", "exchange_id": "binance", "market_symbol": "BTC/USDT"},
        {"candle_source": "coingecko", "market_symbol": "BTC/USDT"},
    ],
)
def test_the_database_refuses_exchange_fields_without_the_exchange_source(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Instrument.objects.create(coingecko_id="bitcoin", symbol="BTC", **fields)


def test_the_exchange_fields_are_validated_with_clear_messages():
    ok = Instrument(
        coingecko_id="bitcoin",
        symbol="BTC",
        candle_source="exchange",
        exchange_id="bybit",
        market_symbol="BTC/USDT",
    )
    ok.full_clean()
    ok.save()
    with pytest.raises(ValidationError) as unknown:
        Instrument(
            coingecko_id="b2",
            symbol="B",
            candle_source="exchange",
            exchange_id="kraken",
            market_symbol="BTCUSDT",
        ).full_clean()
    assert unknown.value.message_dict["exchange_id"] == [
        "exchange_id must be one of the supported ccxt exchange ids binance, bybit, bitget; was 'kraken'"
    ]
    assert "BASE/QUOTE in upper case, e.g. 'BTC/USDT'" in unknown.value.message_dict["market_symbol"][0]
    with pytest.raises(ValidationError) as missing:
        Instrument(coingecko_id="b3", symbol="B", candle_source="exchange").full_clean()
    assert set(missing.value.message_dict) == {"exchange_id", "market_symbol"}
    with pytest.raises(ValidationError) as stray:
        Instrument(coingecko_id="b4", symbol="B", market_symbol="BTC/USDT").full_clean()
    assert stray.value.message_dict["market_symbol"] == ["leave empty unless candle source is 'exchange'"]


def test_the_client_is_configured_from_settings_and_shared(exchange_settings):
    exchange_settings.BARTER_EXCHANGE_TIMEOUT_SECONDS = 7.5
    exchange_settings.BARTER_EXCHANGES["bybit"]["sandbox"] = True
    client = exchange_client("bybit")

    assert client is exchange_client("bybit")  # one object (one rate limiter) per exchange and process
    assert (client.enableRateLimit, client.timeout) == (True, 7500)
    assert client.options["fetchMarkets"]["types"] == ["spot"]
    assert client.urls["api"]["public"] == "https://api-testnet.{hostname}"  # ccxt fills in bybit.com
    with pytest.raises(
        ExchangeConfigError, match="supported ccxt exchange ids binance, bybit, bitget; was 'kraken'"
    ):
        exchange_client("kraken")


def test_starting_the_app_does_not_load_ccxt_until_an_exchange_is_used():
    # ccxt costs ~75 MB per process: web and worker processes that trade no exchange never load it
    script = (
        "import sys, django; django.setup(); from django.urls import resolve; resolve('/api/sync_data'); "
        "import trading.services, trading.tasks, instruments.tasks, trading.admin; "
        "print('ccxt.base.exchange' in sys.modules); "
        "from instruments.sources.exchange.client import exchange_client; exchange_client('binance'); "
        "print('ccxt.base.exchange' in sys.modules)"
    )
    done = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "-c", script],
        env={"DJANGO_SETTINGS_MODULE": "barter_site.settings.test", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert done.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    ("exchange_id", "live", "testnet"),
    [
        ("binance", "https://api.binance.com/api/v3", "https://testnet.binance.vision/api/v3"),
        ("bybit", "https://api.{hostname}", "https://api-testnet.{hostname}"),
    ],
)
def test_sandbox_is_per_exchange_account(exchange_settings, exchange_id, live, testnet):
    # BARTER_EXCHANGE_<ID>_SANDBOX switches that account to the exchange's testnet, and no other account
    other, other_live = (
        ("bybit", "https://api.{hostname}")
        if exchange_id == "binance"
        else ("binance", "https://api.binance.com/api/v3")
    )
    exchange_settings.BARTER_EXCHANGES[exchange_id]["sandbox"] = True

    assert exchange_client(exchange_id).urls["api"]["public"] == testnet
    assert exchange_client(other).urls["api"]["public"] == other_live
    exchange_settings.BARTER_EXCHANGES[exchange_id]["sandbox"] = False
    exchange_clients_reset()
    assert exchange_client(exchange_id).urls["api"]["public"] == live


def test_an_authenticated_client_needs_every_credential(exchange_settings):
    with pytest.raises(
        ExchangeConfigError,
        match="set BARTER_EXCHANGE_BITGET_KEY and BARTER_EXCHANGE_BITGET_SECRET and BARTER_EXCHANGE_BITGET_PASSWORD",
    ):
        exchange_client("bitget", authenticated=True)
    exchange_settings.BARTER_EXCHANGES["binance"] |= {"api_key": "live-key-1", "secret": ""}
    with pytest.raises(ExchangeConfigError, match="set BARTER_EXCHANGE_BINANCE_SECRET in the environment"):
        exchange_client("binance", authenticated=True)
    exchange_settings.BARTER_EXCHANGES["binance"]["secret"] = "live-secret-1"
    exchange_clients_reset()
    client = exchange_client("binance", authenticated=True)
    assert (client.apiKey, client.secret) == ("live-key-1", "live-secret-1")


@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_keys_never_reach_logs_or_history(rsps, exchange_settings, caplog):
    key, secret = "k3yVISIBLEonlyTOccxt", "s3cretVISIBLEonlyTOccxt"
    exchange_settings.BARTER_EXCHANGES["binance"] |= {"api_key": key, "secret": secret}
    fake = FakeBinance(rsps, days=binance_days_2024(), now=NEW_YEAR_2025)
    # An exchange (or a proxy) that echoes the key back in its error.
    fake.fail("/api/v3/klines", status=401, body={"code": -2014, "msg": f"API-key format invalid: {key}"})
    exchange_instrument("binance")
    caplog.set_level(logging.DEBUG)

    summary = summary_of(backfill("--instrument", "bitcoin", "--source", "exchange", "--since", "2024-12-01"))

    assert "***" in summary["results"][0]["error"]
    payload = History.objects.get(kind=HistoryKind.ERROR).payload
    assert payload["ccxt_error"] == "AuthenticationError" and payload["retryable"] is False
    recorded = json.dumps(list(History.objects.values("message", "payload")), default=str)
    for value in (key, secret):
        assert value not in recorded
        assert value not in caplog.text
        assert value not in json.dumps(summary)


@pytest.mark.parametrize(
    ("ccxt_exception", "error_class", "retryable"),
    [
        (ccxt.NetworkError, ExchangeUnavailableError, True),
        (ccxt.RequestTimeout, ExchangeUnavailableError, True),
        (ccxt.DDoSProtection, ExchangeRateLimitedError, True),
        (ccxt.RateLimitExceeded, ExchangeRateLimitedError, True),
        (ccxt.ExchangeNotAvailable, ExchangeUnavailableError, True),
        (ccxt.OnMaintenance, ExchangeUnavailableError, True),
        (ccxt.BadSymbol, ExchangeSymbolError, False),
        (ccxt.AuthenticationError, ExchangeAuthError, False),
        (ccxt.PermissionDenied, ExchangeAuthError, False),
        (ccxt.InsufficientFunds, ExchangeRejectedError, False),
        (ccxt.ExchangeError, ExchangeRejectedError, False),
    ],
)
def test_ccxt_errors_map_to_application_errors_that_say_whether_to_retry(
    ccxt_exception, error_class, retryable
):
    error = exchange_error(
        ccxt_exception("binance GET https://api.binance.com/x?signature=abc 503"),
        what="doing x",
        exchange_id="binance",
    )

    assert type(error) is error_class
    assert error.retryable is retryable and error.extra["retryable"] is retryable
    assert error.message.startswith(
        f"binance failed doing x ({ccxt_exception.__name__}: binance GET https://api.binance.com/x?... 503)"
    )


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ([1704067200000, 1.0, 2.0, 0.5], "expected [ms, open, high, low, close, volume]"),
        ([1704067200000.0, 1.0, 2.0, 0.5, 1.5, 3.0], "open time must be an int of ms"),
        ([1704067200000, None, 2.0, 0.5, 1.5, 3.0], "open must be a number"),
        ([1704067200000, float("nan"), 2.0, 0.5, 1.5, 3.0], "open must be finite"),
        ([1704067200000, 1.0, 0.4, 0.5, 1.5, 3.0], "high 0.4 is below low 0.5"),
        ([1704067200000, 1.0, 2.0, 0.5, 1.5, -3.0], "volume must be >= 0"),
    ],
)
def test_malformed_ohlcv_rows_are_refused(row, problem):
    with pytest.raises(ExchangePayloadError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        ohlcv_candles([[1704153600000, 1.0, 2.0, 0.5, 1.5, 3.0], row], what="binance fetch_ohlcv BTC/USDT 1d")


def test_floats_become_the_decimals_the_exchange_sent():
    real = binance_days_2024()[0]
    (candle,) = ohlcv_candles([[real.open_time_ms, *(float(v) for v in real.prices())]])

    assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == real.prices()
    assert str(candle.volume) == "27174.29903"  # Decimal(27174.29903) would be 27174.2990300000015...
    assert candle.open_time == datetime(2024, 1, 1, tzinfo=UTC)


def test_the_fake_rolls_days_up_like_binance():
    days = binance_days_2024()
    assert len(days) == 366
    assert days[-1].day == datetime(2024, 12, 31, tzinfo=UTC)
    assert all(isinstance(d, DayKline) and Decimal(d.low) <= Decimal(d.open) <= Decimal(d.high) for d in days)
