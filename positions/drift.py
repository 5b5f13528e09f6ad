"""Reads of the daily audit (:mod:`positions.audit`) for the dashboard and a digest: one strategy's drift summed over
every audited day (:func:`cumulative_drift`), and each audited strategy's latest day with its sums
(:func:`drift_lines`, three queries whatever the number of strategies and days)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, OuterRef, Q, Subquery, Sum

from positions.audit_fills import BPS_QUANTUM, audit_round
from positions.models import StrategyAudit
from trading.models import Strategy


@dataclass(frozen=True)
class DriftLine:
    """One strategy's drift (docs/audit.md). Money is quote currency.

    Attributes:
        latest: the strategy's latest audited day (its ``missed``, ``extra``, ``slippage_bps``, ``fee_drift``,
            ``cash_drift``...); ``latest.drifted`` says whether it shows a signal or open-position mismatch.
        days: audited days.
        signal_mismatches: signal mismatches over every audited day.
        open_mismatch_days: days whose open positions differed.
        slippage_cost: what slippage cost over the model over every day (positive: live paid more, got less).
        fee_drift: real minus modelled fees over every day (fees in another currency apart: ``other_fees``).
        other_fees: fees paid in a third currency over every day, by currency (not converted).
        cash_drift: the latest day's live minus backtest cash (a level: it already accumulates every day's drift).
    """

    latest: StrategyAudit
    days: int
    signal_mismatches: int
    open_mismatch_days: int
    slippage_cost: Decimal
    fee_drift: Decimal
    other_fees: dict[str, Decimal] = field(default_factory=dict)

    @property
    def cash_drift(self) -> Decimal:
        """The latest day's cash drift (live minus backtest)."""
        return self.latest.cash_drift

    @property
    def drifted(self) -> bool:
        """Whether any audited day showed a signal or open-position mismatch."""
        return bool(self.signal_mismatches or self.open_mismatch_days)


def drift_lines() -> list[DriftLine]:
    """Every audited strategy's latest audit and cumulative drift, by strategy name: three queries (the latest
    rows with their strategies, the sums per strategy, the third-currency fees)."""
    newest = (
        StrategyAudit.objects.filter(strategy=OuterRef("strategy")).order_by("-as_of").values("as_of")[:1]
    )
    latest = list(
        StrategyAudit.objects.filter(as_of=Subquery(newest))
        .select_related("strategy")
        .order_by("strategy__name")
    )
    if not latest:
        return []
    totals = {
        row["strategy"]: row
        for row in StrategyAudit.objects.values("strategy").annotate(
            days=Count("pk"),
            mismatches=Sum("signal_mismatches"),
            open_days=Count("pk", filter=Q(open_mismatches__gt=0)),
            slippage=Sum("slippage_cost"),
            fees=Sum("fee_drift"),
            last=Max("as_of"),
        )
    }
    other: dict[int, dict[str, Decimal]] = {}
    for strategy_id, fees in StrategyAudit.objects.exclude(other_fees={}).values_list(
        "strategy_id", "other_fees"
    ):
        mine = other.setdefault(strategy_id, {})
        for currency, amount in (fees or {}).items():
            mine[currency] = mine.get(currency, Decimal(0)) + Decimal(str(amount))
    lines = []
    for audit in latest:
        total = totals[audit.strategy_id]
        lines.append(
            DriftLine(
                latest=audit,
                days=int(total["days"]),
                signal_mismatches=int(total["mismatches"] or 0),
                open_mismatch_days=int(total["open_days"]),
                slippage_cost=total["slippage"] or Decimal(0),
                fee_drift=total["fees"] or Decimal(0),
                other_fees=dict(sorted(other.get(audit.strategy_id, {}).items())),
            )
        )
    return lines


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
        "slippage_bps": audit_round(weighted / quantity, BPS_QUANTUM) if quantity else None,
    }
