"""Live execution on Binance and Bybit through ccxt, against stateful fakes of their REST APIs (``responses``).

No test touches the network: ccxt's ``requests`` session is answered by ``tests/fakes/exchange_orders.py``.
Every day has candles 100/110/90/100 (open/high/low/close); the fakes fill market orders at the ticker's last
price (105) with a 0.1 % fee, taken in BTC on buys and in USDT on sells, as both exchanges do by default.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NoReturn, TypedDict

import pytest
import responses
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import Settings

from instruments.models import Instrument, InstrumentOHLC
from instruments.sources.exchange.client import exchange_clients_reset
from positions.cycle.close import sync_close_positions
from positions.cycle.manual import position_close_manual
from positions.cycle.open import sync_new_trades
from positions.execution.order_state import CLIENT_ORDER_ID_MAX_LENGTH, client_order_id
from positions.models import Order, Position
from runs.models import History, HistoryKind
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.fakes.exchange_orders import DUMMY_KEY, DUMMY_SECRET, FakeBinance, FakeBybit
from tests.instruments.factories import InstrumentFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db
NOW = datetime(2024, 1, 11, 0, 40, tzinfo=UTC)
AS_OF = date(2024, 1, 11)
NEXT_DAY = datetime(2024, 1, 12, 0, 40, tzinfo=UTC)
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}
FAKES: dict[str, type[FakeBinance | FakeBybit]] = {"binance": FakeBinance, "bybit": FakeBybit}


class OrderIdKeys(TypedDict):
    """The keyword arguments ``client_order_id`` requires."""

    strategy_id: int
    instrument_id: int
    as_of: date
    purpose: str


class OrderIdParts(OrderIdKeys, total=False):
    """Every keyword argument of ``client_order_id``."""

    position_id: int
    sequence: int


def daily(
    instrument: Instrument, day: date, o: str = "100", h: str = "110", low: str = "90", c: str = "100"
) -> None:
    InstrumentOHLC.objects.create(
        instrument=instrument,
        timeframe="1d",
        open_time=datetime(day.year, day.month, day.day, tzinfo=UTC),
        open=Decimal(o),
        high=Decimal(h),
        low=Decimal(low),
        close=Decimal(c),
        source="test",
    )


@pytest.fixture(autouse=True)
def dummy_keys(settings: Settings) -> Iterator[None]:
    """Dummy credentials for both exchanges; ccxt objects are rebuilt from them for each test."""
    settings.BARTER_EXCHANGES = {
        exchange_id: {"api_key": DUMMY_KEY, "secret": DUMMY_SECRET, "password": "", "sandbox": False}
        for exchange_id in ("binance", "bybit", "bitget")
    }
    settings.BARTER_TRADING_ENABLED = True
    exchange_clients_reset()
    yield
    exchange_clients_reset()


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture(params=["binance", "bybit"])
def exchange_id(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fake(exchange_id: str, mock: responses.RequestsMock) -> FakeBinance | FakeBybit:
    return FAKES[exchange_id](mock)


def strategy_on(exchange_id: str, *, cash: str = "1000", **criteria: object) -> Strategy:
    coin = InstrumentFactory.create(
        coingecko_id="bitcoin",
        symbol="BTC",
        candle_source="exchange",
        exchange_id=exchange_id,
        market_symbol="BTC/USDT",
    )
    for n in range(10):  # 2024-01-01 .. 2024-01-10
        daily(coin, date(2024, 1, 1) + timedelta(days=n))
    document = {
        "version": 1,
        "side": "long",
        "entry": ALWAYS,
        "exit": None,
        "stop_loss_ratio": 0.1,
        "fee_rate": 0.001,
        "slippage_ratio": 0.0,
        **criteria,
    }
    strategy = Strategy.objects.create(
        name=f"live-{exchange_id}",
        criteria=document,
        is_enabled=True,
        starting_cash=Decimal(cash),
        execution_backend=Strategy.ExecutionBackend.EXCHANGE,
        exchange_id=exchange_id,
    )
    strategy.instruments.set([coin])
    return strategy


def kinds(strategy: Strategy) -> list[str]:
    return list(
        History.objects.filter(strategy=strategy).order_by("created_at", "id").values_list("kind", flat=True)
    )


def open_entry(strategy: Strategy) -> dict[str, Any]:
    with time_machine.travel(NOW, tick=False):
        return sync_new_trades(as_of=AS_OF)


# -- entries --------------------------------------------------------------------------------------------------


def test_an_entry_that_fills_holds_the_real_fill_and_is_protected(
    exchange_id: str, fake: FakeBinance | FakeBybit
) -> None:
    strategy = strategy_on(exchange_id)

    summary = open_entry(strategy)

    [line] = summary["results"]
    assert line["action"] == "opened", line
    [buy] = fake.placed(side="BUY")
    # Sized by the engine: 1000 / (105 * 1.001) = 9.5142952..., truncated to the 0.00001 (binance) or 0.000001 step
    expected_amount = Decimal("9.51429") if exchange_id == "binance" else Decimal("9.514295")
    assert buy.quantity == expected_amount and buy.executed == expected_amount
    position = Position.objects.get(strategy=strategy)
    fee_btc = (expected_amount * Decimal("0.001")).quantize(Decimal("1e-8"))
    assert position.quantity == expected_amount - fee_btc  # the fee was paid in BTC: we hold less
    assert position.entry_price == Decimal("105")
    assert position.entry_fee == fee_btc * 105  # worth of the BTC fee, quote currency
    assert position.stop_loss_price == Decimal(
        "94.5"
    )  # 105 * (1 - 0.1): the engine's level at the real price
    entry = Order.objects.get(purpose=Order.Purpose.ENTRY)
    assert (entry.status, entry.filled_quantity, entry.position_id) == (
        "filled",
        expected_amount,
        position.pk,
    )
    assert entry.fee == fee_btc and entry.fee_currency == "BTC"
    # Protection: a stop-loss rests on the exchange at the engine's level, for what the position holds
    [stop] = fake.placed(type_="STOP_LOSS")
    assert stop.side == "SELL" and stop.stop_price == Decimal("94.5") and stop.status == "NEW"
    assert position.protection == Position.Protection.PROTECTED
    assert Order.objects.get(purpose=Order.Purpose.PROTECTION).status == Order.Status.OPEN
    assert kinds(strategy)[:4] == ["signal", "order", "fill", "position_opened"]


def test_an_entry_below_the_minimum_notional_is_refused_before_sending(
    exchange_id: str, fake: FakeBinance | FakeBybit
) -> None:
    strategy = strategy_on(exchange_id, cash="4.2")

    summary = open_entry(strategy)

    [line] = summary["results"]
    assert line["action"] == "none"
    # 4.2 / (105 * 1.001) = 0.03996... BTC = 4.19 USDT < 5
    assert re.search(rf"= 4\.\d\d USDT is below {exchange_id}'s minimum notional 5 USDT", line["error"]), line
    assert fake.creates == 0
    assert not Position.objects.exists() and not Order.objects.exists()
    assert summary["status"] == "failed"
    assert History.objects.filter(strategy=strategy, kind=HistoryKind.ERROR, message=line["error"]).exists()


def test_a_create_that_timed_out_after_being_accepted_is_found_not_placed_again(
    exchange_id: str, fake: FakeBinance | FakeBybit
) -> None:
    strategy = strategy_on(exchange_id)
    fake.timeouts = 1  # the exchange accepts the buy, then the answer never arrives

    summary = open_entry(strategy)

    assert summary["results"][0]["action"] == "opened"
    assert fake.creates == 2  # the buy that timed out, then the stop; never a second buy
    assert len(fake.placed(side="BUY")) == 1
    position = Position.objects.get(strategy=strategy)
    [buy] = fake.placed(side="BUY")
    assert Order.objects.get(purpose="entry").exchange_order_id == buy.order_id
    assert position.entry_price == Decimal("105")


def test_a_partial_fill_opens_the_filled_part_and_cancels_the_rest(
    exchange_id: str, fake: FakeBinance | FakeBybit
) -> None:
    strategy = strategy_on(exchange_id)
    fake.fill_ratio = Decimal("0.4")

    open_entry(strategy)

    [buy] = fake.placed(side="BUY")
    assert Decimal(0) < buy.executed < buy.quantity
    assert buy.status in (
        "EXPIRED",
        "CANCELED",
    )  # binance expires a market order's rest; on bybit we cancel it
    entry = Order.objects.get(purpose="entry")
    assert entry.filled_quantity == buy.executed
    assert entry.status in (Order.Status.EXPIRED, Order.Status.CANCELED)
    position = Position.objects.get(strategy=strategy)
    assert position.quantity == buy.executed - buy.fee
    [stop] = fake.placed(type_="STOP_LOSS")
    assert stop.quantity <= position.quantity


def test_an_order_that_fills_nothing_opens_no_position(mock: responses.RequestsMock) -> None:
    fake = FakeBinance(mock)
    strategy = strategy_on("binance")
    fake.fill_ratio = Decimal(0)

    summary = open_entry(strategy)

    assert summary["results"][0]["action"] == "none"
    assert "filled nothing" in summary["results"][0]["reason"]
    assert not Position.objects.exists()
    assert HistoryKind.ORDER_CANCELED in kinds(strategy)


# -- kill switch ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("switch", ["global", "strategy"])
def test_the_kill_switch_stops_entries_while_exits_still_run(
    exchange_id: str, fake: FakeBinance | FakeBybit, settings: Settings, switch: str
) -> None:
    strategy = strategy_on(exchange_id, exit=ALWAYS)
    open_entry(strategy)
    position = Position.objects.get(strategy=strategy)
    if switch == "global":
        settings.BARTER_TRADING_ENABLED = False
    else:
        Strategy.objects.filter(pk=strategy.pk).update(trading_enabled=False)
    for day in (11, 12):  # above the stop: only the signal exits
        daily(position.instrument, date(2024, 1, day), low="100")
    creates_before = fake.creates

    with time_machine.travel(NEXT_DAY, tick=False):
        closed = sync_close_positions(as_of=date(2024, 1, 12))
    with time_machine.travel(NEXT_DAY + timedelta(days=1), tick=False):
        opened = sync_new_trades(as_of=date(2024, 1, 13))

    assert closed["results"][0]["action"] == "closed"  # the exit signal still sells
    position.refresh_from_db()
    assert (position.status, position.exit_reason) == ("closed", "signal")
    assert fake.placed(side="SELL", type_="MARKET")
    # The engine wants to enter again on the 13th; nothing is bought, and History says why.
    assert len(fake.placed(side="BUY")) == 1
    assert fake.creates == creates_before + 1  # the market sell only
    assert opened["results"][0]["action"] == "none"
    assert "switched off" in opened["results"][0]["reason"]
    refused = History.objects.get(strategy=strategy, kind=HistoryKind.ENTRY_REFUSED)
    assert ("BARTER_TRADING_ENABLED" if switch == "global" else "trading_enabled") in refused.message


# -- reconciliation -------------------------------------------------------------------------------------------


def test_a_stop_that_filled_overnight_closes_the_position_as_stop_loss(
    exchange_id: str, fake: FakeBinance | FakeBybit
) -> None:
    strategy = strategy_on(exchange_id)
    open_entry(strategy)
    position = Position.objects.get(strategy=strategy)
    filled_at = datetime(2024, 1, 11, 17, 5, tzinfo=UTC)
    fake.move("93.1", at_ms=int(filled_at.timestamp() * 1000))  # trades through the stop at 94.5
    daily(position.instrument, date(2024, 1, 11), low="93")
    creates_before = fake.creates

    with time_machine.travel(NEXT_DAY, tick=False):
        sync_close_positions(as_of=date(2024, 1, 12))

    position.refresh_from_db()
    assert (position.status, position.exit_reason) == ("closed", "stop_loss")
    assert position.exit_price == Decimal("93.1")  # the exchange's fill, not the engine's level 94.5
    assert position.exit_at == filled_at
    proceeds = position.quantity.quantize(Decimal("1e-5")) if exchange_id == "binance" else position.quantity
    assert position.exit_fee is not None
    assert position.exit_fee > 0 and position.pnl is not None and position.pnl < 0
    assert proceeds > 0
    assert fake.creates == creates_before  # Barter sent no sell of its own
    stop = Order.objects.get(purpose="protection")
    assert stop.status == Order.Status.FILLED
    assert HistoryKind.RECONCILED in kinds(strategy)
    closed = History.objects.get(strategy=strategy, kind=HistoryKind.POSITION_CLOSED)
    assert closed.payload["exit_reason"] == "stop_loss"


def test_a_stop_filled_overnight_is_taken_up_before_the_entries_and_paper_does_the_same(
    exchange_id: str,
    fake: FakeBinance | FakeBybit,
    mock: responses.RequestsMock,
    fake_coingecko: FakeCoinGecko,
) -> None:
    """Issue 13, item 1: the stop fills on the exchange during candle 2024-01-11; the open step of 01-12 takes the
    fill up first (its reconcile phase) and enters again at once, as its entry signal on 01-11 asks. A paper twin of
    the strategy, whose stop rests as a paper order, makes the same positions (at the engine's stop level)."""
    strategy = strategy_on(exchange_id)
    paper = Strategy.objects.create(
        name="paper twin",
        criteria=strategy.criteria,
        is_enabled=True,
        starting_cash=strategy.starting_cash,
    )
    paper.instruments.set(strategy.instruments.all())
    mock.add_passthru(fake_coingecko.base_url)  # the paper twin's prices come from the local fake CoinGecko
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 105}}))
    open_entry(strategy)
    fake.move("93.1", at_ms=int(datetime(2024, 1, 11, 17, 5, tzinfo=UTC).timestamp() * 1000))
    daily(strategy.instruments.get(), date(2024, 1, 11), low="93")
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 93.1}}))
    fake.time_ms = int(NEXT_DAY.timestamp() * 1000)

    with time_machine.travel(NEXT_DAY, tick=False):
        summary = sync_new_trades(as_of=date(2024, 1, 12))

    assert ("live-" + exchange_id, "bitcoin", "opened") in [
        (r["strategy"], r["instrument"], r["action"]) for r in summary["results"]
    ]
    for account in (strategy, paper):
        stopped, again = Position.objects.filter(strategy=account).order_by("entry_at")
        assert (stopped.status, stopped.exit_reason) == ("closed", "stop_loss"), account.name
        assert stopped.entry_at.date() == date(2024, 1, 11) and stopped.exit_at is not None
        assert stopped.exit_at.date() == date(2024, 1, 11)
        assert again.status == "open" and again.entry_at.date() == date(2024, 1, 12), account.name
    exchange_stop = Position.objects.filter(strategy=strategy).order_by("entry_at").first()
    paper_stop = Position.objects.filter(strategy=paper).order_by("entry_at").first()
    assert exchange_stop is not None and paper_stop is not None
    assert exchange_stop.exit_price == Decimal("93.1")  # the exchange's fill
    assert paper_stop.exit_price == Decimal("94.5")  # the engine's level: 105 * 0.9
    assert Order.objects.filter(position=paper_stop, type="stop_loss", status="filled").count() == 1


