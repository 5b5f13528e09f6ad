"""Reads of the simulator's pages: instruments with candles, chart data, statistics and trades for people,
lists, comparisons and sweep heatmaps. Nothing here writes.

Amounts in saved runs are decimal strings and ratios fractions (:class:`simulator.models.Simulation`); the
display helpers turn them into text with their unit (percent for people), once, here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Max, Min, Prefetch, QuerySet

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from simulator.forms import number_text, path_is_percent, percent_text
from simulator.models import Simulation, SimulationQuerySet, Sweep
from trading.engine.statistics import backtest_statistics
from trading.engine.types import SECONDS_PER_DAY
from trading.engine.vocabulary import STATISTIC_BY_KEY, STATISTICS_KEYS, exit_reason_text
from trading.selectors import to_seconds

DASH = "\u2014"


# Text with units -------------------------------------------------------------------------------------------


def statistic_text(key: str, value: Any, currency: str = "") -> str:
    """A statistic as people read it: fractions in percent (0.1234 -> ``12.34 %``), Sharpe, Sortino, Calmar and
    the profit factor as plain numbers, ``_days`` in days, money with its currency; None (undefined) as a dash.

    Args:
        key: one of :data:`trading.engine.statistics.STATISTICS_KEYS`.
        value: the engine's value (a fraction for ``_ratio`` keys).
        currency: the quote currency's code for money (``USD``).
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    statistic = STATISTIC_BY_KEY.get(key)
    unit = "ratio" if statistic is None else statistic.unit
    if unit == "count":
        return f"{int(value):,}"
    number = float(value)
    if unit == "number":
        return f"{number:,.2f}"
    if unit == "days":
        return f"{number:,.1f} days"
    if unit == "money":
        return f"{number:,.2f} {currency}".rstrip()
    return f"{number * 100:,.2f} %"


def statistic_label(key: str) -> str:
    """A statistic's name for people (:data:`trading.engine.vocabulary.STATISTICS`); the key when unknown."""
    statistic = STATISTIC_BY_KEY.get(key)
    return key if statistic is None else statistic.label


def lower_is_better(key: str) -> bool:
    """True for a statistic where less is better (a heatmap's colours turn round for it)."""
    statistic = STATISTIC_BY_KEY.get(key)
    return statistic is not None and not statistic.higher_is_better


def statistic_class(key: str, value: Any) -> str:
    """``gain``/``loss`` for a signed statistic's sign, else ``""``."""
    statistic = STATISTIC_BY_KEY.get(key)
    if statistic is None or not statistic.signed or value is None:
        return ""
    return "gain" if value > 0 else "loss" if value < 0 else ""


def price_text(value: Any) -> str:
    """A price or amount: two decimals with separators from 1 up, six significant digits below (0.000123456)."""
    if value is None or value == "":
        return DASH
    number = float(value)
    if abs(number) >= 1 or number == 0:
        return f"{number:,.2f}"
    return f"{number:.6g}"


def quantity_text(value: Any) -> str:
    """A quantity in base units, to eight decimals without trailing zeros."""
    if value is None or value == "":
        return DASH
    try:
        number = Decimal(str(value)).quantize(Decimal("1e-8"))
    except InvalidOperation:
        return str(value)
    text = format(number.normalize(), "f")
    return text if "." in text or abs(number) < 1000 else f"{number:,.0f}"


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def quote_currency(instruments: Iterable[Instrument]) -> str:
    """The quote currency code of a run's instruments (``USD``), several joined with ``/``."""
    return "/".join(sorted({i.quote_currency.upper() for i in instruments}))


# Instruments and candles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstrumentSpan:
    """An instrument with daily candles, and the UTC days of its first and last one."""

    instrument: Instrument
    first: date
    last: date


def instrument_spans() -> list[InstrumentSpan]:
    """Every instrument that has daily candles, with its first and last candle's day, by symbol (one query)."""
    rows = (
        Instrument.objects.filter(candles__timeframe=Timeframe.D1)
        .annotate(first_open=Min("candles__open_time"), last_open=Max("candles__open_time"))
        .order_by("symbol", "coingecko_id")
    )
    return [InstrumentSpan(row, row.first_open.date(), row.last_open.date()) for row in rows]


