"""The reconcile phase of a paper strategy: the risk exits of the completed candles, settled at the start of every
step.

CRITERIA.md's boundary order is (1) the risk exits of candle t, (2) the entries at the open, (3) the signal and
maximum-holding exits at the open. An exchange strategy's stop rests on the exchange and fills during candle t;
the next run's reconciliation (:mod:`positions.execution.reconcile`) takes the fill up before anything else. A
paper strategy does the same here: both the open and the close step start with :func:`risk_exits_settle`, which
walks each open position through the candles completed since it was last checked and closes it at the level its
stop-loss, take-profit or trailing stop was crossed (filling the resting paper order,
:mod:`positions.execution.paper_orders`), so the open step's entries see it closed and its cash, whichever step
runs first. The signal and maximum-holding exits of the last completed candle are the close step's (phase 3).

An exchange strategy's take-profit does not rest on the exchange (only its stop does), and an unprotected
position's stop does not either: :func:`exchange_risk_exits_settle` sells those at the start of the open step,
at the market, before the entries (the fill is the exchange's, not the level).

The walk (:func:`exits_walk`) is the close step's too: one function decides every exit of the live cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
from django.db import transaction

from positions.accounts import open_positions, position_trade
from positions.cycle.run import boundary_at
from positions.events import Events, StepResult
from positions.execution.base import Quote
from positions.execution.exchange import ExchangeBroker
from positions.execution.paper import paper_position_close
from positions.execution.paper_orders import paper_protection_move
from positions.execution.trades import exit_execute, exit_order_new
from positions.models import Order, Position
from trading.engine.backtest import market_at
from trading.engine.conditions import Signals, signals_compute
from trading.engine.criteria import Criteria, criteria_instruments
from trading.engine.step import OpenTrade, step_exits, step_risk_exits
from trading.engine.types import SECONDS_PER_DAY, CandleArrays, Trade
from trading.models import Strategy
from trading.selectors import (
    candles_before,
    finer_candles,
    from_seconds,
    reference_candles,
    to_decimal,
    to_seconds,
)


def references_at(criteria: Criteria, as_of: date) -> tuple[dict[str, CandleArrays], list[str]]:
    """The candles of the other instruments the operands of ``criteria`` name (``"instrument": "bitcoin"``), those
    stored before the boundary of ``as_of`` as the traded ones are read, and which of them lack the candle of
    ``as_of - 1 day``.

    Where one lacks it, the signal of the day is not known: the steps decide no signal for it (reported as a
    missing candle is), never from the other instrument's older, stale value. An id no instrument has counts as
    lacking it and gets no candles (its operand is NaN: never true).

    Returns:
        ``(references, missing)``: CoinGecko id -> candles, for every named id; the ids lacking the candle, sorted.
    """
    ids = criteria_instruments(criteria)
    if not ids:
        return {}, []
    boundary = boundary_at(as_of)
    found = reference_candles(ids, boundary)
    wanted = to_seconds(boundary) - SECONDS_PER_DAY
    missing = [
        i for i in ids if i not in found or not len(found[i]) or int(found[i].open_time_seconds[-1]) != wanted
    ]
    nothing = np.zeros(0, dtype=np.float64)
    for i in ids:
        found.setdefault(
            i, CandleArrays(i, np.zeros(0, dtype=np.int64), nothing, nothing, nothing, nothing, nothing)
        )
    return found, missing


def exits_walk(
    position: Position,
    criteria: Criteria,
    candles: CandleArrays,
    *,
    quote: Quote | None,
    as_of: date,
    last_signal: bool,
    references: Mapping[str, CandleArrays] | None = None,
) -> Trade | None:
    """Check ``position`` against every stored candle not yet checked, in order, with the engine's exit rules.

    A candle holding both a stop and a take-profit is decided by the finer candles stored inside it, when there are
    some (the bar magnifier, docs/criteria.md; the simulator reads the same ones). Each candle before the last gets
    both exit phases of its boundary (a missed day caught up: the risk exits of
    the candle, then its signal and maximum-holding exits at the next stored open); the last candle gets its risk
    exits, and, with ``last_signal`` (the close step), its signal and maximum-holding exits at ``quote`` when it is
    the candle before ``as_of``.

    Args:
        position: an open position (locked by the caller).
        criteria: its strategy's criteria.
        candles: the instrument's daily candles before the boundary of ``as_of``.
        quote: the price now (the close step's), or None.
        as_of: the run's day.
        last_signal: whether the last candle's signal and maximum-holding exits are decided here.
        references: the candles of the other instruments the criteria name (:func:`references_at`).

    Returns:
        The closed trade (in memory; the caller writes it), or None: then the position's ``exits_checked_through``
        (the last candle whose boundary is wholly decided) and ``trailing_stop_price`` (the level in force for the
        next candle) are saved.
    """
    if len(candles) == 0:
        return None
    entry_day = to_seconds(position.entry_at) // SECONDS_PER_DAY * SECONDS_PER_DAY
    first_unchecked = entry_day
    if position.exits_checked_through is not None:
        first_unchecked = max(entry_day, to_seconds(position.exits_checked_through) + SECONDS_PER_DAY)
    k0 = int(np.searchsorted(candles.open_time_seconds, first_unchecked))
    last = len(candles) - 1
    if k0 > last:
        return None
    open_trade: OpenTrade = position_trade(position, candles, next_check=k0)
    symbol = candles.symbol
    signals: Signals | None = None
    finer: dict[str, CandleArrays] = {}
    if position.take_profit_price is not None and (
        position.stop_loss_price is not None or position.trailing_stop_price is not None
    ):  # only a candle holding both a stop and a take-profit can be ambiguous: the bar magnifier's candles
        found = finer_candles(
            position.instrument,
            from_seconds(int(candles.open_time_seconds[k0])),
            from_seconds(int(candles.open_time_seconds[last]) + SECONDS_PER_DAY),
        )
        if found is not None:
            finer[symbol] = found
    for k in range(k0, last + 1):
        both = k < last or last_signal
        if both and signals is None:
            signals = signals_compute(criteria, candles, references=references)
        if k < last:
            nxt_index, nxt_time, nxt_price = (
                k + 1,
                int(candles.open_time_seconds[k + 1]),
                float(candles.open[k + 1]),
            )
        elif (
            int(candles.open_time_seconds[k]) + SECONDS_PER_DAY == to_seconds(boundary_at(as_of))
            and quote is not None
        ):
            nxt_index, nxt_time, nxt_price = -1, to_seconds(quote.at), float(quote.price)
        else:
            nxt_index, nxt_time, nxt_price = None, None, None
        here = market_at(
            candles,
            signals if signals is not None else _no_signals(len(candles)),
            t=k,
            next_index=nxt_index,
            next_time_seconds=nxt_time,
            next_price=nxt_price,
        )
        phases = step_exits if both else step_risk_exits
        closed, still_open = phases(
            criteria=criteria, market={symbol: here}, open_trades={symbol: open_trade}, finer=finer
        )
        if closed:
            trade = closed[0]
            if trade.exit_index == -1 and quote is not None:
                trade.exit_time_seconds = to_seconds(quote.at)
            return trade
        open_trade = still_open[symbol]
    checked = last if last_signal else last - 1
    if checked >= k0:
        position.exits_checked_through = from_seconds(int(candles.open_time_seconds[checked]))
    level = open_trade.trade.trailing_stop_price
    position.trailing_stop_price = None if level is None else to_decimal(level)
    position.save(update_fields=["exits_checked_through", "trailing_stop_price", "updated_at"])
    return None


def _no_signals(n: int) -> Signals:
    """No signal on any of ``n`` candles: a risk-only check reads none."""
    none = np.zeros(n, dtype=bool)
    return Signals(entry=none, exit=none)


def risk_exits_settle(
    strategy: Strategy,
    *,
    criteria: Criteria,
    as_of: date,
    backend: str,
    pending: Events,
    references: Mapping[str, CandleArrays] | None = None,
) -> list[StepResult]:
    """The reconcile phase of a paper strategy's step: settle the risk exits of every completed candle.

    Every open position of the strategy (whatever the run's scope: these exits happened) is walked through the
    candles stored before the boundary of ``as_of`` (:func:`exits_walk` without the last candle's signal exits);
    one whose stop-loss, take-profit or trailing stop was crossed is closed at its level, its resting paper order
    filled; one that stays open has its resting stop moved when the trailing level rose. Idempotent: a second call
    finds nothing new. Runs in its own transaction under the strategy's row lock. ``references``: the other
    instruments' candles the criteria name (:func:`references_at`; read here when None), for the signal exits of
    the candles before the last one (a missed day caught up).

    Returns:
        A ``closed`` result line per position closed.
    """
    lines: list[StepResult] = []
    boundary = boundary_at(as_of)
    with transaction.atomic():
        Strategy.objects.select_for_update().only("pk").get(pk=strategy.pk)
        ids = list(open_positions(strategy).values_list("pk", flat=True))
        for position in (
            Position.objects.select_for_update()
            .filter(pk__in=ids, status=Position.Status.OPEN)
            .select_related("instrument", "strategy")
            .order_by("instrument__symbol", "instrument_id")
        ):
            candles = candles_before(position.instrument, boundary)
            if references is None:
                references, _ = references_at(criteria, as_of)
            closed = exits_walk(
                position,
                criteria,
                candles,
                quote=None,
                as_of=as_of,
                last_signal=False,
                references=references,
            )
            if closed is None:
                paper_protection_move(position, as_of, backend, pending)
                continue
            paper_position_close(position, closed, pending, backend)
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


def exchange_risk_exits_settle(
    strategy: Strategy,
    exchange: ExchangeBroker,
    *,
    criteria: Criteria,
    as_of: date,
    pending: Events,
    references: Mapping[str, CandleArrays] | None = None,
) -> list[StepResult]:
    """The open step's reconcile phase for an exchange strategy, after its orders were taken up
    (:func:`positions.execution.reconcile.reconcile`): sell what a risk exit of the completed candles closed and no
    resting order on the exchange did (a take-profit; the stop of an unprotected position), before the entries.

    Decided by the same walk as paper (:func:`exits_walk`, the last candle's signal exits left to the close step);
    each sell is a ``new`` exit order written under the strategy's lock and sent after the commit
    (:func:`positions.execution.trades.exit_execute`: the stop cancelled first, the position closed from the real
    fill). A position with an exit order of the day already is left to reconciliation. ``references`` as
    :func:`risk_exits_settle`.

    Returns:
        The result line of each sell.

    Raises:
        ExchangeApiError: the exchange could not answer.
    """
    orders: list[Order] = []
    boundary = boundary_at(as_of)
    with transaction.atomic():
        Strategy.objects.select_for_update().only("pk").get(pk=strategy.pk)
        ids = list(open_positions(strategy).values_list("pk", flat=True))
        for position in (
            Position.objects.select_for_update()
            .filter(pk__in=ids, status=Position.Status.OPEN)
            .select_related("instrument", "strategy")
            .order_by("instrument__symbol", "instrument_id")
        ):
            if Order.objects.live().filter(position=position, purpose=Order.Purpose.EXIT).exists():
                continue
            candles = candles_before(position.instrument, boundary)
            if references is None:
                references, _ = references_at(criteria, as_of)
            closed = exits_walk(
                position,
                criteria,
                candles,
                quote=None,
                as_of=as_of,
                last_signal=False,
                references=references,
            )
            if closed is not None and closed.exit_reason:
                orders.append(exit_order_new(position, closed.exit_reason, exchange, as_of, pending))
    return [exit_execute(strategy, order, criteria, exchange, as_of, pending) for order in orders]