def test_a_take_profit_crossed_during_the_last_candle_is_sold_before_the_entries(
    exchange_id: str, fake: FakeBinance | FakeBybit
) -> None:
    """A take-profit does not rest on the exchange: the open step of 01-12 sells it at the market in its reconcile
    phase (the stop cancelled first), then enters again, as the entry signal on 01-11 asks (CRITERIA.md's order)."""
    strategy = strategy_on(exchange_id, take_profit_ratio=0.04)
    open_entry(strategy)  # bought at 105: stop 94.5 resting, take-profit 109.2 not
    daily(strategy.instruments.get(), date(2024, 1, 11), h="112", low="100")
    fake.time_ms = int(NEXT_DAY.timestamp() * 1000)

    with time_machine.travel(NEXT_DAY, tick=False):
        summary = sync_new_trades(as_of=date(2024, 1, 12))

    lines = [(r["instrument"], r["action"], r["reason"]) for r in summary["results"]]
    assert lines == [("bitcoin", "closed", "take_profit"), ("bitcoin", "opened", "entry signal")]
    first, again = Position.objects.filter(strategy=strategy).order_by("entry_at")
    assert (first.status, first.exit_reason, first.exit_price) == ("closed", "take_profit", Decimal(105))
    assert again.status == "open" and again.entry_at == NEXT_DAY
    stops = Order.objects.filter(purpose="protection").order_by("id")
    assert [o.status for o in stops] == ["canceled", "open"]  # the old stop cancelled, the new one resting
    [sell] = Order.objects.filter(purpose="exit")
    assert sell.exit_reason == "take_profit" and sell.as_of == date(2024, 1, 12)


