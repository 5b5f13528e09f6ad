"""One open or close run over the strategies: the run lock, one transaction and one list of events per strategy.

A whole run holds the run lock of (step, as_of, scope) (:func:`runs.locked.run_locked`), so a concurrent
second run is refused at once with ``RunInProgressError`` (409) instead of waiting on the row locks. Every step
is a ``History`` run with an event per signal, order, fill, position opened or closed, and error; a strategy that
fails is an ``error`` event and a result line, and the run goes on with the next strategy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

from django.utils import timezone

from barter_site.days import as_of_validate
from barter_site.errors import ApplicationError, database_gone
from instruments.selectors import instruments_resolve
from positions.cycle.run import step_day_validate
from positions.events import Events, StepResult
from positions.execution.backends import broker_for
from positions.execution.base import ExecutionBackend
from positions.models import StrategyStep
from runs.locked import run_locked
from runs.locks import run_scope
from runs.models import History, HistoryKind, Step
from runs.recorder import run_status
from trading.models import Portfolio, PortfolioStrategy, Strategy

logger = logging.getLogger(__name__)

#: The step of one strategy: ``handler(strategy, as_of=, only=, broker=, run_id=, pending=)`` returns its lines.
StrategyHandler = Callable[..., list[StepResult]]
#: The open step of a portfolio: ``handler(portfolio, [(member, broker), ...], as_of=, only=, run_id=)`` returns
#: each member's ``(strategy, lines, events)`` (:func:`positions.cycle.open.open_portfolio`).
PortfolioHandler = Callable[..., list[tuple[Strategy, list[StepResult], Events]]]


def _targets(instruments: Sequence[str] | None) -> set[int] | None:
    return None if instruments is None else {i.pk for i in instruments_resolve(instruments)}


def step_run(
    step: Step,
    handler: StrategyHandler,
    *,
    as_of: date | None,
    instruments: Sequence[str] | None,
    broker: ExecutionBackend | None,
    strategies: Sequence[Strategy] | None,
    portfolio_handler: PortfolioHandler | None = None,
) -> dict[str, Any]:
    """Run ``handler`` (the open or the close step of one strategy) for each strategy, under the run lock.

    With ``portfolio_handler`` (the open step), the members of an enabled portfolio among the strategies are
    handled together, once, when the first of them comes (docs/portfolios.md).

    Args:
        step: ``open`` or ``close``.
        handler: the step of one strategy (:func:`positions.cycle.open.sync_new_trades` passes its own).
        as_of, instruments, broker, strategies: as :func:`positions.cycle.open.sync_new_trades`.

    Returns:
        The run summary (``run_id``, ``step``, ``status``, ``started_at``, ``finished_at``, ``as_of``,
        ``live`` (False for a replay's broker: its runs notify nobody), ``results`` and ``errors``).

    Raises:
        ApplicationError, StepDayError, RunInProgressError, DatabaseUnavailableError: as
            :func:`positions.cycle.open.sync_new_trades`.
    """
    now = timezone.now()
    as_of = as_of_validate(as_of or now.date(), now=now)
    live = broker is None or broker.live
    step_day_validate(step=step, as_of=as_of, today=now.date(), live=live)
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

        def backend_of(strategy: Strategy) -> ExecutionBackend:
            key = f"{strategy.execution_backend}:{strategy.exchange_id}"
            if broker is None and key not in brokers:
                brokers[key] = broker_for(strategy.execution_backend, exchange_id=strategy.exchange_id)
            return broker or brokers[key]

        memberships = (
            {
                m.strategy_id: m
                for m in PortfolioStrategy.objects.filter(
                    strategy__in=chosen, portfolio__is_enabled=True
                ).select_related("portfolio")
            }
            if portfolio_handler is not None
            else {}
        )
        chosen_ids = {s.pk for s in chosen}
        handled: set[int] = set()
        for strategy in chosen:
            membership = memberships.get(strategy.pk)
            if membership is not None and portfolio_handler is not None:
                if membership.portfolio_id not in handled:
                    handled.add(membership.portfolio_id)
                    results.extend(
                        _portfolio_run(
                            portfolio_handler,
                            membership.portfolio,
                            [
                                (m.strategy, m.strategy.pk in chosen_ids)
                                for m in PortfolioStrategy.objects.filter(portfolio=membership.portfolio)
                                .select_related("strategy")
                                .order_by("order", "strategy__name")
                            ],
                            backend_of,
                            as_of=as_of,
                            only=only,
                            recorder=recorder,
                        )
                    )
                continue
            backend = backend_of(strategy)
            pending = Events()
            try:
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
            status=status,
            summary={"as_of": as_of.isoformat(), "live": live, "results": [asdict(r) for r in results]},
        )


def _portfolio_run(
    handler: PortfolioHandler,
    portfolio: Portfolio,
    members: list[tuple[Strategy, bool]],
    backend_of: Callable[[Strategy], ExecutionBackend],
    *,
    as_of: date,
    only: set[int] | None,
    recorder: Any,
) -> list[StepResult]:
    """One portfolio's open step inside a run: every member (``(strategy, whether this run trades it)``, the others
    counted in the equity), each member's lines and events recorded as its own; a failure is an ``error`` event of
    each member (nothing of the portfolio was kept: one transaction)."""
    try:
        done = handler(
            portfolio,
            [(s, backend_of(s), enters) for s, enters in members],
            as_of=as_of,
            only=only,
            run_id=recorder.run_id,
        )
    except Exception as exc:
        if database_gone(exc):
            raise
        message = (
            exc.message
            if isinstance(exc, ApplicationError)
            else f"internal error {type(exc).__name__}: {exc}"
        )
        if not isinstance(exc, ApplicationError):
            logger.exception("open step failed for portfolio %s", portfolio.name)
        lines = []
        for strategy, _ in members:
            recorder.event(
                HistoryKind.ERROR,
                strategy=strategy,
                message=message,
                payload={"kept": f"nothing of portfolio {portfolio.name}"},
            )
            lines.append(StepResult(strategy=strategy.name, instrument=None, action="none", error=message))
        return lines
    lines = []
    for strategy, member_lines, pending in done:
        pending.record(recorder, strategy)
        lines.extend(member_lines)
    return lines


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
