"""Reads for the dashboard, each in a constant number of queries.

A strategy's account (cash, equity, open positions) is computed for many strategies at once from one prefetch
of their positions (:func:`positions.accounts.strategies_with_accounts`), which
:func:`positions.accounts.strategy_cash` and :func:`~positions.accounts.strategy_equity` use when present.
Open positions are marked at the newest stored daily close of their instrument.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, OuterRef, Subquery, Window
from django.db.models.functions import RowNumber

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from positions.accounts import (
    account_open_positions_count,
    strategies_with_accounts,
    strategy_cash,
    strategy_equity,
)
from positions.models import Order, Position
from runs.models import History, Step
from trading.models import Strategy

#: The steps of the daily cycle the dashboard shows the last runs of, in cycle order.
DASHBOARD_STEPS = (Step.COLLECT, Step.OPEN, Step.CLOSE)


@dataclass(frozen=True)
class LatestClose:
    """The newest stored daily close of an instrument.

    Attributes:
        close: quote currency.
        open_time: aware UTC open time of that candle.
    """

    close: Decimal
    open_time: datetime


def latest_closes(instrument_ids: Iterable[int] | None = None) -> dict[int, LatestClose]:
    """Return the newest stored daily (``1d``) close of each instrument, in one query.

    Args:
        instrument_ids: the instruments to read; default every instrument.

    Returns:
        ``{instrument_id: LatestClose}``; instruments without a daily candle are left out. Each lookup is a
        subquery on the unique (instrument, timeframe, open_time) index, so it does not scan the candles.
    """
    newest = InstrumentOHLC.objects.filter(instrument=OuterRef("pk"), timeframe=Timeframe.D1).order_by(
        "-open_time"
    )
    rows = Instrument.objects.annotate(
        last_close=Subquery(newest.values("close")[:1]),
        last_open_time=Subquery(newest.values("open_time")[:1]),
    ).filter(last_close__isnull=False)
    if instrument_ids is not None:
        rows = rows.filter(pk__in=list(instrument_ids))
    return {
        pk: LatestClose(close=Decimal(close), open_time=open_time)
        for pk, close, open_time in rows.order_by().values_list("pk", "last_close", "last_open_time")
    }


@dataclass(frozen=True)
class StrategyLine:
    """One strategy's account on the dashboard. Money is quote currency.

    Attributes:
        strategy: the strategy (with ``instruments`` prefetched).
        cash: free cash.
        equity: cash plus open positions at the newest closes.
        return_ratio: ``equity / starting_cash - 1`` (0.05 is +5 %).
        open_positions_count: how many positions are open.
    """

    strategy: Strategy
    cash: Decimal
    equity: Decimal
    return_ratio: Decimal
    open_positions_count: int

    @property
    def return_pct(self) -> Decimal:
        """``return_ratio`` in percent (0-100 scale), for display only."""
        return self.return_ratio * 100


@dataclass(frozen=True)
class OpenPositionLine:
    """An open position marked at the newest close of its instrument. Money is quote currency.

    Attributes:
        position: the position (with ``strategy`` and ``instrument``).
        mark_price: the newest daily close, or None when the instrument has no candle.
        marked_at: open time of that candle.
        cost: ``entry_price * quantity + entry_fee``.
        value: ``mark_price * quantity`` (None without a mark).
        unrealized_pnl: ``value - cost``: what closing at the mark would make before the exit fee.
        unrealized_pnl_ratio: ``unrealized_pnl / cost`` (0.05 is +5 %).
    """

    position: Position
    mark_price: Decimal | None
    marked_at: datetime | None
    cost: Decimal
    value: Decimal | None
    unrealized_pnl: Decimal | None
    unrealized_pnl_ratio: Decimal | None

    @property
    def unrealized_pnl_pct(self) -> Decimal | None:
        """``unrealized_pnl_ratio`` in percent, for display only."""
        return None if self.unrealized_pnl_ratio is None else self.unrealized_pnl_ratio * 100


@dataclass(frozen=True)
class RunLine:
    """A finished run of a cycle step, from its ``run_finished`` history row.

    Attributes:
        run_id: the run's id.
        step: ``collect``, ``open`` or ``close``.
        status: ``ok``, ``partial`` or ``failed``.
        finished_at: aware UTC.
        as_of: the run's day as stored in its summary (ISO date), or "" when it has none.
        message: the row's one-line message.
        results: how many result lines the summary has.
        errors: one line per error: ``"<instrument or strategy>: <message>"``.
    """

    run_id: str
    step: str
    status: str
    finished_at: datetime
    as_of: str
    message: str
    results: int
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard page shows.

    Attributes:
        strategies: one line per strategy, by name.
        open_positions: every open position, by strategy name then instrument symbol (each shows whether a
            stop-loss order protects it on the exchange: ``position.protection``).
        runs: ``(step, newest runs first)`` for each step of :data:`DASHBOARD_STEPS`.
        open_orders: the orders the exchange may still fill (new, open, partially filled), by strategy name.
    """

    strategies: list[StrategyLine]
    open_positions: list[OpenPositionLine]
    runs: list[tuple[str, list[RunLine]]]
    open_orders: list[Order] = field(default_factory=list)