def test_an_entry_accepted_before_a_crash_is_taken_up_by_the_next_run(mock: responses.RequestsMock) -> None:
    fake = FakeBinance(mock)
    strategy = strategy_on("binance")
    instrument = strategy.instruments.get()
    cid = client_order_id(strategy_id=strategy.pk, instrument_id=instrument.pk, as_of=AS_OF, purpose="entry")
    # The run wrote its order and the exchange filled it, but the process died before the position was saved.
    Order.objects.create(
        strategy=strategy, instrument=instrument, as_of=AS_OF, side="buy", purpose="entry",
        quantity=Decimal("2"), price=Decimal("105"), exchange_id="binance", market_symbol="BTC/USDT",
        client_order_id=cid,
    )  # fmt: skip
    fake._place(client_id=cid, side="BUY", type_="MARKET", quantity=Decimal("2"), stop=None)

    with time_machine.travel(NOW, tick=False):
        sync_close_positions(as_of=AS_OF)

    position = Position.objects.get(strategy=strategy)
    assert position.quantity == Decimal("2") - Decimal("0.002")
    assert position.entry_price == Decimal("105") and position.entry_fee == Decimal("0.21")  # 0.002 BTC * 105
    assert len(fake.placed(side="BUY")) == 1
    assert Order.objects.get(client_order_id=cid).position == position


