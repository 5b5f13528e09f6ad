"""The open and close steps of the daily cycle, and closing a position by hand.

``sync_new_trades`` (open) and ``sync_close_positions`` (close) ask the engine (:mod:`trading.engine.step`) what
to do at the boundary ``as_of`` (candle ``as_of - 1 day`` has closed) and write what it decided. Each strategy is
handled in its own transaction under a row lock, with a ``StrategyStep`` row keyed on (strategy, step, as_of), so
a second call for the same day opens and closes nothing more. A whole run holds the run lock of (step, as_of,
scope) (:func:`positions.history.run_locked`), so a concurrent second run is refused at once with
``RunInProgressError`` (409) instead of waiting on the row locks. Every step is a ``History`` run with an event
per signal, order, fill, position opened or closed, and error.

Exchange strategies (``execution_backend="exchange"``, :mod:`trading.execution`) decide exactly as paper ones (the
same engine calls, in the same transaction), but execute for real, in three phases so that no HTTP call is made
while the strategy's rows are locked:

1. before the transaction: **reconciliation** (every order Barter knows as live is looked up on the exchange by
   its client order id and updated; a stop that filled closes its position as ``stop_loss``, an entry that
   filled after a timeout opens its position), then markets, prices and the free balance;
2. the transaction: the claim of the day, the engine's decisions, and one ``Order`` row (status ``new``) per
   entry or exit to send, with its deterministic client order id;
3. after the commit: each order is sent (looked up first, so never twice), and its position is opened or closed
   from the exchange's fill in a short transaction; then stop-losses are placed, replaced or cancelled.

A crash between "order accepted" and "position saved" leaves the ``Order`` row ``new`` or ``open``: the next run's
reconciliation finds the order by its client id and takes the fill up. The kill switch
(``BARTER_TRADING_ENABLED`` and ``Strategy.trading_enabled``) stops new entries of exchange strategies only;
paper and replay strategies are not real money and keep trading as the backtest does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from barter_site.errors import ApplicationError, database_gone
from instruments.models import Instrument
from instruments.precision import price_quantize
from instruments.sync import as_of_validate, instruments_resolve
from positions.history import RunRecorder, run_locked, run_start, run_status
from positions.locks import run_scope
from positions.models import History, HistoryKind, Position, Step
from trading.brokers import ExecutionBackend, Quote, broker_for
from trading.engine.backtest import market_at
from trading.engine.conditions import Signals, signals_compute
from trading.engine.criteria import Criteria
from trading.engine.exits import MANUAL, stop_loss_level, take_profit_level, trailing_stop_level
from trading.engine.step import InstrumentAtBoundary, OpenTrade, step_entries, step_exits, trade_close_at
from trading.engine.types import SECONDS_PER_DAY, CandleArrays, Trade
from trading.execution import (
    ExchangeBroker,
    ExchangeRejectedError,
    OrderState,
    client_order_id,
    order_apply,
)
from trading.models import Order, Strategy, StrategyStep
from trading.selectors import (
    candles_before,
    from_seconds,
    open_positions,
    position_trade,
    strategy_cash,
    to_decimal,
    to_seconds,
)

logger = logging.getLogger(__name__)


class PositionNotOpenError(ApplicationError):
    """The position is already closed."""

    http_status = 409


@dataclass
class StepResult:
    """One line of an open or close step's summary: what happened to one strategy and instrument."""

    strategy: str
    instrument: str | None
    action: str  # "opened", "closed", "none", "skipped"
    reason: str = ""
    position_id: int | None = None
    price: str | None = None
    quantity: str | None = None
    error: str | None = None


@dataclass
class _Pending:
    """History events to write once the strategy's transaction has committed."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: HistoryKind, message: str, **details: Any) -> None:
        self.events.append({"kind": kind, "message": message, **details})

    def record(self, recorder: RunRecorder, strategy: Strategy) -> None:
        """Append the events, in order, to ``recorder``'s run as events of ``strategy``."""
        for event in self.events:
            recorder.event(
                event["kind"],
                strategy=strategy,
                instrument=event.get("instrument"),
                position=event.get("position"),
                message=event["message"],
                payload=event.get("payload", {}),
            )


def _boundary(as_of: date) -> datetime:
    return datetime.combine(as_of, time(0), tzinfo=UTC)


def _signals_at(criteria: Criteria, candles: CandleArrays, as_of: date) -> tuple[int | None, Signals]:
    """Signals over ``candles`` and the index of candle ``as_of - 1 day`` (None when it is not stored)."""
    signals = signals_compute(criteria, candles)
    wanted = to_seconds(_boundary(as_of)) - SECONDS_PER_DAY
    t = len(candles) - 1
    return (t if t >= 0 and int(candles.open_time[t]) == wanted else None), signals


def _market_entry(
    candles: CandleArrays, signals: Signals, t: int | None, quote: Quote | None
) -> InstrumentAtBoundary:
    return market_at(
        candles,
        signals,
        t=-1 if t is None else t,
        next_index=-1 if quote is not None else None,
        next_time=to_seconds(quote.at) if quote is not None else None,
        next_price=float(quote.price) if quote is not None else None,
    )


