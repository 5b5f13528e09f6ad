"""The strategy and position admin: constant-query lists, criteria as indented JSON with path errors under the
field, enable/disable, read-only positions and the "Close now" action."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from positions.models import Position
from runs.models import History, HistoryKind
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.trading.factories import PositionFactory, StrategyFactory, sma_cross_criteria
from trading.models import Strategy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client, django_user_model: type[User]) -> Client:
    client.force_login(django_user_model.objects.create_superuser("boss", password="unused-password-123"))
    return client


def _count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def _form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "trend",
        "description": "",
        "criteria": json.dumps(sma_cross_criteria()),
        "instruments": [InstrumentFactory.create(coingecko_id="bitcoin").pk],
        "starting_cash": "10000",
        "execution_backend": "paper",
    }
    data.update(overrides)
    return data


def test_strategy_list_shows_cash_and_open_positions_in_constant_queries(staff_client: Client) -> None:
    def build(n: int) -> None:
        for _ in range(n):
            instrument = InstrumentFactory.create()
            strategy = StrategyFactory.create(instruments=[instrument, InstrumentFactory.create()])
            PositionFactory.create(strategy=strategy, instrument=instrument)
            PositionFactory.create(strategy=strategy, instrument=instrument, closed=True)

    build(1)
    few = _count(staff_client, "/admin/trading/strategy/")
    build(5)
    many = _count(staff_client, "/admin/trading/strategy/")
    # session, user, count, full count, page, instruments, positions
    assert few == many == 7

    html = staff_client.get("/admin/trading/strategy/").content.decode()
    # each: 10000 - (100 + 0.1) - (100 + 0.1) + (110 - 0.11) = 9909.69
    assert html.count('<td class="field-cash">9,909.69</td>') == 6
    assert html.count('<td class="field-open_positions">1</td>') == 6
    assert html.count('<td class="field-starting_cash_display">10,000.00</td>') == 6


def test_strategy_list_can_be_sorted_by_open_positions(staff_client: Client) -> None:
    busy = StrategyFactory.create(name="busy")
    StrategyFactory.create(name="idle")
    PositionFactory.create(strategy=busy)
    response = staff_client.get("/admin/trading/strategy/?o=-6")  # open positions, descending
    names = [s.name for s in response.context["cl"].result_list]
    assert names == ["busy", "idle"]


def test_the_criteria_are_shown_as_indented_json_in_reading_order(staff_client: Client) -> None:
    strategy = StrategyFactory.create()
    html = staff_client.get(f"/admin/trading/strategy/{strategy.pk}/change/").content.decode()
    # in the order CRITERIA.md writes them, also on PostgreSQL, whose jsonb puts the shortest keys first
    assert (
        "{\n  &quot;version&quot;: 1,\n  &quot;side&quot;: &quot;long&quot;,\n  &quot;entry&quot;: {" in html
    )
    indent = "\n" + " " * 10
    assert (
        f"&quot;left&quot;: {{{indent}&quot;indicator&quot;: &quot;sma&quot;,{indent}&quot;period&quot;: 10"
        in html
    )
    assert "9,900.00" not in html  # no positions: the cash is the starting cash
    assert "10,000.00" in html


def test_a_strategy_is_added_through_the_form(staff_client: Client) -> None:
    assert staff_client.get("/admin/trading/strategy/add/").status_code == 200
    response = staff_client.post("/admin/trading/strategy/add/", _form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    strategy = Strategy.objects.get(name="trend")
    assert strategy.criteria == sma_cross_criteria()
    assert list(strategy.instruments.values_list("coingecko_id", flat=True)) == ["bitcoin"]


def test_criteria_problems_are_listed_under_the_field_with_their_paths(staff_client: Client) -> None:
    criteria = sma_cross_criteria(
        entry={
            "all": [{"left": {"indicator": "close"}, "op": ">", "right": {"indicator": "sma", "period": 0}}]
        },
        side="short",
    )
    response = staff_client.post("/admin/trading/strategy/add/", _form(criteria=json.dumps(criteria)))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["criteria"]
    assert errors["criteria"] == [
        "side: short positions are not supported yet; use long, was 'short'",
        "entry.all[0].right.period: must be an integer >= 1, was 0",
    ]
    html = response.content.decode()
    assert "<li>entry.all[0].right.period: must be an integer &gt;= 1, was 0</li>" in html
    assert not Strategy.objects.exists()


def test_invalid_json_is_a_form_error_naming_the_place(staff_client: Client) -> None:
    response = staff_client.post(
        "/admin/trading/strategy/add/", _form(criteria='{\n  "version": 1,\n  side: 1\n}')
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["criteria"] == [
        "invalid JSON at line 3, column 3: Expecting property name enclosed in double quotes"
    ]
    assert "  side: 1" in response.content.decode()  # the text is kept for fixing
    assert not Strategy.objects.exists()


def test_enable_and_disable_actions(staff_client: Client) -> None:
    a = StrategyFactory.create(name="a")
    b = StrategyFactory.create(name="b", is_enabled=True)
    c = StrategyFactory.create(name="c")

    response = staff_client.post(
        "/admin/trading/strategy/", {"action": "enable", "_selected_action": [a.pk, b.pk]}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == ["1 strategy enabled."]
    assert set(Strategy.objects.enabled().values_list("name", flat=True)) == {"a", "b"}

    response = staff_client.post(
        "/admin/trading/strategy/", {"action": "disable", "_selected_action": [a.pk, b.pk, c.pk]}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == ["2 strategies disabled."]
    assert not Strategy.objects.enabled().exists()


def test_position_list_in_constant_queries_with_pnl_in_percent(staff_client: Client) -> None:
    PositionFactory.create(closed=True)
    few = _count(staff_client, "/admin/positions/position/")
    for _ in range(5):
        PositionFactory.create()
        PositionFactory.create(closed=True)
    many = _count(staff_client, "/admin/positions/position/")
    # session, user, the strategy and instrument filters' choices, count, full count, page, date hierarchy (2)
    assert few == many == 9
    html = staff_client.get("/admin/positions/position/").content.decode()
    # (110 - 0.11 - 100.1) / 100.1 = 9.78 %
    assert html.count('<td class="field-pnl_pct">9.78 %</td>') == 6
    assert html.count('<td class="field-pnl_pct">-</td>') == 5


def test_positions_are_read_only(staff_client: Client) -> None:
    position = PositionFactory.create()
    assert staff_client.get("/admin/positions/position/add/").status_code == 403
    assert (
        staff_client.post(f"/admin/positions/position/{position.pk}/change/", {"quantity": "9"}).status_code
        == 403
    )
    assert (
        staff_client.post(f"/admin/positions/position/{position.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert staff_client.get(f"/admin/positions/position/{position.pk}/change/").status_code == 200  # viewable


def test_close_now_closes_open_positions_and_reports_closed_ones(
    staff_client: Client, fake_coingecko: FakeCoinGecko
) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    CandleFactory.create(instrument=bitcoin)
    strategy = StrategyFactory.create(name="trend")
    open_one = PositionFactory.create(strategy=strategy, instrument=bitcoin, entry_price=Decimal("40000"))
    closed_one = PositionFactory.create(strategy=strategy, instrument=bitcoin, closed=True)
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 50000}}))

    response = staff_client.post(
        "/admin/positions/position/",
        {"action": "close_now", "_selected_action": [open_one.pk, closed_one.pk]},
        follow=True,
    )

    assert response.status_code == 200
    open_one.refresh_from_db()
    assert open_one.status == Position.Status.CLOSED
    assert open_one.exit_reason == Position.ExitReason.MANUAL
    # no slippage in these criteria; fee 0.1 %: exit fee 50; pnl 50000 - 50 - (40000 + 40) = 9910
    assert open_one.exit_price == Decimal("50000")
    assert open_one.exit_fee == Decimal("50")
    assert open_one.pnl == Decimal("9910")
    assert History.objects.filter(position=open_one, kind=HistoryKind.POSITION_CLOSED).exists()
    messages = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert messages == [
        ("success", f"position {open_one.pk} (trend, BTC): closed at 50000.00, pnl 9910.00 (24.75 %)"),
        (
            "error",
            f"position {closed_one.pk} (trend, BTC): not closed: position {closed_one.pk} is already closed "
            "(signal)",
        ),
    ]
    assert len(fake_coingecko.requests_to("/simple/price")) == 1


def test_close_now_falls_back_to_the_newest_close_when_coingecko_fails(
    staff_client: Client, fake_coingecko: FakeCoinGecko
) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    CandleFactory.create(instrument=bitcoin, open=Decimal("120"), close=Decimal("125"))
    position = PositionFactory.create(
        instrument=bitcoin
    )  # /simple/price is not scripted: the fake answers 404

    staff_client.post(
        "/admin/positions/position/", {"action": "close_now", "_selected_action": [position.pk]}
    )

    position.refresh_from_db()
    assert position.status == Position.Status.CLOSED
    assert position.exit_price == Decimal("125")