# -- protection -----------------------------------------------------------------------------------------------


def test_the_stop_is_replaced_when_the_trailing_level_moves(mock: responses.RequestsMock) -> None:
    fake = FakeBinance(mock)
    strategy = strategy_on("binance", stop_loss_ratio=None, trailing_stop_ratio=0.1)
    open_entry(strategy)
    [first] = fake.placed(type_="STOP_LOSS")
    assert first.stop_price == Decimal("94.5")  # 105 * 0.9
    daily(strategy.instruments.get(), date(2024, 1, 11), o="105", h="120", low="100", c="115")
    fake.prices["BTCUSDT"] = Decimal("115")

    with time_machine.travel(NEXT_DAY, tick=False):
        sync_close_positions(as_of=date(2024, 1, 12))

    position = Position.objects.get(strategy=strategy)
    assert position.status == "open" and position.trailing_stop_price == Decimal("108")  # 120 * 0.9
    first_now, second = fake.placed(type_="STOP_LOSS")
    assert first_now.status == "CANCELED"
    assert second.stop_price == Decimal("108") and second.status == "NEW"
    assert position.protection == Position.Protection.PROTECTED
    live = Order.objects.live().get(purpose="protection")
    assert (
        live.price == Decimal("108") and "-240112-sl-" in live.client_order_id
    )  # the new stop has its own id
    assert live.client_order_id == second.client_id != first_now.client_id