def default_selection(
    spans: Sequence[InstrumentSpan], years: int = 5
) -> tuple[list[int], date | None, date | None]:
    """What a fresh form proposes: the instrument with the newest candle, over its last ``years`` of data.

    Returns:
        ``(instrument ids, start, end)``; no ids and None dates when nothing is stored.
    """
    if not spans:
        return [], None, None
    newest = max(spans, key=lambda s: s.last)  # the first in symbol order on a tie
    end = newest.last
    try:
        start = end.replace(year=end.year - years)
    except ValueError:  # 29 February
        start = end.replace(year=end.year - years, day=28)
    return [newest.instrument.pk], max(start + timedelta(days=1), newest.first), end


_CANDLES_SQL = {
    "postgresql": (
        "SELECT CAST(EXTRACT(EPOCH FROM open_time) AS BIGINT), CAST(open AS DOUBLE PRECISION), "
        "CAST(high AS DOUBLE PRECISION), CAST(low AS DOUBLE PRECISION), CAST(close AS DOUBLE PRECISION) "
        "FROM {table} WHERE instrument_id = %s AND timeframe = %s AND open_time >= %s AND open_time < %s "
        "ORDER BY open_time"
    ),
    "sqlite": (
        "SELECT CAST(strftime('%%s', open_time) AS INTEGER), CAST(open AS REAL), CAST(high AS REAL), "
        "CAST(low AS REAL), CAST(close AS REAL) FROM {table} "
        "WHERE instrument_id = %s AND timeframe = %s AND open_time >= %s AND open_time < %s ORDER BY open_time"
    ),
}


def simulation_candles(
    *, instruments: Sequence[Instrument], start: date, end: date
) -> dict[str, list[dict[str, float]]]:
    """The daily candles of each instrument from ``start`` to ``end`` (inclusive UTC days), for the charts.

    One raw query per instrument, floats straight from the database (no ``Decimal`` or model per candle), as
    :func:`trading.selectors.candles_before` reads them.

    Returns:
        symbol -> ``[{"time": seconds of the open, "open", "high", "low", "close"}, ...]`` oldest first (prices
        float, quote currency).
    """
    sql = _CANDLES_SQL[connection.vendor].format(table=InstrumentOHLC._meta.db_table)
    since = connection.ops.adapt_datetimefield_value(datetime.combine(start, datetime.min.time(), tzinfo=UTC))
    until = connection.ops.adapt_datetimefield_value(
        datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    )
    found: dict[str, list[dict[str, float]]] = {}
    with connection.cursor() as cursor:
        for instrument in instruments:
            cursor.execute(sql, [instrument.pk, Timeframe.D1.value, since, until])
            found[instrument.symbol] = [
                {"time": int(t), "open": o, "high": h, "low": lo, "close": c}
                for t, o, h, lo, c in cursor.fetchall()
            ]
    return found


# One run ---------------------------------------------------------------------------------------------------


def simulations_for(user: Any) -> SimulationQuerySet:
    """The simulations ``user`` may see (their own; every one for a superuser)."""
    return Simulation.objects.for_user(user)


def simulation_for_page(*, user: Any, pk: int) -> Simulation:
    """One simulation for its page, with its instruments and source strategy (two queries).

    Raises:
        Simulation.DoesNotExist: no such simulation, or not the user's.
    """
    return (
        simulations_for(user)
        .select_related("source_strategy")
        .prefetch_related(Prefetch("instruments", queryset=Instrument.objects.order_by("symbol", "pk")))
        .get(pk=pk)
    )


def _seconds(iso: str | None) -> int | None:
    if not iso:
        return None
    return to_seconds(datetime.fromisoformat(iso.replace("Z", "+00:00")))


