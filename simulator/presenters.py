"""What the simulator's pages show, built from saved runs: statistic rows beside buy and hold, the trades
table, chart data, list and comparison cells, and a sweep's heatmap. Reads go through :mod:`simulator.selectors`;
text with units through :mod:`simulator.display`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from instruments.candles import TIMEFRAMES
from simulator.builder.conversions import path_is_percent
from simulator.display import (
    DASH,
    decimal_or_zero,
    lower_is_better,
    number_text,
    percent_text,
    price_text,
    quantity_text,
    quote_currency,
    statistic_class,
    statistic_label,
    statistic_text,
)
from simulator.models import Simulation, Sweep, SweepPoint
from trading.engine.statistics import backtest_statistics
from trading.engine.types import SECONDS_PER_DAY
from trading.engine.vocabulary import STATISTIC_BY_KEY, STATISTICS_KEYS, exit_reason_text
from trading.selectors import to_seconds


def _seconds(iso: str | None) -> int | None:
    if not iso:
        return None
    return to_seconds(datetime.fromisoformat(iso.replace("Z", "+00:00")))


def _bar(seconds: int, bar_seconds: int) -> int:
    return seconds - seconds % bar_seconds


@dataclass(frozen=True)
class StatisticRow:
    """One line of the statistics table."""

    key: str
    label: str
    text: str
    css: str
    buy_and_hold_text: str
    buy_and_hold_css: str


def buy_and_hold_statistics(simulation: Simulation) -> dict[str, Any]:
    """The statistics of buy and hold over the run (its curve through the engine's own statistics: no fee, no
    trade, always exposed), or ``{}`` when the run has no curve. For a curve kept downsampled (``"step"`` in it:
    an hourly or minute run) they are those of the kept points, each ``step`` candles apart: the run's own
    statistics are always over its full curve, buy and hold's here are close to but not exactly those."""
    curve = simulation.equity_curve or {}
    values = np.asarray(curve.get("buy_and_hold") or [], dtype=np.float64)
    if values.size == 0 or not np.all(values > 0):
        return {}
    return backtest_statistics(
        equity_curve=values,
        buy_and_hold_curve=values,
        exposure=np.ones(values.shape, dtype=bool),
        trades=[],
        candle_seconds=int(TIMEFRAMES[simulation.timeframe].total_seconds()) * int(curve.get("step") or 1),
        starting_cash=float(simulation.starting_cash),
    )


