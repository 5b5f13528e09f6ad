"""The daily audit: live against the backtest (docs/audit.md).

For each live strategy and a day ``as_of``, the engine's backtest over the stored candles, from the strategy's
first live day with its starting cash (:func:`trading.backtests.backtest_stored`; a portfolio member: its
portfolio's backtest), is compared with what live did that day:

- the signals: the day's entries and exits on each side; ``missed`` (the backtest's only) and ``extra`` (live's
  only), each a ``signal_mismatch`` History row the first time an audit finds it;
- each live fill of the day against the engine's fill at the day's stored candle (the open, or the risk level it
  crossed) with the strategy's slippage and fee rate: slippage in basis points, the fee in quote, and fees paid in a
  third currency (BNB) kept as they are;
- the open positions and the cash at the end of the day.

"Live" (:func:`live_strategies`): an enabled strategy whose open step has claimed an instrument on or before the
day (its first open claim, :class:`~positions.models.StrategyStep`, is its first live day). The day ``as_of`` is
audited once its candle is complete and the steps of the next day have run (a stop crossed inside the candle of
``as_of`` is settled at the next boundary, dated ``as_of``): after the close step of day ``D``, audit ``D - 1``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db.models import Min, QuerySet
from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from positions.accounts import portfolio_of
from positions.models import Order, Position, StrategyAudit, StrategyStep
from runs.locked import run_locked
from runs.locks import run_scope
from runs.models import History, HistoryKind, Step
from runs.recorder import RunRecorder, run_status
from trading.backtests import StoredBook, backtest_stored, instrument_key, portfolio_backtest_stored
from trading.engine.layout import NO_EXIT
from trading.engine.rules import buy_fill_price, fill_fee, risk_exit_code, sell_fill_price
from trading.engine.types import Trade
from trading.engine.vocabulary import ExitReason
from trading.models import Portfolio, PortfolioStrategy, Strategy
from trading.selectors import from_seconds, to_decimal

logger = logging.getLogger(__name__)

#: Money figures of the audit are rounded to a millionth of the quote currency (ROUND_HALF_EVEN): below it, a
#: difference is the rounding between the engine's float64 and the stored Decimal, not drift.
AMOUNT_QUANTUM = Decimal("0.000001")
#: Basis points are rounded to a ten-thousandth of a basis point.
BPS_QUANTUM = Decimal("0.0001")
BPS = Decimal(10_000)
#: The exits filled at a level crossed inside the candle (the others fill at the open).
RISK_EXITS = (ExitReason.STOP_LOSS.value, ExitReason.TAKE_PROFIT.value, ExitReason.TRAILING_STOP.value)


class AuditDayError(ApplicationError):
    """The day asked for cannot be audited yet (field ``as_of``)."""


def _round(value: Decimal, quantum: Decimal = AMOUNT_QUANTUM) -> Decimal:
    return value.quantize(quantum, rounding=ROUND_HALF_EVEN)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def first_live_days(strategies: Iterable[Strategy]) -> dict[int, date]:
    """The first live day of each strategy that has one (one query): the day of its first open-step claim."""
    return dict(
        StrategyStep.objects.filter(strategy__in=list(strategies), step=Step.OPEN)
        .values("strategy_id")
        .annotate(first=Min("as_of"))
        .values_list("strategy_id", "first")
    )


def live_strategies(as_of: date) -> list[Strategy]:
    """The strategies live on ``as_of``, by name: enabled, with an open-step claim on or before ``as_of``.

    A replay account (disabled) is not live; a strategy disabled since is not audited any more.
    """
    return list(
        Strategy.objects.enabled()
        .filter(steps__step=Step.OPEN, steps__as_of__lte=as_of)
        .distinct()
        .order_by("name")
    )


def audit_day(*, as_of: date, strategies: Sequence[Strategy] | None = None) -> list[StrategyAudit]:
    """Audit each live strategy's day ``as_of`` against the engine's backtest, and store one row per strategy.

    One History run of step ``audit`` (under its run lock): an ``error`` event for a strategy whose audit failed
    (the others are still audited; the run is then ``partial``, or ``failed`` when none was audited), and a
    ``signal_mismatch`` event per mismatch not recorded by an earlier audit of the same strategy and day (payload
    ``as_of``, ``side`` ``backtest_only`` or ``live_only``, ``signal`` ``entry`` or ``exit``, ``instrument``,
    ``reason``). Idempotent: a second audit of the day updates the same rows to the same values.

    Args:
        as_of: the day audited (UTC); before today (its candle must be complete).
        strategies: which strategies; default :func:`live_strategies`. One without a live day on or before
            ``as_of`` (no open claim) is left out.

    Returns:
        The :class:`~positions.models.StrategyAudit` rows written, by strategy name. Each holds the day's
        signals on both sides, ``missed``/``extra``, ``signal_mismatches``, the ``fills`` with their modelled and
        real prices and fees, ``slippage_bps`` (quantity-weighted, None without fills), ``slippage_cost``,
        ``fee_drift``, ``other_fees``, the open positions and cash at the end of the day on both sides,
        ``open_mismatches``, ``cash_drift`` and ``run_id`` (the run's History rows).

    Raises:
        AuditDayError: ``as_of`` is today or later.
        RunInProgressError: another audit of the same day and scope is running.
    """
    today = timezone.now().date()
    if as_of >= today:
        raise AuditDayError(
            f"as_of must be before today ({today.isoformat()} UTC); was {as_of.isoformat()}: a day is audited once "
            "its candle is complete and the next day's steps have settled the stops inside it (after the close "
            f"step of {today.isoformat()}, audit {(today - timedelta(days=1)).isoformat()})",
            extra={"field": "as_of", "as_of": as_of.isoformat()},
        )
    chosen = list(strategies) if strategies is not None else live_strategies(as_of)
    firsts = first_live_days(chosen)
    audited: list[Strategy] = [s for s in chosen if s.pk in firsts and firsts[s.pk] <= as_of]
    with run_locked(
        step=Step.AUDIT,
        as_of=as_of,
        scope=run_scope(strategy_ids=None if strategies is None else [s.pk for s in chosen]),
        params={"as_of": as_of.isoformat(), "strategies": [s.name for s in audited]},
        kept=lambda run_id: {"kept": "the audit rows written before it stopped (a new audit rewrites them)"},
    ) as recorder:
        portfolios: dict[int, _PortfolioRun] = {}
        rows: list[StrategyAudit] = []
        results: list[dict[str, Any]] = []
        errors = 0
        for strategy in audited:
            try:
                row = _audit_strategy(strategy, as_of, recorder, portfolios)
            except Exception as exc:
                errors += 1
                message = exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
                logger.exception("audit of %s for %s failed", strategy.name, as_of)
                recorder.event(
                    HistoryKind.ERROR, strategy=strategy, message=f"audit of {strategy.name}: {message}"
                )
                results.append({"strategy": strategy.name, "error": message})
                continue
            rows.append(row)
            results.append(
                {
                    "strategy": strategy.name,
                    "audit_id": row.pk,
                    "signal_mismatches": row.signal_mismatches,
                    "open_mismatches": row.open_mismatches,
                    "slippage_bps": None if row.slippage_bps is None else str(row.slippage_bps),
                    "fee_drift": str(row.fee_drift),
                    "cash_drift": str(row.cash_drift),
                }
            )
        recorder.finish(
            status=run_status(errors=errors, succeeded=len(rows)),
            summary={"as_of": as_of.isoformat(), "results": results},
        )
    return rows


@dataclass
class _PortfolioRun:
    """A portfolio's backtest, run once per audit for all its members."""

    portfolio: Portfolio
    first: date
    trades: dict[int, list[Trade]]  # by member strategy id
    instruments: dict[str, Instrument]  # by engine key


@dataclass(frozen=True)
class _Side:
    """One side of the day: its entries (instrument ids), exits ((instrument id, reason)), open positions at the end
    of the day and cash then."""

    entries: Counter[int]
    exits: Counter[tuple[int, str]]
    open_rows: list[dict[str, Any]]
    open_instruments: Counter[int]
    cash: Decimal


def _audit_strategy(
    strategy: Strategy, as_of: date, recorder: RunRecorder, portfolios: dict[int, _PortfolioRun]
) -> StrategyAudit:
    criteria = strategy.parsed_criteria()
    start, end = _midnight(as_of), _midnight(as_of + timedelta(days=1))
    portfolio = portfolio_of(strategy)
    notes: list[str] = []
    if portfolio is None:
        first = first_live_days([strategy])[strategy.pk]
        instruments = list(strategy.instruments.all())
        keyed = {instrument_key(i): i for i in instruments}
        result = backtest_stored(
            criteria=criteria,
            instruments=instruments,
            start=first,
            end=as_of + timedelta(days=1),
            starting_cash=float(strategy.starting_cash),
        )
        trades, cash_trades = result.trades, result.trades
        starting_cash = strategy.starting_cash
        cash_positions = Position.objects.for_strategy(strategy)
        cash_scope = f"strategy {strategy.name}"
    else:
        run = portfolios.get(portfolio.pk) or _portfolio_run(portfolio, as_of)
        portfolios[portfolio.pk] = run
        first, keyed = run.first, run.instruments
        trades = run.trades.get(strategy.pk, [])
        cash_trades = [t for member in run.trades.values() for t in member]
        starting_cash = portfolio.starting_cash
        cash_positions = Position.objects.filter(portfolio=portfolio)
        cash_scope = f"portfolio {portfolio.name}"
        notes.append(
            f"a member of portfolio {portfolio.name!r}: the backtest is the portfolio's from its first live day; "
            "cash is the portfolio's (shared by its members)"
        )
    by_id = {i.pk: i for i in keyed.values()}
    positions = list(
        Position.objects.for_strategy(strategy)
        .filter(entry_at__lt=end)
        .select_related("instrument")
        .order_by("entry_at", "id")
    )
    for position in positions:
        by_id.setdefault(position.instrument_id, position.instrument)
    backtest_side = _backtest_side(trades, cash_trades, keyed, start, end, starting_cash)
    live_side = _live_side(positions, cash_positions, start, end, starting_cash)
    names = {pk: i.coingecko_id for pk, i in by_id.items()}
    missed = _signals(backtest_side.entries - live_side.entries, backtest_side.exits - live_side.exits, names)
    extra = _signals(live_side.entries - backtest_side.entries, live_side.exits - backtest_side.exits, names)
    fills = _fills(positions, criteria.fee_rate, criteria.slippage_ratio, start, end)
    weighted = [f for f in fills if f["slippage_bps"] is not None]
    quantity = sum((Decimal(f["quantity"]) for f in weighted), Decimal(0))
    slippage_bps = (
        _round(
            sum((Decimal(f["slippage_bps"]) * Decimal(f["quantity"]) for f in weighted), Decimal(0))
            / quantity,
            BPS_QUANTUM,
        )
        if quantity
        else None
    )
    modelled_fee = sum((Decimal(f["modelled_fee"]) for f in weighted), Decimal(0))
    real_fee = sum((Decimal(f["real_fee"]) for f in weighted), Decimal(0))
    other_fees: dict[str, Decimal] = {}
    for f in fills:
        for currency, amount in f["other_fees"].items():
            other_fees[currency] = other_fees.get(currency, Decimal(0)) + Decimal(amount)
    unpriced = [f for f in fills if f["slippage_bps"] is None]
    if unpriced:
        notes.append(
            f"{len(unpriced)} fill(s) without the day's stored candle: not in slippage_bps, slippage_cost or the fees"
        )
    open_mismatches = sum(
        (
            (backtest_side.open_instruments - live_side.open_instruments)
            + (live_side.open_instruments - backtest_side.open_instruments)
        ).values()
    )
    audit, _ = StrategyAudit.objects.update_or_create(
        strategy=strategy,
        as_of=as_of,
        defaults={
            "run_id": recorder.run_id,
            "first_day": first,
            "backtest_entries": _entry_names(backtest_side.entries, names),
            "backtest_exits": _exit_names(backtest_side.exits, names),
            "live_entries": _entry_names(live_side.entries, names),
            "live_exits": _exit_names(live_side.exits, names),
            "missed": missed,
            "extra": extra,
            "signal_mismatches": len(missed) + len(extra),
            "fills": fills,
            "slippage_bps": slippage_bps,
            "slippage_cost": _round(sum((Decimal(f["slippage_cost"]) for f in weighted), Decimal(0))),
            "modelled_fee": _round(modelled_fee),
            "real_fee": _round(real_fee),
            "fee_drift": _round(real_fee - modelled_fee),
            "other_fees": {c: str(a) for c, a in sorted(other_fees.items())},
            "open_live": _open_named(live_side.open_rows, names),
            "open_backtest": _open_named(backtest_side.open_rows, names),
            "open_mismatches": open_mismatches,
            "cash_live": _round(live_side.cash),
            "cash_backtest": _round(backtest_side.cash),
            "cash_drift": _round(live_side.cash - backtest_side.cash),
            "details": {
                "backtest": {
                    "start": first.isoformat(),
                    "end": (as_of + timedelta(days=1)).isoformat(),
                    "starting_cash": str(starting_cash),
                    "trades": len(trades),
                },
                "cash_scope": cash_scope,
                "fee_rate": criteria.fee_rate,
                "slippage_ratio": criteria.slippage_ratio,
                "notes": notes,
            },
        },
    )
    _mismatches_record(recorder, strategy, as_of, missed, extra, by_id)
    return audit


def _portfolio_run(portfolio: Portfolio, as_of: date) -> _PortfolioRun:
    """The backtest of ``portfolio`` from its first live day (its members' first open claim) through ``as_of``."""
    memberships = list(
        PortfolioStrategy.objects.filter(portfolio=portfolio)
        .select_related("strategy")
        .order_by("order", "pk")
    )
    members = [m.strategy for m in memberships]
    firsts = first_live_days(members)
    if not firsts:
        raise ApplicationError(f"portfolio {portfolio.name!r} has no open-step claim: it has not traded live")
    first = min(firsts.values())
    books = []
    keyed: dict[str, Instrument] = {}
    for membership in memberships:
        instruments = list(membership.strategy.instruments.all())
        keyed.update({instrument_key(i): i for i in instruments})
        books.append(
            StoredBook(
                name=membership.strategy.name,
                criteria=membership.strategy.parsed_criteria(),
                instruments=instruments,
                weight=float(membership.weight),
            )
        )
    result = portfolio_backtest_stored(
        books=books,
        limits=portfolio.parsed_limits(),
        start=first,
        end=as_of + timedelta(days=1),
        starting_cash=float(portfolio.starting_cash),
    )
    return _PortfolioRun(
        portfolio=portfolio,
        first=first,
        trades={
            m.strategy.pk: log.to_trades() for m, log in zip(memberships, result.trade_logs, strict=True)
        },
        instruments=keyed,
    )


def _backtest_side(
    trades: Sequence[Trade],
    cash_trades: Sequence[Trade],
    keyed: dict[str, Instrument],
    start: datetime,
    end: datetime,
    starting_cash: Decimal,
) -> _Side:
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
    return _Side(entries, exits, open_rows, Counter(r["instrument_id"] for r in open_rows), cash)


def _live_side(
    positions: Sequence[Position],
    cash_positions: QuerySet[Position],
    start: datetime,
    end: datetime,
    starting_cash: Decimal,
) -> _Side:
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
    return _Side(entries, exits, open_rows, Counter(r["instrument_id"] for r in open_rows), cash)


def _signals(
    entries: Counter[int], exits: Counter[tuple[int, str]], names: dict[int, str]
) -> list[dict[str, Any]]:
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


def _entry_names(entries: Counter[int], names: dict[int, str]) -> list[str]:
    return sorted(names[pk] for pk, n in entries.items() for _ in range(n))


def _exit_names(exits: Counter[tuple[int, str]], names: dict[int, str]) -> list[dict[str, str]]:
    return sorted(
        ({"instrument": names[pk], "reason": reason} for (pk, reason), n in exits.items() for _ in range(n)),
        key=lambda row: (row["instrument"], row["reason"]),
    )


def _open_named(rows: list[dict[str, Any]], names: dict[int, str]) -> list[dict[str, Any]]:
    named = [
        {"instrument": names[r["instrument_id"]], **{k: v for k, v in r.items() if k != "instrument_id"}}
        for r in rows
    ]
    return sorted(named, key=lambda row: (row["instrument"], row["entry_at"]))


def _day_candles(instrument_ids: set[int], start: datetime) -> dict[int, tuple[Decimal, Decimal, Decimal]]:
    """The stored daily candle opening at ``start`` of each instrument: ``(open, high, low)``, quote currency."""
    rows = InstrumentOHLC.objects.filter(
        instrument_id__in=instrument_ids, timeframe=Timeframe.D1, open_time=start
    ).values_list("instrument_id", "open", "high", "low")
    return {pk: (o, h, low) for pk, o, h, low in rows}


def _other_fees(orders: Iterable[Order]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for order in orders:
        for currency, amount in (order.other_fees or {}).items():
            total[currency] = total.get(currency, Decimal(0)) + Decimal(str(amount))
    return total


def _fills(
    positions: Sequence[Position], fee_rate: float, slippage_ratio: float, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Each live fill of the day (an entry or an exit of a position, timed inside ``[start, end)``) against the
    engine's fill of the same quantity at the day's stored candle (docs/audit.md "Fills")."""
    entered = [p for p in positions if start <= p.entry_at < end]
    exited = [p for p in positions if p.exit_at is not None and start <= p.exit_at < end]
    candles = _day_candles({p.instrument_id for p in entered + exited}, start)
    orders: dict[tuple[int, str], list[Order]] = {}
    for order in Order.objects.filter(position__in=entered + exited, filled_quantity__gt=0):
        side = "buy" if order.purpose == Order.Purpose.ENTRY else "sell"
        assert order.position_id is not None  # noqa: S101 (filtered on positions)
        orders.setdefault((order.position_id, side), []).append(order)
    fills = []
    for side, position in [("buy", p) for p in entered] + [("sell", p) for p in exited]:
        candle = candles.get(position.instrument_id)
        quantity = position.quantity
        if side == "buy":
            real_price, real_fee, reason = position.entry_price, position.entry_fee, ""
        else:
            assert position.exit_price is not None  # noqa: S101 (exited positions have their exit)
            real_price, real_fee, reason = (
                position.exit_price,
                position.exit_fee or Decimal(0),
                position.exit_reason,
            )
        row: dict[str, Any] = {
            "position_id": position.pk,
            "instrument": position.instrument.coingecko_id,
            "side": side,
            "reason": reason,
            "quantity": str(quantity),
            "price": str(real_price),
            "real_fee": str(real_fee),
            "other_fees": {
                c: str(a) for c, a in sorted(_other_fees(orders.get((position.pk, side), [])).items())
            },
            "modelled_raw_price": None,
            "modelled_price": None,
            "modelled_fee": None,
            "slippage_bps": None,
            "slippage_cost": None,
            "fee_drift": None,
            "note": "",
        }
        if candle is None:
            row["note"] = "no stored candle of the day: the model has no price"
            fills.append(row)
            continue
        raw, note = _modelled_raw(position, side, candle)
        price = float(raw)
        modelled = to_decimal(
            buy_fill_price(price, slippage_ratio) if side == "buy" else sell_fill_price(price, slippage_ratio)
        )
        modelled_fee = to_decimal(fill_fee(float(modelled), float(quantity), fee_rate))
        ratio = real_price / modelled
        bps = (ratio - 1) * BPS if side == "buy" else (1 - ratio) * BPS
        cost = (real_price - modelled) * quantity if side == "buy" else (modelled - real_price) * quantity
        row.update(
            modelled_raw_price=str(raw),
            modelled_price=str(modelled),
            modelled_fee=str(modelled_fee),
            slippage_bps=str(_round(bps, BPS_QUANTUM)),
            slippage_cost=str(_round(cost)),
            fee_drift=str(_round(real_fee - modelled_fee)),
            note=note,
        )
        fills.append(row)
    return fills


def _modelled_raw(
    position: Position, side: str, candle: tuple[Decimal, Decimal, Decimal]
) -> tuple[Decimal, str]:
    """The price the engine fills at before slippage: the day's open for an entry and a signal, maximum-holding or
    manual exit; for a risk exit, what :func:`trading.engine.rules.risk_exit_code` gives on the day's candle with
    the position's levels (the level, or the open when it gapped through)."""
    open_, high, low = candle
    if side == "buy" or position.exit_reason not in RISK_EXITS:
        return open_, ""
    nan = float("nan")
    levels = {
        ExitReason.STOP_LOSS.value: position.stop_loss_price,
        ExitReason.TAKE_PROFIT.value: position.take_profit_price,
        ExitReason.TRAILING_STOP.value: position.trailing_stop_price,
    }
    code, raw = risk_exit_code(
        float(open_),
        float(high),
        float(low),
        nan if levels["stop_loss"] is None else float(levels["stop_loss"]),
        nan if levels["take_profit"] is None else float(levels["take_profit"]),
        nan if levels["trailing_stop"] is None else float(levels["trailing_stop"]),
    )
    if code != NO_EXIT:
        return to_decimal(raw), ""
    level = levels.get(position.exit_reason)
    if level is None:
        return open_, f"the {position.exit_reason} has no level on the position: modelled at the open"
    return (
        level,
        f"the day's stored candle did not cross the {position.exit_reason} level: modelled at the level",
    )


def _mismatches_record(
    recorder: RunRecorder,
    strategy: Strategy,
    as_of: date,
    missed: list[dict[str, Any]],
    extra: list[dict[str, Any]],
    instruments: dict[int, Instrument],
) -> None:
    """One ``signal_mismatch`` History row per mismatch an earlier audit of the strategy and day did not record."""
    by_name = {i.coingecko_id: i for i in instruments.values()}
    recorded = Counter(
        (p.get("side"), p.get("signal"), p.get("instrument"), p.get("reason"))
        for p in History.objects.filter(
            kind=HistoryKind.SIGNAL_MISMATCH, strategy=strategy, payload__as_of=as_of.isoformat()
        ).values_list("payload", flat=True)
    )
    for side, rows in (("backtest_only", missed), ("live_only", extra)):
        for row in rows:
            key = (side, row["signal"], row["instrument"], row["reason"])
            if recorded[key]:
                recorded[key] -= 1
                continue
            who = (
                "the backtest has it, live has not"
                if side == "backtest_only"
                else "live has it, the backtest has not"
            )
            recorder.event(
                HistoryKind.SIGNAL_MISMATCH,
                strategy=strategy,
                instrument=by_name.get(row["instrument"]),
                message=f"{strategy.name} {as_of.isoformat()}: {row['signal']} on {row['instrument']}"
                + (f" ({row['reason']})" if row["reason"] else "")
                + f": {who}",
                payload={"as_of": as_of.isoformat(), "side": side, **row},
            )


def cumulative_drift(strategy: Strategy) -> dict[str, Any]:
    """The drift of ``strategy`` summed over every audited day (two queries).

    Returns:
        ``{"days", "first_day", "last_day" (ISO or None), "signal_mismatches", "missed", "extra",
        "open_mismatch_days", "fills", "slippage_cost" (quote, Decimal: what slippage cost over the model),
        "fee_drift" (quote, Decimal: real - modelled), "other_fees" ({currency: Decimal}), "cash_drift" (the last
        audited day's, Decimal: cash drift is a level, already cumulative), "slippage_bps" (quantity-weighted over
        every priced fill, Decimal or None)}``.
    """
    return drift_totals(StrategyAudit.objects.filter(strategy=strategy).order_by("as_of"))


def drift_totals(audits: Iterable[StrategyAudit]) -> dict[str, Any]:
    """:func:`cumulative_drift` of one strategy's audits, oldest first (no query beyond reading them)."""
    rows = list(audits)
    other: dict[str, Decimal] = {}
    weighted, quantity, fills = Decimal(0), Decimal(0), 0
    for row in rows:
        for currency, amount in (row.other_fees or {}).items():
            other[currency] = other.get(currency, Decimal(0)) + Decimal(str(amount))
        for fill in row.fills or []:
            fills += 1
            if fill.get("slippage_bps") is not None:
                weighted += Decimal(fill["slippage_bps"]) * Decimal(fill["quantity"])
                quantity += Decimal(fill["quantity"])
    return {
        "days": len(rows),
        "first_day": rows[0].as_of.isoformat() if rows else None,
        "last_day": rows[-1].as_of.isoformat() if rows else None,
        "signal_mismatches": sum(r.signal_mismatches for r in rows),
        "missed": sum(len(r.missed) for r in rows),
        "extra": sum(len(r.extra) for r in rows),
        "open_mismatch_days": sum(1 for r in rows if r.open_mismatches),
        "fills": fills,
        "slippage_cost": sum((r.slippage_cost for r in rows), Decimal(0)),
        "fee_drift": sum((r.fee_drift for r in rows), Decimal(0)),
        "other_fees": dict(sorted(other.items())),
        "cash_drift": rows[-1].cash_drift if rows else Decimal(0),
        "slippage_bps": _round(weighted / quantity, BPS_QUANTUM) if quantity else None,
    }
