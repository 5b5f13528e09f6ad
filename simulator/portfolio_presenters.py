"""What the portfolio run pages show (:mod:`simulator.views.portfolios`): the members' table, the correlation
matrix, the limits' refusals and halts, and the account's chart data. Text is made here, the templates only lay
it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator.display import DASH, decimal_or_zero, price_text, statistic_class, statistic_text
from simulator.models import PortfolioSimulation
from simulator.presenters import equity_chart_data


@dataclass(frozen=True)
class MemberRow:
    """One strategy of a portfolio run, as text (money in the quote currency, ratios in percent)."""

    strategy: int | None
    name: str
    weight: str
    budget: str
    pnl: str
    pnl_css: str
    return_on_budget: str
    exposure: str
    drawdown_contribution: str
    drawdown_css: str
    trades: str
    instruments: str


@dataclass(frozen=True)
class CorrelationRow:
    """One line of the correlation matrix: the strategy's name and its correlation with each, as text."""

    name: str
    cells: list[str]


def percent(ratio: Any, places: int = 2) -> str:
    """A fraction in percent (``0.25`` -> ``25.00 %``), a dash for None."""
    return DASH if ratio is None else f"{float(ratio) * 100:,.{places}f} %"


def member_rows(record: PortfolioSimulation) -> list[MemberRow]:
    """The members of a run with their attribution (the attribution's figures once it is done; dashes before)."""
    attribution = {row.get("name"): row for row in record.attribution or []}
    rows = []
    for member in record.members:
        row = attribution.get(member["name"], {})
        pnl, contribution = row.get("pnl"), row.get("drawdown_contribution")
        rows.append(
            MemberRow(
                strategy=member.get("strategy"),
                name=member["name"],
                weight=percent(member["weight"]),
                budget=price_text(row.get("budget")) if row else DASH,
                pnl=price_text(pnl),
                pnl_css=statistic_class("total_return_ratio", None if pnl is None else decimal_or_zero(pnl)),
                return_on_budget=percent(row.get("return_on_budget_ratio")),
                exposure=percent(row.get("exposure_ratio")),
                drawdown_contribution=price_text(contribution),
                drawdown_css="loss" if contribution is not None and decimal_or_zero(contribution) < 0 else "",
                trades=DASH if not row else f"{int(row.get('n_trades', 0)):,}",
                instruments=", ".join(member.get("instruments", [])),
            )
        )
    return rows


def correlation_rows(record: PortfolioSimulation) -> list[CorrelationRow]:
    """The correlation matrix, each cell to two decimals (a dash where a strategy's returns do not vary)."""
    document = record.correlation or {}
    return [
        CorrelationRow(name=name, cells=[DASH if v is None else f"{float(v):.2f}" for v in row])
        for name, row in zip(document.get("names", []), document.get("matrix", []), strict=True)
    ]


def refusal_rows(record: PortfolioSimulation) -> list[dict[str, Any]]:
    """``[{"book", "limit", "count"}]``: how many entry signals each limit refused, per strategy."""
    refused = (record.limits_report or {}).get("refused", {})
    return [
        {"book": book, "limit": limit, "count": f"{count:,}"}
        for book, counts in refused.items()
        for limit, count in sorted(counts.items())
    ]


def halt_rows(record: PortfolioSimulation, currency: str) -> list[dict[str, Any]]:
    """The halts as text: when, whose (a strategy's own limit, or the portfolio's), which limit, began or ended,
    the equity measured and what it was measured from."""
    return [
        {
            "at": str(halt.get("at", ""))[:10],
            "book": halt.get("book") or "portfolio",
            "limit": halt.get("limit", ""),
            "what": "began" if halt.get("began") else "ended",
            "equity": f"{price_text(halt.get('equity'))} {currency}".strip(),
            "reference_equity": f"{price_text(halt.get('reference_equity'))} {currency}".strip(),
        }
        for halt in (record.limits_report or {}).get("halts", [])
    ]


def headline(record: PortfolioSimulation, currency: str) -> list[tuple[str, str, str]]:
    """A few of the account's figures for the top of the page: ``(label, text, css)``."""
    statistics = record.statistics or {}
    return [
        (label, statistic_text(key, statistics.get(key), currency), statistic_class(key, statistics.get(key)))
        for key, label in (
            ("total_return_ratio", "Total return"),
            ("max_drawdown_ratio", "Max drawdown"),
            ("sharpe_ratio", "Sharpe"),
            ("n_trades", "Trades"),
        )
    ]


def portfolio_chart(record: PortfolioSimulation) -> dict[str, Any] | None:
    """The account's curve for the run page's equity and drawdown charts (``json_script`` ``chart-data``:
    ``{"equity": ...}``, :func:`simulator.presenters.equity_chart_data`), or None before it is done."""
    curve = record.equity_curve or {}
    return None if not curve.get("time") else {"equity": equity_chart_data(curve)}