def _targets(instruments: Sequence[str] | None) -> set[int] | None:
    return None if instruments is None else {i.pk for i in instruments_resolve(instruments)}


def _run(
    step: Step,
    *,
    as_of: date | None,
    instruments: Sequence[str] | None,
    broker: ExecutionBackend | None,
    strategies: Sequence[Strategy] | None,
) -> dict[str, Any]:
    now = timezone.now()
    as_of = as_of_validate(as_of or now.date(), now=now)
    only = _targets(instruments)
    chosen = list(strategies) if strategies is not None else list(Strategy.objects.enabled().order_by("name"))
    with run_locked(
        step=step,
        as_of=as_of,
        scope=run_scope(
            instruments=None if instruments is None else list(instruments),
            strategy_ids=None if strategies is None else [s.pk for s in chosen],
        ),
        params={
            "as_of": as_of.isoformat(),
            "instruments": instruments,
            "strategies": [s.name for s in chosen],
        },
        kept=_strategies_kept,
    ) as recorder:
        results: list[StepResult] = []
        brokers: dict[str, ExecutionBackend] = {}  # one per backend and run, so prices are asked for once
        for strategy in chosen:
            key = f"{strategy.execution_backend}:{strategy.exchange_id}"
            if broker is None and key not in brokers:
                brokers[key] = broker_for(strategy.execution_backend, exchange_id=strategy.exchange_id)
            backend = broker or brokers[key]
            pending = _Pending()
            try:
                handler = _open_strategy if step == Step.OPEN else _close_strategy
                lines = handler(
                    strategy, as_of=as_of, only=only, broker=backend, run_id=recorder.run_id, pending=pending
                )
            except Exception as exc:
                if database_gone(exc):
                    raise  # run_locked turns it into DatabaseUnavailableError: nothing more can be recorded
                message = (
                    exc.message
                    if isinstance(exc, ApplicationError)
                    else f"internal error {type(exc).__name__}: {exc}"
                )
                if not isinstance(exc, ApplicationError):
                    logger.exception("%s step failed for strategy %s", step, strategy.name)
                recorder.event(
                    HistoryKind.ERROR,
                    strategy=strategy,
                    message=message,
                    payload={"kept": "nothing of this strategy"},
                )
                results.append(
                    StepResult(strategy=strategy.name, instrument=None, action="none", error=message)
                )
                continue
            pending.record(recorder, strategy)
            results.extend(lines)
        errors = sum(1 for r in results if r.error)
        status = run_status(errors=errors, succeeded=len(results) - errors)
        return recorder.finish(
            status=status, summary={"as_of": as_of.isoformat(), "results": [asdict(r) for r in results]}
        )


def _strategies_kept(run_id: Any) -> dict[str, Any]:
    """What an interrupted open or close run kept: the work of each strategy whose transaction committed."""
    claims = StrategyStep.objects.filter(run_id=run_id).select_related("strategy").order_by("strategy__name")
    committed = [claim.strategy.name for claim in claims]
    recorded = list(
        History.objects.filter(
            run_id=run_id, kind__in=[HistoryKind.POSITION_OPENED, HistoryKind.POSITION_CLOSED]
        )
        .order_by("position_id")
        .values_list("position_id", flat=True)
    )
    return {
        "kept": (
            "the positions opened or closed by every strategy whose transaction had committed"
            f" ({', '.join(committed) if committed else 'none'}); the strategy being handled was rolled back"
            " (no position, no claim for the day), and the run that found it handles it"
        ),
        "strategies_committed": committed,
        "positions_recorded": recorded,
    }


def sync_new_trades(
    *,
    as_of: date | None = None,
    instruments: Sequence[str] | None = None,
    broker: ExecutionBackend | None = None,
    strategies: Sequence[Strategy] | None = None,
) -> dict[str, Any]:
    """The open step: enter where an enabled strategy's entry criteria held on the candle before ``as_of``.

    Args:
        as_of: the run's day (UTC); default today. Signals are read on candle ``as_of - 1 day``.
        instruments: CoinGecko ids to consider; default every instrument of each strategy.
        broker: the execution backend; default each strategy's own (``paper``).
        strategies: which strategies; default every enabled one (``replay`` passes its own).

    Returns:
        The run summary: ``run_id``, ``step``, ``status``, ``started_at``, ``finished_at``, ``as_of``,
        ``results`` (per strategy and instrument: ``action``, ``reason``, ``position_id``, ``price``,
        ``quantity``, ``error``) and ``errors``.

    Raises:
        ApplicationError: ``as_of`` in the future or unknown instruments (nothing is recorded then).
        RunInProgressError: (409) another open run of the same day and scope holds the run lock; nothing is
            recorded, and ``extra["run_id"]`` names that run. Once it has finished, a new call reports each
            strategy ``skipped``.
        DatabaseUnavailableError: (503) the database dropped the connection mid-run; strategies committed
            before are kept, and the next run marks this one ``interrupted`` and handles the rest.
    """
    return _run(Step.OPEN, as_of=as_of, instruments=instruments, broker=broker, strategies=strategies)


