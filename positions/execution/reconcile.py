"""Reconciliation: before an exchange strategy's step decides anything, every order Barter knows as live is brought
up to date from the exchange (the exchange is the truth).

A crash between "order accepted" and "position saved" leaves the ``Order`` row ``new`` or ``open``: the next run's
reconciliation finds the order by its client id and takes the fill up, the one way of every order
(:func:`positions.execution.orders.order_take_up`).
"""

from __future__ import annotations

from datetime import date

from positions.events import Events, StepResult
from positions.execution.exchange import ExchangeBroker
from positions.execution.order_state import order_payload
from positions.execution.orders import order_take_up
from positions.execution.protection import protection_result
from positions.execution.trades import entry_execute, entry_result, exit_result, trading_blocked
from positions.models import Order, Position
from runs.models import HistoryKind
from trading.engine.criteria import Criteria
from trading.models import Strategy


def reconcile(
    strategy: Strategy,
    exchange: ExchangeBroker,
    *,
    criteria: Criteria,
    as_of: date,
    pending: Events,
    send_todays_entries: bool = False,
) -> None:
    """Bring every order Barter knows as live up to date from the exchange (the exchange is the truth).

    Each is looked up by its client order id: an entry that filled (after a timeout or a crash) opens its
    position; a stop that filled closes its position as ``stop_loss`` at the fill's price and time; an exit
    that filled closes its position with the engine's reason; a market order still open is cancelled for the
    rest; an order the exchange does not know (it never arrived) is marked ``expired``, except an entry of
    ``as_of`` itself: the run that decided it was killed between its commit (the order and the instrument's claim)
    and the send, so the open step (``send_todays_entries``) sends it now (unless the kill switch is on: then it
    expires), and the close step leaves it ``new`` for the open step. The day's entry is neither lost nor doubled.

    Raises:
        ExchangeApiError: the exchange could not answer (nothing more of the strategy runs then).
    """
    live = list(
        Order.objects.for_strategy(strategy).live().select_related("instrument", "position").order_by("id")
    )
    for order in live:
        state = exchange.order_find(order)
        if (
            state is not None
            and order.type == Order.Type.MARKET
            and state.status
            in (
                Order.Status.OPEN,
                Order.Status.PARTIALLY_FILLED,
            )
        ):
            state = exchange.order_cancel(order) or state
        before = order.status
        if state is None and order.purpose == Order.Purpose.ENTRY and order.as_of == as_of:
            blocked = trading_blocked(strategy)
            if not send_todays_entries:
                continue  # the open step of the day sends it
            if blocked is None:
                entry_execute(strategy, order, criteria, exchange, as_of, pending)
            else:
                order.status, order.error = Order.Status.EXPIRED, f"never sent: {blocked}"
                order.save(update_fields=["status", "error", "updated_at"])
        elif state is None:
            order.status, order.error = (
                Order.Status.EXPIRED,
                "never reached the exchange (unknown client order id)",
            )
            order.save(update_fields=["status", "error", "updated_at"])
            if order.position_id is not None and order.purpose == Order.Purpose.PROTECTION:
                Position.objects.filter(pk=order.position_id, status=Position.Status.OPEN).update(
                    protection=Position.Protection.UNPROTECTED
                )
        else:
            taken = order_take_up(order, state, criteria=criteria, exchange=exchange, pending=pending)
            line = StepResult(strategy=strategy.name, instrument=order.instrument.coingecko_id, action="none")
            if order.purpose == Order.Purpose.ENTRY:
                entry_result(taken, criteria, exchange, as_of, pending, line)
            elif order.purpose == Order.Purpose.PROTECTION:
                protection_result(taken, pending)
            else:
                exit_result(taken, pending, line)
        order.refresh_from_db()
        pending.add(
            HistoryKind.RECONCILED,
            f"reconciled {order.purpose} order {order.client_order_id}: {before} -> {order.status}",
            instrument=order.instrument,
            position=order.position,
            payload={**order_payload(order), "status_before": before},
        )
