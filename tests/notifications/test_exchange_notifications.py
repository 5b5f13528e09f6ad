"""The exchange's stops told as they happen: placed, moved with the trailing level, filled overnight, and a market
that takes no stop order (the position left unprotected); on the fake exchanges of the execution tests, the
messages delivered to a local webhook server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import responses
import time_machine
from pytest_django import Settings

from positions.cycle.close import sync_close_positions
from positions.models import Position
from tests.fakes.exchange_orders import FakeBinance
from tests.fakes.notify_servers import Webhook
from tests.notifications.conftest import settle, webhook_url
from tests.positions.execution.test_exchange_execution import (
    NEXT_DAY,
    daily,
    dummy_keys,  # noqa: F401 - the execution tests' dummy exchange keys, autouse here too
    open_entry,
    strategy_on,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """The exchange's HTTP answered by the fakes; the local webhook server reached for real."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru("http://127.0.0.1")
        yield rsps


@pytest.fixture
def told(fast: Settings, webhook: tuple[Webhook, int]) -> Webhook:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    return state


def _titles(state: Webhook) -> list[str]:
    settle()
    return [body["title"] for _, body, _ in state.received]


def test_a_stop_placed_then_moved_with_the_trailing_level(
    mock: responses.RequestsMock, told: Webhook
) -> None:
    fake = FakeBinance(mock)
    strategy = strategy_on("binance", stop_loss_ratio=None, trailing_stop_ratio=0.1)

    open_entry(strategy)

    assert sorted(_titles(told)) == [
        "Opened long live-binance BTC at 105.00",
        "Stop-loss placed: live-binance BTC",
    ]
    placed = next(
        body["message"] for _, body, _ in told.received if body["title"].startswith("Stop-loss placed")
    )
    assert "on binance: sell" in placed and "at stop 94.5" in placed
    daily(strategy.instruments.get(), date(2024, 1, 11), o="105", h="120", low="100", c="115")
    fake.prices["BTCUSDT"] = Decimal("115")

    with time_machine.travel(NEXT_DAY, tick=False):
        sync_close_positions(as_of=date(2024, 1, 12))

    settle()
    moved = [body for _, body, _ in told.received if body["title"] == "Stop-loss moved: live-binance BTC"]
    assert len(moved) == 1 and "at stop 108" in moved[0]["message"]


def test_a_stop_filled_overnight_is_told_and_so_is_the_close(
    mock: responses.RequestsMock, told: Webhook
) -> None:
    fake = FakeBinance(mock)
    strategy = strategy_on("binance")
    open_entry(strategy)
    position = Position.objects.get(strategy=strategy)
    fake.move("93.1", at_ms=int(datetime(2024, 1, 11, 17, 5, tzinfo=UTC).timestamp() * 1000))
    daily(position.instrument, date(2024, 1, 11), low="93")

    with time_machine.travel(NEXT_DAY, tick=False):
        sync_close_positions(as_of=date(2024, 1, 12))

    position.refresh_from_db()
    titles = _titles(told)
    assert "Stop-loss filled: live-binance BTC" in titles
    closed = f"Closed live-binance BTC (stop loss): P&L {position.pnl:+,.2f} ({position.pnl_ratio:+.2%})"
    assert closed in titles


def test_a_market_without_stop_orders_tells_the_position_is_unprotected(
    mock: responses.RequestsMock, told: Webhook
) -> None:
    FakeBinance(mock, stop_loss=False)
    strategy = strategy_on("binance")

    open_entry(strategy)

    titles = _titles(told)
    assert "Unprotected: live-binance BTC has no stop-loss on the exchange" in titles
    assert not any(title.startswith("Stop-loss placed") for title in titles)
