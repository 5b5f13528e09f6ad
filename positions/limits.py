"""The live cycle's side of the risk limits (docs/criteria.md "Risk limits"): a strategy's limit state kept
between daily boundaries, the stop-loss exits its cooldowns start from, and the halts recorded in ``History``.

The rules themselves are the engine's (:func:`trading.engine.step.step_entries`, which calls the compiled
:func:`trading.engine.boundary.limits_at_boundary` and :func:`trading.engine.boundary.entries_at_boundary`, as the
backtest does at every boundary); this module only carries their state in and out of the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Max

from positions.events import Events
from positions.models import LimitState, Position
from runs.models import HistoryKind
from trading.engine import step as engine
from trading.engine.types import Halt
from trading.engine.vocabulary import ExitReason, RiskLimit
from trading.models import Portfolio, Strategy
from trading.selectors import from_seconds, to_decimal, to_seconds

EPOCH_DAY = date(1970, 1, 1)


def _day(number: int | None) -> date | None:
    return None if number is None else EPOCH_DAY + timedelta(days=number)


def _number(day: date | None) -> int | None:
    return None if day is None else (day - EPOCH_DAY).days


def _float(value: object) -> float | None:
    return None if value is None else float(str(value))


def _owner(account: Strategy | Portfolio) -> dict[str, Any]:
    return {"portfolio": account} if isinstance(account, Portfolio) else {"strategy": account}


def limit_state_read(account: Strategy | Portfolio) -> engine.LimitState:
    """A strategy's or a portfolio's limit state after its last measured boundary (a fresh one when it has none)."""
    row = LimitState.objects.filter(**_owner(account)).first()
    if row is None:
        return engine.LimitState()
    return engine.LimitState(
        day=_number(row.day),
        day_start_equity=_float(row.day_start_equity),
        last_equity=_float(row.last_equity),
        halt_day=_number(row.halt_day),
        peak_equity=_float(row.peak_equity),
        drawdown_halt_seconds=None
        if row.drawdown_halt_since is None
        else to_seconds(row.drawdown_halt_since),
    )


def limit_state_save(account: Strategy | Portfolio, as_of: date, state: engine.LimitState) -> None:
    """Keep ``state`` as a strategy's or a portfolio's limit state after boundary ``as_of`` (inside the open
    step's transaction, under its lock). Amounts are stored as ``Decimal`` (:func:`trading.selectors.to_decimal`)."""

    def amount(value: float | None) -> Decimal | None:
        return None if value is None else to_decimal(value)

    LimitState.objects.update_or_create(
        **_owner(account),
        defaults={
            "as_of": as_of,
            "day": _day(state.day),
            "day_start_equity": amount(state.day_start_equity),
            "last_equity": amount(state.last_equity),
            "halt_day": _day(state.halt_day),
            "peak_equity": amount(state.peak_equity),
            "drawdown_halt_since": None
            if state.drawdown_halt_seconds is None
            else from_seconds(state.drawdown_halt_seconds),
        },
    )


def stop_loss_exits(strategy: Strategy, keys: Mapping[int, str]) -> dict[str, int]:
    """The time of the last stop-loss exit of each of the strategy's instruments, by engine key.

    Args:
        strategy: the strategy.
        keys: the engine's key of each instrument id the step decides on.

    Returns:
        ``{key: seconds since epoch}`` for the instruments that have a closed position with exit reason
        ``stop_loss``.
    """
    rows = (
        Position.objects.filter(
            strategy=strategy,
            instrument_id__in=list(keys),
            status=Position.Status.CLOSED,
            exit_reason=ExitReason.STOP_LOSS,
        )
        .values("instrument_id")
        .annotate(last=Max("exit_at"))
    )
    return {keys[row["instrument_id"]]: to_seconds(row["last"]) for row in rows if row["last"] is not None}


def halt_words(halt: Halt) -> str:
    """One sentence for a halt beginning or ending, with its figures."""
    if halt.limit == RiskLimit.DAILY_LOSS:
        return (
            f"entries halted for the rest of the day: equity {halt.equity:,.2f} is "
            f"{1 - halt.equity / halt.reference_equity:.2%} below the day's start {halt.reference_equity:,.2f} "
            "(daily_loss_limit_ratio); exits still run"
        )
    if halt.began:
        return (
            f"entries halted: equity {halt.equity:,.2f} is {1 - halt.equity / halt.reference_equity:.2%} below "
            f"the peak {halt.reference_equity:,.2f} (max_drawdown_halt_ratio); exits still run"
        )
    return (
        f"drawdown halt ended: equity {halt.equity:,.2f}, peak {halt.reference_equity:,.2f}; entries resume"
    )


def halts_record(halts: list[Halt], pending: Events, *, portfolio: str = "") -> None:
    """Queue one ``halt`` History event for each halt that began or ended at the boundary (a portfolio's own
    halts name it: ``portfolio`` in the payload and the message)."""
    for halt in halts:
        pending.add(
            HistoryKind.HALT,
            f"portfolio {portfolio}: {halt_words(halt)}" if portfolio else halt_words(halt),
            payload={
                "portfolio": portfolio,
                "limit": halt.limit.value,
                "began": halt.began,
                "boundary": from_seconds(halt.boundary_seconds).isoformat(),
                "equity": str(to_decimal(halt.equity)),
                "reference_equity": str(to_decimal(halt.reference_equity)),
            },
        )


def refusal_words(limit: RiskLimit) -> str:
    """The reason a refused entry signal is reported with."""
    return f"entry refused by {limit.value}: {limit.label}"


def halts_in_force(strategies: list[Strategy], today: date) -> dict[int, str]:
    """What halts each strategy's entries now, by strategy id (for the dashboard; one query).

    A drawdown halt is in force until the open step ends it; a daily loss halt only on the day the open step
    measured it (``as_of`` today). A strategy without a halt in force is absent.
    """
    halted: dict[int, str] = {}
    for row in LimitState.objects.filter(strategy__in=strategies):
        if row.strategy_id is None:  # a portfolio's own state (filtered out; for the type checker)
            continue
        if row.drawdown_halt_since is not None:
            halted[row.strategy_id] = (
                f"halted by max_drawdown_halt_ratio since {row.drawdown_halt_since.date().isoformat()} "
                f"(peak {row.peak_equity or 0:,.2f}); exits still run"
            )
        elif row.halt_day is not None and row.halt_day == row.day and row.as_of == today:
            halted[row.strategy_id] = (
                f"halted for today by daily_loss_limit_ratio ({row.halt_day.isoformat()}'s loss); exits still run"
            )
    return halted
