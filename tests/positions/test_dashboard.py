"""The dashboard at ``/``: login, strategies' equity and return, open positions' unrealized P&L at the newest
close, the last runs of each step, in a constant number of queries; and the selectors behind it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypedDict

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django import DjangoAssertNumQueries

from instruments.models import Instrument, InstrumentOHLC
from positions.accounts import strategies_with_accounts, strategy_cash, strategy_equity
from positions.models import Position
from positions.selectors import latest_closes, recent_runs
from runs.models import HistoryKind, RunStatus, Step
from runs.recorder import run_start
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.trading.factories import PositionFactory, StrategyFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
MARCH_1 = datetime(2024, 3, 1, tzinfo=UTC)


class Book(TypedDict):
    """The ``book`` fixture's open positions and instruments."""

    btc: Position
    eth: Position
    ltc: Position
    bitcoin: Instrument
    ethereum: Instrument


@pytest.fixture
def staff_client(client: Client, django_user_model: type[User]) -> Client:
    client.force_login(django_user_model.objects.create_superuser("boss", password="unused-password-123"))
    return client


def _candle(instrument: Instrument, day: datetime, close: str) -> InstrumentOHLC:
    candle: InstrumentOHLC = CandleFactory.create(
        instrument=instrument, open_time=day, open=Decimal(close), close=Decimal(close)
    )
    return candle


@pytest.fixture
def book() -> Book:
    """Two strategies with open and closed positions, an idle one, and candles whose newest closes are known."""
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    ethereum = InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH")
    litecoin = InstrumentFactory.create(coingecko_id="litecoin", symbol="LTC")
    _candle(bitcoin, MARCH_1, "90")
    _candle(bitcoin, MARCH_1 + DAY, "110")  # the newest BTC close
    _candle(ethereum, MARCH_1 + DAY, "2100")
    _candle(ethereum, MARCH_1 + 2 * DAY, "1800")  # the newest ETH close
    CandleFactory.create(
        instrument=bitcoin, timeframe="1h", open_time=MARCH_1 + 3 * DAY, open=500, close=500
    )  # not daily
    trend = StrategyFactory.create(name="trend", instruments=[bitcoin, ethereum], is_enabled=True)
    revert = StrategyFactory.create(name="revert", starting_cash=Decimal("5000"), instruments=[ethereum])
    StrategyFactory.create(name="idle")
    btc = PositionFactory.create(
        strategy=trend, instrument=bitcoin, quantity=Decimal("2"), entry_price=Decimal("100")
    )
    PositionFactory.create(strategy=trend, instrument=ethereum, closed=True)
    eth = PositionFactory.create(
        strategy=revert, instrument=ethereum, quantity=Decimal("0.5"), entry_price=Decimal("2000")
    )
    ltc = PositionFactory.create(strategy=revert, instrument=litecoin, entry_price=Decimal("50"))
    return {"btc": btc, "eth": eth, "ltc": ltc, "bitcoin": bitcoin, "ethereum": ethereum}


def _row(html: str, attribute: str, value: object) -> str:
    match = re.search(rf'<tr data-{attribute}="{value}">(.*?)</tr>', html, re.S)
    assert match, f"no row {attribute}={value}"
    return match.group(1)


def _cell(row: str, name: str) -> str:
    match = re.search(rf'data-field="{name}">([^<]*)<', row)
    assert match, f"no cell {name}"
    return match.group(1)


def test_login_is_required() -> None:
    from django.test import Client

    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/"


