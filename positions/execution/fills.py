"""Positions written from an exchange's real fills: an entry's fill opens one (:func:`position_from_fill`), an exit's
or a stop's closes one, split when the sell filled only in part (:func:`close_from_fill`)."""

from __future__ import annotations

from decimal import Decimal

from django.utils import timezone

from instruments.precision import decimal_quantize
from positions.events import Events
from positions.execution.exchange import ExchangeBroker
from positions.execution.order_state import order_payload
from positions.models import Order, Position
from runs.models import HistoryKind
from trading.engine.criteria import Criteria
from trading.engine.exits import stop_loss_level, take_profit_level, trailing_stop_level
from trading.models import Portfolio
from trading.selectors import to_decimal


def _fee_in_quote(order: Order, base: str, quote: str, price: Decimal) -> Decimal:
    """The order's fee in quote currency: a fee in base units is worth ``fee * price``; fees in a third currency
    (binance's BNB discount) cannot be priced here and count 0 (they stay on the ``Order``'s ``other_fees`` and
    in History)."""
    if order.fee_currency == base:
        return decimal_quantize(order.fee * price)
    if order.fee_currency in ("", quote):
        return order.fee
    return Decimal(0)


def position_from_fill(order: Order, criteria: Criteria, exchange: ExchangeBroker) -> Position:
    """A position holding what the entry really bought: the filled quantity (less a fee paid in the base
    currency), at the average fill price, with the exchange's fee; levels from the engine's formulas at that
    price."""
    assert order.average_price is not None  # noqa: S101 (set with any fill)
    base, quote = exchange.base_and_quote(order.instrument)
    price = order.average_price
    quantity = order.filled_quantity - (order.fee if order.fee_currency == base else Decimal(0))
    entry = float(price)
    stop = stop_loss_level(entry, criteria.stop_loss_ratio)
    take = take_profit_level(entry, criteria.take_profit_ratio)
    trail = trailing_stop_level(entry, criteria.trailing_stop_ratio)
    return Position.objects.create(
        strategy=order.strategy,
        portfolio=Portfolio.objects.filter(members__strategy_id=order.strategy_id).first(),
        instrument=order.instrument,
        side=Position.Side.LONG,
        quantity=decimal_quantize(quantity),
        entry_price=price,
        entry_at=order.filled_at or timezone.now(),
        entry_fee=_fee_in_quote(order, base, quote, price),
        stop_loss_price=None if stop is None else to_decimal(stop),
        take_profit_price=None if take is None else to_decimal(take),
        trailing_stop_price=None if trail is None else to_decimal(trail),
        protection=(
            Position.Protection.NOT_APPLICABLE
            if stop is None and trail is None
            else Position.Protection.UNPROTECTED
        ),
    )


def close_from_fill(
    position: Position, order: Order, reason: str, exchange: ExchangeBroker, pending: Events
) -> None:
    """Close ``position`` (locked, in a transaction) at the sell's real fill.

    When the order filled less than it asked for, the position is split: the sold part closes, the rest stays
    open as a new position with the same entry (its share of the entry fee), so the account keeps what the
    exchange still holds. ``pnl = exit_price * sold - exit_fee - (entry_price * sold + entry_fee_share)``.
    """
    assert order.average_price is not None  # noqa: S101
    base, quote = exchange.base_and_quote(position.instrument)
    sold = min(order.filled_quantity, position.quantity)
    if order.filled_quantity >= order.quantity:
        sold = position.quantity  # wholly filled: what precision truncated off the order is dust
    remainder = position.quantity - sold
    fee_share = decimal_quantize(position.entry_fee * sold / position.quantity)
    price = order.average_price
    exit_fee = _fee_in_quote(order, base, quote, price)
    cost = position.entry_price * sold + fee_share
    pnl = decimal_quantize(price * sold - exit_fee - cost)
    open_fields = {
        "strategy": position.strategy,
        "portfolio_id": position.portfolio_id,
        "instrument": position.instrument,
        "side": position.side,
        "entry_price": position.entry_price,
        "entry_at": position.entry_at,
        "stop_loss_price": position.stop_loss_price,
        "take_profit_price": position.take_profit_price,
        "trailing_stop_price": position.trailing_stop_price,
        "exits_checked_through": position.exits_checked_through,
    }
    remainder_fee = position.entry_fee - fee_share
    position.quantity, position.entry_fee = sold, fee_share
    position.status = Position.Status.CLOSED
    position.exit_price, position.exit_fee = price, exit_fee
    position.exit_at = order.filled_at or timezone.now()
    position.exit_reason = reason
    position.pnl, position.pnl_ratio = pnl, decimal_quantize(pnl / cost)
    position.protection = Position.Protection.NOT_APPLICABLE
    position.save()
    if order.position_id != position.pk:
        order.position = position
        order.save(update_fields=["position", "updated_at"])
    instrument = position.instrument
    pending.add(
        HistoryKind.SIGNAL,
        f"exit ({reason}) on {instrument.symbol}",
        instrument=instrument,
        position=position,
        payload={"reason": reason, "side": "exit"},
    )
    pending.add(
        HistoryKind.FILL,
        f"sold {order.filled_quantity} {instrument.symbol} at {price} on {order.exchange_id}",
        instrument=instrument,
        position=position,
        payload={**order_payload(order), "price": str(price), "fee": str(exit_fee)},
    )
    pending.add(
        HistoryKind.POSITION_CLOSED,
        f"closed {instrument.symbol} ({reason}), pnl {position.pnl}",
        instrument=instrument,
        position=position,
        payload={
            "quantity": str(sold),
            "exit_reason": reason,
            "exit_price": str(price),
            "pnl": str(position.pnl),
            "pnl_ratio": str(position.pnl_ratio),
            "exit_at": position.exit_at.isoformat(),
        },
    )
    if remainder > 0:
        rest = Position.objects.create(
            **open_fields,
            quantity=remainder,
            entry_fee=remainder_fee,
            protection=Position.Protection.UNPROTECTED,
        )
        pending.add(
            HistoryKind.POSITION_OPENED,
            f"kept {remainder} {instrument.symbol} the exit did not sell as position {rest.pk}",
            instrument=instrument,
            position=rest,
            payload={"quantity": str(remainder), "split_from": position.pk},
        )
