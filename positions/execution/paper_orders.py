"""A paper position's resting stop-loss and take-profit: ``Order`` rows (purpose ``protection``), as an exchange holds.

A paper position is protected as an exchange strategy's is: when it opens, a stop-loss order rests at the engine's
stop level (the higher of the stop-loss and the trailing level, :func:`positions.execution.protection.stop_level`)
and a take-profit order at its level (:func:`paper_protect`). An exchange fills such an order between runs; paper
does the same at the start of every step, when the reconcile phase settles the completed candles against them
(:func:`positions.cycle.settle.risk_exits_settle`): the order that the engine's risk exit names is filled and the
other one cancelled (:func:`paper_protection_finish`). When the trailing level moves, the stop is replaced
(:func:`paper_protection_move`); when another exit closes the position, both are cancelled.

The orders record what happened; the levels that decide are the position's own (``stop_loss_price``,
``take_profit_price``, ``trailing_stop_price``), read by the engine.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from positions.events import Events
from positions.execution.order_state import client_order_id, order_payload
from positions.execution.protection import same_price, stop_level
from positions.models import Order, Position
from runs.models import HistoryKind
from trading.engine.vocabulary import ExitReason

# Which resting order a risk exit fills.
_FILLED_BY: dict[str, str] = {
    ExitReason.STOP_LOSS: Order.Type.STOP_LOSS,
    ExitReason.TRAILING_STOP: Order.Type.STOP_LOSS,
    ExitReason.TAKE_PROFIT: Order.Type.TAKE_PROFIT,
}


def _paper_order(position: Position, order_type: str, price: Decimal, as_of: date, backend: str) -> Order:
    sequence = Order.objects.filter(position=position, purpose=Order.Purpose.PROTECTION, as_of=as_of).count()
    instrument = position.instrument
    return Order.objects.create(
        strategy=position.strategy,
        instrument=instrument,
        position=position,
        as_of=as_of,
        side=Order.Side.SELL,
        type=order_type,
        purpose=Order.Purpose.PROTECTION,
        quantity=position.quantity,
        price=price,
        status=Order.Status.OPEN,
        exchange_id=backend,
        market_symbol=f"{instrument.symbol}/{instrument.quote_currency.upper()}",
        client_order_id=client_order_id(
            strategy_id=position.strategy_id,
            instrument_id=instrument.pk,
            as_of=as_of,
            purpose=Order.Purpose.PROTECTION,
            position_id=position.pk,
            sequence=sequence,
        ),
    )


def _placed(pending: Events, order: Order, what: str) -> None:
    pending.add(
        HistoryKind.ORDER,
        f"{what} {order.type} of {order.instrument.symbol} at {order.price} ({order.exchange_id})",
        instrument=order.instrument,
        position=order.position,
        payload=order_payload(order),
    )


def paper_protect(position: Position, as_of: date, backend: str, pending: Events) -> None:
    """Inside the open step's transaction: rest the new paper position's stop-loss and take-profit orders.

    Args:
        position: the paper position just opened (levels in quote currency, quantity in base units).
        as_of: the run's day.
        backend: the paper broker's name (``paper`` or ``replay``), kept as the orders' ``exchange_id``.
        pending: where the "order placed" events go.
    """
    placed = False
    level = stop_level(position)
    if level is not None:
        _placed(pending, _paper_order(position, Order.Type.STOP_LOSS, level, as_of, backend), "placed")
        placed = True
    if position.take_profit_price is not None:
        order = _paper_order(position, Order.Type.TAKE_PROFIT, position.take_profit_price, as_of, backend)
        _placed(pending, order, "placed")
        placed = True
    if placed:
        position.protection = Position.Protection.PROTECTED
        position.save(update_fields=["protection", "updated_at"])


def paper_protection_move(position: Position, as_of: date, backend: str, pending: Events) -> None:
    """The trailing level of an open paper position moved: cancel its resting stop and rest one at the new level
    (what :func:`positions.execution.protection.protection_replace` does on an exchange)."""
    level = stop_level(position)
    live = Order.objects.live().filter(position=position, type=Order.Type.STOP_LOSS).first()
    if level is None or (live is not None and live.price is not None and same_price(live.price, level)):
        return
    if live is not None:
        live.status = Order.Status.CANCELED
        live.save(update_fields=["status", "updated_at"])
    _placed(pending, _paper_order(position, Order.Type.STOP_LOSS, level, as_of, backend), "moved")


def paper_protection_finish(position: Position) -> None:
    """A paper position just closed (in its transaction): fill the resting order its risk exit names, at the
    exit's price, fee and time, and cancel every other live protection order of the position."""
    filled_type = _FILLED_BY.get(position.exit_reason)
    for order in Order.objects.live().filter(position=position, purpose=Order.Purpose.PROTECTION):
        if order.type == filled_type:
            order.status = Order.Status.FILLED
            order.filled_quantity = order.quantity
            order.average_price = position.exit_price
            order.fee = position.exit_fee or Decimal(0)
            order.filled_at = position.exit_at
            order.exit_reason = position.exit_reason
            filled_type = None  # one order fills
        else:
            order.status = Order.Status.CANCELED
        order.save()
