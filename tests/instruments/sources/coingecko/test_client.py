"""The CoinGecko client and schemas against recorded real responses, replayed by a local fake server."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pytest_django import Settings

from instruments.candles import candles_rollup
from instruments.sources.coingecko import coingecko_client_from_settings
from instruments.sources.coingecko.client import CoinGeckoClient, CoinGeckoConfig, error_message
from instruments.sources.coingecko.errors import (
    CoinGeckoBadResponseError,
    CoinGeckoRateLimitedError,
    CoinGeckoRequestError,
    CoinGeckoServerError,
    CoinGeckoUnavailableError,
)
from instruments.sources.coingecko.schemas import (
    CoinGeckoPayloadError,
    market_chart_points,
    ohlc_candle_length,
    ohlc_candles,
    simple_prices,
)
from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, Reply, json_reply, recorded

OHLC_7D = "test_that_it_gets_ohlc_data_for_one_coin_in_the_last_7_days.yml"
HOURLY_30D = "test_that_it_gets_hourly_historical_prices_for_one_coin.yml"


def client_for(fake: FakeCoinGecko, **overrides: Any) -> CoinGeckoClient:
    # Any: overrides of CoinGeckoConfig's fields, which have several types (str, int, float).
    config: dict[str, Any] = {
        "api_key": "secret-demo-key",
        "plan": "demo",
        "base_url": fake.base_url,
        "max_retries": 3,
    }
    return CoinGeckoClient(CoinGeckoConfig(**{**config, **overrides}))


def test_recorded_ohlc_parses_to_candles_keyed_by_open_time(fake_coingecko: FakeCoinGecko) -> None:
    fake_coingecko.add("/coins/bitcoin/ohlc", recorded(OHLC_7D))
    payload = client_for(fake_coingecko).api.get_coin_ohlc_by_id(id="bitcoin", vs_currency="usd", days=7)
    candles = ohlc_candles(payload, candle_length=ohlc_candle_length(7), endpoint="ohlc")

    assert len(candles) == len(payload) == 42
    # First recorded row: [1620504000000, 57945.79, 59122.18, 57945.79, 59122.18]; 1620504000000 ms is
    # 2021-05-08 20:00 UTC, the CLOSE of a 4-hour candle, which therefore opened at 16:00.
    first = candles[0]
    assert first.open_time == datetime(2021, 5, 8, 16, 0, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close) == (
        Decimal("57945.79"),
        Decimal("59122.18"),
        Decimal("57945.79"),
        Decimal("59122.18"),
    )
    assert all(type(v) is Decimal for c in candles for v in (c.open, c.high, c.low, c.close))


def test_key_travels_in_the_plan_header_never_in_the_url(fake_coingecko: FakeCoinGecko) -> None:
    fake_coingecko.add("/simple/price", recorded("test_that_it_gets_price_for_one_coin.yml"))
    client = client_for(fake_coingecko)
    payload = client.api.get_price(ids="bitcoin", vs_currencies="usd")

    assert simple_prices(payload, coin_ids=["bitcoin"], vs_currency="usd") == {"bitcoin": Decimal("49253")}
    (seen,) = fake_coingecko.requests_to("/simple/price")
    assert seen.headers["x-cg-demo-api-key"] == "secret-demo-key"
    assert "secret-demo-key" not in str(seen.query)
    assert seen.query == {"ids": ["bitcoin"], "vs_currencies": ["usd"]}


def test_pro_plan_uses_the_pro_host_and_header() -> None:
    config = CoinGeckoConfig(api_key="k", plan="pro")
    client = CoinGeckoClient(config)
    assert config.root_url == "https://pro-api.coingecko.com/api/v3/"
    assert client.session.headers["x-cg-pro-api-key"] == "k"
    assert "x-cg-demo-api-key" not in client.session.headers
    assert CoinGeckoConfig(plan="demo").root_url == "https://api.coingecko.com/api/v3/"


def test_unknown_plan_is_refused_with_the_setting_name() -> None:
    with pytest.raises(Exception, match="COINGECKO_API_PLAN must be one of demo, pro; was 'free'"):
        CoinGeckoConfig(plan="free")


def test_settings_build_the_client(settings: Settings) -> None:
    settings.COINGECKO_API_PLAN = "pro"
    settings.COINGECKO_API_KEY = "pro-key"
    settings.COINGECKO_BASE_URL = ""
    client = coingecko_client_from_settings()
    assert client.config.root_url == "https://pro-api.coingecko.com/api/v3/"
    assert client.session.headers["x-cg-pro-api-key"] == "pro-key"


def test_429_with_retry_after_waits_then_succeeds(
    fake_coingecko: FakeCoinGecko, retry_sleeps: list[float]
) -> None:
    rate_limited = json_reply(
        {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}},
        status=429,
        **{"Retry-After": "7"},
    )
    fake_coingecko.add("/coins/bitcoin/ohlc", rate_limited, recorded(OHLC_7D))
    payload = client_for(fake_coingecko, retry_after_max_seconds=30).api.get_coin_ohlc_by_id(
        id="bitcoin", vs_currency="usd", days=7
    )
    assert len(payload) == 42
    assert len(fake_coingecko.requests_to("/coins/bitcoin/ohlc")) == 2
    assert retry_sleeps == [7.0]  # urllib3 waited exactly what Retry-After said


def test_retry_after_is_capped(fake_coingecko: FakeCoinGecko, retry_sleeps: list[float]) -> None:
    fake_coingecko.add(
        "/ping", json_reply({}, status=429, **{"Retry-After": "3600"}), json_reply({"gecko_says": "ok"})
    )
    assert client_for(fake_coingecko, retry_after_max_seconds=5).api.ping() == {"gecko_says": "ok"}
    assert retry_sleeps == [5.0]


def test_429_after_every_retry_is_a_rate_limited_error(fake_coingecko: FakeCoinGecko) -> None:
    body = {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}}
    fake_coingecko.add("/ping", json_reply(body, status=429, **{"Retry-After": "1"}))
    with pytest.raises(CoinGeckoRateLimitedError, match="exceeded the Rate Limit") as caught:
        client_for(fake_coingecko, max_retries=2).api.ping()
    assert caught.value.retryable and caught.value.status == 429
    assert len(fake_coingecko.requests_to("/ping")) == 3  # the first try and two retries


def test_recorded_500_retries_with_backoff_then_is_a_server_error(
    fake_coingecko: FakeCoinGecko, retry_sleeps: list[float]
) -> None:
    fake_coingecko.add("/coins/bitcoin/ohlc", recorded(OHLC_7D, index=1))  # the recorded 500
    with pytest.raises(CoinGeckoServerError, match="HTTP 500: Internal Server Error"):
        client_for(fake_coingecko, max_retries=3, backoff_factor=0.5).api.get_coin_ohlc_by_id(
            id="bitcoin", vs_currency="usd", days=7
        )
    assert len(fake_coingecko.requests_to("/coins/bitcoin/ohlc")) == 4
    assert retry_sleeps == [0.5, 1.0, 2.0][-len(retry_sleeps) :] and len(retry_sleeps) >= 2


def test_503_then_success_recovers(fake_coingecko: FakeCoinGecko) -> None:
    fake_coingecko.add(
        "/coins/bitcoin/ohlc", Reply(503, b"upstream busy", {"Content-Type": "text/plain"}), recorded(OHLC_7D)
    )
    assert (
        len(client_for(fake_coingecko).api.get_coin_ohlc_by_id(id="bitcoin", vs_currency="usd", days=7)) == 42
    )


def test_recorded_422_is_a_request_error_with_coingeckos_message(fake_coingecko: FakeCoinGecko) -> None:
    fake_coingecko.add("/coins/bitcoin/market_chart", recorded(HOURLY_30D, index=1))
    with pytest.raises(CoinGeckoRequestError, match="HTTP 422: Missing parameter vs_currency") as caught:
        client_for(fake_coingecko).get_json(fake_coingecko.base_url + "/coins/bitcoin/market_chart")
    assert not caught.value.retryable
    assert len(fake_coingecko.requests_to("/coins/bitcoin/market_chart")) == 1  # 4xx is never retried


def test_html_error_page_from_a_proxy_becomes_a_readable_server_error(fake_coingecko: FakeCoinGecko) -> None:
    html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>cloudflare</body></html>"
    fake_coingecko.add("/ping", Reply(502, html, {"Content-Type": "text/html"}))
    with pytest.raises(CoinGeckoServerError, match=r"HTTP 502: 502 Bad Gateway 502 Bad Gateway cloudflare"):
        client_for(fake_coingecko, max_retries=1).api.ping()


def test_html_with_status_200_is_a_bad_response(fake_coingecko: FakeCoinGecko) -> None:
    fake_coingecko.add(
        "/ping", Reply(200, b"<html><body>Just a moment...</body></html>", {"Content-Type": "text/html"})
    )
    with pytest.raises(CoinGeckoBadResponseError, match=r"not JSON.*Just a moment"):
        client_for(fake_coingecko).api.ping()


def test_truncated_json_is_a_bad_response(fake_coingecko: FakeCoinGecko) -> None:
    whole = recorded(OHLC_7D).body
    fake_coingecko.add("/coins/bitcoin/ohlc", Reply(200, whole[: len(whole) // 2]))
    with pytest.raises(CoinGeckoBadResponseError, match="HTTP 200 with a body that is not JSON"):
        client_for(fake_coingecko).api.get_coin_ohlc_by_id(id="bitcoin", vs_currency="usd", days=7)


def test_connection_reset_every_time_is_unavailable(fake_coingecko: FakeCoinGecko) -> None:
    fake_coingecko.add("/ping", Reply(drop_connection=True))
    with pytest.raises(CoinGeckoUnavailableError, match="no response after 2 retries"):
        client_for(fake_coingecko, max_retries=2).api.ping()
    assert len(fake_coingecko.requests_to("/ping")) == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"error":"Missing parameter vs_currency"}', "Missing parameter vs_currency"),  # recorded 422
        ('{"status":500,"error":"Internal Server Error"}', "Internal Server Error"),  # recorded 500
        (
            '{"status":{"error_code":429,"error_message":"You\'ve exceeded the Rate Limit."}}',
            "You've exceeded",
        ),
        ('{"error":{"status":{"error_code":10002,"error_message":"API Key Missing"}}}', "API Key Missing"),
        ("Throttled", "Throttled"),
        ("<html><body><h1>429 Too Many Requests</h1></body></html>", "429 Too Many Requests"),
    ],
)
def test_every_error_shape_yields_its_message(body: str, message: str) -> None:
    assert error_message(body).startswith(message)


def test_recorded_hourly_market_chart_rolls_up_into_days() -> None:
    import json

    import yaml

    cassette = yaml.safe_load((RECORDINGS / HOURLY_30D).read_text())
    payload = json.loads(cassette["http_interactions"][0]["response"]["body"]["string"], parse_float=Decimal)
    points = market_chart_points(payload, endpoint="market_chart")
    assert len(points) == len(payload["prices"])
    assert all(a.open_time < b.open_time for a, b in itertools.pairwise(points))

    days = candles_rollup(
        points, period=timedelta(days=1), span=timedelta(0), max_gap=timedelta(hours=2)
    ).candles
    day = days[1]
    in_day = [p for p in points if p.open_time.date() == day.open_time.date()]
    assert day.open == in_day[0].open and day.close == in_day[-1].close
    assert day.high == max(p.high for p in in_day) and day.low == min(p.low for p in in_day)
    assert len(days) >= 28  # 30 days of hourly points: the first and last days are partial


def test_market_chart_points_sorts_and_deduplicates() -> None:
    payload = {"prices": [[3_600_000, Decimal("2")], [0, Decimal("1")], [3_600_000, Decimal("3")]]}
    points = market_chart_points(payload, endpoint="x")
    assert [(p.open_time.hour, p.close) for p in points] == [(0, Decimal("1")), (1, Decimal("3"))]


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ([1620504000000, None, 2, 1, 2], "price must be a number, was None"),
        ([1620504000000, -1, 2, 1, 2], "price must be > 0, was -1"),
        ([1620504000000, 2, 1, 3, 2], "high 1 is below low 3"),
        ([1620504000000, 2, 3], r"expected \[time, open, high, low, close\]"),
    ],
)
def test_bad_ohlc_rows_refuse_the_payload(row: list[int | None], problem: str) -> None:
    good = [1620489600000, Decimal(1), Decimal(2), Decimal(1), Decimal(2)]
    bad = [Decimal(v) if isinstance(v, int) else v for v in row]
    with pytest.raises(CoinGeckoPayloadError, match=problem):
        ohlc_candles([good, bad], candle_length=timedelta(hours=4), endpoint="ohlc")


def test_ohlc_candle_length_follows_days() -> None:
    assert ohlc_candle_length(2) == timedelta(minutes=30)
    assert ohlc_candle_length(30) == timedelta(hours=4)
    assert ohlc_candle_length(90) == timedelta(days=4)
    with pytest.raises(ValueError, match="days must be one of 1, 2, 7, 14, 30, 90, 180, 365; was 4"):
        ohlc_candle_length(4)
