"""The collect step (``sync_data``) end to end against a local fake CoinGecko serving real recorded data."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from pytest_django import Settings

from barter_site.errors import ApplicationError
from instruments.collect import sync_data
from instruments.models import Instrument, InstrumentOHLC
from runs.models import History, HistoryKind
from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, Reply, json_reply, recorded
from tests.instruments.factories import InstrumentFactory

pytestmark = pytest.mark.django_db(transaction=True)

DAYS2 = RECORDINGS / "derived" / "ohlc_days2_bitcoin_2024-01-03T0040Z.json"
MARKET_CHART_30D = RECORDINGS / "market_chart_bitcoin_usd_30d_2024-12.json"


def days2_reply(drop_close_ms: int | None = None) -> Reply:
    rows = json.loads(DAYS2.read_text())
    return json_reply([r for r in rows if r[0] != drop_close_ms])


def market_chart_reply(drop_day: str | None = None, null_at: int | None = None) -> Reply:
    payload = json.loads(MARKET_CHART_30D.read_text())
    prices = payload["prices"]
    if drop_day:
        prices = [
            p for p in prices if datetime.fromtimestamp(p[0] / 1000, UTC).date().isoformat() != drop_day
        ]
    if null_at is not None:
        prices[null_at] = [prices[null_at][0], None]
    return json_reply({**payload, "prices": prices})


@pytest.fixture
def bitcoin(db: None) -> Instrument:
    return InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")


def as_stored(value: Decimal) -> Decimal | object:
    """What the database gives back for ``value``: exactly it on PostgreSQL; on SQLite, which keeps decimals
    as 64-bit floats, the same to 15 significant digits."""
    if connection.vendor == "sqlite":
        return pytest.approx(value, rel=Decimal("1e-15"))
    return value


def run_types(run_id: str) -> list[str]:
    return [h.kind for h in History.objects.for_run(run_id)]


@time_machine.travel(datetime(2024, 1, 3, 0, 40, tzinfo=UTC), tick=False)
def test_yesterday_is_built_from_its_48_half_hour_candles(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 1
    fake_coingecko.add("/coins/bitcoin/ohlc", days2_reply())

    summary = sync_data(as_of=date(2024, 1, 3))

    assert summary["status"] == "ok"
    assert summary["results"] == [
        {"instrument": "bitcoin", "candles_added": 1, "candles_updated": 0, "days_missing": 0, "error": None}
    ]
    (seen,) = fake_coingecko.requests_to("/coins/bitcoin/ohlc")
    assert seen.query == {"vs_currency": ["usd"], "days": ["2"]}
    candle = InstrumentOHLC.objects.get(instrument=bitcoin)
    # 2024-01-02 from Binance's one-minute BTCUSDT file of that day (open of 00:00, max high, min low, close
    # of 23:59), which the derived 30-minute payload was rolled up from: the roll-ups agree.
    assert candle.open_time == datetime(2024, 1, 2, tzinfo=UTC)
    assert (candle.open, candle.high, candle.low, candle.close) == (
        Decimal("44179.55"),
        Decimal("45879.63"),
        Decimal("44148.34"),
        Decimal("44946.91"),
    )
    assert candle.volume is None
    assert candle.source == "coingecko:ohlc_30m"
    assert run_types(summary["run_id"]) == ["run_started", "candles_synced", "run_finished"]


@time_machine.travel(datetime(2024, 1, 3, 0, 40, tzinfo=UTC), tick=False)
def test_a_day_missing_one_half_hour_is_not_built(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 1
    fake_coingecko.add("/coins/bitcoin/ohlc", days2_reply(drop_close_ms=1704193200000))  # 2024-01-02 11:00

    summary = sync_data(as_of=date(2024, 1, 3))

    assert summary["status"] == "failed"
    assert summary["results"][0]["error"] == (
        "CoinGecko had no complete data for 1 day(s): 2024-01-02; the next run tries them again"
    )
    assert not InstrumentOHLC.objects.exists()
    error = History.objects.get(run_id=summary["run_id"], kind=HistoryKind.ERROR)
    assert error.instrument == bitcoin and error.payload["days_unavailable"] == ["2024-01-02"]


@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_backfill_builds_days_from_hourly_market_chart(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    fake_coingecko.add("/coins/bitcoin/market_chart/range", market_chart_reply())

    summary = sync_data(as_of=date(2024, 12, 4))

    (seen,) = fake_coingecko.requests_to("/coins/bitcoin/market_chart/range")
    # The window is 2024-11-04 00:00 .. 2024-12-04 00:00 UTC (30 days, one request of at most 90 days).
    assert seen.query == {"vs_currency": ["usd"], "from": ["1730678400"], "to": ["1733270400"]}
    candles = list(InstrumentOHLC.objects.filter(instrument=bitcoin).order_by("open_time"))
    # The recording ends 2024-12-03 20:57, so that day is incomplete and reported; 29 days are built.
    assert [c.open_time.date() for c in candles] == [date(2024, 11, d) for d in range(4, 31)] + [
        date(2024, 12, 1),
        date(2024, 12, 2),
    ]
    assert summary["results"][0]["candles_added"] == 29
    assert summary["results"][0]["error"].startswith(
        "CoinGecko had no complete data for 1 day(s): 2024-12-03"
    )
    assert summary["status"] == "partial"

    points = [
        p
        for p in json.loads(MARKET_CHART_30D.read_text(), parse_float=Decimal)["prices"]
        if datetime.fromtimestamp(p[0] / 1000, UTC).date() == date(2024, 11, 20)
    ]
    day = next(c for c in candles if c.open_time.date() == date(2024, 11, 20))
    assert day.open == as_stored(points[0][1])
    assert day.close == as_stored(points[-1][1])
    assert day.high == as_stored(max(p[1] for p in points))
    assert day.low == as_stored(min(p[1] for p in points))
    assert len(points) == 24
    assert day.source == "coingecko:market_chart_hourly"


@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_a_missing_day_is_reported_and_the_rest_kept(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    fake_coingecko.add("/coins/bitcoin/market_chart/range", market_chart_reply(drop_day="2024-11-20"))

    summary = sync_data(as_of=date(2024, 12, 4))

    days = set(InstrumentOHLC.objects.filter(instrument=bitcoin).values_list("open_time__date", flat=True))
    assert date(2024, 11, 20) not in days and len(days) == 28
    assert summary["results"][0]["error"].startswith(
        "CoinGecko had no complete data for 2 day(s): 2024-11-20, 2024-12-03"
    )


@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_second_run_adds_nothing_and_calls_nothing(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    fake_coingecko.add("/coins/bitcoin/market_chart/range", market_chart_reply())
    first = sync_data(as_of=date(2024, 12, 2))
    # Window 2024-11-02 .. 12-01: the recording starts 2024-11-03 21:20, so 11-04 .. 12-01 are built (28).
    assert first["results"][0]["candles_added"] == 28 and first["status"] == "ok"

    again = sync_data(as_of=date(2024, 12, 2))

    assert again["results"][0]["candles_added"] == 0 and again["results"][0]["candles_updated"] == 0
    assert again["status"] == "ok"
    assert len(fake_coingecko.requests_to("/coins/bitcoin/market_chart/range")) == 1
    assert InstrumentOHLC.objects.count() == 28


@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_one_instrument_failing_neither_stops_the_others_nor_writes_anything(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH")
    fake_coingecko.add(
        "/coins/bitcoin/market_chart/range",
        recorded("test_that_it_gets_ohlc_data_for_one_coin_in_the_last_7_days.yml", 1),
    )
    fake_coingecko.add("/coins/ethereum/market_chart/range", market_chart_reply())

    summary = sync_data(as_of=date(2024, 12, 4))

    by_id = {r["instrument"]: r for r in summary["results"]}
    assert by_id["bitcoin"]["error"].endswith("HTTP 500: Internal Server Error")
    assert by_id["bitcoin"]["candles_added"] == 0 and by_id["bitcoin"]["days_missing"] == 30
    assert by_id["ethereum"]["candles_added"] == 29
    assert summary["status"] == "partial"
    assert not InstrumentOHLC.objects.filter(instrument=bitcoin).exists()
    error = History.objects.get(run_id=summary["run_id"], kind=HistoryKind.ERROR, instrument=bitcoin)
    assert error.payload["retryable"] is True and error.payload["error"] == "CoinGeckoServerError"
    assert summary["errors"][0]["instrument"] == "bitcoin"


@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_a_null_price_refuses_the_whole_payload(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    fake_coingecko.add("/coins/bitcoin/market_chart/range", market_chart_reply(null_at=300))

    summary = sync_data(as_of=date(2024, 12, 4))

    assert summary["status"] == "failed"
    assert "prices[300]: price must be a number, was None" in summary["results"][0]["error"]
    assert not InstrumentOHLC.objects.exists()


@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_offline_is_recorded_and_the_run_carries_on(
    bitcoin: Instrument, settings: Settings, retry_sleeps: list[float]
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    settings.COINGECKO_BASE_URL = "http://127.0.0.1:9/api/v3"  # discard port: nothing listens
    settings.COINGECKO_MAX_RETRIES = 1
    InstrumentFactory.create(coingecko_id="ethereum")

    summary = sync_data(as_of=date(2024, 12, 4))

    assert summary["status"] == "failed"
    assert [r["error"].split(":")[0] for r in summary["results"]] == [
        "CoinGecko /coins/bitcoin/market_chart/range",
        "CoinGecko /coins/ethereum/market_chart/range",
    ]
    assert "no response after 1 retries" in summary["results"][0]["error"]
    finished = History.objects.runs_finished().get(run_id=summary["run_id"])
    assert finished.status == "failed" and finished.payload == summary


def test_as_of_in_the_future_is_refused(bitcoin: Instrument) -> None:
    with pytest.raises(
        ApplicationError, match=r"as_of must be today \(\d{4}-\d\d-\d\d UTC\) or earlier; was 2999-01-01"
    ):
        sync_data(as_of=date(2999, 1, 1))
    assert not History.objects.exists()


def test_unknown_instrument_is_refused_naming_the_known_ones(bitcoin: Instrument) -> None:
    with pytest.raises(ApplicationError, match=r"unknown instrument\(s\) 'dogecoin': .*\(bitcoin\)"):
        sync_data(instruments=["dogecoin"])


def test_inactive_instruments_are_not_synced_by_default(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    bitcoin.is_active = False
    bitcoin.save()
    summary = sync_data()
    assert summary["results"] == [] and summary["status"] == "ok"
    assert fake_coingecko.seen == []


@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_backfill_asks_in_windows_of_at_most_90_days(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 200
    fake_coingecko.add("/coins/bitcoin/market_chart/range", market_chart_reply())

    sync_data(as_of=date(2024, 12, 4))

    windows = [
        (int(s.query["from"][0]), int(s.query["to"][0]))
        for s in fake_coingecko.requests_to("/coins/bitcoin/market_chart/range")
    ]
    # 200 days from 2024-05-18 00:00 to 2024-12-04 00:00 UTC: 90 + 90 + 20 days, back to back.
    assert windows[0][0] == int(datetime(2024, 5, 18, tzinfo=UTC).timestamp())
    assert windows[-1][1] == int(datetime(2024, 12, 4, tzinfo=UTC).timestamp())
    assert [(end - start) // 86400 for start, end in windows] == [90, 90, 20]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            Reply(
                200,
                b"<html><body>Attention Required! | Cloudflare</body></html>",
                {"Content-Type": "text/html"},
            ),
            "HTTP 200 with a body that is not JSON",
        ),
        (Reply(200, MARKET_CHART_30D.read_bytes()[:5000]), "HTTP 200 with a body that is not JSON"),
        (
            json_reply(
                {"status": {"error_code": 429, "error_message": "rate limit"}},
                status=429,
                **{"Retry-After": "1"},
            ),
            "rate limited (HTTP 429) after every retry: rate limit",
        ),
        (
            Reply(
                503,
                b"<html><h1>503 Service Temporarily Unavailable</h1></html>",
                {"Content-Type": "text/html"},
            ),
            "HTTP 503: 503 Service Temporarily Unavailable",
        ),
        (Reply(200, b"Throttled", {"Content-Type": "text/plain"}), "not JSON"),
    ],
)
@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_each_fault_leaves_a_clear_error_in_history_and_no_rows(
    fake_coingecko: FakeCoinGecko, bitcoin: Instrument, settings: Settings, reply: Reply, message: str
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    settings.COINGECKO_MAX_RETRIES = 2
    fake_coingecko.add("/coins/bitcoin/market_chart/range", reply)

    summary = sync_data(as_of=date(2024, 12, 4))

    assert summary["status"] == "failed"
    assert message in summary["results"][0]["error"]
    error = History.objects.get(run_id=summary["run_id"], kind=HistoryKind.ERROR)
    assert message in error.message and error.instrument == bitcoin
    assert error.payload["kept"] == "no candle of this instrument was written"
    assert not InstrumentOHLC.objects.exists()