def test_a_signal_exit_cancels_the_stop_before_selling(
    exchange_id: str, fake: FakeBinance | FakeBybit
) -> None:
    strategy = strategy_on(exchange_id, exit=ALWAYS)
    open_entry(strategy)
    daily(strategy.instruments.get(), date(2024, 1, 11), low="100")  # above the stop: only the signal exits

    with time_machine.travel(NEXT_DAY, tick=False):
        sync_close_positions(as_of=date(2024, 1, 12))

    [stop] = fake.placed(type_="STOP_LOSS")
    assert stop.status == "CANCELED" and stop.executed == 0
    [sell] = fake.placed(side="SELL", type_="MARKET")
    position = Position.objects.get(strategy=strategy)
    assert (position.status, position.exit_reason, position.exit_price) == (
        "closed",
        "signal",
        Decimal("105"),
    )
    assert position.exit_fee == sell.fee  # in USDT
    # pnl = 105 * q - exit_fee - (105 * q + entry_fee) = -(exit_fee + entry_fee)
    assert position.pnl == -(position.exit_fee + position.entry_fee)
    assert Order.objects.get(purpose="protection").status == Order.Status.CANCELED


def test_a_market_without_stop_orders_leaves_the_position_unprotected(
    mock: responses.RequestsMock, client: Client, django_user_model: type[User]
) -> None:
    fake = FakeBinance(mock, stop_loss=False)
    strategy = strategy_on("binance")

    open_entry(strategy)

    position = Position.objects.get(strategy=strategy)
    assert position.protection == Position.Protection.UNPROTECTED
    assert not fake.placed(type_="STOP_LOSS")
    assert History.objects.filter(kind=HistoryKind.ORDER_REJECTED, message__contains="unprotected").exists()
    client.force_login(django_user_model.objects.create_superuser("boss", password="unused-password-123"))
    dashboard = client.get("/").content.decode()
    assert 'data-field="protection"><span class="badge failed">unprotected</span>' in dashboard


