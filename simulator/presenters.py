"""What the simulator's pages show, built from saved runs: statistic rows beside buy and hold, the trades
table, chart data, list and comparison cells, and a sweep's heatmap. Reads go through :mod:`simulator.selectors`;
text with units through :mod:`simulator.display`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from instruments.candles import TIMEFRAMES
from simulator.builder.conversions import path_is_percent
from simulator.charts import PANE_TITLES, lines_coloured
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
from simulator.models import PortfolioSimulation, Simulation, Sweep, SweepPoint
from trading.engine.criteria import TOP_LEVEL_DEFAULTS, CriteriaError, criteria_parse
from trading.engine.indicators import INDICATOR_PARAMS
from trading.engine.report import monthly_returns, trade_groups
from trading.engine.statistics import backtest_statistics
from trading.engine.types import SECONDS_PER_DAY
from trading.engine.vocabulary import STATISTIC_BY_KEY, STATISTICS_KEYS, best_indices, exit_reason_text
from trading.engine.words import criteria_words
from trading.selectors import to_seconds


def trade_seconds(iso: str | None) -> int | None:
    """A trade's time as kept (ISO 8601 UTC, ``...Z``) in seconds since epoch; None for None or ``""``."""
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


def buy_and_hold_statistics(simulation: Simulation | PortfolioSimulation) -> dict[str, Any]:
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


def statistics_rows(simulation: Simulation | PortfolioSimulation, currency: str) -> list[StatisticRow]:
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
    ("Duration", "num"),
    ("Quantity", "num"),
    ("Fees", "num"),
    ("P&L", "num"),
    ("P&L %", "num"),
    ("MAE", "num"),
    ("MFE", "num"),
    ("Cumulative P&L", "num"),
    ("Exit reason", "text"),
)


#: Trades on one page of a run's trades table (``?trades_page=``); the charts mark those of the page shown. A year
#: of one-minute candles can make 10,000 trades: all of them would make a page of ~10 MB that takes seconds to
#: draw. The trades CSV holds every trade.
TRADES_PER_PAGE = 250


def _ratio_cell(ratio: Any, tone: str = "") -> Cell:
    """A fraction shown in percent (two decimals), sorted by its value; a dash for None (absent or undefined)."""
    if ratio is None or not math.isfinite(ratio):
        return Cell(DASH, "", f"num {tone}".strip())
    return Cell(f"{ratio * 100:,.2f} %", repr(ratio), f"num {tone}".strip())


def _tone(amount: Any) -> str:
    """``gain``/``loss`` for a money amount's sign (a decimal string), ``""`` for zero or None."""
    if amount in (None, ""):
        return ""
    value = Decimal(str(amount))
    return "gain" if value > 0 else "loss" if value < 0 else ""


