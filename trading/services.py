"""The open and close steps of the daily cycle, and closing a position by hand.

``sync_new_trades`` (open) and ``sync_close_positions`` (close) ask the engine (:mod:`trading.engine.step`) what
to do at the boundary ``as_of`` (candle ``as_of - 1 day`` has closed) and write what it decided. The live steps
(the strategies' own backends) act only for today (:func:`step_day_validate`); past days are the replay's. Each
strategy is handled in its own transaction under a row lock, with one ``StrategyStep`` claim per (strategy, step,
as_of, instrument), so a second call for the same day skips what was handled and handles the rest (a scoped run, a
run after the close step, a run after a crash). When the close step of a day ran first, the open step decides as
if it had run before it (:func:`_exited_by_close`). Instruments are keyed by id, never by ticker. A whole run
holds the run lock of (step, as_of, scope) (:func:`positions.history.run_locked`), so a concurrent second run is
refused at once with ``RunInProgressError`` (409) instead of waiting on the row locks. Every step is a ``History``
run with an event per signal, order, fill, position opened or closed, and error.

Exchange strategies (``execution_backend="exchange"``, :mod:`trading.execution`) decide exactly as paper ones (the
same engine calls, in the same transaction), but execute for real, in three phases so that no HTTP call is made
while the strategy's rows are locked:

1. before the transaction: **reconciliation** (every order Barter knows as live is looked up on the exchange by
   its client order id and updated; a stop that filled closes its position as ``stop_loss``, an entry that
   filled after a timeout opens its position), then markets, prices and the free balance;
2. the transaction: the claims of the day, the engine's decisions, and one ``Order`` row (status ``new``) per
   entry or exit to send, with its deterministic client order id;
3. after the commit: each order is sent (looked up first, so never twice), and its position is opened or closed
   from the exchange's fill in a short transaction; then stop-losses are placed, replaced or cancelled.

A crash between "order accepted" and "position saved" leaves the ``Order`` row ``new`` or ``open``: the next run's
reconciliation finds the order by its client id and takes the fill up. The kill switch
(``BARTER_TRADING_ENABLED`` and ``Strategy.trading_enabled``) stops new entries of exchange strategies only;
paper and replay strategies are not real money and keep trading as the backtest does.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
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
from positions.models import History, HistoryKind, Position, RunStatus, Step
from trading.brokers import ExecutionBackend, Quote, broker_for
from trading.engine.backtest import market_at
from trading.engine.conditions import Signals, signals_compute
from trading.engine.criteria import Criteria
from trading.engine.exits import stop_loss_level, take_profit_level, trailing_stop_level
from trading.engine.step import InstrumentAtBoundary, OpenTrade, step_entries, step_exits, trade_close_at
from trading.engine.types import SECONDS_PER_DAY, CandleArrays, Trade
from trading.engine.vocabulary import ExitReason
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


class StepDayError(ApplicationError):
    """A live open or close step was asked for a day other than today (UTC): field ``as_of``, 400."""


def step_day_validate(*, step: Step | str, as_of: date, today: date, live: bool) -> None:
    """Refuse a live open or close step for any day but today.

    A live step (the strategies' own backends: paper at CoinGecko's price of now, or an exchange) fills at the
    price of now, so it may only act for the boundary that just passed: ``as_of`` today (UTC). A past ``as_of``
    would trade that day's signals at today's price, stamped now. Past days are for ``manage.py replay``, whose
    broker fills at the stored open of each day. The close step still catches up the risk exits of days it
    missed (at their levels, from the stored candles), so nothing is lost by this rule.

    Args:
        step: ``open`` or ``close``.
        as_of: the day asked for (UTC).
        today: today (UTC).
        live: whether the step fills through a live backend (False only for the replay broker).

    Raises:
        StepDayError: (field ``as_of``) ``live`` and ``as_of`` is not ``today``.
    """
    if not live or as_of == today:
        return
    raise StepDayError(
        f"the live {step} step acts only for today ({today.isoformat()} UTC), the boundary that just passed; was "
        f"{as_of.isoformat()}: a live step fills at the price of now, so a past day's signals would trade at "
        "today's price. Leave as_of out (or give today); to see what the strategies would have done on past "
        f"days, replay them over the stored candles: manage.py replay --start {as_of.isoformat()} --end "
        f"{today.isoformat()} [--strategy NAME]",
        extra={"field": "as_of", "as_of": as_of.isoformat(), "today": today.isoformat()},
    )


@dataclass
class StepResult:
    """One line of an open or close step's summary: what happened to one strategy and instrument."""

    strategy: str
    instrument: str | None  # the instrument's CoinGecko id (unique; tickers are not)
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
    return (t if t >= 0 and int(candles.open_time_seconds[t]) == wanted else None), signals