def statistics_rows(simulation: Simulation, currency: str) -> list[StatisticRow]:
    """Every statistic of the run in :data:`STATISTICS_KEYS` order, with buy and hold's beside where it has one."""
    held = buy_and_hold_statistics(simulation)
    rows = []
    for key in STATISTICS_KEYS:
        value = simulation.statistics.get(key)
        other = held.get(key) if STATISTIC_BY_KEY[key].buy_and_hold else None
        rows.append(
            StatisticRow(
                key=key,
                label=statistic_label(key),
                text=statistic_text(key, value, currency),
                css=statistic_class(key, value),
                buy_and_hold_text=statistic_text(key, other, currency) if key in held else "",
                buy_and_hold_css=statistic_class(key, other),
            )
        )
    return rows


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, the value it sorts by, and a CSS class."""

    text: str
    sort: str
    css: str = ""


TRADE_COLUMNS = (
    ("Instrument", "text"),
    ("Entry (UTC)", "text"),
    ("Entry price", "num"),
    ("Exit (UTC)", "text"),
    ("Exit price", "num"),
    ("Quantity", "num"),
    ("Fees", "num"),
    ("P&L", "num"),
    ("P&L %", "num"),
    ("Exit reason", "text"),
)


#: Trades on one page of a run's trades table (``?trades_page=``); the charts mark those of the page shown. A year
#: of one-minute candles can make 10,000 trades: all of them would make a page of ~10 MB that takes seconds to
#: draw. The trades CSV holds every trade.
TRADES_PER_PAGE = 250


def trade_rows(simulation: Simulation, trades: Sequence[dict[str, Any]] | None = None) -> list[list[Cell]]:
    """The trades table: one row a trade, the cells of :data:`TRADE_COLUMNS` (fees are entry plus exit).
    ``trades``: those to show (a page of ``simulation.trades``); every trade of the run by default."""
    rows = []
    for trade in simulation.trades if trades is None else trades:
        pnl = trade.get("pnl")
        ratio = trade.get("pnl_ratio")
        tone = (
            ""
            if pnl in (None, "")
            else "gain"
            if Decimal(str(pnl)) > 0
            else "loss"
            if Decimal(str(pnl)) < 0
            else ""
        )
        fees = decimal_or_zero(trade.get("entry_fee")) + decimal_or_zero(trade.get("exit_fee"))
        rows.append(
            [
                Cell(trade.get("symbol") or trade.get("instrument", ""), trade.get("symbol") or ""),
                Cell(_time_text(trade.get("entry_at")), trade.get("entry_at") or ""),
                Cell(price_text(trade.get("entry_price")), str(trade.get("entry_price") or ""), "num"),
                Cell(_time_text(trade.get("exit_at")), trade.get("exit_at") or ""),
                Cell(price_text(trade.get("exit_price")), str(trade.get("exit_price") or ""), "num"),
                Cell(quantity_text(trade.get("quantity")), str(trade.get("quantity") or ""), "num"),
                Cell(price_text(fees), str(fees), "num"),
                Cell(price_text(pnl), str(pnl or ""), f"num {tone}"),
                Cell(
                    DASH if ratio is None else f"{ratio * 100:,.2f} %",
                    "" if ratio is None else repr(ratio),
                    f"num {tone}",
                ),
                Cell(exit_reason_text(trade.get("exit_reason")) or "open", trade.get("exit_reason") or ""),
            ]
        )
    return rows


def _time_text(iso: str | None) -> str:
    if not iso:
        return DASH
    return iso.replace("T00:00:00Z", "").replace("T", " ").replace("Z", "")


def ruin_text(simulation: Simulation) -> str:
    """The run page's note on a ruined account (``statistics["ruined_at"]``: its equity reached 0), or ``""``."""
    moment = (simulation.statistics or {}).get("ruined_at")
    if not moment:
        return ""
    shown = moment[:10] if simulation.timeframe == "1d" else _time_text(moment) + " UTC"
    return (
        f"The account was ruined on {shown}: its equity reached 0 (losses and costs took all of it), so no "
        "trade was made after that. Total return -100 %, max drawdown 100 %; Sharpe and Sortino are over the "
        "returns up to the ruin."
    )


