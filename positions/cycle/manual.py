"""Closing a position by hand (the admin's "Close now"): at a given price or the broker's price now, with exit
reason ``manual``, recorded as a ``close`` run in History."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from barter_site.errors import ApplicationError
from positions.accounts import position_trade
from positions.events import Events, StepResult
from positions.execution.backends import broker_for
from positions.execution.exchange import ExchangeBroker
from positions.execution.paper import paper_position_close
from positions.execution.trades import exit_execute, exit_order_new
from positions.models import Position
from runs.models import HistoryKind, RunStatus, Step
from runs.recorder import run_start, run_status
from trading.engine.step import trade_close_at
from trading.engine.vocabulary import ExitReason
from trading.models import Strategy
from trading.selectors import candles_before, to_seconds

logger = logging.getLogger(__name__)


class PositionNotOpenError(ApplicationError):
    """The position is already closed."""

    http_status = 409


def position_close_manual(*, position: Position, price: Decimal | None = None) -> Position:
    """Close an open position now, at ``price`` or the broker's current price, with exit reason ``manual``.

    Fees and slippage are the strategy's, through the engine. Recorded as a ``close`` run in ``History``. The
    price is asked for (CoinGecko, or the exchange's sell) before the position's row is locked, never while it
    is held; the position is then locked and checked to be still open before it is closed. Whatever ends the
    close after its run started (no price, the position closed meanwhile, an exchange error) finishes that run
    as ``failed`` with the error before it is raised: no run is left unfinished.

    Args:
        position: the position to close.
        price: the raw price to close at (before slippage), quote currency; default the broker's price now.

    Raises:
        PositionNotOpenError: the position is already closed (before the run starts, or meanwhile).
        ApplicationError: there is no price to close at, or the exchange's sell failed.
    """
    closed_for = (
        Position.objects.filter(pk=position.pk)
        .exclude(status=Position.Status.OPEN)
        .values_list("exit_reason", flat=True)
    )
    for reason in closed_for:  # checked before the run starts, so a refusal leaves no unfinished run behind
        raise PositionNotOpenError(f"position {position.pk} is already closed ({reason})")
    strategy: Strategy = position.strategy
    recorder = run_start(step=Step.CLOSE, params={"position": position.pk, "manual": True})
    pending = Events()
    failed_sell: ApplicationError | None = None  # its error event is among the pending ones already
    try:
        if strategy.execution_backend == Strategy.ExecutionBackend.EXCHANGE:
            line = _position_close_manual_exchange(position, pending)
            if line.error:
                failed_sell = ApplicationError(line.error, extra={"position_id": position.pk})
                raise failed_sell
            closed = position
        else:
            closed = _position_close_manual_paper(position, strategy, price, pending)
    except Exception as exc:
        pending.record(recorder, strategy)
        message = (
            exc.message
            if isinstance(exc, ApplicationError)
            else f"internal error {type(exc).__name__}: {exc}"
        )
        if exc is not failed_sell:
            if not isinstance(exc, ApplicationError):
                logger.exception("manual close of position %s failed", position.pk)
            recorder.event(
                HistoryKind.ERROR,
                strategy=strategy,
                instrument=position.instrument,
                position=position,
                message=message,
                payload={"error": exc.code if isinstance(exc, ApplicationError) else type(exc).__name__},
            )
        recorder.finish(
            status=RunStatus.FAILED, summary={"results": [{"position_id": position.pk, "error": message}]}
        )
        raise
    pending.record(recorder, strategy)
    recorder.finish(
        status=run_status(errors=0, succeeded=1),
        summary={"results": [{"position_id": position.pk, "error": None}]},
    )
    closed.refresh_from_db()
    return closed


def _position_close_manual_paper(
    position: Position, strategy: Strategy, price: Decimal | None, pending: Events
) -> Position:
    """``position_close_manual`` of a paper strategy: the price first, then the row lock, the check, the close."""
    now = timezone.now()
    if price is None:
        instrument = position.instrument
        quote = broker_for(strategy.execution_backend).quotes([instrument], as_of=now.date())
        if instrument.pk not in quote:
            raise ApplicationError(f"no price for {instrument.symbol} to close position {position.pk} at")
        price = quote[instrument.pk].price
    with transaction.atomic():
        locked = (
            Position.objects.select_for_update().select_related("instrument", "strategy").get(pk=position.pk)
        )
        if locked.status != Position.Status.OPEN:
            raise PositionNotOpenError(f"position {locked.pk} is already closed ({locked.exit_reason})")
        candles = candles_before(locked.instrument, now)
        trade = position_trade(locked, candles, next_check=len(candles)).trade
        closed = trade_close_at(
            trade,
            strategy.parsed_criteria(),
            index=-1,
            time=to_seconds(now),
            raw_price=float(price),
            reason=ExitReason.MANUAL,
        )
        paper_position_close(locked, closed, pending, strategy.execution_backend)
    return locked


def _position_close_manual_exchange(position: Position, pending: Events) -> StepResult:
    """``position_close_manual`` of an exchange strategy: a market sell now (the stop cancelled first).

    The row lock is held only to check the position and write the sell's ``new`` order; the exchange is called
    after the commit. Returns the result line (``error`` set when the sell failed).
    """
    strategy: Strategy = position.strategy
    exchange = broker_for(strategy.execution_backend, exchange_id=strategy.exchange_id)
    assert isinstance(exchange, ExchangeBroker)  # noqa: S101
    today = timezone.now().date()
    with transaction.atomic():
        locked = (
            Position.objects.select_for_update().select_related("instrument", "strategy").get(pk=position.pk)
        )
        if locked.status != Position.Status.OPEN:
            raise PositionNotOpenError(f"position {locked.pk} is already closed ({locked.exit_reason})")
        order = exit_order_new(locked, ExitReason.MANUAL, exchange, today, pending)
    return exit_execute(strategy, order, strategy.parsed_criteria(), exchange, today, pending)