def sync_close_positions(
    *,
    as_of: date | None = None,
    instruments: Sequence[str] | None = None,
    broker: ExecutionBackend | None = None,
    strategies: Sequence[Strategy] | None = None,
) -> dict[str, Any]:
    """The close step: close the open positions whose exit rules fired, through candle ``as_of - 1 day``.

    Every candle since a position was last checked is checked in order (so a missed day is caught up): a risk
    exit inside a candle fills at its level (or the gapped open); an exit signal or the maximum holding time
    fills at the next open, or, for the candle before ``as_of``, at the broker's price.

    Args, return value and errors: as :func:`sync_new_trades` (the lock is the close step's).
    """
    return _run(Step.CLOSE, as_of=as_of, instruments=instruments, broker=broker, strategies=strategies)


def _claim(strategy: Strategy, step: str, as_of: date, run_id: Any) -> str | None:
    """Lock the strategy and claim (step, as_of); return why the step must not run, or None."""
    Strategy.objects.select_for_update().only("pk").get(pk=strategy.pk)
    done = set(StrategyStep.objects.filter(strategy=strategy, as_of=as_of).values_list("step", flat=True))
    if step in done:
        return f"the {step} step already ran for {as_of.isoformat()}"
    if step == StrategyStep.Step.OPEN and StrategyStep.Step.CLOSE in done:
        return f"the close step already ran for {as_of.isoformat()}; entries must come before exits"
    try:
        with transaction.atomic():
            StrategyStep.objects.create(strategy=strategy, step=step, as_of=as_of, run_id=run_id)
    except IntegrityError:
        return f"the {step} step already ran for {as_of.isoformat()}"
    return None


def _open_strategy(
    strategy: Strategy,
    *,
    as_of: date,
    only: set[int] | None,
    broker: ExecutionBackend,
    run_id: Any,
    pending: _Pending,
) -> list[StepResult]:
    exchange = broker if isinstance(broker, ExchangeBroker) else None
    criteria = strategy.parsed_criteria()
    if exchange is not None:
        _reconcile(strategy, exchange, criteria=criteria, as_of=as_of, pending=pending)
    instruments = [i for i in strategy.instruments.order_by("symbol") if only is None or i.pk in only]
    prepared: dict[str, tuple[Instrument, CandleArrays, Signals, int | None]] = {}
    for instrument in instruments:
        candles = candles_before(instrument, _boundary(as_of))
        t, signals = _signals_at(criteria, candles, as_of)
        prepared[instrument.symbol] = (instrument, candles, signals, t)
    held_before = set(open_positions(strategy).values_list("instrument__symbol", flat=True))
    wanted = any(
        t is not None and signals.entry[t] and symbol not in held_before
        for symbol, (_, _, signals, t) in prepared.items()
    )
    # Prices are needed only when something may be entered (they also mark the open positions for sizing).
    quotes = broker.quotes(instruments, as_of=as_of) if wanted else {}
    blocked = _trading_blocked(strategy) if exchange is not None else None
    if exchange is not None and wanted and blocked is None:
        exchange.prepare(instruments)
    lines: list[StepResult] = []
    intents: list[tuple[int, Order]] = []
    with transaction.atomic():
        refused = _claim(strategy, StrategyStep.Step.OPEN, as_of, run_id)
        if refused:
            return [StepResult(strategy=strategy.name, instrument=None, action="skipped", reason=refused)]
        held = {p.instrument.symbol: p for p in open_positions(strategy)}
        market = {
            symbol: _market_entry(candles, signals, t, quotes.get(instrument.pk))
            for symbol, (instrument, candles, signals, t) in prepared.items()
        }
        open_trades = {
            symbol: position_trade(p, prepared[symbol][1], next_check=len(prepared[symbol][1]))
            for symbol, p in held.items()
            if symbol in prepared
        }
        entered, _ = step_entries(
            criteria=criteria, market=market, open_trades=open_trades, cash=float(strategy_cash(strategy))
        )
        by_symbol = {trade.symbol: trade for trade in entered}
        for symbol, (instrument, _candles, _signals, t) in prepared.items():
            here = market[symbol]
            if here.entry_signal:
                pending.add(
                    HistoryKind.SIGNAL,
                    f"entry signal on {instrument.symbol}",
                    instrument=instrument,
                    payload={"candle": from_seconds(here.open_time).isoformat(), "side": "entry"},
                )
            trade = by_symbol.get(symbol)
            if trade is None:
                reason = _why_not_entered(here, symbol in held, t, quotes.get(instrument.pk))
                lines.append(
                    StepResult(
                        strategy=strategy.name,
                        instrument=instrument.coingecko_id,
                        action="none",
                        reason=reason,
                    )
                )
                continue
            quote = quotes[instrument.pk]
            if exchange is not None:
                line, order = _entry_intent(
                    strategy, instrument, trade, quote, criteria, exchange, as_of, blocked, pending
                )
                if order is not None:
                    intents.append((len(lines), order))
                lines.append(line)
                continue
            position = Position.objects.create(
                strategy=strategy,
                instrument=instrument,
                side=Position.Side.LONG,
                quantity=to_decimal(trade.quantity),
                entry_price=to_decimal(trade.entry_price),
                entry_at=quote.at,
                entry_fee=to_decimal(trade.entry_fee),
                stop_loss_price=None if trade.stop_loss_price is None else to_decimal(trade.stop_loss_price),
                take_profit_price=None
                if trade.take_profit_price is None
                else to_decimal(trade.take_profit_price),
                trailing_stop_price=None
                if trade.trailing_stop_price is None
                else to_decimal(trade.trailing_stop_price),
            )
            _trade_events(
                pending,
                position,
                side="buy",
                price=position.entry_price,
                fee=position.entry_fee,
                order={"price": str(quote.price), "source": quote.source, "backend": broker.name},
                outcome=(
                    HistoryKind.POSITION_OPENED,
                    f"opened {instrument.symbol} at {position.entry_price}",
                    {"entry_price": str(position.entry_price), "entry_at": position.entry_at.isoformat()},
                ),
            )
            lines.append(
                StepResult(
                    strategy=strategy.name,
                    instrument=instrument.coingecko_id,
                    action="opened",
                    reason="entry signal",
                    position_id=position.pk,
                    price=str(position.entry_price),
                    quantity=str(position.quantity),
                )
            )
    for index, order in intents:
        assert exchange is not None  # noqa: S101
        lines[index] = _entry_execute(strategy, order, criteria, exchange, as_of, pending)
    return lines