def duration_text(days: Any) -> str:
    """A trade's duration: ``3.0 d`` from a day up, hours and minutes below (``5 h 30 min``), ``same candle`` for 0
    (a stop or take-profit hit in the entry candle: its exit is timed at that candle's open); a dash for None."""
    if days is None:
        return DASH
    if days == 0:
        return "same candle"
    if days >= 1:
        return f"{days:,.1f} d"
    minutes = round(days * 1_440)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def trade_rows(simulation: Simulation, trades: Sequence[dict[str, Any]] | None = None) -> list[list[Cell]]:
    """The trades table: one row a trade, the cells of :data:`TRADE_COLUMNS` (fees are entry plus exit).
    ``trades``: those to show (a page of ``simulation.trades``); every trade of the run by default. Duration, MAE,
    MFE and cumulative P&L are those stored with the run (``simulator.services.simulations.trades_as_json``): a
    dash in a run saved before they were kept."""
    rows = []
    for trade in simulation.trades if trades is None else trades:
        pnl = trade.get("pnl")
        ratio = trade.get("pnl_ratio")
        tone = _tone(pnl)
        duration = trade.get("duration_days")
        running = trade.get("cumulative_pnl")
        fees = decimal_or_zero(trade.get("entry_fee")) + decimal_or_zero(trade.get("exit_fee"))
        rows.append(
            [
                Cell(trade.get("symbol") or trade.get("instrument", ""), trade.get("symbol") or ""),
                Cell(_time_text(trade.get("entry_at")), trade.get("entry_at") or ""),
                Cell(price_text(trade.get("entry_price")), str(trade.get("entry_price") or ""), "num"),
                Cell(_time_text(trade.get("exit_at")), trade.get("exit_at") or ""),
                Cell(price_text(trade.get("exit_price")), str(trade.get("exit_price") or ""), "num"),
                Cell(duration_text(duration), "" if duration is None else repr(duration), "num"),
                Cell(quantity_text(trade.get("quantity")), str(trade.get("quantity") or ""), "num"),
                Cell(price_text(fees), str(fees), "num"),
                Cell(price_text(pnl), str(pnl or ""), f"num {tone}"),
                Cell(
                    DASH if ratio is None else f"{ratio * 100:,.2f} %",
                    "" if ratio is None else repr(ratio),
                    f"num {tone}",
                ),
                _ratio_cell(trade.get("mae_ratio"), "loss" if trade.get("mae_ratio") else ""),
                _ratio_cell(trade.get("mfe_ratio"), "gain" if trade.get("mfe_ratio") else ""),
                Cell(price_text(running), str(running or ""), f"num {_tone(running)}"),
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


@dataclass(frozen=True)
class BreakdownRow:
    """One line of a breakdown table (by exit reason or by instrument): the group's closed trades."""

    key: str
    label: str
    cells: list[Cell]


#: The breakdown tables' columns after the group's name: (heading, sort kind).
BREAKDOWN_COLUMNS = (
    ("Trades", "num"),
    ("Win rate", "num"),
    ("Total P&L", "num"),
    ("Average P&L %", "num"),
    ("Time in market", "num"),
)


def _run_span_seconds(simulation: Simulation) -> float | None:
    """The run's length: its candles (those of the stored curve, or its full length when downsampled) times their
    length; None without a curve."""
    curve = simulation.equity_curve or {}
    candles = curve.get("candles") or len(curve.get("time") or [])
    if not candles:
        return None
    return float(candles) * TIMEFRAMES[simulation.timeframe].total_seconds()


def trade_breakdowns(simulation: Simulation) -> dict[str, list[BreakdownRow]]:
    """The closed trades grouped by exit reason and by instrument (:func:`trading.engine.report.trade_groups`):
    ``{"exit_reason": [...], "instrument": [...]}``, each group with its count, win rate, total P&L (quote
    currency), mean P&L % and time in market (its trades' durations over the run's span). Groups in order of
    first appearance in the trades table; ``[]`` without a closed trade."""
    trades = [t for t in simulation.trades or [] if t.get("pnl") not in (None, "") and t.get("exit_at")]
    if not trades:
        return {"exit_reason": [], "instrument": []}
    pnl = np.asarray([float(t["pnl"]) for t in trades], dtype=np.float64)
    pnl_ratio = np.asarray(
        [math.nan if t.get("pnl_ratio") is None else float(t["pnl_ratio"]) for t in trades], dtype=np.float64
    )
    duration = np.asarray(
        [(trade_seconds(t["exit_at"]) or 0) - (trade_seconds(t.get("entry_at")) or 0) for t in trades],
        dtype=np.float64,
    )
    span = _run_span_seconds(simulation)
    currency = quote_currency(simulation.instruments.all())

    def rows(keys: list[str], label: Any) -> list[BreakdownRow]:
        lines = []
        for group in trade_groups(keys, pnl, pnl_ratio, duration, span):
            total = f"{group.total_pnl:,.2f} {currency}".rstrip()
            lines.append(
                BreakdownRow(
                    key=group.key,
                    label=label(group.key),
                    cells=[
                        Cell(f"{group.n_trades:,}", str(group.n_trades), "num"),
                        _ratio_cell(group.win_rate_ratio),
                        Cell(total, repr(group.total_pnl), f"num {_sign_class(group.total_pnl)}".strip()),
                        _ratio_cell(group.avg_pnl_ratio, _sign_class(group.avg_pnl_ratio)),
                        _ratio_cell(group.time_in_market_ratio),
                    ],
                )
            )
        return lines

    return {
        "exit_reason": rows([t.get("exit_reason") or "" for t in trades], exit_reason_text),
        "instrument": rows([t.get("symbol") or t.get("instrument") or "" for t in trades], str),
    }


def _sign_class(value: float) -> str:
    return "gain" if value > 0 else "loss" if value < 0 else ""


MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class MonthlyTable:
    """The run page's monthly returns: one row a year, ``cells`` the 12 months then the year's total.

    Attributes:
        rows: ``(year, [Cell] * 13)``; a month outside the run is an empty cell.
        from_stored_curve: True when computed from the curve kept with the run (a run saved before monthly returns
            were kept; a downsampled curve makes them approximate).
    """

    rows: list[tuple[int, list[Cell]]]
    from_stored_curve: bool


def monthly_table(simulation: Simulation) -> MonthlyTable:
    """The equity curve's return per calendar month (UTC) and per year (:func:`trading.engine.report.
    monthly_returns`), as stored with the run, or computed from the stored curve for an older run."""
    stored = (simulation.equity_curve or {}).get("monthly_returns")
    from_curve = stored is None
    if stored is None:
        curve = simulation.equity_curve or {}
        stored = [
            {"year": row.year, "months": list(row.months), "year_ratio": row.year_ratio}
            for row in monthly_returns(
                np.asarray(curve.get("time") or [], dtype=np.int64),
                np.asarray(curve.get("equity") or [], dtype=np.float64),
                float(simulation.starting_cash),
            )
        ]

    def cell(ratio: float | None) -> Cell:
        if ratio is None:
            return Cell("", "", "num")
        return Cell(f"{ratio * 100:,.1f} %", repr(ratio), f"num {_sign_class(ratio)}".strip())

    rows = [
        (int(row["year"]), [cell(value) for value in row["months"]] + [cell(row.get("year_ratio"))])
        for row in stored
    ]
    return MonthlyTable(rows=rows, from_stored_curve=from_curve)


def chart_data(
    *,
    simulation: Simulation,
    candles: dict[str, list[dict[str, Any]]],
    bar_seconds: int = SECONDS_PER_DAY,
    trades: Sequence[dict[str, Any]] | None = None,
    indicators: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the result page's charts draw, for ``json_script``; ``bar_seconds`` is the length of a chart bar
    (:func:`simulator.selectors.chart_bar_seconds`), markers go on the bar of their fill. ``trades``: the trades
    to mark (those of the trades table's page shown); every trade of the run by default. ``indicators``: the
    criteria's indicator lines (:func:`simulator.charts.chart_indicator_lines`), none by default.

    Returns:
        ``{"currency", "bar_seconds", "candles": {symbol: [{time, open, high, low, close, volume}]}, "markers":
        {symbol: [{time, position, color, shape}]}, "notes": {symbol: {time: [line, ...]}}, "indicators": {symbol:
        {"time": [...], "lines": [{key, label, pane, color, values}]}}, "panes": {pane: title}, "equity":
        {"time": [...], "equity": [...], "buy_and_hold": [...], "drawdown_pct": [...]}}``: times in seconds (each
        bar's open; markers on the bar of the fill), prices in quote currency (equity and buy and hold to the
        cent), volume in base units (None where unknown), ``drawdown_pct`` in percent below the peak as negative
        numbers (to 0.01).
    """
    markers: dict[str, list[dict[str, Any]]] = {symbol: [] for symbol in candles}
    notes: dict[str, dict[int, list[str]]] = {symbol: {} for symbol in candles}
    last_time = {symbol: rows[-1]["time"] if rows else None for symbol, rows in candles.items()}
    for trade in simulation.trades if trades is None else trades:
        symbol = trade.get("symbol") or ""
        if symbol not in markers:
            continue
        entry = trade_seconds(trade.get("entry_at"))
        if entry is not None:
            day = _bar(entry, bar_seconds)
            markers[symbol].append(
                {"time": day, "position": "belowBar", "color": "#2f6f9f", "shape": "arrowUp"}
            )
            notes[symbol].setdefault(day, []).append(
                f"Entry at {price_text(trade.get('entry_price'))}, quantity {quantity_text(trade.get('quantity'))}"
            )
        exit_ = trade_seconds(trade.get("exit_at"))
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
    lines = {
        symbol: {"time": found.get("time", []), "lines": lines_coloured(found.get("lines", []))}
        for symbol, found in (indicators or {}).items()
        if symbol in candles
    }
    return {
        "currency": quote_currency(simulation.instruments.all()),
        "bar_seconds": bar_seconds,
        "candles": candles,
        "indicators": lines,
        "panes": PANE_TITLES,
        "markers": markers,
        "notes": {
            symbol: {str(t): lines for t, lines in by_time.items()} for symbol, by_time in notes.items()
        },
        "equity": equity_chart_data(simulation.equity_curve or {}),
    }


def equity_chart_data(curve: dict[str, Any]) -> dict[str, Any]:
    """What the equity and drawdown charts draw of a stored curve document (a simulation's ``equity_curve``, a
    walk-forward's stitched ``result["curve"]``): ``{"time", "equity", "buy_and_hold", "drawdown_pct"}``, money
    to the cent, ``drawdown_pct`` in percent below the peak as negative numbers (to 0.01)."""
    drawdown = np.asarray(curve.get("drawdown_ratio") or [], dtype=np.float64)

    def cents(values: Sequence[float]) -> list[float]:
        # The chart needs no more than cents, and short numbers make the page's JSON a third quicker to write.
        rounded: list[float] = np.round(np.asarray(values, dtype=np.float64), 2).tolist()
        return rounded

    return {
        "time": curve.get("time", []),
        "equity": cents(curve.get("equity") or []),
        "buy_and_hold": cents(curve.get("buy_and_hold") or []),
        "drawdown_pct": np.round(drawdown * -100, 2).tolist(),
    }


@dataclass(frozen=True)
class CandleChart:
    """One candle chart of the run page, for its heading and legend.

    Attributes:
        symbol: the instrument's.
        lines: its indicator lines (``label``, ``pane``, ``color``), as drawn.
        volume: its candles have volumes (a histogram is drawn).
        panes: the titles of the panes below the candles, in the order drawn.
    """

    symbol: str
    lines: list[dict[str, Any]]
    volume: bool
    panes: list[str]


def candle_charts(chart: dict[str, Any]) -> list[CandleChart]:
    """The candle charts of :func:`chart_data` ``chart``, one per instrument, for the page's legends."""
    found = []
    for symbol, rows in chart["candles"].items():
        lines = [
            {"label": line["label"], "pane": line["pane"], "color": line["color"]}
            for line in chart["indicators"].get(symbol, {}).get("lines", [])
        ]
        panes = list(dict.fromkeys(line["pane"] for line in lines if line["pane"] not in ("price", "volume")))
        found.append(
            CandleChart(
                symbol=symbol,
                lines=lines,
                volume=any(row.get("volume") is not None for row in rows),
                panes=[PANE_TITLES.get(pane, pane) for pane in panes],
            )
        )
    return found


def criteria_words_of(document: dict[str, Any], *, currency: str = "") -> str:
    """The criteria ``document`` in words (:func:`trading.engine.words.criteria_words`), or why they cannot be
    read (a run saved under older rules)."""
    try:
        return criteria_words(criteria_parse(document), currency=currency).text
    except CriteriaError as exc:
        return f"The criteria could not be read: {exc}"


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


@dataclass(frozen=True)
class ComparedCell:
    """One run's value of a statistic on the comparison page; ``best``: the best of the runs (marked)."""

    text: str
    css: str
    best: bool = False


@dataclass(frozen=True)
class ComparedRow:
    """A statistic on the comparison page: each run's value, then buy and hold's over each market compared."""

    key: str
    label: str
    cells: list[ComparedCell]
    holds: list[str]


@dataclass(frozen=True)
class Market:
    """What a run trades over (instruments, dates, timeframe), which buy and hold depends on alone."""

    label: str
    simulation: Simulation


def _market_key(simulation: Simulation) -> tuple[Any, ...]:
    symbols = tuple(i.symbol for i in simulation.instruments.all())
    return symbols, simulation.start, simulation.end, simulation.timeframe, simulation.starting_cash


def compare_markets(simulations: Sequence[Simulation]) -> list[Market]:
    """The distinct markets of ``simulations`` (instruments, dates, timeframe and starting cash), in order: buy
    and hold is shown once for each."""
    found: dict[tuple[Any, ...], Market] = {}
    for simulation in simulations:
        key = _market_key(simulation)
        if key not in found:
            symbols, start, end, timeframe, _ = key
            found[key] = Market(
                f"{', '.join(symbols)} {start:%Y-%m-%d} to {end:%Y-%m-%d} ({timeframe})", simulation
            )
    return list(found.values())


def compare_rows(simulations: Sequence[Simulation], markets: Sequence[Market] = ()) -> list[ComparedRow]:
    """Every statistic of ``simulations`` side by side, the best value of each marked
    (:func:`trading.engine.vocabulary.best_indices`: by the statistic's direction, for ranked statistics only),
    and buy and hold's value over each of ``markets`` (:func:`compare_markets`) where it has one."""
    held = [buy_and_hold_statistics(market.simulation) for market in markets]
    currencies = [quote_currency(s.instruments.all()) for s in simulations]
    hold_currencies = [quote_currency(m.simulation.instruments.all()) for m in markets]
    rows = []
    for key in STATISTICS_KEYS:
        values = [(simulation.statistics or {}).get(key) for simulation in simulations]
        best = best_indices(key, values)
        cells = [
            ComparedCell(
                statistic_text(key, value, currency), f"num {statistic_class(key, value)}", i in best
            )
            for i, (value, currency) in enumerate(zip(values, currencies, strict=True))
        ]
        holds = [
            statistic_text(key, statistics.get(key), currency)
            if STATISTIC_BY_KEY[key].buy_and_hold and key in statistics
            else ""
            for statistics, currency in zip(held, hold_currencies, strict=True)
        ]
        rows.append(ComparedRow(key, statistic_label(key), cells, holds))
    return rows


def _criteria_leaves(value: Any, path: str, found: dict[str, Any]) -> None:
    if isinstance(value, dict):
        if (
            "indicator" in value
        ):  # an operand: its parameters' defaults written out, so omitting one is no change
            spec = INDICATOR_PARAMS.get(value["indicator"], {})
            value = {
                "shift": 0,
                **{name: default for name, (_, default) in spec.items() if default is not None},
                **value,
            }
        for key in value:
            _criteria_leaves(value[key], f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _criteria_leaves(item, f"{path}[{i}]", found)
    else:
        found[path] = value


def criteria_leaves(document: dict[str, Any]) -> dict[str, Any]:
    """A criteria document as ``{path: value}`` of its leaves (paths as a sweep's axes write them:
    ``entry.all[0].left.period``), with the top level's and each operand's defaults filled in."""
    found: dict[str, Any] = {}
    conditions = {key: document[key] for key in ("entry", "exit") if key in document}  # listed first
    _criteria_leaves({**conditions, **TOP_LEVEL_DEFAULTS, **document}, "", found)
    return found


def compare_differences(simulations: Sequence[Simulation]) -> list[tuple[str, list[str]]]:
    """What differs between ``simulations``: ``[(what, [value text per run])]``: instruments, dates, timeframe
    and starting cash where they differ, then every criteria path whose value differs (``—`` where a run's
    criteria do not have it). Empty for fewer than two runs or identical runs."""
    if len(simulations) < 2:
        return []
    found: list[tuple[str, list[str]]] = []
    inputs = {
        "instruments": [", ".join(i.symbol for i in s.instruments.all()) for s in simulations],
        "dates": [f"{s.start:%Y-%m-%d} to {s.end:%Y-%m-%d}" for s in simulations],
        "timeframe": [str(s.timeframe) for s in simulations],
        "starting cash": [number_text(float(s.starting_cash)) for s in simulations],
    }
    found.extend((what, texts) for what, texts in inputs.items() if len(set(texts)) > 1)
    leaves = [criteria_leaves(s.criteria or {}) for s in simulations]
    paths = list(dict.fromkeys(path for document in leaves for path in document))
    for path in paths:
        values = [document.get(path, _MISSING) for document in leaves]
        if any(v != values[0] for v in values[1:]):
            found.append(
                (path, [DASH if v is _MISSING else json.dumps(v, ensure_ascii=False) for v in values])
            )
    return found


_MISSING = object()


def compare_chart_data(
    simulations: Sequence[Simulation], markets: Sequence[Market] = ()
) -> list[dict[str, Any]]:
    """Each run's equity as its return on the starting cash, in percent, for one chart, then buy and hold's over
    each of ``markets``: ``[{"id", "name", "hold", "time": [...], "return_pct": [...]}]`` (``hold`` True for buy
    and hold, drawn dashed)."""
    lines = []
    for simulation in simulations:
        curve = simulation.equity_curve or {}
        equity = np.asarray(curve.get("equity") or [], dtype=np.float64)
        cash = float(simulation.starting_cash)
        lines.append(
            {
                "id": simulation.pk,
                "name": str(simulation),
                "hold": False,
                "time": curve.get("time", []),
                "return_pct": np.round((equity / cash - 1) * 100, 4).tolist() if cash > 0 else [],
            }
        )
    for i, market in enumerate(markets):
        curve = market.simulation.equity_curve or {}
        held = np.asarray(curve.get("buy_and_hold") or [], dtype=np.float64)
        cash = float(market.simulation.starting_cash)
        lines.append(
            {
                "id": f"hold-{i + 1}",
                "name": f"Buy and hold {market.label}",
                "hold": True,
                "time": curve.get("time", []),
                "return_pct": np.round((held / cash - 1) * 100, 4).tolist() if cash > 0 else [],
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
    skipped: str = ""
    no_trades: bool = False


def heatmap_cells_html(cells: Sequence[HeatCell], point_base: str) -> SafeString:
    """The ``<td>`` cells of one heatmap row (each a link to its point's run at ``point_base`` + index, a skipped
    one without), escaped: formatted here rather than by a template loop, which takes a second for 10,000 cells."""
    return format_html_join(
        "",
        "{}",
        (
            (
                format_html(
                    '<td class="num skipped" title="{}" data-index="{}">skipped</td>', cell.title, cell.index
                )
                if cell.skipped
                else format_html(
                    '<td class="num{}" style="{}" title="{}" data-index="{}"><a href="{}{}/">{}</a></td>',
                    " no-trades" if cell.no_trades else "",
                    cell.style,
                    cell.title,
                    cell.index,
                    point_base,
                    cell.index,
                    cell.text,
                ),
            )
            for cell in cells
        ),
    )


def point_has_no_trades(point: SweepPoint) -> bool:
    """True when a grid point ran and made no trade (``n_trades`` is 0)."""
    return not point.error and not point.skipped and point.statistics.get("n_trades") == 0


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
    without the statistic (an error, or undefined such as a Sharpe ratio without returns) is grey too; a point that
    broke a constraint (``skipped``) was not run: no colour, and it says so.
    """
    axes = sweep.axes
    key = statistic or sweep.statistic
    if points is None:
        points = list(
            sweep.points.only("index", "values", "statistics", "error", "skipped", "sweep_id").order_by(
                "index"
            )
        )
    by_index = {p.index: p for p in points}
    values = {
        index: float(p.statistics[key])
        for index, p in by_index.items()
        if not p.error
        and not p.skipped
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
        if point.skipped:  # broke a constraint: not run, so neither a loss nor "no trades"
            return HeatCell(index, "skipped", "", f"{shown}: skipped: {point.skipped}", "", point.skipped)
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
