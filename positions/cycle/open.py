"""The open step of the daily cycle: enter where an enabled strategy's entry criteria held on the candle before
``as_of``.

The step asks the engine (:mod:`trading.engine.step`) what to do at the boundary ``as_of`` (candle ``as_of - 1
day`` has closed) and writes what it decided; the live steps (the strategies' own backends) act only for today
(:func:`positions.cycle.run.step_day_validate`); past days are the replay's. Each strategy is handled in its own
transaction under a row lock, with one claim per (strategy, step, as_of, instrument) (:mod:`positions.cycle.run`);
the run itself holds the run lock (:mod:`positions.cycle.runner`). When the close step of a day ran first, the open
step decides as if it had run before it (:func:`_exited_by_close`). Instruments are keyed by id, never by ticker.

Both steps start with the reconcile phase (CRITERIA.md's first phase of a boundary): the risk exits of the
completed candles are settled before any entry, for paper strategies by :func:`positions.cycle.settle.
risk_exits_settle` and for exchange strategies by taking up the stops that filled on the exchange, so an
instrument stopped during candle ``as_of - 1 day`` can be entered again at the open of ``as_of``, with the cash
its stop returned.

Exchange strategies (``execution_backend="exchange"``) decide exactly as paper ones (the same engine calls, in the
same transaction), but execute for real, in three phases so that no HTTP call is made while the strategy's rows
are locked:

1. before the transaction: **reconciliation** (:mod:`positions.execution.reconcile`), then markets, prices and
   the free balance;
2. the transaction: the claims of the day, the engine's decisions, and one ``Order`` row (status ``new``) per
   entry to send, with its deterministic client order id (:func:`positions.execution.trades.entry_order_new`);
3. after the commit: each order is sent (looked up first, so never twice), its position opened from the
   exchange's fill in a short transaction, and a stop-loss placed (:func:`positions.execution.trades.entry_execute`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction

from instruments.models import Instrument
from positions.accounts import (
    member_realized_pnl,
    open_positions,
    portfolio_cash,
    portfolio_of,
    position_trade,
    strategy_cash,
)
from positions.cycle.run import boundary_at, claimed_instruments, claims_create, skipped
from positions.cycle.runner import step_run
from positions.cycle.settle import exchange_risk_exits_settle, references_at, risk_exits_settle
from positions.events import Events, StepResult
from positions.execution.base import ExecutionBackend, Quote
from positions.execution.exchange import ExchangeBroker
from positions.execution.paper import paper_position_open
from positions.execution.reconcile import reconcile
from positions.execution.trades import entry_execute, entry_order_new, trading_blocked
from positions.limits import (
    halts_record,
    limit_state_read,
    limit_state_save,
    refusal_words,
    stop_loss_exits,
)
from positions.models import Order, Position, StrategyStep
from runs.models import HistoryKind, Step
from trading.engine.backtest import market_at
from trading.engine.conditions import Signals, signals_compute
from trading.engine.criteria import Criteria
from trading.engine.step import (
    BookAtBoundary,
    Entries,
    InstrumentAtBoundary,
    OpenTrade,
    criteria_halts,
    step_entries,
    step_portfolio_entries,
)
from trading.engine.types import SECONDS_PER_DAY, CandleArrays
from trading.models import Portfolio, PortfolioStrategy, Strategy
from trading.selectors import candles_before, from_seconds, to_seconds


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
    return step_run(
        Step.OPEN,
        _open_strategy,
        as_of=as_of,
        instruments=instruments,
        broker=broker,
        strategies=strategies,
        portfolio_handler=open_portfolio,
    )


def _signals_at(
    criteria: Criteria, candles: CandleArrays, as_of: date, references: dict[str, CandleArrays]
) -> tuple[int | None, Signals]:
    """Signals over ``candles`` and the index of candle ``as_of - 1 day`` (None when it is not stored);
    ``references``: the other instruments' candles the criteria name (:func:`positions.cycle.settle.
    references_at`)."""
    signals = signals_compute(criteria, candles, references=references)
    wanted = to_seconds(boundary_at(as_of)) - SECONDS_PER_DAY
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


def _key(instrument: Instrument) -> str:
    """The engine's key of an instrument: its ticker, then its id.

    The engine enters in key order, which must be ticker order as in the backtest; tickers are not unique (two
    "BTC" instruments), so the id makes the key unique. ``\\x00`` sorts before any character of a ticker, so the
    keys sort as the tickers do, and instruments sharing a ticker by id.
    """
    return f"{instrument.symbol}\x00{instrument.pk:012d}"


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
            step=Step.CLOSE,
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


@dataclass
class _Member:
    """One strategy's open step, gathered before its transaction (:func:`_gather`) and claimed inside it
    (:func:`_claim`): what the engine decides on, and what is written from its decision (:func:`_write`)."""

    strategy: Strategy
    criteria: Criteria
    broker: ExecutionBackend
    exchange: ExchangeBroker | None
    pending: Events
    settled: list[StepResult]
    in_scope: list[Instrument]
    prepared: dict[int, tuple[Instrument, CandleArrays, Signals, int | None]]
    missing: list[str]
    quotes: dict[int, Quote]
    blocked: str | None
    done: set[int] = field(default_factory=set)
    claims: dict[int, StrategyStep] = field(default_factory=dict)
    exited: dict[int, Position] = field(default_factory=dict)
    held: dict[int, Position] = field(default_factory=dict)
    market: dict[str, InstrumentAtBoundary] = field(default_factory=dict)
    open_trades: dict[str, OpenTrade] = field(default_factory=dict)


def _open_strategy(
    strategy: Strategy,
    *,
    as_of: date,
    only: set[int] | None,
    broker: ExecutionBackend,
    run_id: Any,
    pending: Events,
) -> list[StepResult]:
    """The open step of one strategy: enter the instruments in scope not yet handled for ``as_of``.

    Instruments are keyed by id throughout (tickers are not unique). An instrument whose open claim for
    ``as_of`` exists is reported ``skipped``; one without the candle before ``as_of`` is reported and left
    unclaimed, so a run after the collect handles it. When the close step of ``as_of`` ran first, its exits
    count as not yet made (:func:`_exited_by_close`): what it exited is not re-entered today, and the cash its
    exits returned is not spent today, exactly as if this step had run before it. Sizing sees every position
    of the strategy, in scope or not. A member of a portfolio enters only with its portfolio
    (:func:`open_portfolio`).
    """
    portfolio = portfolio_of(strategy)
    if portfolio is not None:
        return [
            StepResult(
                strategy=strategy.name,
                instrument=None,
                action="none",
                reason=f"a member of portfolio {portfolio.name!r}: it enters with the portfolio"
                + ("" if portfolio.is_enabled else ", which is disabled"),
            )
        ]
    gathered = _gather(strategy, as_of=as_of, only=only, broker=broker, pending=pending, whole=False)
    if not isinstance(gathered, _Member):
        return gathered
    member = gathered
    criteria = member.criteria
    halting = criteria_halts(criteria)
    with transaction.atomic():
        Strategy.objects.select_for_update().only("pk").get(pk=strategy.pk)
        if not _claim(member, as_of=as_of, run_id=run_id):
            return member.settled + [skipped(strategy, Step.OPEN, as_of, i) for i in member.in_scope]
        cash = strategy_cash(strategy) - sum((_proceeds(p) for p in member.exited.values()), Decimal(0))
        decided = step_entries(
            criteria=criteria,
            market=member.market,
            open_trades=member.open_trades,
            cash=float(cash),
            starting_cash=float(strategy.starting_cash),
            boundary_seconds=to_seconds(boundary_at(as_of)),
            limit_state=limit_state_read(strategy) if halting else None,
            stop_loss_exits=_stop_loss_exits(member),
        )
        if halting:
            limit_state_save(strategy, as_of, decided.limit_state)
            halts_record(decided.halts, pending)
        lines, intents = _write(member, decided, as_of=as_of, portfolio=None)
    return _execute(member, lines, intents, as_of=as_of)


def open_portfolio(
    portfolio: Portfolio,
    members: Sequence[tuple[Strategy, ExecutionBackend]],
    *,
    as_of: date,
    only: set[int] | None,
    run_id: Any,
) -> list[tuple[Strategy, list[StepResult], Events]]:
    """The open step of a portfolio: its members' entries decided together, at one boundary, on its cash
    (:func:`trading.engine.step.step_portfolio_entries`; docs/portfolios.md), in member order.

    Each member is gathered (settled, reconciled, its candles and signals, prices) as a strategy alone is; then
    in one transaction, with the portfolio's row and its members' rows locked, each member claims its instruments
    not yet handled for ``as_of``, the engine decides every member's entries, and each member's positions are
    written (``Position.portfolio`` set: they spend the portfolio's cash). A member whose instruments were all
    handled already enters nothing but still counts (its positions mark the equity). The limit states of each
    member and of the portfolio are kept.

    Args:
        portfolio: the portfolio.
        members: its enabled member strategies in this run, in member order, each with its execution backend.
        as_of, only, run_id: as :func:`_open_strategy`.

    Returns:
        ``(strategy, result lines, History events)`` of each member.
    """
    gathered: list[_Member] = []
    results: list[tuple[Strategy, list[StepResult], Events]] = []
    for strategy, broker in members:
        pending = Events()
        member = _gather(strategy, as_of=as_of, only=only, broker=broker, pending=pending, whole=True)
        assert isinstance(member, _Member)  # noqa: S101 (whole=True always gathers)
        gathered.append(member)
    weights = {m.strategy_id: float(m.weight) for m in PortfolioStrategy.objects.filter(portfolio=portfolio)}
    limits = portfolio.parsed_limits()
    boundary = to_seconds(boundary_at(as_of))
    with transaction.atomic():
        Portfolio.objects.select_for_update().only("pk").get(pk=portfolio.pk)
        for member in sorted(gathered, key=lambda m: m.strategy.pk):
            Strategy.objects.select_for_update().only("pk").get(pk=member.strategy.pk)
        claimed = [_claim(member, as_of=as_of, run_id=run_id) for member in gathered]
        if not all(claimed):
            return [
                (
                    m.strategy,
                    m.settled + [skipped(m.strategy, Step.OPEN, as_of, i) for i in m.in_scope],
                    m.pending,
                )
                for m in gathered
            ]
        cash = portfolio_cash(portfolio) - sum(
            (_proceeds(p) for m in gathered for p in m.exited.values()), Decimal(0)
        )
        decided = step_portfolio_entries(
            books=[
                BookAtBoundary(
                    criteria=m.criteria,
                    market=m.market,
                    open_trades=m.open_trades,
                    weight=weights.get(m.strategy.pk, 0.0),
                    realized_pnl=float(member_realized_pnl(portfolio, m.strategy)),
                    limit_state=limit_state_read(m.strategy),
                    stop_loss_exits=_stop_loss_exits(m),
                )
                for m in gathered
            ],
            limits=limits,
            cash=float(cash),
            starting_cash=float(portfolio.starting_cash),
            boundary_seconds=boundary,
            limit_state=limit_state_read(portfolio),
        )
        limit_state_save(portfolio, as_of, decided.limit_state)
        writes = []
        for n, (member, entries) in enumerate(zip(gathered, decided.books, strict=True)):
            limit_state_save(member.strategy, as_of, entries.limit_state)
            halts_record(entries.halts, member.pending)
            if n == 0:  # the portfolio's own halts, with its first member's events
                halts_record(decided.halts, member.pending, portfolio=portfolio.name)
            writes.append(_write(member, entries, as_of=as_of, portfolio=portfolio))
    for member, (lines, intents) in zip(gathered, writes, strict=True):
        results.append((member.strategy, _execute(member, lines, intents, as_of=as_of), member.pending))
    return results


def _gather(
    strategy: Strategy,
    *,
    as_of: date,
    only: set[int] | None,
    broker: ExecutionBackend,
    pending: Events,
    whole: bool,
) -> _Member | list[StepResult]:
    """Before a strategy's transaction: settle its risk exits (reconcile on an exchange), read its candles and
    signals, and the prices when something may be entered or a halting limit measures the equity; or, unless
    ``whole`` (a portfolio's member always counts), the result lines when it has nothing left to decide today."""
    exchange = broker if isinstance(broker, ExchangeBroker) else None
    criteria = strategy.parsed_criteria()
    # Another instrument the criteria name that lacks the candle of as_of - 1 day leaves the day's entry signals
    # unknown: nothing is entered, and the instruments are left unclaimed for a run after the collect.
    references, missing = references_at(criteria, as_of)
    settled: list[StepResult] = []
    if exchange is not None:
        reconcile(
            strategy, exchange, criteria=criteria, as_of=as_of, pending=pending, send_todays_entries=True
        )
        settled = exchange_risk_exits_settle(
            strategy, exchange, criteria=criteria, as_of=as_of, pending=pending, references=references
        )
    else:
        settled = risk_exits_settle(
            strategy,
            criteria=criteria,
            as_of=as_of,
            backend=broker.name,
            pending=pending,
            references=references,
        )
    in_scope = [i for i in strategy.instruments.order_by("symbol", "pk") if only is None or i.pk in only]
    done = claimed_instruments(strategy, Step.OPEN, as_of)
    if not whole and (not in_scope or all(i.pk in done for i in in_scope)):
        return settled + [skipped(strategy, Step.OPEN, as_of, i) for i in in_scope]
    held_now = _held_before_close(
        {p.instrument_id: p for p in open_positions(strategy)}, _exited_by_close(strategy, as_of)
    )
    universe: dict[int, Instrument] = {i.pk: i for i in in_scope}
    for position in held_now.values():
        universe.setdefault(position.instrument_id, position.instrument)
    prepared: dict[int, tuple[Instrument, CandleArrays, Signals, int | None]] = {}
    for instrument_id, instrument in universe.items():
        candles = candles_before(instrument, boundary_at(as_of))
        t, signals = _signals_at(criteria, candles, as_of, references)
        prepared[instrument_id] = (instrument, candles, signals, t)
    wanted = not missing and any(
        t is not None and signals.entry[t] and i.pk not in held_now and i.pk not in done
        for i in in_scope
        for (_, _, signals, t) in [prepared[i.pk]]
    )
    # Prices are needed when something may be entered (they also mark the held positions for sizing), and every
    # day a position is held when a limit halts on the equity (its peak and day's start are measured each day):
    # a portfolio's member always marks its positions (the portfolio's equity and budgets count them).
    measures = whole or criteria_halts(criteria)
    quotes = broker.quotes(list(universe.values()), as_of=as_of) if wanted or (measures and held_now) else {}
    blocked = trading_blocked(strategy) if exchange is not None else None
    if exchange is not None and wanted and blocked is None:
        exchange.prepare(in_scope)
    return _Member(
        strategy=strategy,
        criteria=criteria,
        broker=broker,
        exchange=exchange,
        pending=pending,
        settled=settled,
        in_scope=in_scope,
        prepared=prepared,
        missing=list(missing),
        quotes=quotes,
        blocked=blocked,
    )


def _claim(member: _Member, *, as_of: date, run_id: Any) -> bool:
    """Inside the transaction, under the strategy's lock: claim the instruments not yet handled for ``as_of``
    and build the engine's market and open trades. False when another run claimed one first."""
    strategy = member.strategy
    member.done = claimed_instruments(strategy, Step.OPEN, as_of)  # again, under the strategy's lock
    todo = [i for i in member.in_scope if i.pk not in member.done]
    deciding = [i for i in todo if member.prepared[i.pk][3] is not None and not member.missing]
    claims = claims_create(strategy, Step.OPEN, as_of, run_id, deciding)
    if claims is None:
        return False
    member.claims = claims
    member.exited = _exited_by_close(strategy, as_of)
    member.held = _held_before_close({p.instrument_id: p for p in open_positions(strategy)}, member.exited)
    member.market = {
        _key(instrument): _entry_allowed(
            _market_entry(candles, signals, t, member.quotes.get(instrument_id)), instrument_id in claims
        )
        for instrument_id, (instrument, candles, signals, t) in member.prepared.items()
    }
    member.open_trades = {
        _key(p.instrument): position_trade(
            p, member.prepared[instrument_id][1], next_check=len(member.prepared[instrument_id][1])
        )
        for instrument_id, p in member.held.items()
        if instrument_id in member.prepared
    }
    return True


def _stop_loss_exits(member: _Member) -> dict[str, int] | None:
    """The last stop-loss exit of each instrument, by engine key, when the criteria have a cooldown."""
    if member.criteria.limits.cooldown_days_after_stop_loss is None:
        return None
    return stop_loss_exits(member.strategy, {pk: _key(i) for pk, (i, *_) in member.prepared.items()})


def _write(
    member: _Member, decided: Entries, *, as_of: date, portfolio: Portfolio | None
) -> tuple[list[StepResult], list[tuple[int, Order]]]:
    """Inside the transaction: one result line per instrument in scope, the signal and refusal events, each paper
    entry's position and each exchange entry's ``new`` order (sent by :func:`_execute` after the commit)."""
    strategy, pending, exchange = member.strategy, member.pending, member.exchange
    lines: list[StepResult] = list(member.settled)
    intents: list[tuple[int, Order]] = []
    by_key = {trade.symbol: trade for trade in decided.trades}
    for instrument in member.in_scope:
        if instrument.pk in member.done:
            lines.append(skipped(strategy, Step.OPEN, as_of, instrument))
            continue
        _, _candles, _signals, t = member.prepared[instrument.pk]
        here = member.market[_key(instrument)]
        if here.entry_signal:
            pending.add(
                HistoryKind.SIGNAL,
                f"entry signal on {instrument.symbol}",
                instrument=instrument,
                payload={"candle": from_seconds(here.open_time_seconds).isoformat(), "side": "entry"},
            )
        trade = by_key.get(_key(instrument))
        limit = decided.refused.get(_key(instrument))
        if trade is None and limit is not None:
            pending.add(
                HistoryKind.ENTRY_REFUSED,
                f"entry on {instrument.symbol} refused: {refusal_words(limit)}",
                instrument=instrument,
                payload={"reason": refusal_words(limit), "limit": limit.value, "as_of": as_of.isoformat()},
            )
            lines.append(
                StepResult(
                    strategy=strategy.name,
                    instrument=instrument.coingecko_id,
                    action="none",
                    reason=refusal_words(limit),
                )
            )
            continue
        if trade is None:
            reason = _why_not_entered(
                here,
                "exited"
                if instrument.pk in member.exited
                else "held"
                if instrument.pk in member.held
                else "",
                t,
                member.quotes.get(instrument.pk),
                as_of,
                member.missing,
            )
            lines.append(
                StepResult(
                    strategy=strategy.name, instrument=instrument.coingecko_id, action="none", reason=reason
                )
            )
            continue
        quote = member.quotes[instrument.pk]
        if exchange is not None:
            line, order = entry_order_new(
                strategy, instrument, trade, quote, member.criteria, exchange, as_of, member.blocked, pending
            )
            if order is not None:
                intents.append((len(lines), order))
            lines.append(line)
            continue
        lines.append(
            paper_position_open(
                strategy=strategy,
                instrument=instrument,
                trade=trade,
                quote=quote,
                claim=member.claims[instrument.pk],
                backend=member.broker.name,
                pending=pending,
                portfolio=portfolio,
            )
        )
    return lines, intents


def _execute(
    member: _Member, lines: list[StepResult], intents: list[tuple[int, Order]], *, as_of: date
) -> list[StepResult]:
    """After the commit: send each exchange entry's order and open its position from the fill."""
    for index, order in intents:
        assert member.exchange is not None  # noqa: S101
        lines[index] = entry_execute(
            member.strategy, order, member.criteria, member.exchange, as_of, member.pending
        )
    return lines


def _entry_allowed(here: InstrumentAtBoundary, allowed: bool) -> InstrumentAtBoundary:
    """``here`` as it is for an instrument this run may enter; without its entry signal for one it may not (out
    of scope, or claimed already): such an instrument is in the market only to mark a held position."""
    return here if allowed or not here.entry_signal else replace(here, entry_signal=False)


def _why_not_entered(
    here: InstrumentAtBoundary,
    held: str,
    t: int | None,
    quote: Quote | None,
    as_of: date,
    missing: Sequence[str] = (),
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
    if missing:
        return (
            f"no candle of {', '.join(missing)} (named by the criteria) for the day before as_of: the entry signal "
            "is not known (collect first)"
        )
    if not here.entry_signal:
        return "no entry signal"
    if quote is None:
        return "no price to fill at"
    return "no cash left"