def _day(seconds: int) -> int:
    return seconds - seconds % SECONDS_PER_DAY


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
    trade, always exposed), or ``{}`` when the run has no curve."""
    curve = simulation.equity_curve or {}
    values = np.asarray(curve.get("buy_and_hold") or [], dtype=np.float64)
    if values.size == 0 or not np.all(values > 0):
        return {}
    return backtest_statistics(
        equity_curve=values,
        buy_and_hold_curve=values,
        exposure=np.ones(values.shape, dtype=bool),
        trades=[],
        candle_seconds=SECONDS_PER_DAY,
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


def trade_rows(simulation: Simulation) -> list[list[Cell]]:
    """The trades table: one row a trade, the cells of :data:`TRADE_COLUMNS` (fees are entry plus exit)."""
    rows = []
    for trade in simulation.trades:
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
        fees = _decimal(trade.get("entry_fee")) + _decimal(trade.get("exit_fee"))
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


def chart_data(*, simulation: Simulation, candles: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """What the result page's charts draw, for ``json_script``.

    Returns:
        ``{"currency", "candles": {symbol: [...]}, "markers": {symbol: [{time, position, color, shape, text}]},
        "notes": {symbol: {time: [line, ...]}}, "equity": {"time": [...], "equity": [...], "buy_and_hold":
        [...], "drawdown_pct": [...]}}``: times in seconds (each candle's open; markers on the day of the fill),
        prices in quote currency (equity and buy and hold to the cent), ``drawdown_pct`` in percent below the
        peak as negative numbers (to 0.01).
    """
    markers: dict[str, list[dict[str, Any]]] = {symbol: [] for symbol in candles}
    notes: dict[str, dict[int, list[str]]] = {symbol: {} for symbol in candles}
    last_time = {symbol: rows[-1]["time"] if rows else None for symbol, rows in candles.items()}
    for trade in simulation.trades:
        symbol = trade.get("symbol") or ""
        if symbol not in markers:
            continue
        entry = _seconds(trade.get("entry_at"))
        if entry is not None:
            day = _day(entry)
            markers[symbol].append(
                {"time": day, "position": "belowBar", "color": "#2f6f9f", "shape": "arrowUp"}
            )
            notes[symbol].setdefault(day, []).append(
                f"Entry at {price_text(trade.get('entry_price'))}, quantity {quantity_text(trade.get('quantity'))}"
            )
        exit_ = _seconds(trade.get("exit_at"))
        if exit_ is not None:
            day = _day(exit_)
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
        return np.round(np.asarray(values, dtype=np.float64), 2).tolist()

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


# Lists and comparisons -------------------------------------------------------------------------------------


#: The columns of the list that come from the statistics.
LIST_STATISTICS = ("total_return_ratio", "sharpe_ratio", "max_drawdown_ratio", "n_trades")


def simulations_listed(user: Any) -> QuerySet[Simulation]:
    """The user's runs for the list page, newest first, without their trades and curves; instruments are
    prefetched (two queries a page)."""
    return (
        simulations_for(user)
        .listed()
        .defer("criteria", "trades", "equity_curve")
        .prefetch_related(Prefetch("instruments", queryset=Instrument.objects.order_by("symbol", "pk")))
    )


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


#: At most this many runs side by side.
MAX_COMPARED = 12


def simulations_compared(*, user: Any, ids: Sequence[int]) -> list[Simulation]:
    """The user's runs among ``ids``, in the order asked for (at most :data:`MAX_COMPARED`)."""
    wanted = list(dict.fromkeys(ids))[:MAX_COMPARED]
    found = {
        s.pk: s
        for s in simulations_for(user)
        .filter(pk__in=wanted)
        .prefetch_related(Prefetch("instruments", queryset=Instrument.objects.order_by("symbol", "pk")))
    }
    return [found[pk] for pk in wanted if pk in found]


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


# Sweeps ----------------------------------------------------------------------------------------------------


def sweeps_for(user: Any) -> QuerySet[Sweep]:
    """The sweeps ``user`` may see (their own; every one for a superuser)."""
    if getattr(user, "is_superuser", False):
        return Sweep.objects.all()
    return Sweep.objects.filter(created_by=user)


@dataclass(frozen=True)
class HeatCell:
    """One grid point of a heatmap."""

    index: int
    text: str
    style: str
    title: str
    error: str


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


def sweep_heatmap(sweep: Sweep) -> Heatmap:
    """The heatmap of a sweep's statistic (one query for the points).

    Cells are coloured from red (worst) to green (best) over the finite values; a point without the statistic
    (an error, or undefined such as a Sharpe ratio without returns) is grey.
    """
    axes = sweep.axes
    key = sweep.statistic
    points = {
        p.index: p
        for p in sweep.points.only("index", "values", "statistics", "error", "sweep_id").order_by("index")
    }
    values = {
        index: float(p.statistics[key])
        for index, p in points.items()
        if isinstance(p.statistics.get(key), int | float) and math.isfinite(p.statistics[key])
    }
    low, high = (min(values.values()), max(values.values())) if values else (0.0, 0.0)
    currency = quote_currency(sweep.instruments.all())

    def cell(index: int, shown: str) -> HeatCell:
        point = points.get(index)
        if point is None:
            return HeatCell(index, "\u2026", "", f"{shown}: not run yet", "")
        if point.error:
            return HeatCell(index, "error", "background: #eceff1", f"{shown}: {point.error}", point.error)
        value = values.get(index)
        text = statistic_text(key, point.statistics.get(key), currency)
        if value is None:
            return HeatCell(index, text, "background: #eceff1", shown, "")
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
