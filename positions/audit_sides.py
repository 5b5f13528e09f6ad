"""The two sides of an audited day (:mod:`positions.audit`; docs/audit.md "What is compared"): the backtest's
trades and live's positions read alike: the day's entries and exits, what is open at its end and the cash then;
and the signals one side has and the other has not."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet

from instruments.models import Instrument
from positions.models import Position
from trading.engine.types import Trade
from trading.selectors import from_seconds, to_decimal


@dataclass(frozen=True)
class Side:
    """One side of the day: its entries (instrument ids), exits ((instrument id, reason)), open positions at the end
    of the day and cash then."""

    entries: Counter[int]
    exits: Counter[tuple[int, str]]
    open_rows: list[dict[str, Any]]
    open_instruments: Counter[int]
    cash: Decimal


def backtest_side(
    trades: Sequence[Trade],
    cash_trades: Sequence[Trade],
    keyed: dict[str, Instrument],
    start: datetime,
    end: datetime,
    starting_cash: Decimal,
) -> Side:
    """The backtest's day: entries and exits timed inside ``[start, end)``, what is open at ``end`` and the cash
    then (``starting_cash - sum(entry_price * quantity + entry_fee) + sum(exit_price * quantity - exit_fee)`` over
    the trades entered, and exited, before ``end``; the formula of :func:`positions.accounts.strategy_cash`)."""
    lo, hi = start.timestamp(), end.timestamp()
    entries: Counter[int] = Counter()
    exits: Counter[tuple[int, str]] = Counter()
    open_rows: list[dict[str, Any]] = []
    for trade in trades:
        instrument = keyed[trade.symbol]
        if lo <= trade.entry_time_seconds < hi:
            entries[instrument.pk] += 1
        exited = trade.exit_time_seconds is not None and trade.exit_time_seconds < hi
        if trade.exit_time_seconds is not None and lo <= trade.exit_time_seconds < hi:
            exits[(instrument.pk, trade.exit_reason or "")] += 1
        if trade.entry_time_seconds < hi and not exited:
            open_rows.append(
                {
                    "instrument_id": instrument.pk,
                    "quantity": str(to_decimal(trade.quantity)),
                    "entry_price": str(to_decimal(trade.entry_price)),
                    "entry_at": from_seconds(trade.entry_time_seconds).isoformat(),
                }
            )
    cash = starting_cash
    for trade in cash_trades:
        if trade.entry_time_seconds >= hi:
            continue
        quantity = to_decimal(trade.quantity)
        cash -= to_decimal(trade.entry_price) * quantity + to_decimal(trade.entry_fee)
        if trade.exit_time_seconds is not None and trade.exit_time_seconds < hi:
            assert trade.exit_price is not None and trade.exit_fee is not None  # noqa: S101 (closed trades have them)
            cash += to_decimal(trade.exit_price) * quantity - to_decimal(trade.exit_fee)
    return Side(entries, exits, open_rows, Counter(r["instrument_id"] for r in open_rows), cash)


def live_side(
    positions: Sequence[Position],
    cash_positions: QuerySet[Position],
    start: datetime,
    end: datetime,
    starting_cash: Decimal,
) -> Side:
    """Live's day, as :func:`_backtest_side` reads the backtest's, from the positions (entered before ``end``)."""
    entries: Counter[int] = Counter()
    exits: Counter[tuple[int, str]] = Counter()
    open_rows: list[dict[str, Any]] = []
    for position in positions:
        if start <= position.entry_at < end:
            entries[position.instrument_id] += 1
        if position.exit_at is not None and start <= position.exit_at < end:
            exits[(position.instrument_id, position.exit_reason)] += 1
        if position.exit_at is None or position.exit_at >= end:
            open_rows.append(
                {
                    "position_id": position.pk,
                    "instrument_id": position.instrument_id,
                    "quantity": str(position.quantity),
                    "entry_price": str(position.entry_price),
                    "entry_at": position.entry_at.isoformat(),
                }
            )
    cash = starting_cash
    for position in cash_positions.filter(entry_at__lt=end).only(
        "quantity", "entry_price", "entry_fee", "exit_price", "exit_fee", "exit_at"
    ):
        cash -= position.entry_price * position.quantity + position.entry_fee
        if position.exit_at is not None and position.exit_at < end and position.exit_price is not None:
            cash += position.exit_price * position.quantity - (position.exit_fee or Decimal(0))
    return Side(entries, exits, open_rows, Counter(r["instrument_id"] for r in open_rows), cash)


def signals_only(
    entries: Counter[int], exits: Counter[tuple[int, str]], names: dict[int, str]
) -> list[dict[str, Any]]:
    """The signals of one side only, as rows ``{"instrument", "signal": "entry" | "exit", "reason"}``:
    entries first, then exits, each by instrument (``names``: instrument id -> CoinGecko id)."""
    rows = [
        {"instrument": names[pk], "signal": "entry", "reason": ""}
        for pk, n in sorted(entries.items())
        for _ in range(n)
    ]
    rows += [
        {"instrument": names[pk], "signal": "exit", "reason": reason}
        for (pk, reason), n in sorted(exits.items())
        for _ in range(n)
    ]
    return rows


def entry_names(entries: Counter[int], names: dict[int, str]) -> list[str]:
    """The day's entries as sorted CoinGecko ids (one per entry)."""
    return sorted(names[pk] for pk, n in entries.items() for _ in range(n))


def exit_names(exits: Counter[tuple[int, str]], names: dict[int, str]) -> list[dict[str, str]]:
    """The day's exits as ``{"instrument", "reason"}`` rows, by instrument then reason."""
    return sorted(
        ({"instrument": names[pk], "reason": reason} for (pk, reason), n in exits.items() for _ in range(n)),
        key=lambda row: (row["instrument"], row["reason"]),
    )


def open_named(rows: list[dict[str, Any]], names: dict[int, str]) -> list[dict[str, Any]]:
    """Open positions with their instrument's CoinGecko id instead of its id, by instrument then entry time."""
    named = [
        {"instrument": names[r["instrument_id"]], **{k: v for k, v in r.items() if k != "instrument_id"}}
        for r in rows
    ]
    return sorted(named, key=lambda row: (row["instrument"], row["entry_at"]))