def test_strategies_show_equity_and_return(staff_client: Client, book: Book) -> None:
    response = staff_client.get("/")

    assert response.status_code == 200
    lines = {line.strategy.name: line for line in response.context["dashboard"].strategies}
    assert list(lines) == ["idle", "revert", "trend"]
    # trend: cash 10000 - (2 * 100 + 0.2) - (100 + 0.1) + (110 - 0.11) = 9809.59;
    # equity 9809.59 + 2 * 110 (newest BTC close) = 10029.59; return 10029.59 / 10000 - 1 = 0.29959 %
    assert lines["trend"].cash == Decimal("9809.59")
    assert lines["trend"].equity == Decimal("10029.59")
    assert lines["trend"].return_ratio == Decimal("0.002959")
    assert lines["trend"].open_positions_count == 1
    # revert: cash 5000 - (0.5 * 2000 + 1) - (50 + 0.05) = 3948.95;
    # equity 3948.95 + 0.5 * 1800 (newest ETH close) + 1 * 50 (LTC has no candle: entry price) = 4898.95;
    # return 4898.95 / 5000 - 1 = -2.021 %
    assert lines["revert"].cash == Decimal("3948.95")
    assert lines["revert"].equity == Decimal("4898.95")
    assert lines["revert"].return_ratio == Decimal("-0.02021")
    assert lines["idle"].equity == Decimal("10000")
    assert lines["idle"].return_ratio == 0

    html = response.content.decode()
    trend = _row(html, "strategy", "trend")
    assert _cell(trend, "equity") == "10,029.59"
    assert _cell(trend, "return") == "0.30 %"
    assert "BTC, ETH" in trend
    assert "enabled" in trend
    revert = _row(html, "strategy", "revert")
    assert _cell(revert, "equity") == "4,898.95"
    assert _cell(revert, "return") == "-2.02 %"
    assert 'class="num loss" data-field="return"' in revert
    assert _cell(_row(html, "strategy", "idle"), "return") == "0.00 %"


def test_open_positions_show_unrealized_pnl_at_the_newest_daily_close(
    staff_client: Client, book: Book
) -> None:
    response = staff_client.get("/")

    lines = {line.position.pk: line for line in response.context["dashboard"].open_positions}
    assert set(lines) == {book["btc"].pk, book["eth"].pk, book["ltc"].pk}
    btc = lines[book["btc"].pk]
    # value 2 * 110 = 220; cost 2 * 100 + 0.2 = 200.2; pnl 19.8; ratio 19.8 / 200.2 = 9.8901 %
    assert btc.mark_price == Decimal("110")
    assert btc.marked_at == MARCH_1 + DAY
    assert btc.unrealized_pnl == Decimal("19.8")
    assert round(btc.unrealized_pnl_ratio, 6) == Decimal("0.098901")
    eth = lines[book["eth"].pk]
    # value 0.5 * 1800 = 900; cost 0.5 * 2000 + 1 = 1001; pnl -101; ratio -101 / 1001 = -10.0899 %
    assert eth.unrealized_pnl == Decimal("-101")
    assert round(eth.unrealized_pnl_ratio, 6) == Decimal("-0.100899")
    assert lines[book["ltc"].pk].mark_price is None

    html = response.content.decode()
    row = _row(html, "position", book["btc"].pk)
    assert _cell(row, "unrealized_pnl") == "19.80"
    assert _cell(row, "unrealized_pnl_pct") == "9.89 %"
    assert "110.00" in row
    assert "2024-03-02" in row
    row = _row(html, "position", book["eth"].pk)
    assert _cell(row, "unrealized_pnl") == "-101.00"
    assert _cell(row, "unrealized_pnl_pct") == "-10.09 %"
    assert "no stored candle" in _row(html, "position", book["ltc"].pk)


