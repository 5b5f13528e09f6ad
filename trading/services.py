"""The open and close steps of the daily cycle, and closing a position by hand.

``sync_new_trades`` (open) and ``sync_close_positions`` (close) ask the engine (:mod:`trading.engine.step`) what
to do at the boundary ``as_of`` (candle ``as_of - 1 day`` has closed) and write what it decided. Each strategy is
handled in its own transaction under a row lock, with a ``StrategyStep`` row keyed on (strategy, step, as_of), so
a second call for the same day opens and closes nothing more. A whole run holds the run lock of (step, as_of,
scope) (:func:`positions.history.run_locked`), so a concurrent second run is refused at once with
``RunInProgressError`` (409) instead of waiting on the row locks. Every step is a ``History`` run with an event
per signal, order, fill, position opened or closed, and error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from instruments.sync import as_of_validate, database_gone, instruments_resolve
from positions.history import RunRecorder, run_locked, run_start, run_status
from positions.locks import run_scope
from positions.models import History, HistoryKind, Position, Step
from trading.brokers import ExecutionBackend, Quote, broker_for
from trading.engine.backtest import market_at
from trading.engine.conditions import Signals, signals_compute
from trading.engine.criteria import Criteria
from trading.engine.exits import MANUAL
from trading.engine.step import InstrumentAtBoundary, OpenTrade, step_entries, step_exits, trade_close_at
from trading.engine.types import SECONDS_PER_DAY, CandleArrays, Trade
from trading.models import Strategy, StrategyStep
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
            backend = broker or brokers.setdefault(
                strategy.execution_backend, broker_for(strategy.execution_backend)
            )
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
    criteria = strategy.parsed_criteria()
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
    lines: list[StepResult] = []
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
    criteria = strategy.parsed_criteria()
    boundary = _boundary(as_of)
    positions = [p for p in open_positions(strategy) if only is None or p.instrument_id in only]
    quotes = broker.quotes([p.instrument for p in positions], as_of=as_of) if positions else {}
    lines: list[StepResult] = []
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
            closed = _check_position(position, criteria, candles, quotes.get(position.instrument_id), as_of)
            if closed is None:
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
