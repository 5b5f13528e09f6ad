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
from decimal import Decimal
from typing import Any

from django.db.models import Min
from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from positions.accounts import portfolio_of
from positions.audit_fills import BPS_QUANTUM, audit_round, fills_against_model
from positions.audit_sides import backtest_side, entry_names, exit_names, live_side, open_named, signals_only
from positions.drift import cumulative_drift
from positions.models import Position, StrategyAudit, StrategyStep
from runs.locked import run_locked
from runs.locks import run_scope
from runs.models import History, HistoryKind, Step
from runs.recorder import RunRecorder, run_status
from trading.backtests import StoredBook, backtest_stored, instrument_key, portfolio_backtest_stored
from trading.engine.types import Trade
from trading.models import Portfolio, PortfolioStrategy, Strategy

logger = logging.getLogger(__name__)

#: The public API: the audit (a service) and the cumulative drift of a strategy (a read, :mod:`positions.drift`).
__all__ = ["AuditDayError", "audit_day", "cumulative_drift", "first_live_days", "live_strategies"]


class AuditDayError(ApplicationError):
    """The day asked for cannot be audited yet (field ``as_of``)."""


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
    backtest = backtest_side(trades, cash_trades, keyed, start, end, starting_cash)
    live = live_side(positions, cash_positions, start, end, starting_cash)
    names = {pk: i.coingecko_id for pk, i in by_id.items()}
    missed = signals_only(backtest.entries - live.entries, backtest.exits - live.exits, names)
    extra = signals_only(live.entries - backtest.entries, live.exits - backtest.exits, names)
    fills = fills_against_model(positions, criteria.fee_rate, criteria.slippage_ratio, start, end)
    weighted = [f for f in fills if f["slippage_bps"] is not None]
    quantity = sum((Decimal(f["quantity"]) for f in weighted), Decimal(0))
    slippage_bps = (
        audit_round(
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
            (backtest.open_instruments - live.open_instruments)
            + (live.open_instruments - backtest.open_instruments)
        ).values()
    )
    audit, _ = StrategyAudit.objects.update_or_create(
        strategy=strategy,
        as_of=as_of,
        defaults={
            "run_id": recorder.run_id,
            "first_day": first,
            "backtest_entries": entry_names(backtest.entries, names),
            "backtest_exits": exit_names(backtest.exits, names),
            "live_entries": entry_names(live.entries, names),
            "live_exits": exit_names(live.exits, names),
            "missed": missed,
            "extra": extra,
            "signal_mismatches": len(missed) + len(extra),
            "fills": fills,
            "slippage_bps": slippage_bps,
            "slippage_cost": audit_round(sum((Decimal(f["slippage_cost"]) for f in weighted), Decimal(0))),
            "modelled_fee": audit_round(modelled_fee),
            "real_fee": audit_round(real_fee),
            "fee_drift": audit_round(real_fee - modelled_fee),
            "other_fees": {c: str(a) for c, a in sorted(other_fees.items())},
            "open_live": open_named(live.open_rows, names),
            "open_backtest": open_named(backtest.open_rows, names),
            "open_mismatches": open_mismatches,
            "cash_live": audit_round(live.cash),
            "cash_backtest": audit_round(backtest.cash),
            "cash_drift": audit_round(live.cash - backtest.cash),
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