def _why_not_entered(here: InstrumentAtBoundary, held: bool, t: int | None, quote: Quote | None) -> str:
    if t is None:
        return "no candle for the day before as_of (collect first)"
    if held:
        return "a position is already open"
    if not here.entry_signal:
        return "no entry signal"
    if quote is None:
        return "no price to fill at"
    return "no cash left"


def _close_strategy(
    strategy: Strategy,
    *,
    as_of: date,
    only: set[int] | None,
    broker: ExecutionBackend,
    run_id: Any,
    pending: _Pending,
) -> list[StepResult]:
    exchange = broker if isinstance(broker, ExchangeBroker) else None
    criteria = strategy.parsed_criteria()
    if exchange is not None:
        _reconcile(strategy, exchange, criteria=criteria, as_of=as_of, pending=pending)
    boundary = _boundary(as_of)
    positions = [p for p in open_positions(strategy) if only is None or p.instrument_id in only]
    quotes = broker.quotes([p.instrument for p in positions], as_of=as_of) if positions else {}
    lines: list[StepResult] = []
    exits: list[tuple[int, Order]] = []
    moved: list[Position] = []
    with transaction.atomic():
        refused = _claim(strategy, StrategyStep.Step.CLOSE, as_of, run_id)
        if refused:
            return [StepResult(strategy=strategy.name, instrument=None, action="skipped", reason=refused)]
        for position in (
            Position.objects.select_for_update()
            .filter(pk__in=[p.pk for p in positions])
            .select_related("instrument")
        ):
            if position.status != Position.Status.OPEN:
                continue
            candles = candles_before(position.instrument, boundary)
            level_before = position.trailing_stop_price
            closed = _check_position(position, criteria, candles, quotes.get(position.instrument_id), as_of)
            if closed is None:
                if exchange is not None and position.trailing_stop_price != level_before:
                    moved.append(position)
                lines.append(
                    StepResult(
                        strategy=strategy.name,
                        instrument=position.instrument.coingecko_id,
                        action="none",
                        reason="no exit rule fired",
                        position_id=position.pk,
                    )
                )
                continue
            if exchange is not None:
                exits.append(
                    (
                        len(lines),
                        _exit_intent(position, closed.exit_reason or MANUAL, exchange, as_of, pending),
                    )
                )
                lines.append(StepResult(strategy=strategy.name, instrument=None, action="none"))
                continue
            _record_close(position, closed, pending, broker.name)
            lines.append(
                StepResult(
                    strategy=strategy.name,
                    instrument=position.instrument.coingecko_id,
                    action="closed",
                    reason=closed.exit_reason or "",
                    position_id=position.pk,
                    price=str(position.exit_price),
                    quantity=str(position.quantity),
                )
            )
    for index, order in exits:
        assert exchange is not None  # noqa: S101
        lines[index] = _exit_execute(strategy, order, criteria, exchange, as_of, pending)
    for position in moved:
        assert exchange is not None  # noqa: S101
        _protection_replace(position, criteria, exchange, as_of, pending)
    return lines


