"""Orders as the exchanges know them: the deterministic client order id of each order (:func:`client_order_id`),
and ccxt's unified order structure parsed into :class:`OrderState` (:func:`order_state`) and written onto our
:class:`~trading.models.Order` row (:func:`order_apply`: status, fills, average price, fees, the raw answer).

Facts from ccxt 4.5.90 (``binance.py``, ``bybit.py``): binance and bybit allow client order ids of at most 36
characters of letters, digits, ``-`` and ``_``; bybit's ``PartiallyFilledCanceled`` is ccxt ``closed``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from instruments.precision import decimal_quantize
from positions.models import Order

#: The longest client order id binance (newClientOrderId) and bybit (orderLinkId) accept.
CLIENT_ORDER_ID_MAX_LENGTH = 36

_PURPOSE_CODE: dict[str, str] = {
    Order.Purpose.ENTRY: "en",
    Order.Purpose.EXIT: "ex",
    Order.Purpose.PROTECTION: "sl",
}
_DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"

#: ccxt's unified order status -> ours (``open`` with a fill becomes ``partially_filled``).
_STATUS = {
    "open": Order.Status.OPEN,
    "closed": Order.Status.FILLED,
    "canceled": Order.Status.CANCELED,
    "cancelled": Order.Status.CANCELED,
    "expired": Order.Status.EXPIRED,
    "rejected": Order.Status.REJECTED,
}


def _base36(number: int) -> str:
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS36[digit] + text
        if number == 0:
            return text


def client_order_id(
    *,
    strategy_id: int,
    instrument_id: int,
    as_of: date,
    purpose: str,
    position_id: int | None = None,
    sequence: int = 0,
) -> str:
    """Return the client order id of one order: the same inputs always give the same id.

    ``bt-<strategy>-<instrument>-<yymmdd>-<en|ex|sl>[-<position>][-<sequence>]`` with the ids in base 36, e.g.
    ``bt-c-3-240111-en``; when that would exceed 36 characters, ``bt-`` and 33 hex digits of its SHA-256.

    Args:
        strategy_id, instrument_id: primary keys.
        as_of: the run's day.
        purpose: ``entry``, ``exit`` or ``protection``.
        position_id: the position an exit or a stop belongs to.
        sequence: the how-many-th stop of the position on that day (a trailing stop replaced), from 0.

    Returns:
        At most 36 characters of ``[a-z0-9-]``, which binance and bybit accept.
    """
    parts = [
        "bt",
        _base36(strategy_id),
        _base36(instrument_id),
        as_of.strftime("%y%m%d"),
        _PURPOSE_CODE[purpose],
    ]
    if position_id is not None:
        parts.append(_base36(position_id))
    if sequence:
        parts.append(_base36(sequence))
    text = "-".join(parts)
    if len(text) <= CLIENT_ORDER_ID_MAX_LENGTH:
        return text
    return "bt-" + hashlib.sha256(text.encode()).hexdigest()[: CLIENT_ORDER_ID_MAX_LENGTH - 3]


def ccxt_decimal(value: Any) -> Decimal | None:
    """A ccxt number (float, or string from ``info``) as a Decimal via its shortest text; None stays None."""
    if value is None or value == "":
        return None
    return Decimal(value if isinstance(value, str) else repr(float(value)))


@dataclass(frozen=True)
class OrderState:
    """What the exchange says about one order, from ccxt's unified order structure.

    Attributes:
        status: our status.
        exchange_order_id: the exchange's id.
        filled_quantity: base units filled, >= 0.
        average_price: quote currency, None before a fill.
        fee: the fees paid in ``fee_currency``, the market's quote or base currency (0 without), the fee that
            changes what the order cost or bought.
        fee_currency: that currency's code ("" without such a fee).
        other_fees: fees paid in any third currency (binance's BNB discount), by currency code, e.g.
            ``{"BNB": Decimal("0.00031")}``: recorded as they are, never added to ``fee`` nor taken from a
            quantity, since they are not priced here.
        filled_at: time of the last fill (aware UTC), or None.
        raw: the exchange's payload (``info``), JSON-ready, without keys.
    """

    status: Order.Status
    exchange_order_id: str
    filled_quantity: Decimal
    average_price: Decimal | None
    fee: Decimal
    fee_currency: str
    filled_at: datetime | None
    raw: dict[str, Any]
    other_fees: dict[str, Decimal] = field(default_factory=dict)


def _fees_by_currency(data: dict[str, Any], trades: list[dict[str, Any]] | None) -> dict[str, Decimal]:
    """Every non-zero fee of an order, summed per currency code (ccxt ``fees``, else ``fee``, else the trades')."""
    fees: list[dict[str, Any]] = [f for f in (data.get("fees") or []) if f and f.get("cost") is not None]
    if not fees and data.get("fee") and data["fee"].get("cost") is not None:
        fees = [data["fee"]]
    if not fees and trades:
        fees = [t["fee"] for t in trades if t.get("fee") and t["fee"].get("cost") is not None]
    by_currency: dict[str, Decimal] = {}
    for item in fees:
        cost = ccxt_decimal(item["cost"]) or Decimal(0)
        if cost:
            currency = str(item.get("currency") or "")
            by_currency[currency] = by_currency.get(currency, Decimal(0)) + cost
    return by_currency


def order_state(
    data: dict[str, Any],
    *,
    trades: list[dict[str, Any]] | None = None,
    base: str = "",
    quote: str = "",
) -> OrderState:
    """Parse ccxt's unified order structure (and optionally its trades, for the fees) into :class:`OrderState`.

    Fees are kept per currency: the one in the market's quote currency (else the base currency) is ``fee``;
    fees in any other currency are ``other_fees`` and never added to it. A fee without a currency is taken as
    the quote currency's. When ``base`` and ``quote`` are not given and the fees come in one currency, that is
    ``fee_currency``.

    Args:
        data: as ccxt's ``create_order``/``fetch_order``/``cancel_order`` return it.
        trades: ccxt trades of the order (``fetch_my_trades``) when the order itself carries no fee.
        base: the market's base currency code (``"BTC"``), "" when unknown.
        quote: the market's quote currency code (``"USDT"``), "" when unknown.
    """
    filled = ccxt_decimal(data.get("filled")) or Decimal(0)
    raw_status = data.get("status")
    status = _STATUS.get(str(raw_status), Order.Status.NEW if raw_status is None else Order.Status.OPEN)
    if status == Order.Status.OPEN and filled > 0:
        status = Order.Status.PARTIALLY_FILLED
    fees = _fees_by_currency(data, trades)
    if "" in fees and quote:
        fees[quote] = fees.get(quote, Decimal(0)) + fees.pop("")
    if quote or base:
        fee_currency = next((c for c in (quote, base) if c and c in fees), "")
    elif len(fees) == 1:
        fee_currency = next(iter(fees))
    else:  # several currencies and no market to tell which is which: none of them is counted as the quote's
        fee_currency = ""
    fee = fees.pop(fee_currency, Decimal(0))
    timestamp = data.get("lastTradeTimestamp") or data.get("lastUpdateTimestamp") or data.get("timestamp")
    if trades:
        # Fills without a timestamp leave the order's own time in place (max() of nothing would raise).
        timestamp = max((int(t["timestamp"]) for t in trades if t.get("timestamp")), default=0) or timestamp
    info = data.get("info")
    return OrderState(
        status=status,
        exchange_order_id=str(data.get("id") or ""),
        filled_quantity=filled,
        average_price=ccxt_decimal(data.get("average")) if filled > 0 else None,
        fee=fee,
        fee_currency=fee_currency,
        filled_at=datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC) if timestamp and filled > 0 else None,
        raw=info if isinstance(info, dict) else {},
        other_fees=fees,
    )


def order_apply(order: Order, state: OrderState) -> bool:
    """Write ``state`` onto ``order`` (not saved). Returns whether the status or the fill changed.

    A filled quantity the exchange reports above the ordered one (rounding on its side) is capped at it.
    """
    before = (order.status, order.filled_quantity)
    order.status = state.status
    if state.exchange_order_id:
        order.exchange_order_id = state.exchange_order_id
    order.filled_quantity = decimal_quantize(min(state.filled_quantity, order.quantity))
    if order.status == Order.Status.FILLED and order.filled_quantity < order.quantity:
        order.status = (
            Order.Status.CANCELED
        )  # bybit's PartiallyFilledCanceled is ccxt "closed": the rest was cancelled
    if state.average_price is not None:
        order.average_price = decimal_quantize(state.average_price)
    order.fee = decimal_quantize(state.fee)
    order.fee_currency = state.fee_currency
    order.other_fees = {currency: format(cost, "f") for currency, cost in state.other_fees.items()}
    if state.filled_at is not None:
        order.filled_at = state.filled_at
    if state.raw:
        order.raw = state.raw
    return before != (order.status, order.filled_quantity)


def order_payload(order: Order) -> dict[str, Any]:
    """What History keeps of an order: never a key (ccxt's ``info`` is the exchange's order, which has none)."""
    return {
        "order_id": order.pk,
        "client_order_id": order.client_order_id,
        "exchange_order_id": order.exchange_order_id,
        "exchange_id": order.exchange_id,
        "market_symbol": order.market_symbol,
        "purpose": order.purpose,
        "side": order.side,
        "type": order.type,
        "quantity": str(order.quantity),
        "price": None if order.price is None else str(order.price),
        "status": order.status,
        "filled_quantity": str(order.filled_quantity),
        "average_price": None if order.average_price is None else str(order.average_price),
        "fee": str(order.fee),
        "fee_currency": order.fee_currency,
        "other_fees": order.other_fees,
        "backend": "exchange",
    }
