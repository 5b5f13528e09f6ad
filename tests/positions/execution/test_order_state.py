"""``order_state``: ccxt's unified order structure (shapes as ccxt 4.5 returns them for binance spot) into our
order state: fees kept per currency, a third currency's fee (BNB) never added to quote amounts, and fills
without timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from positions.execution.fills import _fee_in_quote
from positions.execution.order_state import order_apply, order_state
from positions.models import Order

# 2024-01-11T00:40:01.234Z
FILLED_AT_MS = 1704933601234


def binance_market_buy(
    *, fees: list[dict[str, Any]] | None, fee: dict[str, Any] | None = None
) -> dict[str, Any]:
    """ccxt's parse of binance's POST /api/v3/order (newOrderRespType FULL) for a filled market buy of 0.1 BTC."""
    return {
        "info": {
            "symbol": "BTCUSDT",
            "orderId": "28457",
            "clientOrderId": "bt-1-1-240111-en",
            "transactTime": str(FILLED_AT_MS),
            "status": "FILLED",
            "type": "MARKET",
            "side": "BUY",
            "executedQty": "0.10000000",
            "cummulativeQuoteQty": "4200.00000000",
        },
        "id": "28457",
        "clientOrderId": "bt-1-1-240111-en",
        "timestamp": FILLED_AT_MS,
        "datetime": "2024-01-11T00:40:01.234Z",
        "lastTradeTimestamp": FILLED_AT_MS,
        "symbol": "BTC/USDT",
        "type": "market",
        "side": "buy",
        "price": 42000.0,
        "amount": 0.1,
        "cost": 4200.0,
        "average": 42000.0,
        "filled": 0.1,
        "remaining": 0.0,
        "status": "closed",
        "fee": fee,
        "fees": fees if fees is not None else [],
        "trades": [],
    }


def test_a_fee_in_a_third_currency_is_kept_apart_from_the_quote_fee() -> None:
    # One fill paid 3.15 USDT, another 0.00031 BNB (binance's BNB discount on part of the order).
    data = binance_market_buy(
        fees=[{"cost": 3.15, "currency": "USDT"}, {"cost": 0.00031, "currency": "BNB"}],
    )
    state = order_state(data, base="BTC", quote="USDT")
    assert (state.fee, state.fee_currency) == (Decimal("3.15"), "USDT")  # not 3.15031
    assert state.other_fees == {"BNB": Decimal("0.00031")}
    assert state.filled_quantity == Decimal("0.1")  # nothing taken from what was bought


def test_a_fee_paid_only_in_bnb_changes_no_amount() -> None:
    state = order_state(
        binance_market_buy(fees=[{"cost": 0.00042, "currency": "BNB"}]), base="BTC", quote="USDT"
    )
    assert (state.fee, state.fee_currency) == (Decimal(0), "")
    assert state.other_fees == {"BNB": Decimal("0.00042")}
    order = Order(quantity=Decimal("0.1"), fee=Decimal(0))
    order_apply(order, state)
    assert (order.fee, order.fee_currency, order.other_fees) == (Decimal(0), "", {"BNB": "0.00042"})
    # The position's fee in quote currency counts only what was paid in quote or base.
    assert _fee_in_quote(order, "BTC", "USDT", Decimal(42000)) == Decimal(0)


def test_fees_in_the_base_and_a_third_currency_take_only_the_base_fee_from_the_amount() -> None:
    data = binance_market_buy(fees=[{"cost": 0.0001, "currency": "BTC"}, {"cost": 0.0002, "currency": "BNB"}])
    state = order_state(data, base="BTC", quote="USDT")
    assert (state.fee, state.fee_currency, state.other_fees) == (
        Decimal("0.0001"),
        "BTC",
        {"BNB": Decimal("0.0002")},
    )
    order = Order(quantity=Decimal("0.1"))
    order_apply(order, state)
    # 0.0001 BTC at 42,000 = 4.2 USDT; the BNB is not priced in
    assert _fee_in_quote(order, "BTC", "USDT", Decimal(42000)) == Decimal("4.2")


def test_several_fee_currencies_without_the_market_are_not_summed() -> None:
    data = binance_market_buy(fees=[{"cost": 3.15, "currency": "USDT"}, {"cost": 0.00031, "currency": "BNB"}])
    state = order_state(data)
    assert (state.fee, state.fee_currency) == (Decimal(0), "")
    assert state.other_fees == {"USDT": Decimal("3.15"), "BNB": Decimal("0.00031")}


def test_the_fees_of_one_currency_are_summed_and_a_fee_without_currency_is_the_quotes() -> None:
    data = binance_market_buy(fees=[{"cost": 1.5, "currency": "USDT"}, {"cost": 1.65, "currency": None}])
    state = order_state(data, base="BTC", quote="USDT")
    assert (state.fee, state.fee_currency, state.other_fees) == (Decimal("3.15"), "USDT", {})


def test_fees_from_the_trades_are_kept_per_currency() -> None:
    trades = [
        {
            "id": "1",
            "order": "28457",
            "timestamp": FILLED_AT_MS - 5,
            "fee": {"cost": 0.0002, "currency": "BNB"},
        },
        {"id": "2", "order": "28457", "timestamp": FILLED_AT_MS, "fee": {"cost": 2.1, "currency": "USDT"}},
    ]
    state = order_state(binance_market_buy(fees=[]), trades=trades, base="BTC", quote="USDT")
    assert (state.fee, state.fee_currency, state.other_fees) == (
        Decimal("2.1"),
        "USDT",
        {"BNB": Decimal("0.0002")},
    )
    assert state.filled_at == datetime(2024, 1, 11, 0, 40, 1, 234000, tzinfo=UTC)


@pytest.mark.parametrize("timestamp", [None, 0])
def test_trades_without_timestamps_keep_the_orders_own_time(timestamp: int | None) -> None:
    # fetch_my_trades of some exchanges gives fills without a time: max() over nothing used to raise.
    trades = [{"id": "1", "order": "28457", "timestamp": timestamp, "fee": {"cost": 4.2, "currency": "USDT"}}]
    state = order_state(binance_market_buy(fees=[]), trades=trades, base="BTC", quote="USDT")
    assert state.filled_at == datetime(2024, 1, 11, 0, 40, 1, 234000, tzinfo=UTC)
    assert (state.fee, state.fee_currency) == (Decimal("4.2"), "USDT")


def test_an_order_that_never_filled_has_no_fill_time_nor_fees() -> None:
    data = {**binance_market_buy(fees=[]), "filled": 0.0, "status": "canceled", "average": None}
    state = order_state(data, base="BTC", quote="USDT")
    assert (state.filled_at, state.average_price, state.fee, state.other_fees) == (None, None, Decimal(0), {})
    assert state.status == Order.Status.CANCELED
