"""The one path every exchange order takes: send it (idempotently), then take up the exchange's answer.

Entries, exits and stop-losses share it. :func:`order_send` places the order (looked up first by its client order
id, so never twice) and records the order event or the rejection; :func:`order_take_up` locks the order's row,
writes the exchange's state on it and, once the order is done filling, takes the fill up in the same transaction:
an entry's fill opens its position (:func:`~positions.execution.fills.position_from_fill`), an exit's or a stop's
closes the order's position (:func:`~positions.execution.fills.close_from_fill`); a stop still resting marks its
position protected. :func:`order_execute` is the two in a row. Before this module, the entry and the exit each had
their own copy of the take-up (and the stop a third): they are this one function now.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from barter_site.errors import ApplicationError
from instruments.sources.exchange.client import ExchangeRejectedError
from positions.events import Events
from positions.execution.exchange import ExchangeBroker
from positions.execution.fills import close_from_fill, position_from_fill
from positions.execution.order_state import OrderState, order_apply, order_payload
from positions.models import Order, Position
from runs.models import HistoryKind
from trading.engine.criteria import Criteria
from trading.engine.vocabulary import ExitReason


def order_position_id(order: Order) -> int:
    """The id of the position an exit or stop order belongs to (always set for those purposes)."""
    assert order.position_id is not None  # noqa: S101
    return int(order.position_id)


def order_send(
    order: Order, exchange: ExchangeBroker, pending: Events, *, cancel_rest: bool
) -> tuple[OrderState | None, str | None]:
    """Send ``order`` (idempotently) and, for a market order not wholly filled, cancel the rest.

    Returns:
        ``(state, None)``, or ``(None, message)`` when it was rejected (the row is marked so) or the exchange
        could not answer (the row stays ``new``; the next run's reconciliation looks it up by its client id).
    """
    instrument = order.instrument
    pending.add(
        HistoryKind.ORDER,
        f"{order.side} {order.quantity} {order.market_symbol} on {order.exchange_id} ({order.purpose}, "
        f"{order.client_order_id})",
        instrument=instrument,
        position=order.position,
        payload=order_payload(order),
    )
    try:
        state = exchange.order_send(order)
        if cancel_rest and state.status in (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED):
            state = exchange.order_cancel(order) or state
    except ExchangeRejectedError as exc:
        order.status, order.error = Order.Status.REJECTED, exc.message
        order.save(update_fields=["status", "error", "updated_at"])
        pending.add(
            HistoryKind.ORDER_REJECTED,
            f"{order.exchange_id} rejected {order.purpose} order {order.client_order_id}: {exc.message}",
            instrument=instrument,
            position=order.position,
            payload={**order_payload(order), "error": exc.message},
        )
        return None, exc.message
    except ApplicationError as exc:
        order.error = exc.message
        order.save(update_fields=["error", "updated_at"])
        return None, (
            f"{exc.message}; order {order.client_order_id} may exist on {order.exchange_id}: the next run looks it "
            "up by its client order id"
        )
    return state, None


@dataclass(frozen=True)
class TakenUp:
    """What :func:`order_take_up` wrote.

    Attributes:
        order: the order's row as written (with its instrument and strategy).
        position: an entry's position opened by this take-up (None when none was); an exit's or a stop's
            position, as locked (open, or closed by this take-up or before).
        changed: whether the order's status or filled quantity changed.
        filled: whether this take-up opened (entry) or closed (exit, stop) the position from the fill.
    """

    order: Order
    position: Position | None
    changed: bool
    filled: bool


def order_take_up(
    order: Order, state: OrderState, *, criteria: Criteria, exchange: ExchangeBroker, pending: Events
) -> TakenUp:
    """Write the exchange's ``state`` of ``order`` and, once it is done filling, take its fill up.

    In one transaction, the order's row locked: an entry that filled (and has no position yet) opens its position
    at the real fill; an exit or a stop that filled closes its position (if still open) at the real fill, as
    ``stop_loss`` for a stop and with the order's ``exit_reason`` (default ``manual``) for an exit; a stop that
    did not fill marks its open position protected while it rests on the exchange, unprotected once it ended.

    Args:
        order: the order (purpose entry, exit or protection).
        state: what the exchange says about it.
        criteria: the strategy's criteria (an entry's levels come from them).
        exchange: the strategy's exchange.
        pending: where the fill and position events go.

    Returns:
        What was written (:class:`TakenUp`).
    """
    with transaction.atomic():
        locked = (
            Order.objects.select_for_update(of=("self",))
            .select_related("instrument", "strategy")
            .get(pk=order.pk)
        )
        changed = order_apply(locked, state)
        done = not locked.is_live and locked.filled_quantity > 0
        if locked.purpose == Order.Purpose.ENTRY:
            opened: Position | None = None
            if locked.position_id is None and done:
                opened = position_from_fill(locked, criteria, exchange)
                locked.position = opened
            locked.save()
            return TakenUp(locked, opened, changed, opened is not None)
        locked.save()
        position = (
            Position.objects.select_for_update()
            .select_related("instrument", "strategy")
            .get(pk=order_position_id(locked))
        )
        if position.status != Position.Status.OPEN:
            return TakenUp(locked, position, changed, False)
        if done:
            stop = locked.purpose == Order.Purpose.PROTECTION
            reason = Position.ExitReason.STOP_LOSS if stop else locked.exit_reason or ExitReason.MANUAL
            close_from_fill(position, locked, reason, exchange, pending)
            return TakenUp(locked, position, changed, True)
        if locked.purpose == Order.Purpose.PROTECTION:
            position.protection = (
                Position.Protection.PROTECTED if locked.is_live else Position.Protection.UNPROTECTED
            )
            position.save(update_fields=["protection", "updated_at"])
        return TakenUp(locked, position, changed, False)


def order_execute(
    order: Order,
    *,
    criteria: Criteria,
    exchange: ExchangeBroker,
    pending: Events,
    cancel_rest: bool,
) -> tuple[TakenUp | None, str | None]:
    """Send ``order`` (:func:`order_send`), then take up the exchange's answer (:func:`order_take_up`).

    Returns:
        ``(taken_up, None)``, or ``(None, message)`` when the order was rejected or the exchange could not answer.
    """
    state, error = order_send(order, exchange, pending, cancel_rest=cancel_rest)
    if state is None:
        return None, error
    return order_take_up(order, state, criteria=criteria, exchange=exchange, pending=pending), None