# -- ids, keys, pages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({"strategy_id": 12, "instrument_id": 3, "as_of": date(2024, 1, 11), "purpose": "entry"}, "bt-c-3-240111-en"),
        (
            {"strategy_id": 1, "instrument_id": 2, "as_of": date(2024, 1, 11), "purpose": "protection",
             "position_id": 71, "sequence": 2},
            "bt-1-2-240111-sl-1z-2",
        ),
    ],
)  # fmt: skip
def test_client_order_ids_are_deterministic_and_fit_both_exchanges(ids: OrderIdParts, expected: str) -> None:
    assert client_order_id(**ids) == expected == client_order_id(**ids)


def test_client_order_ids_of_huge_ids_are_hashed_to_36_characters() -> None:
    big: OrderIdKeys = {
        "strategy_id": 10**15,
        "instrument_id": 10**15,
        "as_of": date(2024, 1, 11),
        "purpose": "exit",
    }
    text = client_order_id(**big, position_id=10**15, sequence=10**6)
    assert len(text) == CLIENT_ORDER_ID_MAX_LENGTH and re.fullmatch(r"[a-z0-9-]+", text)
    assert text != client_order_id(**big, position_id=10**15, sequence=10**6 + 1)


def test_keys_never_reach_logs_history_or_the_admin(
    mock: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
    client: Client,
    django_user_model: type[User],
) -> None:
    fake = FakeBinance(mock)
    strategy = strategy_on("binance")
    fake.timeouts = 1  # the warning path logs too
    caplog.set_level(logging.DEBUG)

    open_entry(strategy)

    signed = [r for r in fake.requests if "/account" in (r.url or "")]
    assert signed and all(
        r.headers.get("X-MBX-APIKEY") == DUMMY_KEY for r in signed
    )  # the key was really used
    stored = json.dumps(list(History.objects.values("message", "payload")), default=str)
    stored += json.dumps(list(Order.objects.values("raw", "error")), default=str)
    client.force_login(django_user_model.objects.create_superuser("boss", password="unused-password-123"))
    pages = [
        client.get("/admin/positions/order/").content.decode(),
        client.get(f"/admin/positions/order/{Order.objects.first().pk}/change/").content.decode(),  # type: ignore[union-attr]
        client.get("/").content.decode(),
    ]
    for text in [caplog.text, stored, *pages]:
        assert DUMMY_KEY not in text and DUMMY_SECRET not in text
    stop = Order.objects.get(purpose="protection")
    # the order list shows the orders (the client order id is a search there, not a column: the list fits 1,400 px)
    assert f"/admin/positions/order/{stop.pk}/change/" in pages[0]
    # The dashboard lists the live stop among the open orders and shows the position protected.
    assert f'<tr data-order="{stop.pk}">' in pages[2] and stop.client_order_id in pages[2]
    assert 'data-field="protection"><span class="badge on">stop on exchange' in pages[2]
    position_page = client.get(f"/admin/positions/position/{stop.position_id}/change/").content.decode()
    assert (
        "protected (stop-loss order on the exchange)" in position_page
        and stop.client_order_id in position_page
    )


