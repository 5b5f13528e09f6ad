"""Faults injected by a local fake CoinGecko, through the real collect step over a real socket.

Every scenario runs ``sync_data`` for three instruments: ``bitcoin`` gets the fault, ``ethereum`` and
``litecoin`` get the recorded real response (the same bytes; only bitcoin's path is faulty). The real client runs
with its real ``urllib3.Retry`` (3 retries, 0.25 s timeout); the waits it would make are recorded by the
``retry_sleeps`` fixture instead of slept. For each scenario the test checks:

- how many HTTP requests the fake saw for bitcoin (the retries really happened) and the waits between them;
- either bitcoin's candles stored, equal to the day candles computed here from the recorded response, or a
  clear per-instrument error in the summary and an ``error`` History row saying what was kept;
- that every stored candle is a whole day equal to the one the recorded response gives (no partial day) and
  satisfies the OHLC invariants, and that the other two instruments got all their days, one request each;
- then a second run over the same fake with the fault removed completes bitcoin's missing days (nothing is
  lost) and changes nothing else.

Two kinds of day:
- ``ohlc``: at 2024-01-03 00:40 UTC with a backfill of 1 day, 2024-01-02 comes from the 48 half-hour candles
  of ``/coins/{id}/ohlc?days=2`` (derived from real Binance prices, ``tests/fixtures/coingecko/derived/``);
- ``chart``: at 2024-12-03 00:40 UTC with a backfill of 29 days, 2024-11-04 .. 2024-12-02 come from the real
  hourly prices of ``/coins/{id}/market_chart/range`` (``market_chart_bitcoin_usd_30d_2024-12.json``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection
from pytest_django import Settings

from instruments.collect import sync_data
from instruments.models import InstrumentOHLC
from runs.models import History, HistoryKind
from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, Reply, json_reply, recorded
from tests.instruments.factories import InstrumentFactory

pytestmark = pytest.mark.django_db

DAYS2 = RECORDINGS / "derived" / "ohlc_days2_bitcoin_2024-01-03T0040Z.json"
MARKET_CHART_30D = RECORDINGS / "market_chart_bitcoin_usd_30d_2024-12.json"
OHLC_7D = "test_that_it_gets_ohlc_data_for_one_coin_in_the_last_7_days.yml"  # interaction 1: a real 500
FAULTY = "bitcoin"
HEALTHY = ("ethereum", "litecoin")
HALF_HOUR = timedelta(minutes=30)
#: Figures of the whole matrix, printed at the end of the module (``pytest -s``) for the report.
TALLY = {"scenarios": 0, "faults_injected": 0, "requests_served": 0, "candles_checked": 0}


def wire(value: Any) -> str:
    """JSON text with ``Decimal`` numbers written exactly as parsed (the recorded digits, nothing rounded)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(wire(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{wire(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def body(value: Any) -> Reply:
    return Reply(200, wire(value).encode())


def ohlc_rows() -> list[list[Any]]:
    """The recorded ``days=2`` payload: ``[close_time_ms, open, high, low, close]`` rows, numbers as Decimal."""
    rows: list[list[Any]] = json.loads(DAYS2.read_text(), parse_float=Decimal, parse_int=Decimal)
    return rows


def chart_payload() -> dict[str, Any]:
    """The recorded hourly ``market_chart`` payload, numbers as Decimal."""
    payload: dict[str, Any] = json.loads(MARKET_CHART_30D.read_text(), parse_float=Decimal, parse_int=Decimal)
    return payload


def at_ms(value: Decimal) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))


@dataclass(frozen=True)
class Day:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


def ohlc_days(rows: list[list[Any]]) -> dict[date, Day]:
    """Day candles from half-hour candles, by hand: the first open, the highest high, the lowest low, the last
    close of the 48 candles opening (close time - 30 min) on that day; days with fewer than 48 are left out."""
    by_day: dict[date, list[list[Any]]] = {}
    for row in sorted(rows, key=lambda r: r[0]):
        by_day.setdefault((at_ms(row[0]) - HALF_HOUR).date(), []).append(row)
    return {
        day: Day(group[0][1], max(r[2] for r in group), min(r[3] for r in group), group[-1][4])
        for day, group in by_day.items()
        if len(group) == 48
    }


def chart_days(payload: dict[str, Any], days: list[date]) -> dict[date, Day]:
    """Day candles from hourly prices, by hand: first, highest, lowest and last price of each day."""
    by_day: dict[date, list[Decimal]] = {}
    for ms, price in sorted(payload["prices"], key=lambda p: p[0]):
        by_day.setdefault(at_ms(ms).date(), []).append(price)
    return {d: Day(by_day[d][0], max(by_day[d]), min(by_day[d]), by_day[d][-1]) for d in days}


@dataclass(frozen=True)
class Mode:
    now: datetime
    as_of: date
    backfill_days: int
    endpoint: str
    good: Callable[[], Reply]
    expected: Callable[[], dict[date, Day]]

    def path(self, coin: str) -> str:
        return self.endpoint.format(coin=coin)


CHART_WANTED = [date(2024, 11, 4) + timedelta(days=n) for n in range(29)]  # 2024-11-04 .. 2024-12-02
MODES = {
    "ohlc": Mode(
        now=datetime(2024, 1, 3, 0, 40, tzinfo=UTC),
        as_of=date(2024, 1, 3),
        backfill_days=1,
        endpoint="/coins/{coin}/ohlc",
        good=lambda: Reply(200, DAYS2.read_bytes()),
        expected=lambda: {date(2024, 1, 2): ohlc_days(ohlc_rows())[date(2024, 1, 2)]},
    ),
    "chart": Mode(
        now=datetime(2024, 12, 3, 0, 40, tzinfo=UTC),
        as_of=date(2024, 12, 3),
        backfill_days=29,
        endpoint="/coins/{coin}/market_chart/range",
        good=lambda: Reply(200, MARKET_CHART_30D.read_bytes()),
        expected=lambda: chart_days(chart_payload(), CHART_WANTED),
    ),
}


def ohlc_with(change: Callable[[list[list[Any]]], list[list[Any]] | None]) -> Callable[[], Reply]:
    def build() -> Reply:
        rows = ohlc_rows()
        return body(change(rows) or rows)

    return build


def chart_with(change: Callable[[list[list[Any]]], list[list[Any]] | None]) -> Callable[[], Reply]:
    def build() -> Reply:
        payload = chart_payload()
        payload["prices"] = change(payload["prices"]) or payload["prices"]
        return body(payload)

    return build


def set_cell(row: int, column: int, value: Any) -> Callable[[list[list[Any]]], None]:
    def change(rows: list[list[Any]]) -> None:
        rows[row][column] = value

    return change


def swap_high_low(rows: list[list[Any]]) -> None:
    row = next(r for r in rows[60:] if r[2] > r[3])  # a half hour of 2024-01-02 (rows 47..94) that moved
    row[2], row[3] = row[3], row[2]


def shuffled(rows: list[list[Any]]) -> list[list[Any]]:
    mixed = list(reversed(rows))
    random.Random(6).shuffle(mixed)
    return mixed


def duplicated(rows: list[list[Any]]) -> list[list[Any]]:
    return rows + [list(r) for r in rows[::7]]  # every 7th point twice, the copy at the end


def without(start: datetime, end: datetime) -> Callable[[list[list[Any]]], list[list[Any]]]:
    return lambda points: [p for p in points if not start <= at_ms(p[0]) < end]


def scaled(rows: list[list[Any]]) -> list[list[Any]]:
    """Prices times 10**6: BTC in a quote currency of about a millionth of a dollar (11 integer digits)."""
    return [[r[0], *(v * 10**6 for v in r[1:])] for r in rows]


def status(code: int, text: str, content_type: str = "text/html", **headers: str) -> Reply:
    return Reply(code, text.encode(), {"Content-Type": content_type, **headers})


HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
HTML_503 = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
CLOUDFLARE = "<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Cloudflare</body></html>"
TIMEOUT = Reply(delay_seconds=3.0)
RESET = Reply(reset=True)
GOOD = "good"  # stands for the mode's recorded reply in a scenario's replies


def cut(reply: Callable[[], Reply]) -> Callable[[], Reply]:
    return lambda: Reply(200, reply().body, cut_after_bytes=len(reply().body) // 2)


def truncated(reply: Callable[[], Reply]) -> Callable[[], Reply]:
    return lambda: Reply(200, reply().body[: len(reply().body) // 2])


@dataclass(frozen=True)
class Scenario:
    """One fault. ``replies`` are bitcoin's, in order (the last repeats); ``GOOD`` is the recorded reply.

    ``error`` is a piece of bitcoin's ``results[0].error`` (None: its candles are stored), ``error_type`` the
    History row's ``payload["error"]`` (None for days reported unavailable), ``kept`` bitcoin's days stored
    by the faulty run (None: all of them), ``scale`` what bitcoin's prices are multiplied by.
    """

    id: str
    mode: str
    replies: tuple[Reply | str | Callable[[], Reply], ...]
    requests: int
    sleeps: list[float] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    kept: frozenset[date] | None = None
    scale: Decimal = Decimal(1)

    def bitcoin_replies(self) -> list[Reply]:
        mode = MODES[self.mode]
        # The only str a scenario holds is GOOD, which mypy cannot narrow away with ``==``.
        return [mode.good() if r == GOOD else r() if callable(r) else r for r in self.replies]  # type: ignore[misc]


NONE: frozenset[date] = frozenset()
_OHLC_GOOD = MODES["ohlc"].good
_CHART_GOOD = MODES["chart"].good
_NOT_JSON = "HTTP 200 with a body that is not JSON"

# Waits with 3 retries and backoff_factor 1: urllib3 waits 0 s before its first retry, then 2 s, 4 s (or the
# Retry-After, capped at COINGECKO_RETRY_AFTER_MAX_SECONDS = 2 in the test settings); a body that is cut or not
# JSON is sent again by the client after 1 s, then 2 s (at most 2 more tries); timeouts and resets get 2 retries.
SCENARIOS = [
    # 429 with Retry-After.
    Scenario(
        "429-retry-after-then-ok",
        "ohlc",
        (json_reply({"status": {"error_code": 429}}, status=429, **{"Retry-After": "1"}), GOOD),
        2,
        [1],
    ),
    Scenario(
        "429-persistent-retry-after-capped",
        "ohlc",
        (
            json_reply(
                {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit."}},
                status=429,
                **{"Retry-After": "3600"},
            ),
        ),
        4,
        [2.0, 2.0, 2.0],
        "rate limited (HTTP 429) after every retry: You've exceeded the Rate Limit.",
        "CoinGeckoRateLimitedError",
        NONE,
    ),
    # 5xx.
    Scenario("500-then-ok", "ohlc", (lambda: recorded(OHLC_7D, 1), GOOD), 2, []),
    Scenario(
        "500-recorded-persistent",
        "ohlc",
        (lambda: recorded(OHLC_7D, 1),),
        4,
        [2.0, 4.0],
        "HTTP 500: Internal Server Error",
        "CoinGeckoServerError",
        NONE,
    ),
    Scenario("502-html-then-ok", "ohlc", (status(502, HTML_502), GOOD), 2, []),
    Scenario(
        "502-html-persistent",
        "ohlc",
        (status(502, HTML_502),),
        4,
        [2.0, 4.0],
        "HTTP 502: 502 Bad Gateway 502 Bad Gateway",
        "CoinGeckoServerError",
        NONE,
    ),
    Scenario("503-twice-then-ok", "ohlc", (status(503, HTML_503), status(503, HTML_503), GOOD), 3, [2.0]),
    Scenario(
        "503-persistent",
        "ohlc",
        (status(503, HTML_503),),
        4,
        [2.0, 4.0],
        "HTTP 503: 503 Service Temporarily Unavailable",
        "CoinGeckoServerError",
        NONE,
    ),
    Scenario(
        "504-json-persistent",
        "ohlc",
        (json_reply({"status": 504, "error": "Gateway Timeout"}, status=504),),
        4,
        [2.0, 4.0],
        "HTTP 504: Gateway Timeout",
        "CoinGeckoServerError",
        NONE,
    ),
    Scenario("503-then-ok-hourly", "chart", (status(503, HTML_503), GOOD), 2, []),
    # No answer in time, reset, closed.
    Scenario("timeout-then-ok", "ohlc", (TIMEOUT, GOOD), 2, []),
    Scenario(
        "timeout-persistent",
        "ohlc",
        (TIMEOUT,),
        3,
        [2.0],
        "no response after 2 retries (read timed out after 0.25 s)",
        "CoinGeckoUnavailableError",
        NONE,
    ),
    Scenario("reset-then-ok", "ohlc", (RESET, GOOD), 2, []),
    Scenario(
        "reset-persistent",
        "chart",
        (RESET,),
        3,
        [2.0],
        "no response after 2 retries (connection reset by the server)",
        "CoinGeckoUnavailableError",
        NONE,
    ),
    Scenario(
        "closed-without-reply-persistent",
        "ohlc",
        (Reply(drop_connection=True),),
        3,
        [2.0],
        "no response after 2 retries (connection closed without a response)",
        "CoinGeckoUnavailableError",
        NONE,
    ),
    Scenario("half-body-then-close-then-ok", "ohlc", (cut(_OHLC_GOOD), GOOD), 2, [1.0]),
    Scenario(
        "half-body-then-close-persistent",
        "chart",
        (cut(_CHART_GOOD),),
        3,
        [1.0, 2.0],
        f"the response body was cut off on 3 tries (connection closed after "
        f"{len(MARKET_CHART_30D.read_bytes()) // 2} of {len(MARKET_CHART_30D.read_bytes())} bytes)",
        "CoinGeckoBodyCutError",
        NONE,
    ),
    # Bodies that are not JSON.
    Scenario("html-200-then-ok", "ohlc", (status(200, CLOUDFLARE), GOOD), 2, [1.0]),
    Scenario(
        "html-200-persistent",
        "ohlc",
        (status(200, CLOUDFLARE),),
        3,
        [1.0, 2.0],
        f"{_NOT_JSON} (Expecting value at char 0): 'Just a moment... Cloudflare'",
        "CoinGeckoBadResponseError",
        NONE,
    ),
    Scenario(
        "plain-text-200-persistent",
        "ohlc",
        (status(200, "Throttled", "text/plain"),),
        3,
        [1.0, 2.0],
        f"{_NOT_JSON} (Expecting value at char 0): 'Throttled'",
        "CoinGeckoBadResponseError",
        NONE,
    ),
    Scenario("truncated-json-then-ok", "chart", (truncated(_CHART_GOOD), GOOD), 2, [1.0]),
    Scenario(
        "truncated-json-persistent",
        "ohlc",
        (truncated(_OHLC_GOOD),),
        3,
        [1.0, 2.0],
        _NOT_JSON,
        "CoinGeckoBadResponseError",
        NONE,
    ),
    # Points that are repeated, shuffled or missing: days from what is complete.
    Scenario("duplicate-half-hours", "ohlc", (ohlc_with(duplicated),), 1),
    Scenario("duplicate-hourly-points", "chart", (chart_with(duplicated),), 1),
    Scenario("out-of-order-half-hours", "ohlc", (ohlc_with(shuffled),), 1),
    Scenario("out-of-order-hourly-points", "chart", (chart_with(shuffled),), 1),
    Scenario(
        "missing-half-hour",
        "ohlc",
        (ohlc_with(lambda rows: [r for r in rows if r[0] != 1704193200000]),),  # 2024-01-02 10:30-11:00
        1,
        error="CoinGecko had no complete data for 1 day(s): 2024-01-02; the next run tries them again",
        kept=NONE,
    ),
    Scenario(
        "hour-gap-of-6-hours",
        "chart",
        (chart_with(without(datetime(2024, 11, 20, 6, tzinfo=UTC), datetime(2024, 11, 20, 12, tzinfo=UTC))),),
        1,
        error="CoinGecko had no complete data for 1 day(s): 2024-11-20; the next run tries them again",
        kept=frozenset(CHART_WANTED) - {date(2024, 11, 20)},
    ),
    Scenario(
        "missing-day",
        "chart",
        (chart_with(without(datetime(2024, 11, 25, tzinfo=UTC), datetime(2024, 11, 26, tzinfo=UTC))),),
        1,
        error="CoinGecko had no complete data for 1 day(s): 2024-11-25; the next run tries them again",
        kept=frozenset(CHART_WANTED) - {date(2024, 11, 25)},
    ),
    Scenario(
        "empty-hourly-prices",
        "chart",
        (json_reply({"prices": [], "market_caps": [], "total_volumes": []}),),
        1,
        error="CoinGecko had no complete data for 29 day(s): 2024-11-04, 2024-11-05",
        kept=NONE,
    ),
    Scenario(
        "empty-half-hours",
        "ohlc",
        (json_reply([]),),
        1,
        error="CoinGecko had no complete data for 1 day(s): 2024-01-02",
        kept=NONE,
    ),
    # Impossible values: the whole payload is refused, not one candle is written.
    Scenario(
        "null-price-half-hour",
        "ohlc",
        (ohlc_with(set_cell(60, 4, None)),),
        1,
        error="/coins/bitcoin/ohlc?days=2 candle [60]: price must be a number, was None",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    Scenario(
        "null-price-hourly",
        "chart",
        (chart_with(set_cell(300, 1, None)),),
        1,
        error="/coins/bitcoin/market_chart/range prices[300]: price must be a number, was None",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    Scenario(
        "negative-price-half-hour",
        "ohlc",
        (ohlc_with(set_cell(60, 3, Decimal("-44000.5"))),),
        1,
        error="candle [60]: price must be > 0, was -44000.5",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    Scenario(
        "negative-price-hourly",
        "chart",
        (chart_with(set_cell(100, 1, Decimal("-1"))),),
        1,
        error="prices[100]: price must be > 0, was -1",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    Scenario(
        "high-below-low",
        "ohlc",
        (ohlc_with(swap_high_low),),
        1,
        error="is below low",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    Scenario(
        "json-error-object-with-200",
        "ohlc",
        (json_reply({"error": "coin not found"}),),
        1,
        error="expected a list of candles, got dict {'error': 'coin not found'}",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    Scenario(
        "row-of-four-numbers",
        "ohlc",
        (ohlc_with(lambda rows: [*rows[:10], rows[10][:4], *rows[11:]]),),
        1,
        error="candle [10]: expected [time, open, high, low, close]",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    # Regression (was "internal error OverflowError"): a timestamp far out of range.
    Scenario(
        "timestamp-out-of-range",
        "chart",
        (chart_with(set_cell(5, 0, Decimal("1e20"))),),
        1,
        error="prices[5]: timestamp 1E+20 ms lies outside 1970-01-01 .. 2100-01-01 UTC",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    # Regression (was "internal error InvalidOperation" or an IntegrityError): prices the columns cannot hold.
    Scenario(
        "price-too-large-to-store",
        "ohlc",
        (ohlc_with(set_cell(60, 2, Decimal("1e25"))),),
        1,
        error="candle [60]: price 1E+25 cannot be stored",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    Scenario(
        "price-rounding-to-zero",
        "chart",
        (chart_with(set_cell(7, 1, Decimal("1e-19"))),),
        1,
        error="prices[7]: price 1E-19 cannot be stored",
        error_type="CoinGeckoPayloadError",
        kept=NONE,
    ),
    # Regression (was "internal error InvalidOperation": quantize ran out of the default 28 digits):
    # prices of 11 integer digits are real candles and are stored exactly.
    Scenario("prices-of-11-integer-digits", "ohlc", (ohlc_with(scaled),), 1, scale=Decimal(10**6)),
    # A coin CoinGecko does not know: a 4xx is not retried.
    Scenario(
        "404-unknown-coin",
        "ohlc",
        (json_reply({"error": "coin not found"}, status=404),),
        1,
        error="HTTP 404: coin not found",
        error_type="CoinGeckoRequestError",
        kept=NONE,
    ),
]


def as_stored(value: Decimal) -> Any:
    """What the database gives back: exactly ``value`` on PostgreSQL, 15 significant digits on SQLite."""
    if connection.vendor == "sqlite":
        return pytest.approx(value, rel=Decimal("1e-15"))
    return value


def assert_whole_days(coin: str, expected: dict[date, Day], scale: Decimal = Decimal(1)) -> int:
    """Every stored candle of ``coin`` is a whole day equal to ``expected``, with the OHLC invariants; return
    how many were checked."""
    stored = list(InstrumentOHLC.objects.filter(instrument__coingecko_id=coin).order_by("open_time"))
    assert [c.open_time.date() for c in stored] == sorted(expected)
    for candle in stored:
        want = expected[candle.open_time.date()]
        assert candle.timeframe == "1d"
        assert candle.open_time == datetime.combine(candle.open_time.date(), datetime.min.time(), tzinfo=UTC)
        assert (candle.open, candle.high, candle.low, candle.close) == (
            as_stored(want.open * scale),
            as_stored(want.high * scale),
            as_stored(want.low * scale),
            as_stored(want.close * scale),
        )
        assert (
            0 < candle.low <= min(candle.open, candle.close) <= max(candle.open, candle.close) <= candle.high
        )
        assert candle.source.startswith("coingecko:")
    return len(stored)


@pytest.fixture(scope="module", autouse=True)
def _tally() -> Iterator[None]:
    yield
    print(f"\nCoinGecko fault matrix: {TALLY}")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_fault_ends_in_good_candles_or_a_clear_error_and_a_rerun_completes_the_days(
    scenario: Scenario, fake_coingecko: FakeCoinGecko, retry_sleeps: list[float], settings: Settings
) -> None:
    mode = MODES[scenario.mode]
    expected = mode.expected()
    settings.BARTER_BACKFILL_DAYS = mode.backfill_days
    settings.COINGECKO_MAX_RETRIES = 3
    settings.COINGECKO_TIMEOUT_SECONDS = 0.25
    for coin in (FAULTY, *HEALTHY):
        InstrumentFactory.create(coingecko_id=coin, symbol=coin[:3].upper())
    fake_coingecko.add(mode.path(FAULTY), *scenario.bitcoin_replies())
    for coin in HEALTHY:
        fake_coingecko.add(mode.path(coin), mode.good())

    with time_machine.travel(mode.now, tick=False):
        summary = sync_data(as_of=mode.as_of)

    # The retries really happened: requests seen by the fake, and the waits urllib3 or the client made.
    assert len(fake_coingecko.requests_to(mode.path(FAULTY))) == scenario.requests
    assert retry_sleeps == scenario.sleeps
    for coin in HEALTHY:
        assert len(fake_coingecko.requests_to(mode.path(coin))) == 1
    results = {r["instrument"]: r for r in summary["results"]}
    assert list(results) == sorted([FAULTY, *HEALTHY])
    for coin in HEALTHY:
        assert results[coin] == {
            "instrument": coin,
            "candles_added": len(expected),
            "candles_updated": 0,
            "days_missing": 0,
            "error": None,
        }
    checked = sum(assert_whole_days(coin, expected) for coin in HEALTHY)

    bitcoin = results[FAULTY]
    kept = set(expected) if scenario.kept is None else set(scenario.kept)
    checked += assert_whole_days(FAULTY, {d: expected[d] for d in kept}, scenario.scale)
    assert bitcoin["candles_added"] == len(kept) and bitcoin["candles_updated"] == 0
    finished = History.objects.runs_finished().get(run_id=summary["run_id"])
    assert finished.status == summary["status"] and finished.payload == summary
    errors = list(History.objects.filter(run_id=summary["run_id"], kind=HistoryKind.ERROR))
    if scenario.error is None:
        assert summary["status"] == "ok" and summary["errors"] == []
        assert bitcoin["error"] is None and errors == []
    else:
        assert summary["status"] == "partial"  # the two healthy instruments did their work
        assert scenario.error in bitcoin["error"]
        assert bitcoin["days_missing"] == len(expected) - len(kept)
        (error,) = errors
        assert error.instrument is not None and error.instrument.coingecko_id == FAULTY
        assert error.message == bitcoin["error"]
        assert [e["instrument"] for e in summary["errors"]] == [FAULTY]
        if scenario.error_type is None:  # days CoinGecko had no complete data for
            assert error.payload["kept"] == "complete days only"
            assert error.payload["days_unavailable"] == [d.isoformat() for d in sorted(set(expected) - kept)]
        else:  # the request or the payload failed: nothing of bitcoin was written
            assert error.payload["kept"] == "no candle of this instrument was written"
            assert error.payload["error"] == scenario.error_type
            assert error.payload["retryable"] is (scenario.error_type != "CoinGeckoRequestError")
            assert error.payload["days_missing"] == len(expected)

    # Nothing lost: the fault gone, a second run fills bitcoin's missing days and asks nothing of the others.
    served = len(fake_coingecko.seen)
    fake_coingecko.add(mode.path(FAULTY), mode.good())
    with time_machine.travel(mode.now + timedelta(hours=1), tick=False):
        again = sync_data(as_of=mode.as_of)

    assert again["status"] == "ok" and again["errors"] == []
    added = {r["instrument"]: (r["candles_added"], r["candles_updated"]) for r in again["results"]}
    assert added == {FAULTY: (len(expected) - len(kept), 0), **dict.fromkeys(HEALTHY, (0, 0))}
    assert len(fake_coingecko.seen) == served + (1 if len(kept) < len(expected) else 0)
    if scenario.scale == 1:
        checked += assert_whole_days(FAULTY, expected)
    assert InstrumentOHLC.objects.count() == 3 * len(expected)

    TALLY["scenarios"] += 1
    TALLY["faults_injected"] += scenario.requests - (1 if scenario.replies[-1] == GOOD else 0)
    TALLY["requests_served"] += len(fake_coingecko.seen)
    TALLY["candles_checked"] += checked
