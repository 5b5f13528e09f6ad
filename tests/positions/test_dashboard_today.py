"""The dashboard's first-five-minutes messages: replay accounts apart from the strategies, stale data said with
what to do, and per strategy why nothing opened today, read from what the real open step recorded."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client

from instruments.models import Instrument
from positions.cycle.open import sync_new_trades
from positions.cycle.replay import replay_account_parse
from positions.selectors import Dashboard, StrategyLine
from runs.models import RunStatus, Step
from runs.recorder import run_start
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.trading.factories import StrategyFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db

TODAY = date(2026, 12, 3)
NOON = datetime(2026, 12, 3, 12, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def staff_client(client: Client, django_user_model: type[User]) -> Client:
    client.force_login(django_user_model.objects.create_superuser("boss", password="unused-password-123"))
    return client


def _candles(instrument: Instrument, *, last: date, days: int = 30, source: str = "factory") -> None:
    """``days`` daily candles of a steady rise ending with the candle of ``last``."""
    for n in range(days):
        opened = datetime.combine(last - (days - 1 - n) * DAY, datetime.min.time(), tzinfo=UTC)
        CandleFactory.create(instrument=instrument, open_time=opened, open=Decimal(100 + n), source=source)


def _dashboard(client: Client) -> tuple[Dashboard, str]:
    with time_machine.travel(NOON, tick=False):
        response = client.get("/")
    assert response.status_code == 200
    return response.context["dashboard"], response.content.decode()


def _line(dashboard: Dashboard, name: str) -> StrategyLine:
    (line,) = [line for line in dashboard.strategies if line.strategy.name == name]
    return line


def _today_cell(html: str, name: str) -> str:
    found = re.search(rf'<tr data-strategy="{re.escape(name)}">.*?data-field="today">(.*?)</td>', html, re.S)
    assert found, f"no row for {name}"
    return re.sub(r"<[^>]+>", " ", found.group(1))


def test_a_replay_account_name_is_read_back() -> None:
    parsed = replay_account_parse("SMA 20/50 trend [replay 2023-04-23..2024-04-21 20261203T125643398921]")
    assert parsed is not None
    assert (parsed.strategy, parsed.start, parsed.end) == (
        "SMA 20/50 trend",
        date(2023, 4, 23),
        date(2024, 4, 21),
    )
    assert replay_account_parse("SMA 20/50 trend") is None
    assert replay_account_parse("[replay 2023-04-23..2024-04-21 x]") is None  # no strategy before it


def test_replay_accounts_are_listed_apart_with_short_names(staff_client: Client) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    StrategyFactory.create(name="trend", instruments=[bitcoin], is_enabled=True)
    StrategyFactory.create(
        name="trend [replay 2023-04-23..2024-04-21 20261203T125643398921]", instruments=[bitcoin]
    )
    StrategyFactory.create(name="breakout [replay 2023-04-23..2024-04-21 20261203T130000000000]")

    dashboard, html = _dashboard(staff_client)

    assert [line.strategy.name for line in dashboard.strategies] == ["trend"]
    assert [(line.replay.strategy, line.replay.start) for line in dashboard.replays if line.replay] == [
        ("breakout", date(2023, 4, 23)),
        ("trend", date(2023, 4, 23)),
    ]
    replays = html.split('<table id="replays">', 1)[1].split("</table>", 1)[0]
    assert "20261203T" not in re.sub(r'title="[^"]*"', "", replays)  # the generated stamp is not shown
    assert ">trend</a>" in replays and "2023-04-23 .. 2024-04-21" in replays
    assert "[replay" not in html.split('<table id="strategies">', 1)[1].split("</table>", 1)[0]


@pytest.mark.parametrize(
    ("source", "advice"),
    [
        (
            "file:BTC_USDT-1h.feather rolled up 1h->1d",
            "The candles are the shipped history only: run manage.py sync_data",
        ),
        ("coingecko:ohlc", "The daily collect has not added a candle since: check its schedule"),
    ],
)
def test_stale_data_is_said_with_what_to_do(staff_client: Client, source: str, advice: str) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    _candles(bitcoin, last=date(2024, 4, 20), source=source)

    dashboard, html = _dashboard(staff_client)

    freshness = dashboard.freshness
    assert freshness is not None and freshness.stale and freshness.newest == date(2024, 4, 20)
    assert freshness.days_behind == (TODAY - date(2024, 4, 20)).days == 957
    notice = html.split('id="stale-data"', 1)[1].split("</div>", 1)[0]
    assert "the newest daily candle is of 2024-04-20, 957 days before today (2026-12-03 UTC)" in notice
    assert advice in notice


@pytest.mark.parametrize(
    ("newest", "stale"), [(TODAY - DAY, False), (TODAY - 2 * DAY, False), (TODAY - 3 * DAY, True)]
)
def test_data_is_stale_when_the_newest_candle_is_more_than_two_days_old(
    staff_client: Client, newest: date, stale: bool
) -> None:
    _candles(InstrumentFactory.create(), last=newest, days=2)

    dashboard, html = _dashboard(staff_client)

    assert dashboard.freshness is not None and dashboard.freshness.stale is stale
    assert ('id="stale-data"' in html) is stale
    assert ('id="fresh-data"' in html) is not stale


def test_without_a_run_today_a_strategy_says_so_and_which_data_is_stale(staff_client: Client) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    ether = InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH")
    _candles(bitcoin, last=date(2024, 4, 20))
    _candles(ether, last=TODAY - DAY)
    StrategyFactory.create(name="trend", instruments=[bitcoin, ether], is_enabled=True)
    StrategyFactory.create(name="idle", instruments=[ether])

    dashboard, html = _dashboard(staff_client)

    assert _line(dashboard, "trend").why_not_today == [
        "the open step has not run today (2026-12-03)",
        "BTC: data stale: newest candle 2024-04-20",
    ]
    assert _line(dashboard, "idle").why_not_today == ["disabled: the daily cycle does not trade it"]
    assert "BTC: data stale: newest candle 2024-04-20" in _today_cell(html, "trend")


def test_the_reasons_are_what_the_real_open_step_recorded(staff_client: Client) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    ether = InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH")
    _candles(bitcoin, last=TODAY - DAY)  # a steady rise: SMA(10) stays above SMA(20), no cross yesterday
    _candles(ether, last=date(2024, 4, 20))  # stale: no candle of yesterday
    StrategyFactory.create(name="trend", instruments=[bitcoin, ether], is_enabled=True)
    with time_machine.travel(NOON, tick=False):
        summary = sync_new_trades(as_of=TODAY)
    assert {(r["instrument"], r["reason"]) for r in summary["results"]} == {
        ("bitcoin", "no entry signal"),
        ("ethereum", "no candle for the day before as_of (collect first)"),
    }

    dashboard, html = _dashboard(staff_client)

    assert _line(dashboard, "trend").why_not_today == [
        "BTC: no entry signal on 2026-12-02",
        "ETH: data stale: newest candle 2024-04-20, none for 2026-12-02 (collect first)",
    ]
    assert "BTC: no entry signal on 2026-12-02" in _today_cell(html, "trend")


def test_opened_held_and_kill_switch_lines(staff_client: Client) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    ether = InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH")
    _candles(bitcoin, last=TODAY - DAY, days=2)
    StrategyFactory.create(name="winner", instruments=[bitcoin, ether], is_enabled=True)
    StrategyFactory.create(name="holder", instruments=[ether], is_enabled=True)
    StrategyFactory.create(
        name="live",
        instruments=[bitcoin],
        is_enabled=True,
        execution_backend=Strategy.ExecutionBackend.EXCHANGE,
        exchange_id="binance",
        trading_enabled=False,
    )
    with time_machine.travel(NOON, tick=False):
        older = run_start(step=Step.OPEN, params={})
        older.finish(
            status=RunStatus.OK,
            summary={
                "as_of": TODAY.isoformat(),
                "results": [
                    {
                        "strategy": "holder",
                        "instrument": "ethereum",
                        "action": "none",
                        "reason": "no entry signal",
                    }
                ],
            },
        )
        newest = run_start(step=Step.OPEN, params={})
        newest.finish(
            status=RunStatus.OK,
            summary={
                "as_of": TODAY.isoformat(),
                "results": [
                    {"strategy": "winner", "instrument": "bitcoin", "action": "opened", "reason": ""},
                    {
                        "strategy": "winner",
                        "instrument": "ethereum",
                        "action": "none",
                        "reason": "no entry signal",
                    },
                    {
                        "strategy": "holder",
                        "instrument": "ethereum",
                        "action": "none",
                        "reason": "a position is already open",
                    },
                ],
            },
        )
        # A replay's run of a past day is not today's.
        replayed = run_start(step=Step.OPEN, params={})
        replayed.finish(
            status=RunStatus.OK,
            summary={
                "as_of": "2024-04-01",
                "results": [{"strategy": "live", "instrument": "bitcoin", "action": "opened", "reason": ""}],
            },
        )

    dashboard, html = _dashboard(staff_client)

    winner = _line(dashboard, "winner")
    assert (winner.opened_today, winner.why_not_today) == (["BTC"], [])
    assert "opened BTC" in _today_cell(html, "winner")
    assert _line(dashboard, "holder").why_not_today == ["ETH: already in a position"]  # the newest run's word
    assert _line(dashboard, "live").why_not_today == [
        "kill switch: trading is switched off for strategy live (trading_enabled); exits still run",
        "the open step has not run today (2026-12-03)",
    ]
