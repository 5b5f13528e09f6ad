"""Stop-loss orders resting on the exchange for the open positions of exchange strategies.

A position that opened from a fill is protected by a stop-loss order at the engine's level (:func:`protect`: the
higher of the stop-loss and the trailing level); when the trailing level moves, the stop is replaced
(:func:`protection_replace`); before another exit sells, the stop is cancelled (:func:`protection_cancel`). A stop
goes the one way of every order (:func:`positions.execution.orders.order_execute`); one that filled closes its
position as ``stop_loss``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from positions.events import Events
from positions.execution.exchange import ExchangeBroker
from positions.execution.order_state import client_order_id, order_payload
from positions.execution.orders import TakenUp, order_execute, order_take_up
from positions.models import Order, Position
from runs.models import HistoryKind
from trading.engine.criteria import Criteria


def stop_level(position: Position) -> Decimal | None:
    """The stop the exchange should hold: the higher of the stop-loss and the trailing level (a long's nearest)."""
    levels = [lvl for lvl in (position.stop_loss_price, position.trailing_stop_price) if lvl is not None]
    return max(levels) if levels else None


def same_price(stored: Decimal, level: Decimal) -> bool:
    """Whether a resting order's stored price is ``level``.

    The engine's level is a float made Decimal (up to ~30 digits); the same price read back from the database has
    18 decimal places (and passes through a float on SQLite): they differ in their last digits, which must not
    count as a move, or every step would cancel and replace a stop that did not move. Equal within 1e-12 of the
    level, far below any exchange's price step.
    """
    return abs(stored - level) <= abs(level) * Decimal("1e-12")


def protect(
    position: Position, criteria: Criteria, exchange: ExchangeBroker, as_of: date, pending: Events
) -> None:
    """Place a stop-loss order on the exchange at the engine's level; mark the position protected or not."""
    level = stop_level(position)
    if level is None:
        return
    instrument = position.instrument
    symbol = exchange.market_symbol(instrument)
    if not exchange.supports_stop_loss(symbol):
        position.protection = Position.Protection.UNPROTECTED
        position.save(update_fields=["protection", "updated_at"])
        pending.add(
            HistoryKind.ORDER_REJECTED,
            f"no stop-loss order for {instrument.symbol}: {exchange.exchange_id} takes no stop-loss order on "
            f"{symbol}; the position is unprotected between runs (the close step still applies the stop)",
            instrument=instrument,
            position=position,
            payload={"exchange_id": exchange.exchange_id, "market_symbol": symbol, "stop_price": str(level)},
        )
        return
    sequence = Order.objects.filter(position=position, purpose=Order.Purpose.PROTECTION, as_of=as_of).count()
    order = Order.objects.create(
        strategy=position.strategy,
        instrument=instrument,
        position=position,
        as_of=as_of,
        side=Order.Side.SELL,
        type=Order.Type.STOP_LOSS,
        purpose=Order.Purpose.PROTECTION,
        quantity=exchange.amount_precise(symbol, position.quantity),
        price=exchange.price_precise(symbol, level),
        exchange_id=exchange.exchange_id,
        market_symbol=symbol,
        client_order_id=client_order_id(
            strategy_id=position.strategy_id,
            instrument_id=instrument.pk,
            as_of=as_of,
            purpose=Order.Purpose.PROTECTION,
            position_id=position.pk,
            sequence=sequence,
        ),
    )
    taken, error = order_execute(
        order, criteria=criteria, exchange=exchange, pending=pending, cancel_rest=False
    )
    if taken is None:
        position.protection = Position.Protection.UNPROTECTED
        position.save(update_fields=["protection", "updated_at"])
        pending.add(
            HistoryKind.ERROR,
            f"stop-loss of {instrument.symbol} not placed: {error}",
            instrument=instrument,
            position=position,
            payload=order_payload(order),
        )
        return
    protection_result(taken, pending)


def protection_result(taken: TakenUp, pending: Events) -> None:
    """After a stop's take-up: a stop that ended (cancelled, expired) with nothing filled is an event of its own."""
    locked = taken.order
    if taken.changed and not locked.is_live and locked.filled_quantity == 0:
        pending.add(
            HistoryKind.ORDER_CANCELED,
            f"stop-loss {locked.client_order_id} of {locked.instrument.symbol} ended {locked.status}",
            instrument=locked.instrument,
            position=taken.position,
            payload=order_payload(locked),
        )


def protection_cancel(
    position: Position, criteria: Criteria, exchange: ExchangeBroker, pending: Events
) -> bool:
    """Cancel the position's live stop before another exit; True when it had filled meanwhile (and closed the
    position as ``stop_loss``)."""
    for stop in Order.objects.live().filter(position=position, purpose=Order.Purpose.PROTECTION):
        state = exchange.order_cancel(stop)
        if state is None:
            stop.status, stop.error = Order.Status.EXPIRED, "not found on the exchange by its client order id"
            stop.save(update_fields=["status", "error", "updated_at"])
            continue
        protection_result(
            order_take_up(stop, state, criteria=criteria, exchange=exchange, pending=pending), pending
        )
        stop.refresh_from_db()
        if stop.filled_quantity > 0:
            return True
    return False


def protection_replace(
    position: Position, criteria: Criteria, exchange: ExchangeBroker, as_of: date, pending: Events
) -> None:
    """The trailing level moved: cancel the stop on the exchange and place one at the new level."""
    position.refresh_from_db()
    level = stop_level(position)
    if position.status != Position.Status.OPEN or level is None:
        return
    live = Order.objects.live().filter(position=position, purpose=Order.Purpose.PROTECTION).first()
    symbol = exchange.market_symbol(position.instrument)
    if (
        live is not None
        and live.price is not None
        and same_price(live.price, exchange.price_precise(symbol, level))
    ):
        return
    if protection_cancel(position, criteria, exchange, pending):
        return
    position.refresh_from_db()
    protect(position, criteria, exchange, as_of, pending)
