"""Entries and exits of exchange strategies, from the engine's decision to the step's result line.

Inside the step's transaction, an entry (:func:`entry_order_new`: the kill switch, the exchange's minimums and the
free balance checked) or an exit (:func:`exit_order_new`) is written as an ``Order`` row of status ``new`` with its
deterministic client order id. After the commit it is sent and its fill taken up, the one way of every order
(:func:`positions.execution.orders.order_execute`); :func:`entry_result` and :func:`exit_result` turn what that
wrote into History events and the result line, and an entry that filled is protected by a stop-loss
(:func:`positions.execution.protection.protect`).

The kill switch (``BARTER_TRADING_ENABLED`` and ``Strategy.trading_enabled``) stops new entries of exchange
strategies only; paper and replay strategies are not real money and keep trading as the backtest does.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.conf import settings

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from positions.events import Events, StepResult
from positions.execution.base import Quote
from positions.execution.exchange import ExchangeBroker
from positions.execution.order_state import client_order_id, order_payload
from positions.execution.orders import TakenUp, order_execute, order_position_id
from positions.execution.protection import protect, protection_cancel
from positions.models import Order, Position
from runs.models import HistoryKind
from trading.engine.criteria import Criteria
from trading.engine.types import Trade
from trading.models import Strategy
from trading.selectors import to_decimal


def trading_blocked(strategy: Strategy) -> str | None:
    """Why the kill switch refuses new entries of ``strategy`` now, or None when it may enter."""
    if not settings.BARTER_TRADING_ENABLED:
        return "trading is switched off for every strategy (BARTER_TRADING_ENABLED=false); exits still run"
    if not strategy.trading_enabled:
        return f"trading is switched off for strategy {strategy.name} (trading_enabled); exits still run"
    return None


def entry_order_new(
    strategy: Strategy,
    instrument: Instrument,
    trade: Trade,
    quote: Quote,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    blocked: str | None,
    pending: Events,
) -> tuple[StepResult, Order | None]:
    """Inside the open step's transaction: check an entry the engine decided and write its ``new`` order."""
    line = StepResult(strategy=strategy.name, instrument=instrument.coingecko_id, action="none")
    if blocked is not None:
        pending.add(
            HistoryKind.ENTRY_REFUSED,
            f"entry on {instrument.symbol} not sent: {blocked}",
            instrument=instrument,
            payload={"reason": blocked, "quantity": to_decimal(trade.quantity), "price": str(quote.price)},
        )
        line.reason = blocked
        return line, None
    fee_rate = Decimal(repr(criteria.fee_rate))
    try:
        amount = exchange.entry_amount(
            instrument=instrument, quantity=to_decimal(trade.quantity), price=quote.price, fee_rate=fee_rate
        )
    except ApplicationError as exc:
        pending.add(HistoryKind.ERROR, exc.message, instrument=instrument, payload=exc.as_dict())
        line.reason, line.error = "refused before sending", exc.message
        return line, None
    _base, quote_currency = exchange.base_and_quote(instrument)
    exchange.reserve(quote_currency, amount * quote.price * (1 + fee_rate))
    order = Order.objects.create(
        strategy=strategy,
        instrument=instrument,
        as_of=as_of,
        side=Order.Side.BUY,
        type=Order.Type.MARKET,
        purpose=Order.Purpose.ENTRY,
        quantity=amount,
        price=quote.price,
        exchange_id=exchange.exchange_id,
        market_symbol=exchange.market_symbol(instrument),
        client_order_id=client_order_id(
            strategy_id=strategy.pk, instrument_id=instrument.pk, as_of=as_of, purpose=Order.Purpose.ENTRY
        ),
    )
    return line, order


def entry_execute(
    strategy: Strategy,
    order: Order,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    pending: Events,
) -> StepResult:
    """After the open step's commit: send an entry and open its position from the fill (then protect it).

    Returns:
        The entry's result line: ``opened``, or ``none`` with the reason (and ``error`` when the order failed).
    """
    line = StepResult(strategy=strategy.name, instrument=order.instrument.coingecko_id, action="none")
    taken, error = order_execute(
        order, criteria=criteria, exchange=exchange, pending=pending, cancel_rest=True
    )
    if taken is None:
        pending.add(HistoryKind.ERROR, error or "", instrument=order.instrument, payload=order_payload(order))
        line.reason, line.error = "entry order failed", error
        return line
    return entry_result(taken, criteria, exchange, as_of, pending, line)