def _check_position(
    position: Position, criteria: Criteria, candles: CandleArrays, quote: Quote | None, as_of: date
) -> Trade | None:
    """Run the engine's exit step over every candle not yet checked; close the position (in memory) or advance it."""
    if len(candles) == 0:
        return None
    signals = signals_compute(criteria, candles)
    entry_day = to_seconds(position.entry_at) // SECONDS_PER_DAY * SECONDS_PER_DAY
    first_unchecked = entry_day
    if position.exits_checked_through is not None:
        first_unchecked = max(entry_day, to_seconds(position.exits_checked_through) + SECONDS_PER_DAY)
    k0 = int(np.searchsorted(candles.open_time, first_unchecked))
    last = len(candles) - 1
    open_trade: OpenTrade = position_trade(position, candles, next_check=k0)
    symbol = candles.symbol
    for k in range(k0, last + 1):
        if k < last:
            nxt_index, nxt_time, nxt_price = k + 1, int(candles.open_time[k + 1]), float(candles.open[k + 1])
        elif (
            int(candles.open_time[k]) + SECONDS_PER_DAY == to_seconds(_boundary(as_of)) and quote is not None
        ):
            nxt_index, nxt_time, nxt_price = -1, to_seconds(quote.at), float(quote.price)
        else:
            nxt_index, nxt_time, nxt_price = None, None, None
        here = market_at(
            candles, signals, t=k, next_index=nxt_index, next_time=nxt_time, next_price=nxt_price
        )
        closed, still_open = step_exits(
            criteria=criteria, market={symbol: here}, open_trades={symbol: open_trade}
        )
        if closed:
            trade = closed[0]
            if trade.exit_index == -1 and quote is not None:
                trade.exit_time = to_seconds(quote.at)
            return trade
        open_trade = still_open[symbol]
    position.exits_checked_through = from_seconds(int(candles.open_time[last]))
    level = open_trade.trade.trailing_stop_price
    position.trailing_stop_price = None if level is None else to_decimal(level)
    position.save(update_fields=["exits_checked_through", "trailing_stop_price", "updated_at"])
    return None


def _record_close(position: Position, trade: Trade, pending: _Pending, backend: str) -> None:
    assert trade.exit_price is not None and trade.exit_fee is not None and trade.exit_time is not None  # noqa: S101
    position.status = Position.Status.CLOSED
    position.exit_price = to_decimal(trade.exit_price)
    position.exit_fee = to_decimal(trade.exit_fee)
    position.exit_at = from_seconds(trade.exit_time)
    position.exit_reason = trade.exit_reason or MANUAL
    position.pnl = to_decimal(trade.pnl or 0.0)
    position.pnl_ratio = to_decimal(trade.pnl_ratio or 0.0)
    if trade.trailing_stop_price is not None:
        position.trailing_stop_price = to_decimal(trade.trailing_stop_price)
    position.save()
    instrument = position.instrument
    pending.add(
        HistoryKind.SIGNAL,
        f"exit ({position.exit_reason}) on {instrument.symbol}",
        instrument=instrument,
        position=position,
        payload={"reason": position.exit_reason, "side": "exit"},
    )
    _trade_events(
        pending,
        position,
        side="sell",
        price=position.exit_price,
        fee=position.exit_fee,
        order={"backend": backend},
        outcome=(
            HistoryKind.POSITION_CLOSED,
            f"closed {instrument.symbol} ({position.exit_reason}), pnl {position.pnl}",
            {
                "exit_reason": position.exit_reason,
                "exit_price": str(position.exit_price),
                "pnl": str(position.pnl),
                "pnl_ratio": str(position.pnl_ratio),
                "exit_at": position.exit_at.isoformat(),
            },
        ),
    )


def _trade_events(
    pending: _Pending,
    position: Position,
    *,
    side: str,
    price: Decimal | None,
    fee: Decimal | None,
    order: dict[str, Any],
    outcome: tuple[HistoryKind, str, dict[str, Any]],
) -> None:
    """Queue the order, fill and position-opened/closed events of one paper trade."""
    instrument = position.instrument
    quantity = str(position.quantity)
    done = "bought" if side == "buy" else "sold"
    pending.add(
        HistoryKind.ORDER,
        f"{side} {quantity} {instrument.symbol}",
        instrument=instrument,
        position=position,
        payload={"side": side, "quantity": quantity, **order},
    )
    pending.add(
        HistoryKind.FILL,
        f"{done} {quantity} {instrument.symbol} at {price}",
        instrument=instrument,
        position=position,
        payload={"price": str(price), "fee": str(fee)},
    )
    kind, message, payload = outcome
    pending.add(
        kind, message, instrument=instrument, position=position, payload={"quantity": quantity, **payload}
    )


def position_close_manual(*, position: Position, price: Decimal | None = None) -> Position:
    """Close an open position now, at ``price`` or the broker's current price, with exit reason ``manual``.

    Fees and slippage are the strategy's, through the engine. Recorded as a ``close`` run in ``History``.

    Raises:
        PositionNotOpenError: the position is already closed.
        ApplicationError: there is no price to close at.
    """
    closed_for = (
        Position.objects.filter(pk=position.pk)
        .exclude(status=Position.Status.OPEN)
        .values_list("exit_reason", flat=True)
    )
    for reason in closed_for:  # checked before the run starts, so a refusal leaves no unfinished run behind
        raise PositionNotOpenError(f"position {position.pk} is already closed ({reason})")
    recorder = run_start(step=Step.CLOSE, params={"position": position.pk, "manual": True})
    pending = _Pending()
    if position.strategy.execution_backend == Strategy.ExecutionBackend.EXCHANGE:
        return _position_close_manual_exchange(position, recorder, pending)
    with transaction.atomic():
        locked = (
            Position.objects.select_for_update().select_related("instrument", "strategy").get(pk=position.pk)
        )
        if locked.status != Position.Status.OPEN:
            raise PositionNotOpenError(f"position {locked.pk} is already closed ({locked.exit_reason})")
        strategy: Strategy = locked.strategy
        if price is None:
            quote = broker_for(strategy.execution_backend).quotes(
                [locked.instrument], as_of=timezone.now().date()
            )
            if locked.instrument_id not in quote:
                raise ApplicationError(
                    f"no price for {locked.instrument.symbol} to close position {locked.pk} at"
                )
            price = quote[locked.instrument_id].price
        candles = candles_before(locked.instrument, timezone.now())
        trade = position_trade(locked, candles, next_check=len(candles)).trade
        closed = trade_close_at(
            trade,
            strategy.parsed_criteria(),
            index=-1,
            time=to_seconds(timezone.now()),
            raw_price=float(price),
            reason=MANUAL,
        )
        _record_close(locked, closed, pending, strategy.execution_backend)
    pending.record(recorder, strategy)
    recorder.finish(
        status=run_status(errors=0, succeeded=1), summary={"results": [{"position_id": locked.pk}]}
    )
    return locked


