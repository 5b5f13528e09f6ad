"""Replay: the real daily cycle run day by day over stored history, into a fresh paper account.

Each day ``D`` from ``start`` to ``end``: collect (the stored candles as of ``D``: nothing is fetched), then the
open and close steps (:mod:`positions.cycle.open`, :mod:`positions.cycle.close`) with
:class:`~positions.execution.paper.ReplayBroker` (the first price after
the signal candle is the open of ``D``). The steps see only candles that opened before ``D``, so what the replay
does is what the live cycle would have done, and it must equal the engine's backtest of the same dates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from barter_site.errors import ApplicationError
from positions.accounts import strategy_cash
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.execution.paper import ReplayBroker
from positions.models import Position
from trading.models import Strategy


def day_range(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive."""
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


@dataclass(frozen=True)
class ReplayResult:
    """What a replay left: the fresh account (a disabled copy of the strategy) and its counts."""

    account: Strategy
    days: int
    opened: int
    closed: int
    still_open: int
    cash: Decimal


def replay_account_prefix(*, strategy: Strategy, start: date, end: date) -> str:
    """The name every replay account of ``strategy`` over ``start``..``end`` starts with."""
    return f"{strategy.name} [replay {start.isoformat()}..{end.isoformat()}"


#: A replay account's name: ``<strategy> [replay <start>..<end> <stamp>]`` (:func:`replay_account_create`; the
#: name is cut at 100 characters, so the stamp and the closing bracket may be missing).
_REPLAY_NAME = re.compile(
    r"^(?P<strategy>.+) \[replay (?P<start>\d{4}-\d\d-\d\d)\.\.(?P<end>\d{4}-\d\d-\d\d)"
)


@dataclass(frozen=True)
class ReplayAccountName:
    """What a replay account's name says: the strategy replayed and its first and last day."""

    strategy: str
    start: date
    end: date


def replay_account_parse(name: str) -> ReplayAccountName | None:
    """Read a replay account's name (:func:`replay_account_create`); None when ``name`` is not one."""
    found = _REPLAY_NAME.match(name)
    if found is None:
        return None
    return ReplayAccountName(
        strategy=found["strategy"],
        start=date.fromisoformat(found["start"]),
        end=date.fromisoformat(found["end"]),
    )


def strategy_short_name(name: str) -> str:
    """A strategy's name for narrow columns: a replay account's without its generated stamp
    (``"trend [replay 2023-04-23..2024-04-21]"``), any other as it is."""
    replayed = replay_account_parse(name)
    if replayed is None:
        return name
    return f"{replayed.strategy} [replay {replayed.start.isoformat()}..{replayed.end.isoformat()}]"


def replay_account_create(*, strategy: Strategy, start: date, end: date) -> Strategy:
    """Return a fresh, disabled paper account with ``strategy``'s criteria, instruments and starting cash."""
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    with transaction.atomic():
        account = Strategy.objects.create(
            name=f"{replay_account_prefix(strategy=strategy, start=start, end=end)} {stamp}]"[:100],
            description=f"Replay of {strategy.name!r} from {start.isoformat()} to {end.isoformat()}.",
            criteria=strategy.criteria,
            is_enabled=False,
            starting_cash=strategy.starting_cash,
            execution_backend=Strategy.ExecutionBackend.PAPER,
        )
        account.instruments.set(strategy.instruments.all())
    return account


def replay(*, strategy: Strategy, start: date, end: date) -> ReplayResult:
    """Replay ``strategy`` day by day from ``start`` to ``end`` (inclusive) into a fresh paper account.

    Raises:
        ApplicationError: ``end`` is before ``start``, or ``end`` is in the future.
    """
    if end < start:
        raise ApplicationError(
            f"end {end.isoformat()} is before start {start.isoformat()}", extra={"field": "end"}
        )
    if end > timezone.now().date():
        raise ApplicationError(f"end {end.isoformat()} is in the future", extra={"field": "end"})
    if strategy.name.find(" [replay ") >= 0:
        raise ApplicationError(
            f"{strategy.name!r} is a replay account already; replay the strategy it came from"
        )
    strategy.parsed_criteria()  # refuse invalid criteria before creating anything
    account = replay_account_create(strategy=strategy, start=start, end=end)
    broker = ReplayBroker()
    for day in day_range(start, end):
        sync_new_trades(as_of=day, broker=broker, strategies=[account])
        sync_close_positions(as_of=day, broker=broker, strategies=[account])
    positions = Position.objects.for_strategy(account)
    return ReplayResult(
        account=account,
        days=(end - start).days + 1,
        opened=positions.count(),
        closed=positions.closed().count(),
        still_open=positions.open().count(),
        cash=strategy_cash(account),
    )