def entry_result(
    taken: TakenUp,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    pending: Events,
    line: StepResult,
) -> StepResult:
    """After an entry's take-up: its events and result line; a position it opened is protected by a stop-loss."""
    locked, position = taken.order, taken.position
    instrument = locked.instrument
    if position is None:
        if not locked.is_live and locked.filled_quantity == 0:
            pending.add(
                HistoryKind.ORDER_CANCELED,
                f"entry order {locked.client_order_id} ended {locked.status} with nothing filled: no position",
                instrument=instrument,
                payload=order_payload(locked),
            )
            line.reason = f"the exchange filled nothing ({locked.status})"
        else:
            line.reason = f"entry order {locked.status}"
        return line
    pending.add(
        HistoryKind.FILL,
        f"bought {locked.filled_quantity} {instrument.symbol} at {locked.average_price} on {locked.exchange_id}",
        instrument=instrument,
        position=position,
        payload={
            **order_payload(locked),
            "price": str(position.entry_price),
            "fee": str(position.entry_fee),
        },
    )
    pending.add(
        HistoryKind.POSITION_OPENED,
        f"opened {instrument.symbol} at {position.entry_price} ({locked.filled_quantity} of {locked.quantity} "
        f"filled on {locked.exchange_id})",
        instrument=instrument,
        position=position,
        payload={
            "quantity": str(position.quantity),
            "entry_price": str(position.entry_price),
            "entry_at": position.entry_at.isoformat(),
        },
    )
    protect(position, criteria, exchange, as_of, pending)
    line.action, line.reason, line.position_id = "opened", "entry signal", position.pk
    line.price, line.quantity = str(position.entry_price), str(position.quantity)
    return line


def exit_order_new(
    position: Position, reason: str, exchange: ExchangeBroker, as_of: date, pending: Events
) -> Order:
    """Inside a step's transaction: the ``new`` market sell of an exit the engine decided.

    The open step's reconcile phase sells a take-profit (or the stop of an unprotected position) crossed during
    the last candle; should that sell fail, the close step of the same day may decide it again: its order then
    takes the next sequence number, so its client order id is new.
    """
    symbol = exchange.market_symbol(position.instrument)
    sequence = Order.objects.filter(position=position, purpose=Order.Purpose.EXIT, as_of=as_of).count()
    return Order.objects.create(
        strategy=position.strategy,
        instrument=position.instrument,
        position=position,
        as_of=as_of,
        side=Order.Side.SELL,
        type=Order.Type.MARKET,
        purpose=Order.Purpose.EXIT,
        quantity=exchange.amount_precise(symbol, position.quantity),
        exchange_id=exchange.exchange_id,
        market_symbol=symbol,
        exit_reason=reason,
        client_order_id=client_order_id(
            strategy_id=position.strategy_id,
            instrument_id=position.instrument_id,
            as_of=as_of,
            purpose=Order.Purpose.EXIT,
            position_id=position.pk,
            sequence=sequence,
        ),
    )


def exit_execute(
    strategy: Strategy,
    order: Order,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    pending: Events,
) -> StepResult:
    """After the close step's commit: cancel the stop, sell, and close the position from the real fill."""
    position = Position.objects.select_related("instrument", "strategy").get(pk=order_position_id(order))
    line = StepResult(
        strategy=strategy.name,
        instrument=position.instrument.coingecko_id,
        action="none",
        position_id=position.pk,
    )
    if protection_cancel(position, criteria, exchange, pending):
        order.status, order.error = Order.Status.CANCELED, "not sent: the stop-loss filled first"
        order.save(update_fields=["status", "error", "updated_at"])
        position.refresh_from_db()
        line.action, line.reason, line.price = "closed", position.exit_reason, str(position.exit_price)
        return line
    taken, error = order_execute(
        order, criteria=criteria, exchange=exchange, pending=pending, cancel_rest=True
    )
    if taken is None:
        pending.add(
            HistoryKind.ERROR, error or "", instrument=position.instrument, payload=order_payload(order)
        )
        position.refresh_from_db()
        protect(position, criteria, exchange, as_of, pending)  # the stop was cancelled for a sell that failed
        line.reason, line.error = "exit order failed", error
        return line
    return exit_result(taken, pending, line)


def exit_result(taken: TakenUp, pending: Events, line: StepResult) -> StepResult:
    """After an exit's take-up: its result line (``closed``, or why not), and an error when it filled nothing."""
    locked, position = taken.order, taken.position
    assert position is not None  # noqa: S101 (an exit's position)
    if not taken.filled:
        line.reason = f"exit order {locked.status} with {locked.filled_quantity} filled"
        if not locked.is_live:
            line.error = f"exit order {locked.client_order_id} of {position.instrument.symbol} filled nothing"
            pending.add(
                HistoryKind.ERROR, line.error, instrument=position.instrument, payload=order_payload(locked)
            )
        return line
    line.action, line.reason = "closed", position.exit_reason
    line.price, line.quantity = str(position.exit_price), str(position.quantity)
    return line