def _run_line(row: History) -> RunLine:
    payload: dict[str, Any] = row.payload if isinstance(row.payload, dict) else {}
    errors = []
    for error in payload.get("errors") or []:
        if isinstance(error, dict):
            subject = error.get("instrument") or error.get("strategy") or error.get("file") or "run"
            errors.append(f"{subject}: {error.get('message', '')}")
        else:
            errors.append(str(error))
    results = payload.get("results")
    return RunLine(
        run_id=str(row.run_id),
        step=row.step,
        status=row.status,
        finished_at=row.created_at,
        as_of=str(payload.get("as_of") or ""),
        message=row.message,
        results=len(results) if isinstance(results, list) else 0,
        errors=errors,
    )


def recent_runs(
    *, steps: Sequence[str] = DASHBOARD_STEPS, per_step: int = 5
) -> list[tuple[str, list[RunLine]]]:
    """Return the newest ``per_step`` finished runs of each step, in one query (a window function).

    Args:
        steps: the steps, in the order they are returned.
        per_step: how many runs of each step, >= 1.

    Returns:
        ``[(step, [RunLine, ...newest first]), ...]`` with an entry for every step, empty when it never ran.
    """
    ranked = (
        History.objects.runs_finished()
        .filter(step__in=list(steps))
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("step")], order_by=[F("created_at").desc(), F("id").desc()]
            )
        )
        .filter(rank__lte=per_step)
        .order_by("step", "-created_at", "-id")
    )
    by_step: dict[str, list[RunLine]] = {step: [] for step in steps}
    for row in ranked:
        by_step[row.step].append(_run_line(row))
    return [(step, by_step[step]) for step in steps]


def _open_position_line(position: Position, mark: LatestClose | None) -> OpenPositionLine:
    cost = position.entry_price * position.quantity + position.entry_fee
    if mark is None:
        return OpenPositionLine(position, None, None, cost, None, None, None)
    value = mark.close * position.quantity
    pnl = value - cost
    return OpenPositionLine(position, mark.close, mark.open_time, cost, value, pnl, pnl / cost)


def dashboard_read() -> Dashboard:
    """Read the dashboard: strategies' equity and return, open positions' unrealized P&L, the last runs.

    Queries: strategies, their instruments, their positions, the open positions with strategy and instrument,
    the newest closes, the runs: six, whatever the number of strategies, positions and runs; plus one for the
    live orders when some strategy trades on an exchange (only those have orders).
    """
    strategies = list(strategies_with_accounts().order_by("name"))
    open_rows = list(
        Position.objects.open()
        .select_related("strategy", "instrument")
        .order_by("strategy__name", "instrument__symbol", "id")
    )
    marks = latest_closes({p.instrument_id for p in open_rows}) if open_rows else {}
    prices = {instrument_id: mark.close for instrument_id, mark in marks.items()}
    lines = []
    for strategy in strategies:
        equity = strategy_equity(strategy, prices)
        lines.append(
            StrategyLine(
                strategy=strategy,
                cash=strategy_cash(strategy),
                equity=equity,
                return_ratio=equity / strategy.starting_cash - 1,
                open_positions_count=account_open_positions_count(strategy),
            )
        )
    return Dashboard(
        strategies=lines,
        open_positions=[_open_position_line(p, marks.get(p.instrument_id)) for p in open_rows],
        runs=recent_runs(),
        open_orders=list(
            Order.objects.live()
            .select_related("strategy", "instrument")
            .order_by("strategy__name", "created_at", "id")
        )
        if any(s.execution_backend == Strategy.ExecutionBackend.EXCHANGE for s in strategies)
        else [],
    )
