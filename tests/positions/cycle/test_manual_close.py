"""Closing a position by hand (the admin's "close now"): the price before the row lock, and a run always finished.

Issue 11, item 10: the manual close asked CoinGecko for a price while holding the position's row lock; item 7: a
manual close that raised after ``run_started`` left its run unfinished for ever.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import DatabaseError, connection, connections, transaction
from pytest_django import Settings

from barter_site.errors import ApplicationError
from instruments.models import Instrument, InstrumentOHLC
from positions.cycle import manual
from positions.cycle.manual import PositionNotOpenError, position_close_manual
from positions.execution.paper import PaperBroker
from positions.models import Position
from runs.models import History
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.instruments.factories import InstrumentFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime(2024, 1, 11, 12, 0, tzinfo=UTC)
CRITERIA = {
    "version": 1,
    "side": "long",
    "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
    "fee_rate": 0.0,
    "slippage_ratio": 0.0,
}


def held(*, backend: str = "paper", candles: bool = True) -> Position:
    """An open position of 2 BTC bought at 100 on 2024-01-09 (candles 2024-01-01 .. 2024-01-10 when asked)."""
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    if candles:
        for n in range(10):
            InstrumentOHLC.objects.create(
                instrument=bitcoin,
                timeframe="1d",
                open_time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n),
                open=Decimal(100),
                high=Decimal(105),
                low=Decimal(95),
                close=Decimal(100),
                source="test",
            )
    strategy = Strategy.objects.create(
        name=f"by hand {backend}",
        criteria=CRITERIA,
        execution_backend=backend,
        exchange_id="binance" if backend == "exchange" else "",
    )
    strategy.instruments.set([bitcoin])
    return Position.objects.create(
        strategy=strategy,
        instrument=bitcoin,
        side="long",
        quantity=Decimal(2),
        entry_price=Decimal(100),
        entry_at=datetime(2024, 1, 9, 0, 40, tzinfo=UTC),
        entry_fee=Decimal(0),
    )


def run_rows() -> list[tuple[str, str, str]]:
    return list(History.objects.order_by("created_at", "id").values_list("kind", "status", "message"))


@time_machine.travel(NOW, tick=False)
def test_the_price_is_asked_for_before_the_position_is_locked(
    fake_coingecko: FakeCoinGecko, monkeypatch: pytest.MonkeyPatch, on_postgres: bool
) -> None:
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 120}}))
    position = held()
    real_quotes = PaperBroker.quotes
    seen: dict[str, Any] = {}

    def quotes(self: PaperBroker, instruments: list[Instrument], **kwargs: Any) -> Any:
        seen["in_transaction"] = connection.in_atomic_block
        if on_postgres:
            # Another session must be able to lock the row at once while the price is being fetched.
            def lock_elsewhere() -> None:
                try:
                    with transaction.atomic():
                        Position.objects.select_for_update(nowait=True).get(pk=position.pk)
                    seen["locked_elsewhere"] = True
                except DatabaseError as exc:
                    seen["locked_elsewhere"] = f"row locked during the price call: {exc}"
                finally:
                    connections.close_all()

            thread = threading.Thread(target=lock_elsewhere)
            thread.start()
            thread.join(timeout=30)
        return real_quotes(self, instruments, **kwargs)

    monkeypatch.setattr(PaperBroker, "quotes", quotes)

    closed = position_close_manual(position=position)

    assert seen["in_transaction"] is False
    if on_postgres:
        assert seen["locked_elsewhere"] is True
    assert (closed.status, closed.exit_reason, closed.exit_price) == ("closed", "manual", Decimal(120))
    assert [row[:2] for row in run_rows()] == [
        ("run_started", ""),
        ("signal", ""),
        ("order", ""),
        ("fill", ""),
        ("position_closed", ""),
        ("run_finished", "ok"),
    ]


@time_machine.travel(NOW, tick=False)
def test_a_position_closed_while_the_price_was_fetched_is_refused_and_the_run_finished(
    fake_coingecko: FakeCoinGecko, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 120}}))
    position = held()
    real_quotes = PaperBroker.quotes

    def quotes(self: PaperBroker, instruments: list[Instrument], **kwargs: Any) -> Any:
        position_close_manual(
            position=Position.objects.get(pk=position.pk), price=Decimal(110)
        )  # someone else
        return real_quotes(self, instruments, **kwargs)

    monkeypatch.setattr(PaperBroker, "quotes", quotes)

    with pytest.raises(PositionNotOpenError, match="already closed"):
        position_close_manual(position=position)

    position.refresh_from_db()
    assert position.exit_price == Decimal(110)  # the other close stands; nothing was closed twice
    finished = History.objects.filter(kind="run_finished").order_by("created_at", "id")
    assert [row.status for row in finished] == ["ok", "failed"]
    assert "already closed" in finished[1].payload["errors"][0]["message"]


@time_machine.travel(NOW, tick=False)
def test_no_price_finishes_the_run_as_failed(fake_coingecko: FakeCoinGecko) -> None:
    position = held(candles=False)  # CoinGecko answers 404 and there is no candle to fall back on

    with pytest.raises(ApplicationError, match="no price for BTC"):
        position_close_manual(position=position)

    rows = run_rows()
    assert [row[:2] for row in rows] == [("run_started", ""), ("error", ""), ("run_finished", "failed")]
    finished = History.objects.get(kind="run_finished")
    assert finished.payload["results"] == [
        {"position_id": position.pk, "error": f"no price for BTC to close position {position.pk} at"}
    ]
    position.refresh_from_db()
    assert position.status == "open"


@time_machine.travel(NOW, tick=False)
def test_an_unexpected_error_finishes_the_run_as_failed_and_closes_nothing(
    fake_coingecko: FakeCoinGecko, monkeypatch: pytest.MonkeyPatch
) -> None:
    position = held()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("engine fell over")

    monkeypatch.setattr(manual, "trade_close_at", broken)

    with pytest.raises(RuntimeError):
        position_close_manual(position=position, price=Decimal(110))

    finished = History.objects.get(kind="run_finished")
    assert finished.status == "failed"
    assert finished.payload["errors"][0]["message"] == "internal error RuntimeError: engine fell over"
    position.refresh_from_db()
    assert position.status == "open"


@time_machine.travel(NOW, tick=False)
def test_an_exchange_close_that_raises_before_sending_finishes_the_run(settings: Settings) -> None:
    # The instrument has no market symbol, so the exchange strategy cannot sell it: refused before any order.
    settings.BARTER_TRADING_ENABLED = True
    position = held(backend="exchange")

    with pytest.raises(ApplicationError, match="has no market_symbol"):
        position_close_manual(position=position)

    assert [row[:2] for row in run_rows()] == [("run_started", ""), ("error", ""), ("run_finished", "failed")]
    position.refresh_from_db()
    assert position.status == "open"