def chart_data(
    *,
    simulation: Simulation,
    candles: dict[str, list[dict[str, float]]],
    bar_seconds: int = SECONDS_PER_DAY,
    trades: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the result page's charts draw, for ``json_script``; ``bar_seconds`` is the length of a chart bar
    (:func:`simulator.selectors.chart_bar_seconds`), markers go on the bar of their fill. ``trades``: the trades
    to mark (those of the trades table's page shown); every trade of the run by default.

    Returns:
        ``{"currency", "candles": {symbol: [...]}, "markers": {symbol: [{time, position, color, shape, text}]},
        "notes": {symbol: {time: [line, ...]}}, "equity": {"time": [...], "equity": [...], "buy_and_hold":
        [...], "drawdown_pct": [...]}}``: times in seconds (each bar's open; markers on the bar of the fill),
        prices in quote currency (equity and buy and hold to the cent), ``drawdown_pct`` in percent below the
        peak as negative numbers (to 0.01).
    """
    markers: dict[str, list[dict[str, Any]]] = {symbol: [] for symbol in candles}
    notes: dict[str, dict[int, list[str]]] = {symbol: {} for symbol in candles}
    last_time = {symbol: rows[-1]["time"] if rows else None for symbol, rows in candles.items()}
    for trade in simulation.trades if trades is None else trades:
        symbol = trade.get("symbol") or ""
        if symbol not in markers:
            continue
        entry = _seconds(trade.get("entry_at"))
        if entry is not None:
            day = _bar(entry, bar_seconds)
            markers[symbol].append(
                {"time": day, "position": "belowBar", "color": "#2f6f9f", "shape": "arrowUp"}
            )
            notes[symbol].setdefault(day, []).append(
                f"Entry at {price_text(trade.get('entry_price'))}, quantity {quantity_text(trade.get('quantity'))}"
            )
        exit_ = _seconds(trade.get("exit_at"))
        if exit_ is not None:
            day = _bar(exit_, bar_seconds)
            newest = last_time[symbol]
            if newest is not None:
                day = min(day, int(newest))
            pnl = trade.get("pnl")
            gained = pnl not in (None, "") and Decimal(str(pnl)) >= 0
            ratio = trade.get("pnl_ratio")
            reason = exit_reason_text(trade.get("exit_reason"))
            markers[symbol].append(
                {
                    "time": day,
                    "position": "aboveBar",
                    "color": "#1b7f3b" if gained else "#b42318",
                    "shape": "arrowDown",
                }
            )
            shown_ratio = "" if ratio is None else f" ({ratio * 100:+,.2f} %)"
            notes[symbol].setdefault(day, []).append(
                f"Exit ({reason}) at {price_text(trade.get('exit_price'))}, P&L {price_text(pnl)}{shown_ratio}"
            )
    for rows in markers.values():
        rows.sort(key=lambda m: (m["time"], m["position"] == "aboveBar"))
    curve = simulation.equity_curve or {}
    drawdown = np.asarray(curve.get("drawdown_ratio") or [], dtype=np.float64)

    def cents(values: Sequence[float]) -> list[float]:
        # The chart needs no more than cents, and short numbers make the page's JSON a third quicker to write.
        rounded: list[float] = np.round(np.asarray(values, dtype=np.float64), 2).tolist()
        return rounded

    return {
        "currency": quote_currency(simulation.instruments.all()),
        "candles": candles,
        "markers": markers,
        "notes": {
            symbol: {str(t): lines for t, lines in by_time.items()} for symbol, by_time in notes.items()
        },
        "equity": {
            "time": curve.get("time", []),
            "equity": cents(curve.get("equity") or []),
            "buy_and_hold": cents(curve.get("buy_and_hold") or []),
            "drawdown_pct": np.round(drawdown * -100, 2).tolist(),
        },
    }


#: The columns of the list that come from the statistics.
LIST_STATISTICS = ("total_return_ratio", "sharpe_ratio", "max_drawdown_ratio", "n_trades")


@dataclass
class ListedRun:
    """A line of the list page."""

    simulation: Simulation
    cells: list[Cell] = field(default_factory=list)


def listed_runs(simulations: Iterable[Simulation]) -> list[ListedRun]:
    """The statistics cells of :data:`LIST_STATISTICS` for each run of a list page."""
    lines = []
    for simulation in simulations:
        statistics = simulation.statistics or {}
        cells = [
            Cell(
                statistic_text(key, statistics.get(key)),
                "" if statistics.get(key) is None else repr(statistics.get(key)),
                f"num {statistic_class(key, statistics.get(key))}",
            )
            for key in LIST_STATISTICS
        ]
        lines.append(ListedRun(simulation=simulation, cells=cells))
    return lines


def compare_rows(simulations: Sequence[Simulation]) -> list[tuple[str, str, list[Cell]]]:
    """``(key, label, [cell per run])`` for every statistic."""
    rows = []
    for key in STATISTICS_KEYS:
        cells = []
        for simulation in simulations:
            value = (simulation.statistics or {}).get(key)
            currency = quote_currency(simulation.instruments.all())
            cells.append(Cell(statistic_text(key, value, currency), "", f"num {statistic_class(key, value)}"))
        rows.append((key, statistic_label(key), cells))
    return rows


def compare_chart_data(simulations: Sequence[Simulation]) -> list[dict[str, Any]]:
    """Each run's equity as its return on the starting cash, in percent, for one chart:
    ``[{"id", "name", "time": [...], "return_pct": [...]}]``."""
    lines = []
    for simulation in simulations:
        curve = simulation.equity_curve or {}
        equity = np.asarray(curve.get("equity") or [], dtype=np.float64)
        cash = float(simulation.starting_cash)
        lines.append(
            {
                "id": simulation.pk,
                "name": str(simulation),
                "time": curve.get("time", []),
                "return_pct": np.round((equity / cash - 1) * 100, 4).tolist() if cash > 0 else [],
            }
        )
    return lines


@dataclass(frozen=True)
class HeatCell:
    """One grid point of a heatmap."""

    index: int
    text: str
    style: str
    title: str
    error: str
    no_trades: bool = False


def point_has_no_trades(point: SweepPoint) -> bool:
    """True when a grid point ran and made no trade (``n_trades`` is 0)."""
    return not point.error and point.statistics.get("n_trades") == 0


@dataclass(frozen=True)
class Heatmap:
    """A sweep's statistic over its grid: one row per value of the first axis (a single row for one axis).

    Attributes:
        row_path, column_path: the axes' paths (``row_path`` is empty for one axis).
        columns: the column axis's values, as text with units.
        rows: ``(row value text, [HeatCell, ...])``.
    """

    statistic: str
    label: str
    row_path: str
    column_path: str
    columns: list[str]
    rows: list[tuple[str, list[HeatCell]]]
    best: HeatCell | None


def axis_value_text(path: str, value: float, criteria: dict[str, Any]) -> str:
    """A sweep axis value with its unit: percent for fractions (``5 %``), else the number."""
    return f"{percent_text(value)} %" if path_is_percent(path, criteria) else number_text(value)


#: The colour of a cell without a value to colour by: an error, no trade, or an undefined statistic.
GREY_CELL = "background: #eceff1"


def sweep_heatmap(
    sweep: Sweep, statistic: str | None = None, points: Sequence[SweepPoint] | None = None
) -> Heatmap:
    """The heatmap of one statistic over a sweep's grid (one query for the points unless ``points`` are given).

    Args:
        sweep: the sweep; its grid points keep every statistic, so any can be shown without running again.
        statistic: one of :data:`STATISTICS_KEYS`; the sweep's own (chosen when it was made) by default.
        points: the sweep's saved points (:func:`simulator.selectors.sweep_points`), when already read.

    Cells are coloured from red (worst) to green (best) over the finite values of the points that traded; a point
    that made no trade is grey and says "no trades" (its return of 0 is no loss, and no result either); a point
    without the statistic (an error, or undefined such as a Sharpe ratio without returns) is grey too.
    """
    axes = sweep.axes
    key = statistic or sweep.statistic
    if points is None:
        points = list(
            sweep.points.only("index", "values", "statistics", "error", "sweep_id").order_by("index")
        )
    by_index = {p.index: p for p in points}
    values = {
        index: float(p.statistics[key])
        for index, p in by_index.items()
        if not p.error
        and not point_has_no_trades(p)
        and isinstance(p.statistics.get(key), int | float)
        and math.isfinite(p.statistics[key])
    }
    low, high = (min(values.values()), max(values.values())) if values else (0.0, 0.0)
    currency = quote_currency(sweep.instruments.all())

    def cell(index: int, shown: str) -> HeatCell:
        point = by_index.get(index)
        if point is None:
            return HeatCell(index, "\u2026", "", f"{shown}: not run yet", "")
        if point.error:
            return HeatCell(index, "error", GREY_CELL, f"{shown}: {point.error}", point.error)
        if point_has_no_trades(point):
            return HeatCell(index, "no trades", GREY_CELL, f"{shown}: no trades", "", no_trades=True)
        value = values.get(index)
        text = statistic_text(key, point.statistics.get(key), currency)
        if value is None:
            return HeatCell(index, text, GREY_CELL, shown, "")
        share = 0.5 if high == low else (value - low) / (high - low)
        if lower_is_better(key):
            share = 1 - share
        return HeatCell(index, text, f"background: hsl({share * 120:.0f}, 65%, 80%)", f"{shown}: {text}", "")

    first = axes[0]
    first_texts = [axis_value_text(first["path"], v, sweep.criteria) for v in first["values"]]
    if len(axes) == 1:
        row_path, column_path, columns = "", first["path"], first_texts
        rows = [("", [cell(i, f"{first['path']} = {t}") for i, t in enumerate(first_texts)])]
    else:
        second = axes[1]
        columns = [axis_value_text(second["path"], v, sweep.criteria) for v in second["values"]]
        row_path, column_path = first["path"], second["path"]
        rows = [
            (
                row_text,
                [
                    cell(
                        r * len(columns) + c,
                        f"{first['path']} = {row_text}, {second['path']} = {column_text}",
                    )
                    for c, column_text in enumerate(columns)
                ],
            )
            for r, row_text in enumerate(first_texts)
        ]
    best = None
    if values:
        pick = min if lower_is_better(key) else max
        index = pick(values, key=lambda i: values[i])
        best = next(c for _, cells in rows for c in cells if c.index == index)
    return Heatmap(
        statistic=key,
        label=statistic_label(key),
        row_path=row_path,
        column_path=column_path,
        columns=columns,
        rows=rows,
        best=best,
    )