def test_closing_by_hand_cancels_the_stop_and_sells_on_the_exchange(mock: responses.RequestsMock) -> None:
    fake = FakeBinance(mock)
    strategy = strategy_on("binance")
    open_entry(strategy)
    position = Position.objects.get(strategy=strategy)
    fake.prices["BTCUSDT"] = Decimal("110")

    with time_machine.travel(NEXT_DAY, tick=False):
        closed = position_close_manual(position=position)

    [stop] = fake.placed(type_="STOP_LOSS")
    [sell] = fake.placed(side="SELL", type_="MARKET")
    assert stop.status == "CANCELED" and sell.executed == sell.quantity
    assert (closed.status, closed.exit_reason, closed.exit_price) == ("closed", "manual", Decimal("110"))
    assert closed.pnl is not None and closed.pnl > 0


class Killed(BaseException):
    """Stands for the process being killed: not an ``Exception``, so no handler of the step records it."""


def test_an_entry_written_but_not_sent_before_a_crash_is_sent_by_the_retried_open_after_the_close(
    mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 11, item 2: the open step committed its order and the day's claim, then died before sending; the close
    # step ran (it must leave the order for the open step), then the retried open sends it: one buy, not zero.
    fake = FakeBinance(mock)
    strategy = strategy_on("binance")
    from positions.cycle import open as open_step
    from positions.execution.trades import entry_execute as real_execute  # what open_step calls

    def killed(*args: Any, **kwargs: Any) -> NoReturn:
        raise Killed

    monkeypatch.setattr(open_step, "entry_execute", killed)
    with time_machine.travel(NOW, tick=False), pytest.raises(Killed):
        sync_new_trades(as_of=AS_OF)
    monkeypatch.setattr(open_step, "entry_execute", real_execute)
    order = Order.objects.get(purpose="entry")
    assert order.status == "new" and not fake.placed(side="BUY")

    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        sync_close_positions(as_of=AS_OF)
    order.refresh_from_db()
    assert order.status == "new"  # not expired: it is the day's entry, the open step sends it

    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        retried = sync_new_trades(as_of=AS_OF)
        again = sync_new_trades(as_of=AS_OF)

    assert len(fake.placed(side="BUY")) == 1
    position = Position.objects.get(strategy=strategy)
    assert position.status == "open" and position.entry_price == Decimal("105")
    assert Order.objects.get(purpose="entry").position == position
    assert [line["action"] for line in retried["results"] + again["results"]] == ["skipped", "skipped"]
    assert History.objects.filter(kind=HistoryKind.POSITION_OPENED, position=position).count() == 1


def test_an_entry_not_sent_before_a_crash_expires_when_the_kill_switch_is_on(
    mock: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    fake = FakeBinance(mock)
    strategy_on("binance")
    from positions.cycle import open as open_step
    from positions.execution.trades import entry_execute as real_execute  # what open_step calls

    def killed(*args: Any, **kwargs: Any) -> NoReturn:
        raise Killed

    monkeypatch.setattr(open_step, "entry_execute", killed)
    with time_machine.travel(NOW, tick=False), pytest.raises(Killed):
        sync_new_trades(as_of=AS_OF)
    monkeypatch.setattr(open_step, "entry_execute", real_execute)
    settings.BARTER_TRADING_ENABLED = False

    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        sync_new_trades(as_of=AS_OF)

    order = Order.objects.get(purpose="entry")
    assert order.status == "expired" and "BARTER_TRADING_ENABLED=false" in order.error
    assert not fake.placed(side="BUY") and not Position.objects.exists()