def strategies_set_enabled(*, strategies: QuerySet[Strategy], is_enabled: bool) -> int:
    """Enable (the daily cycle trades them) or disable strategies.

    Args:
        strategies: the strategies to change.
        is_enabled: the new value.

    Returns:
        How many strategies changed (those already in that state are left untouched).
    """
    return strategies.exclude(is_enabled=is_enabled).update(is_enabled=is_enabled, updated_at=timezone.now())


def day_range(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


# -- exchange strategies: orders, fills, protection and reconciliation (see the module docstring) ------------------


def _position_id(order: Order) -> int:
    """The id of the position an exit or stop order belongs to (always set for those purposes)."""
    assert order.position_id is not None  # noqa: S101
    return int(order.position_id)


def _trading_blocked(strategy: Strategy) -> str | None:
    """Why the kill switch refuses new entries of ``strategy`` now, or None when it may enter."""
    if not settings.BARTER_TRADING_ENABLED:
        return "trading is switched off for every strategy (BARTER_TRADING_ENABLED=false); exits still run"
    if not strategy.trading_enabled:
        return f"trading is switched off for strategy {strategy.name} (trading_enabled); exits still run"
    return None


def _order_payload(order: Order) -> dict[str, Any]:
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


def _entry_intent(
    strategy: Strategy,
    instrument: Instrument,
    trade: Trade,
    quote: Quote,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    blocked: str | None,
    pending: _Pending,
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


def _send(
    order: Order, exchange: ExchangeBroker, pending: _Pending, *, cancel_rest: bool
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
        payload=_order_payload(order),
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
            payload={**_order_payload(order), "error": exc.message},
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


def _entry_execute(
    strategy: Strategy,
    order: Order,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    pending: _Pending,
) -> StepResult:
    """After the open step's commit: send an entry and open its position from the fill."""
    line = StepResult(strategy=strategy.name, instrument=order.instrument.coingecko_id, action="none")
    state, error = _send(order, exchange, pending, cancel_rest=True)
    if state is None:
        pending.add(
            HistoryKind.ERROR, error or "", instrument=order.instrument, payload=_order_payload(order)
        )
        line.reason, line.error = "entry order failed", error
        return line
    return _entry_take_up(order, state, criteria, exchange, as_of, pending, line)


def _entry_take_up(
    order: Order,
    state: OrderState,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    pending: _Pending,
    line: StepResult,
) -> StepResult:
    """Write an entry's state; once it is done filling, open the position from the real fill and protect it."""
    with transaction.atomic():
        locked = (
            Order.objects.select_for_update(of=("self",))
            .select_related("instrument", "strategy")
            .get(pk=order.pk)
        )
        order_apply(locked, state)
        position: Position | None = None
        if locked.position_id is None and not locked.is_live and locked.filled_quantity > 0:
            position = _position_from_fill(locked, criteria, exchange)
            locked.position = position
        locked.save()
    instrument = locked.instrument
    if position is None:
        if not locked.is_live and locked.filled_quantity == 0:
            pending.add(
                HistoryKind.ORDER_CANCELED,
                f"entry order {locked.client_order_id} ended {locked.status} with nothing filled: no position",
                instrument=instrument,
                payload=_order_payload(locked),
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
            **_order_payload(locked),
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
    _protect(position, criteria, exchange, as_of, pending)
    line.action, line.reason, line.position_id = "opened", "entry signal", position.pk
    line.price, line.quantity = str(position.entry_price), str(position.quantity)
    return line


def _fee_in_quote(order: Order, base: str, quote: str, price: Decimal) -> Decimal:
    """The order's fee in quote currency: a fee in base units is worth ``fee * price``; fees in a third currency
    (binance's BNB discount) cannot be priced here and count 0 (they stay on the ``Order``'s ``other_fees`` and
    in History)."""
    if order.fee_currency == base:
        return price_quantize(order.fee * price)
    if order.fee_currency in ("", quote):
        return order.fee
    return Decimal(0)


def _position_from_fill(order: Order, criteria: Criteria, exchange: ExchangeBroker) -> Position:
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
        instrument=order.instrument,
        side=Position.Side.LONG,
        quantity=price_quantize(quantity),
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


def _stop_level(position: Position) -> Decimal | None:
    """The stop the exchange should hold: the higher of the stop-loss and the trailing level (a long's nearest)."""
    levels = [lvl for lvl in (position.stop_loss_price, position.trailing_stop_price) if lvl is not None]
    return max(levels) if levels else None


def _protect(
    position: Position, criteria: Criteria, exchange: ExchangeBroker, as_of: date, pending: _Pending
) -> None:
    """Place a stop-loss order on the exchange at the engine's level; mark the position protected or not."""
    level = _stop_level(position)
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
    state, error = _send(order, exchange, pending, cancel_rest=False)
    if state is None:
        position.protection = Position.Protection.UNPROTECTED
        position.save(update_fields=["protection", "updated_at"])
        pending.add(
            HistoryKind.ERROR,
            f"stop-loss of {instrument.symbol} not placed: {error}",
            instrument=instrument,
            position=position,
            payload=_order_payload(order),
        )
        return
    _protection_update(order, state, exchange, pending)


def _protection_update(order: Order, state: OrderState, exchange: ExchangeBroker, pending: _Pending) -> None:
    """Write a stop's state; a stop that filled closes its position as ``stop_loss``; one that ended otherwise
    leaves the position unprotected."""
    with transaction.atomic():
        locked = (
            Order.objects.select_for_update(of=("self",))
            .select_related("instrument", "position")
            .get(pk=order.pk)
        )
        changed = order_apply(locked, state)
        locked.save()
        position = (
            Position.objects.select_for_update()
            .select_related("instrument", "strategy")
            .get(pk=_position_id(locked))
        )
        closed = False
        if position.status == Position.Status.OPEN:
            if locked.is_live:
                position.protection = Position.Protection.PROTECTED
            elif locked.filled_quantity > 0:
                _close_from_fill(position, locked, Position.ExitReason.STOP_LOSS, exchange, pending)
                closed = True
            else:
                position.protection = Position.Protection.UNPROTECTED
            if not closed:
                position.save(update_fields=["protection", "updated_at"])
    if changed and not locked.is_live and locked.filled_quantity == 0:
        pending.add(
            HistoryKind.ORDER_CANCELED,
            f"stop-loss {locked.client_order_id} of {locked.instrument.symbol} ended {locked.status}",
            instrument=locked.instrument,
            position=position,
            payload=_order_payload(locked),
        )


def _close_from_fill(
    position: Position, order: Order, reason: str, exchange: ExchangeBroker, pending: _Pending
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
    fee_share = price_quantize(position.entry_fee * sold / position.quantity)
    price = order.average_price
    exit_fee = _fee_in_quote(order, base, quote, price)
    cost = position.entry_price * sold + fee_share
    pnl = price_quantize(price * sold - exit_fee - cost)
    open_fields = {
        "strategy": position.strategy,
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
    position.pnl, position.pnl_ratio = pnl, price_quantize(pnl / cost)
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
        payload={**_order_payload(order), "price": str(price), "fee": str(exit_fee)},
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


def _protection_cancel(position: Position, exchange: ExchangeBroker, pending: _Pending) -> bool:
    """Cancel the position's live stop before another exit; True when it had filled meanwhile (and closed the
    position as ``stop_loss``)."""
    for stop in Order.objects.live().filter(position=position, purpose=Order.Purpose.PROTECTION):
        state = exchange.order_cancel(stop)
        if state is None:
            stop.status, stop.error = Order.Status.EXPIRED, "not found on the exchange by its client order id"
            stop.save(update_fields=["status", "error", "updated_at"])
            continue
        _protection_update(stop, state, exchange, pending)
        stop.refresh_from_db()
        if stop.filled_quantity > 0:
            return True
    return False


def _protection_replace(
    position: Position, criteria: Criteria, exchange: ExchangeBroker, as_of: date, pending: _Pending
) -> None:
    """The trailing level moved: cancel the stop on the exchange and place one at the new level."""
    position.refresh_from_db()
    level = _stop_level(position)
    if position.status != Position.Status.OPEN or level is None:
        return
    live = Order.objects.live().filter(position=position, purpose=Order.Purpose.PROTECTION).first()
    symbol = exchange.market_symbol(position.instrument)
    if live is not None and live.price == exchange.price_precise(symbol, level):
        return
    if _protection_cancel(position, exchange, pending):
        return
    position.refresh_from_db()
    _protect(position, criteria, exchange, as_of, pending)


def _exit_intent(
    position: Position, reason: str, exchange: ExchangeBroker, as_of: date, pending: _Pending
) -> Order:
    """Inside the close step's transaction: the ``new`` market sell of an exit the engine decided."""
    symbol = exchange.market_symbol(position.instrument)
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
        ),
    )


def _exit_execute(
    strategy: Strategy,
    order: Order,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    pending: _Pending,
) -> StepResult:
    """After the close step's commit: cancel the stop, sell, and close the position from the real fill."""
    position = Position.objects.select_related("instrument", "strategy").get(pk=_position_id(order))
    line = StepResult(
        strategy=strategy.name,
        instrument=position.instrument.coingecko_id,
        action="none",
        position_id=position.pk,
    )
    if _protection_cancel(position, exchange, pending):
        order.status, order.error = Order.Status.CANCELED, "not sent: the stop-loss filled first"
        order.save(update_fields=["status", "error", "updated_at"])
        position.refresh_from_db()
        line.action, line.reason, line.price = "closed", position.exit_reason, str(position.exit_price)
        return line
    state, error = _send(order, exchange, pending, cancel_rest=True)
    if state is None:
        pending.add(
            HistoryKind.ERROR, error or "", instrument=position.instrument, payload=_order_payload(order)
        )
        position.refresh_from_db()
        _protect(
            position, criteria, exchange, as_of, pending
        )  # the stop was cancelled for a sell that failed
        line.reason, line.error = "exit order failed", error
        return line
    return _exit_take_up(order, state, criteria, exchange, as_of, pending, line)


def _exit_take_up(
    order: Order,
    state: OrderState,
    criteria: Criteria,
    exchange: ExchangeBroker,
    as_of: date,
    pending: _Pending,
    line: StepResult,
) -> StepResult:
    """Write an exit's state; once it is done filling, close the position from the real fill."""
    with transaction.atomic():
        locked = Order.objects.select_for_update(of=("self",)).select_related("instrument").get(pk=order.pk)
        order_apply(locked, state)
        locked.save()
        position = (
            Position.objects.select_for_update()
            .select_related("instrument", "strategy")
            .get(pk=_position_id(locked))
        )
        closed = False
        if position.status == Position.Status.OPEN and not locked.is_live and locked.filled_quantity > 0:
            _close_from_fill(position, locked, locked.exit_reason or MANUAL, exchange, pending)
            closed = True
    if not closed:
        line.reason = f"exit order {locked.status} with {locked.filled_quantity} filled"
        if not locked.is_live:
            line.error = f"exit order {locked.client_order_id} of {position.instrument.symbol} filled nothing"
            pending.add(
                HistoryKind.ERROR, line.error, instrument=position.instrument, payload=_order_payload(locked)
            )
        return line
    line.action, line.reason = "closed", position.exit_reason
    line.price, line.quantity = str(position.exit_price), str(position.quantity)
    return line


def _reconcile(
    strategy: Strategy, exchange: ExchangeBroker, *, criteria: Criteria, as_of: date, pending: _Pending
) -> None:
    """Bring every order Barter knows as live up to date from the exchange (the exchange is the truth).

    Each is looked up by its client order id: an entry that filled (after a timeout or a crash) opens its
    position; a stop that filled closes its position as ``stop_loss`` at the fill's price and time; an exit
    that filled closes its position with the engine's reason; a market order still open is cancelled for the
    rest; an order the exchange does not know (it never arrived) is marked ``expired``.

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
        if state is None:
            order.status, order.error = (
                Order.Status.EXPIRED,
                "never reached the exchange (unknown client order id)",
            )
            order.save(update_fields=["status", "error", "updated_at"])
            if order.position_id is not None and order.purpose == Order.Purpose.PROTECTION:
                Position.objects.filter(pk=order.position_id, status=Position.Status.OPEN).update(
                    protection=Position.Protection.UNPROTECTED
                )
        elif order.purpose == Order.Purpose.ENTRY:
            line = StepResult(strategy=strategy.name, instrument=order.instrument.coingecko_id, action="none")
            _entry_take_up(order, state, criteria, exchange, as_of, pending, line)
        elif order.purpose == Order.Purpose.PROTECTION:
            _protection_update(order, state, exchange, pending)
        else:
            line = StepResult(strategy=strategy.name, instrument=order.instrument.coingecko_id, action="none")
            _exit_take_up(order, state, criteria, exchange, as_of, pending, line)
        order.refresh_from_db()
        pending.add(
            HistoryKind.RECONCILED,
            f"reconciled {order.purpose} order {order.client_order_id}: {before} -> {order.status}",
            instrument=order.instrument,
            position=order.position,
            payload={**_order_payload(order), "status_before": before},
        )


def _position_close_manual_exchange(position: Position, recorder: RunRecorder, pending: _Pending) -> Position:
    """``position_close_manual`` of an exchange strategy: a market sell now (the stop cancelled first)."""
    strategy: Strategy = position.strategy
    exchange = broker_for(strategy.execution_backend, exchange_id=strategy.exchange_id)
    assert isinstance(exchange, ExchangeBroker)  # noqa: S101
    today = timezone.now().date()
    try:
        with transaction.atomic():
            locked = (
                Position.objects.select_for_update()
                .select_related("instrument", "strategy")
                .get(pk=position.pk)
            )
            if locked.status != Position.Status.OPEN:
                raise PositionNotOpenError(f"position {locked.pk} is already closed ({locked.exit_reason})")
            order = _exit_intent(locked, MANUAL, exchange, today, pending)
        line = _exit_execute(strategy, order, strategy.parsed_criteria(), exchange, today, pending)
    finally:
        pending.record(recorder, strategy)
    errors = 1 if line.error else 0
    recorder.finish(
        status=run_status(errors=errors, succeeded=1 - errors),
        summary={"results": [{"position_id": position.pk, "error": line.error}]},
    )
    if line.error:
        raise ApplicationError(line.error, extra={"position_id": position.pk})
    position.refresh_from_db()
    return position
