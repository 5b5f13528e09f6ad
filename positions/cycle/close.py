"""The close step of the daily cycle: close the open positions whose exit rules fired, through candle ``as_of - 1
day``.

It starts, as the open step does, with the reconcile phase: an exchange strategy's orders are brought up to date
(:mod:`positions.execution.reconcile`), a paper strategy's risk exits of the completed candles are settled
(:func:`positions.cycle.settle.risk_exits_settle`). Then every candle since a position was last checked is checked in
order by the engine's exit rules (:func:`positions.cycle.settle.exits_walk`; a missed day is caught up), the last
one's signal and maximum-holding exits at the broker's price. Paper positions are closed in the strategy's
transaction (:func:`positions.execution.paper.paper_position_close`), and their resting orders filled or
cancelled; the exits of exchange strategies are written as ``new`` sell orders in it and sent after its commit, the
stop-loss cancelled first (:func:`positions.execution.trades.exit_execute`); a trailing stop that moved is replaced
on the exchange (:func:`positions.execution.protection.protection_replace`) or in paper.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from django.db import transaction

from instruments.models import Instrument
from positions.accounts import open_positions
from positions.cycle.run import boundary_at, claimed_instruments, claims_create, skipped
from positions.cycle.runner import step_run
from positions.cycle.settle import exits_walk, references_at, risk_exits_settle
from positions.events import Events, StepResult
from positions.execution.base import ExecutionBackend
from positions.execution.exchange import ExchangeBroker
from positions.execution.paper import paper_position_close
from positions.execution.paper_orders import paper_protection_move
from positions.execution.protection import protection_replace
from positions.execution.reconcile import reconcile
from positions.execution.trades import exit_execute, exit_order_new
from positions.models import Order, Position
from runs.models import Step
from trading.engine.vocabulary import ExitReason
from trading.models import Strategy
from trading.selectors import candles_before


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

    Args, return value and errors: as :func:`positions.cycle.open.sync_new_trades` (the lock is the close step's).
    """
    return step_run(
        Step.CLOSE,
        _close_strategy,
        as_of=as_of,
        instruments=instruments,
        broker=broker,
        strategies=strategies,
    )


def _close_strategy(
    strategy: Strategy,
    *,
    as_of: date,
    only: set[int] | None,
    broker: ExecutionBackend,
    run_id: Any,
    pending: Events,
) -> list[StepResult]:
    exchange = broker if isinstance(broker, ExchangeBroker) else None
    criteria = strategy.parsed_criteria()
    references, missing = references_at(criteria, as_of)
    settled: list[StepResult] = []
    if exchange is not None:
        reconcile(strategy, exchange, criteria=criteria, as_of=as_of, pending=pending)
    else:
        settled = risk_exits_settle(
            strategy,
            criteria=criteria,
            as_of=as_of,
            backend=broker.name,
            pending=pending,
            references=references,
        )
    boundary = boundary_at(as_of)
    done = claimed_instruments(strategy, Step.CLOSE, as_of)
    positions = [
        p
        for p in open_positions(strategy)
        if (only is None or p.instrument_id in only) and p.instrument_id not in done
    ]
    if missing:
        # Another instrument the criteria name lacks the candle of as_of - 1 day: the day's exit signals are not
        # known. Nothing is decided or claimed (the risk exits were settled above); a run after the collect does it.
        return settled + [
            StepResult(
                strategy=strategy.name,
                instrument=p.instrument.coingecko_id,
                action="none",
                reason=f"no candle of {', '.join(missing)} (named by the criteria) for the day before as_of: the "
                "exit signal is not known (collect first)",
                position_id=p.pk,
            )
            for p in positions
        ]
    quotes = broker.quotes([p.instrument for p in positions], as_of=as_of) if positions else {}
    lines: list[StepResult] = list(settled)
    exits: list[tuple[int, Order]] = []
    moved: list[Position] = []
    with transaction.atomic():
        Strategy.objects.select_for_update().only("pk").get(pk=strategy.pk)
        done = claimed_instruments(strategy, Step.CLOSE, as_of)  # again, under the strategy's lock
        in_scope: dict[int, Instrument] = {
            i.pk: i for i in strategy.instruments.order_by("symbol", "pk") if only is None or i.pk in only
        }
        for position in positions:
            in_scope.setdefault(position.instrument_id, position.instrument)
        claims = claims_create(
            strategy,
            Step.CLOSE,
            as_of,
            run_id,
            [i for i in in_scope.values() if i.pk not in done],
        )
        if claims is None or (in_scope and not claims):
            return settled + [skipped(strategy, Step.CLOSE, as_of, i) for i in in_scope.values()]
        lines.extend(skipped(strategy, Step.CLOSE, as_of, i) for i in in_scope.values() if i.pk in done)
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
            closed = exits_walk(
                position,
                criteria,
                candles,
                quote=quotes.get(position.instrument_id),
                as_of=as_of,
                last_signal=True,
                references=references,
            )
            if closed is None:
                if exchange is not None and position.trailing_stop_price != level_before:
                    moved.append(position)
                elif exchange is None:
                    paper_protection_move(position, as_of, broker.name, pending)
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
                        exit_order_new(
                            position, closed.exit_reason or ExitReason.MANUAL, exchange, as_of, pending
                        ),
                    )
                )
                lines.append(StepResult(strategy=strategy.name, instrument=None, action="none"))
                continue
            paper_position_close(position, closed, pending, broker.name)
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
        lines[index] = exit_execute(strategy, order, criteria, exchange, as_of, pending)
    for position in moved:
        assert exchange is not None  # noqa: S101
        protection_replace(position, criteria, exchange, as_of, pending)
    return lines