def _market_entry(
    candles: CandleArrays, signals: Signals, t: int | None, quote: Quote | None
) -> InstrumentAtBoundary:
    return market_at(
        candles,
        signals,
        t=-1 if t is None else t,
        next_index=-1 if quote is not None else None,
        next_time_seconds=to_seconds(quote.at) if quote is not None else None,
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
    step_day_validate(step=step, as_of=as_of, today=now.date(), live=broker is None or broker.live)
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
    committed = list(
        StrategyStep.objects.filter(run_id=run_id)
        .order_by("strategy__name")
        .values_list("strategy__name", flat=True)
        .distinct()
    )
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
        as_of: the run's day (UTC); default today, and with the strategies' own (live) backends it must be today.
            Signals are read on candle ``as_of - 1 day``.
        instruments: CoinGecko ids to consider; default every instrument of each strategy.
        broker: the execution backend; default each strategy's own (``paper``).
        strategies: which strategies; default every enabled one (``replay`` passes its own).

    Returns:
        The run summary: ``run_id``, ``step``, ``status``, ``started_at``, ``finished_at``, ``as_of``,
        ``results`` (per strategy and instrument: ``action``, ``reason``, ``position_id``, ``price``,
        ``quantity``, ``error``) and ``errors``.

    Raises:
        ApplicationError: ``as_of`` in the future or unknown instruments (nothing is recorded then).
        StepDayError: (field ``as_of``) a live run for a day other than today (nothing is recorded then).
        RunInProgressError: (409) another open run of the same day and scope holds the run lock; nothing is
            recorded, and ``extra["run_id"]`` names that run. Once it has finished, a new call reports each
            instrument it handled ``skipped``.
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


def _key(instrument: Instrument) -> str:
    """The engine's key of an instrument: its ticker, then its id.

    The engine enters in key order, which must be ticker order as in the backtest; tickers are not unique (two
    "BTC" instruments), so the id makes the key unique. ``\\x00`` sorts before any character of a ticker, so the
    keys sort as the tickers do, and instruments sharing a ticker by id.
    """
    return f"{instrument.symbol}\x00{instrument.pk:012d}"


def _claimed(strategy: Strategy, step: str, as_of: date) -> set[int]:
    """Ids of the instruments ``step`` has already handled for ``strategy`` and ``as_of`` (their claims)."""
    return set(
        StrategyStep.objects.filter(strategy=strategy, step=step, as_of=as_of).values_list(
            "instrument_id", flat=True
        )
    )


def _claim(
    strategy: Strategy, step: str, as_of: date, run_id: Any, instruments: Sequence[Instrument]
) -> dict[int, StrategyStep] | None:
    """Inside the strategy's transaction: claim (step, as_of) for each of ``instruments``.

    Returns:
        The claims by instrument id, or None when another run claimed one of them first (nothing is claimed
        then; the caller reports the strategy skipped). The unique constraint on (strategy, step, as_of,
        instrument) is what makes two racing runs unable to both claim one instrument.
    """
    try:
        with transaction.atomic():
            claims = [
                StrategyStep.objects.create(
                    strategy=strategy, step=step, as_of=as_of, instrument=instrument, run_id=run_id
                )
                for instrument in instruments
            ]
    except IntegrityError:
        return None
    return {claim.instrument_id: claim for claim in claims}


def _skipped(
    strategy: Strategy, step: str, as_of: date, instrument: Instrument | None, why: str = ""
) -> StepResult:
    return StepResult(
        strategy=strategy.name,
        instrument=None if instrument is None else instrument.coingecko_id,
        action="skipped",
        reason=why or f"the {step} step already ran for {as_of.isoformat()}",
    )


def _exited_by_close(strategy: Strategy, as_of: date) -> dict[int, Position]:
    """The positions the close step of ``as_of`` exited for ``strategy`` (closed since), by instrument id.

    When the close step of a day ran before its open step, the open step decides as if it had run first (the
    backtest's order at every boundary: entries, then exits): these positions were still held then, and what
    their exits returned was not in cash yet. When an exchange exit filled only in part, the part kept open is
    an open position of its own; the two are added back together by the caller.
    """
    claims = (
        StrategyStep.objects.filter(
            strategy=strategy,
            step=StrategyStep.Step.CLOSE,
            as_of=as_of,
            position__status=Position.Status.CLOSED,
        )
        .select_related("position__instrument")
        .order_by("instrument_id")
    )
    return {claim.instrument_id: claim.position for claim in claims if claim.position is not None}


def _proceeds(position: Position) -> Decimal:
    """What a closed position's exit returned to cash: ``exit_price * quantity - exit_fee``, quote currency."""
    assert position.exit_price is not None  # noqa: S101 (closed positions have their exit)
    return position.exit_price * position.quantity - (position.exit_fee or Decimal(0))


def _held_before_close(held: dict[int, Position], exited: dict[int, Position]) -> dict[int, Position]:
    """The positions held before the day's close step ran: those open now, and those it exited.

    A position the close step exited in part (an exchange sell not wholly filled) is held again as one position:
    the exited part with the quantity and entry fee of the part still open added (in memory only).
    """
    before = dict(held)
    for instrument_id, position in exited.items():
        rest = held.get(instrument_id)
        if rest is None:
            before[instrument_id] = position
            continue
        whole = copy.copy(position)
        whole.quantity = position.quantity + rest.quantity
        whole.entry_fee = position.entry_fee + rest.entry_fee
        whole.status = Position.Status.OPEN
        before[instrument_id] = whole
    return before


def _open_strategy(
    strategy: Strategy,
    *,
    as_of: date,
    only: set[int] | None,
    broker: ExecutionBackend,
    run_id: Any,
    pending: _Pending,
) -> list[StepResult]:
    """The open step of one strategy: enter the instruments in scope not yet handled for ``as_of``.

    Instruments are keyed by id throughout (tickers are not unique). An instrument whose open claim for
    ``as_of`` exists is reported ``skipped``; one without the candle before ``as_of`` is reported and left
    unclaimed, so a run after the collect handles it. When the close step of ``as_of`` ran first, its exits
    count as not yet made (:func:`_exited_by_close`): what it exited is not re-entered today, and the cash its
    exits returned is not spent today, exactly as if this step had run before it. Sizing sees every position
    of the strategy, in scope or not.
    """
    exchange = broker if isinstance(broker, ExchangeBroker) else None
    criteria = strategy.parsed_criteria()
    if exchange is not None:
        _reconcile(
            strategy, exchange, criteria=criteria, as_of=as_of, pending=pending, send_todays_entries=True
        )
    in_scope = [i for i in strategy.instruments.order_by("symbol", "pk") if only is None or i.pk in only]
    done = _claimed(strategy, StrategyStep.Step.OPEN, as_of)
    if not in_scope or all(i.pk in done for i in in_scope):
        return [_skipped(strategy, StrategyStep.Step.OPEN, as_of, i) for i in in_scope]
    held_now = _held_before_close(
        {p.instrument_id: p for p in open_positions(strategy)}, _exited_by_close(strategy, as_of)
    )
    universe: dict[int, Instrument] = {i.pk: i for i in in_scope}
    for position in held_now.values():
        universe.setdefault(position.instrument_id, position.instrument)
    prepared: dict[int, tuple[Instrument, CandleArrays, Signals, int | None]] = {}
    for instrument_id, instrument in universe.items():
        candles = candles_before(instrument, _boundary(as_of))
        t, signals = _signals_at(criteria, candles, as_of)
        prepared[instrument_id] = (instrument, candles, signals, t)
    wanted = any(
        t is not None and signals.entry[t] and i.pk not in held_now and i.pk not in done
        for i in in_scope
        for (_, _, signals, t) in [prepared[i.pk]]
    )
    # Prices are needed only when something may be entered (they also mark the held positions for sizing).
    quotes = broker.quotes(list(universe.values()), as_of=as_of) if wanted else {}
    blocked = _trading_blocked(strategy) if exchange is not None else None
    if exchange is not None and wanted and blocked is None:
        exchange.prepare(in_scope)
    lines: list[StepResult] = []
    intents: list[tuple[int, Order]] = []
    with transaction.atomic():
        Strategy.objects.select_for_update().only("pk").get(pk=strategy.pk)
        done = _claimed(strategy, StrategyStep.Step.OPEN, as_of)  # again, under the strategy's lock
        todo = [i for i in in_scope if i.pk not in done]
        deciding = [i for i in todo if prepared[i.pk][3] is not None]
        claims = _claim(strategy, StrategyStep.Step.OPEN, as_of, run_id, deciding)
        if claims is None:
            return [_skipped(strategy, StrategyStep.Step.OPEN, as_of, i) for i in in_scope]
        exited = _exited_by_close(strategy, as_of)
        held = _held_before_close({p.instrument_id: p for p in open_positions(strategy)}, exited)
        cash = strategy_cash(strategy) - sum((_proceeds(p) for p in exited.values()), Decimal(0))
        market = {
            _key(instrument): _entry_allowed(
                _market_entry(candles, signals, t, quotes.get(instrument_id)), instrument_id in claims
            )
            for instrument_id, (instrument, candles, signals, t) in prepared.items()
        }
        open_trades = {
            _key(p.instrument): position_trade(
                p, prepared[instrument_id][1], next_check=len(prepared[instrument_id][1])
            )
            for instrument_id, p in held.items()
            if instrument_id in prepared
        }
        entered, _ = step_entries(criteria=criteria, market=market, open_trades=open_trades, cash=float(cash))
        by_key = {trade.symbol: trade for trade in entered}
        for instrument in in_scope:
            if instrument.pk in done:
                lines.append(_skipped(strategy, StrategyStep.Step.OPEN, as_of, instrument))
                continue
            _, _candles, _signals, t = prepared[instrument.pk]
            here = market[_key(instrument)]
            if here.entry_signal:
                pending.add(
                    HistoryKind.SIGNAL,
                    f"entry signal on {instrument.symbol}",
                    instrument=instrument,
                    payload={"candle": from_seconds(here.open_time_seconds).isoformat(), "side": "entry"},
                )
            trade = by_key.get(_key(instrument))
            if trade is None:
                reason = _why_not_entered(
                    here,
                    "exited" if instrument.pk in exited else "held" if instrument.pk in held else "",
                    t,
                    quotes.get(instrument.pk),
                    as_of,
                )
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
            claim = claims[instrument.pk]
            claim.position = position
            claim.save(update_fields=["position"])
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


def _entry_allowed(here: InstrumentAtBoundary, allowed: bool) -> InstrumentAtBoundary:
    """``here`` as it is for an instrument this run may enter; without its entry signal for one it may not (out
    of scope, or claimed already): such an instrument is in the market only to mark a held position."""
    return here if allowed or not here.entry_signal else replace(here, entry_signal=False)


def _why_not_entered(
    here: InstrumentAtBoundary, held: str, t: int | None, quote: Quote | None, as_of: date
) -> str:
    if t is None:
        return "no candle for the day before as_of (collect first)"
    if held == "exited":
        return (
            f"exited by the close step of {as_of.isoformat()}, which ran first: entries come before exits, so it "
            "may be entered again from the next day"
        )
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
    done = _claimed(strategy, StrategyStep.Step.CLOSE, as_of)
    positions = [
        p
        for p in open_positions(strategy)
        if (only is None or p.instrument_id in only) and p.instrument_id not in done
    ]
    quotes = broker.quotes([p.instrument for p in positions], as_of=as_of) if positions else {}
    lines: list[StepResult] = []
    exits: list[tuple[int, Order]] = []
    moved: list[Position] = []
    with transaction.atomic():
        Strategy.objects.select_for_update().only("pk").get(pk=strategy.pk)
        done = _claimed(strategy, StrategyStep.Step.CLOSE, as_of)  # again, under the strategy's lock
        in_scope: dict[int, Instrument] = {
            i.pk: i for i in strategy.instruments.order_by("symbol", "pk") if only is None or i.pk in only
        }
        for position in positions:
            in_scope.setdefault(position.instrument_id, position.instrument)
        claims = _claim(
            strategy,
            StrategyStep.Step.CLOSE,
            as_of,
            run_id,
            [i for i in in_scope.values() if i.pk not in done],
        )
        if claims is None or (in_scope and not claims):
            return [_skipped(strategy, StrategyStep.Step.CLOSE, as_of, i) for i in in_scope.values()]
        lines.extend(
            _skipped(strategy, StrategyStep.Step.CLOSE, as_of, i) for i in in_scope.values() if i.pk in done
        )
        for position in (
            Position.objects.select_for_update()
            .filter(pk__in=[p.pk for p in positions if p.instrument_id in claims])
            .select_related("instrument")
            .order_by("instrument__symbol", "instrument_id")
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
            claim = claims[position.instrument_id]
            claim.position = (
                position  # what the close step of as_of exited (read by a later open step of as_of)
            )
            claim.save(update_fields=["position"])
            if exchange is not None:
                exits.append(
                    (
                        len(lines),
                        _exit_intent(
                            position, closed.exit_reason or ExitReason.MANUAL, exchange, as_of, pending
                        ),
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
    k0 = int(np.searchsorted(candles.open_time_seconds, first_unchecked))
    last = len(candles) - 1
    open_trade: OpenTrade = position_trade(position, candles, next_check=k0)
    symbol = candles.symbol
    for k in range(k0, last + 1):
        if k < last:
            nxt_index, nxt_time, nxt_price = (
                k + 1,
                int(candles.open_time_seconds[k + 1]),
                float(candles.open[k + 1]),
            )
        elif (
            int(candles.open_time_seconds[k]) + SECONDS_PER_DAY == to_seconds(_boundary(as_of))
            and quote is not None
        ):
            nxt_index, nxt_time, nxt_price = -1, to_seconds(quote.at), float(quote.price)
        else:
            nxt_index, nxt_time, nxt_price = None, None, None
        here = market_at(
            candles, signals, t=k, next_index=nxt_index, next_time_seconds=nxt_time, next_price=nxt_price
        )
        closed, still_open = step_exits(
            criteria=criteria, market={symbol: here}, open_trades={symbol: open_trade}
        )
        if closed:
            trade = closed[0]
            if trade.exit_index == -1 and quote is not None:
                trade.exit_time_seconds = to_seconds(quote.at)
            return trade
        open_trade = still_open[symbol]
    position.exits_checked_through = from_seconds(int(candles.open_time_seconds[last]))
    level = open_trade.trade.trailing_stop_price
    position.trailing_stop_price = None if level is None else to_decimal(level)
    position.save(update_fields=["exits_checked_through", "trailing_stop_price", "updated_at"])
    return None


def _record_close(position: Position, trade: Trade, pending: _Pending, backend: str) -> None:
    assert trade.exit_price is not None and trade.exit_fee is not None and trade.exit_time_seconds is not None  # noqa: S101
    position.status = Position.Status.CLOSED
    position.exit_price = to_decimal(trade.exit_price)
    position.exit_fee = to_decimal(trade.exit_fee)
    position.exit_at = from_seconds(trade.exit_time_seconds)
    position.exit_reason = trade.exit_reason or ExitReason.MANUAL
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
    pending = _Pending()
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
    position: Position, strategy: Strategy, price: Decimal | None, pending: _Pending
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
        _record_close(locked, closed, pending, strategy.execution_backend)
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
            _close_from_fill(position, locked, locked.exit_reason or ExitReason.MANUAL, exchange, pending)
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
    strategy: Strategy,
    exchange: ExchangeBroker,
    *,
    criteria: Criteria,
    as_of: date,
    pending: _Pending,
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
            blocked = _trading_blocked(strategy)
            if not send_todays_entries:
                continue  # the open step of the day sends it
            if blocked is None:
                _entry_execute(strategy, order, criteria, exchange, as_of, pending)
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


def _position_close_manual_exchange(position: Position, pending: _Pending) -> StepResult:
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
        order = _exit_intent(locked, ExitReason.MANUAL, exchange, today, pending)
    return _exit_execute(strategy, order, strategy.parsed_criteria(), exchange, today, pending)