def test_last_runs_show_the_newest_five_of_each_step_with_status_and_errors(staff_client: Client) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    strategy = StrategyFactory.create(name="trend")
    collect_runs = []
    for n in range(7):
        with time_machine.travel(MARCH_1 + n * DAY, tick=False):
            run = run_start(step=Step.COLLECT, params={})
            collect_runs.append(run.run_id)
            run.finish(status=RunStatus.OK, summary={"as_of": f"2024-03-0{n + 1}", "results": [{}, {}]})
    with time_machine.travel(MARCH_1, tick=False):
        failed = run_start(step=Step.OPEN, params={})
        failed.event(HistoryKind.ERROR, instrument=bitcoin, message="CoinGecko rate limit (HTTP 429)")
        failed.event(HistoryKind.ERROR, strategy=strategy, message="no price")
        failed.finish(status=RunStatus.FAILED, summary={"as_of": "2024-03-01", "results": []})
        run_start(step=Step.OPEN, params={})  # started, never finished: not shown

    response = staff_client.get("/")

    runs = dict(response.context["dashboard"].runs)
    assert list(runs) == ["collect", "open", "close"]
    assert [r.run_id for r in runs["collect"]] == [str(i) for i in reversed(collect_runs[2:])]
    assert runs["collect"][0].as_of == "2024-03-07"
    assert runs["collect"][0].results == 2
    assert runs["open"][0].status == "failed"
    assert runs["open"][0].errors == ["bitcoin: CoinGecko rate limit (HTTP 429)", "trend: no price"]
    assert runs["close"] == []
    html = response.content.decode()
    assert html.count("<tr data-run=") == 6
    assert '<span class="badge failed">failed</span>' in html
    assert "<li>bitcoin: CoinGecko rate limit (HTTP 429)</li>" in html
    assert "No close run yet." in html


def test_an_empty_dashboard_renders(staff_client: Client) -> None:
    response = staff_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No strategies yet." in html
    assert "No open positions." in html


def test_dashboard_queries_do_not_grow_with_strategies_positions_and_runs(
    staff_client: Client, book: Book
) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get("/").status_code == 200
        return len(captured.captured_queries)

    few = count()
    for n in range(4):
        instrument = InstrumentFactory.create()
        _candle(instrument, MARCH_1, "10")
        strategy = StrategyFactory.create(instruments=[instrument, book["bitcoin"]])
        PositionFactory.create(strategy=strategy, instrument=instrument)
        PositionFactory.create(strategy=strategy, instrument=book["bitcoin"], closed=True)
        for step in (Step.COLLECT, Step.OPEN, Step.CLOSE):
            run_start(step=step, params={}).finish(status=RunStatus.OK, summary={"n": n})
    many = count()

    # session, user; strategies, their instruments, their positions; open positions; newest closes; today's open
    # runs; the risk limits' halts; memberships; portfolios; the newest candle's source; runs; the latest audits
    # (none: the audits' sums and fees are not read
    # then); no notification channel is configured: their attempts are not read
    assert few == many == 14


def test_prefetched_accounts_give_the_same_figures_without_queries(
    book: Book, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    """strategy_cash / strategy_equity read a strategy's positions, or use the batch prefetch without a query."""
    prices = {i: mark.close for i, mark in latest_closes().items()}
    one_by_one = {s.pk: (strategy_cash(s), strategy_equity(s, prices)) for s in Strategy.objects.all()}
    batch = list(strategies_with_accounts())
    with django_assert_num_queries(0):
        prefetched = {s.pk: (strategy_cash(s), strategy_equity(s, prices)) for s in batch}
    assert prefetched == one_by_one and len(one_by_one) >= 2


def test_latest_closes_reads_the_newest_daily_close_in_one_query(
    book: Book, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    with django_assert_num_queries(1):
        closes = latest_closes()
    assert {i: (c.close, c.open_time) for i, c in closes.items()} == {
        book["bitcoin"].pk: (Decimal("110"), MARCH_1 + DAY),
        book["ethereum"].pk: (Decimal("1800"), MARCH_1 + 2 * DAY),
    }
    assert all(type(c.close) is Decimal for c in closes.values())
    assert set(latest_closes([book["ethereum"].pk])) == {book["ethereum"].pk}


def test_recent_runs_is_one_query(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    for _ in range(3):
        run_start(step=Step.CLOSE, params={}).finish(status=RunStatus.OK, summary={})
    with django_assert_num_queries(1):
        runs = recent_runs(per_step=2)
    assert [len(lines) for _, lines in runs] == [0, 0, 2]
