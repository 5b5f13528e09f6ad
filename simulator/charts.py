"""The indicators of a run's criteria as lines of its candle charts, computed by the engine's own code.

Each distinct indicator operand of the entry and exit conditions (:meth:`trading.engine.criteria.Criteria.operands`)
is evaluated by :func:`trading.engine.conditions.indicator_series` over the candles the run read (every stored
candle up to its end: the warm-up included, as the backtest does), so a line shows exactly the values the
conditions compared. The lines are sampled at the chart's bars (:func:`simulator.selectors.chart_bar_groups`): a
bar's value is the indicator's at the last candle inside it (its close), so a chart of minutes rolled up into
4-hour bars carries no more points than its bars (at most :data:`simulator.selectors.MAX_CHART_CANDLES`).

Where a line goes (:func:`trading.engine.indicators.indicator_scale`): ``price`` lines over the candles (SMA,
EMA, Bollinger bands, highest, lowest...), ``volume`` lines over the volume histogram, every other indicator in a
pane of its own kind below the candles (RSI, ROC, ATR, MACD).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from simulator.selectors import chart_bar_groups
from trading.engine.conditions import indicator_series
from trading.engine.criteria import CriteriaError, Operand, criteria_parse
from trading.engine.indicators import PRICE_FIELDS, indicator_scale
from trading.engine.types import SECONDS_PER_DAY, CandleArrays
from trading.engine.words import operand_text
from trading.selectors import to_seconds

#: The most indicator lines a candle chart draws per instrument (criteria may hold up to 200 comparisons).
MAX_CHART_LINES = 12

#: Significant digits kept of each value (the chart shows fewer; short numbers keep the page small).
LINE_DIGITS = 8


def operand_pane(operand: Operand) -> str:
    """Where the line of ``operand`` is drawn: ``"price"`` (over the candles), ``"volume"`` (over the volume
    histogram), or the name of a pane below them for its kind (``"rsi"``, ``"roc"``, ``"atr"``, ``"macd"``)."""
    scale = indicator_scale(operand.indicator, dict(operand.params))
    if scale in ("price", "volume"):
        return scale
    return operand.indicator.split("_")[0]


def chart_operands(criteria: dict[str, Any]) -> list[Operand]:
    """The distinct operands of ``criteria`` that a chart draws as lines, in the order they are first written,
    at most :data:`MAX_CHART_LINES`. A candle's own field is left out unless shifted (the candles show it), and so
    is an unreadable document (a run saved under older rules): no line rather than an error page. An operand of
    another instrument (``"instrument": "bitcoin"``) is left out too: it is not on the chart's instrument's scale."""
    try:
        parsed = criteria_parse(criteria)
    except CriteriaError:
        return []
    found: list[Operand] = []
    for operand in parsed.operands():
        if (operand.indicator in PRICE_FIELDS and not operand.shift and operand.timeframe == "1d") or (
            operand.instrument is not None
        ):
            continue
        if operand not in found:
            found.append(operand)
    return found[:MAX_CHART_LINES]


def _rounded(values: np.ndarray) -> list[float | None]:
    return [float(f"{v:.{LINE_DIGITS}g}") if math.isfinite(v) else None for v in values.tolist()]


def chart_indicator_lines(
    *, criteria: dict[str, Any], candles: Sequence[CandleArrays], start: date, end: date, bar_seconds: int
) -> dict[str, dict[str, Any]]:
    """The indicator lines of each instrument's candle chart.

    Args:
        criteria: the run's criteria document.
        candles: every candle the run read of each instrument (from its first stored one, for the warm-up).
        start, end: the run's first and last UTC day: the chart shows the candles opening in between.
        bar_seconds: the length of a chart bar (:func:`simulator.selectors.chart_bar_seconds`), a multiple of the
            candles' length.

    Returns:
        symbol -> ``{"time": [bar open, seconds], "lines": [{"key", "label", "pane", "values"}]}``: ``label`` as
        in the criteria in words (``SMA(10)``), ``pane`` of :func:`operand_pane`, ``values`` one per bar (float,
        the indicator's unit; None while it warms up).
    """
    operands = chart_operands(criteria)
    since = to_seconds_of(start)
    until = to_seconds_of(end) + SECONDS_PER_DAY
    found: dict[str, dict[str, Any]] = {}
    for instrument in candles:
        first, last = np.searchsorted(instrument.open_time_seconds, [since, until])
        times, _, tails = chart_bar_groups(instrument.open_time_seconds[first:last], bar_seconds)
        cache: dict[Operand, np.ndarray] = {}
        lines = []
        for operand in operands:
            try:
                series = indicator_series(operand, instrument, cache)[first:last]
            except ValueError:  # a weekly operand over candles that are not daily (a run refuses it first)
                continue
            lines.append(
                {
                    "key": _operand_key(operand),
                    "label": operand_text(operand),
                    "pane": operand_pane(operand),
                    "values": _rounded(series[tails]),
                }
            )
        found[instrument.symbol] = {"time": times.tolist(), "lines": lines}
    return found


def to_seconds_of(day: date) -> int:
    """Seconds since epoch of ``day`` 00:00 UTC."""
    return to_seconds(datetime.combine(day, datetime.min.time(), tzinfo=UTC))


def _operand_key(operand: Operand) -> str:
    params = ",".join(f"{name}={value}" for name, value in operand.params)
    return (
        f"{operand.indicator}({params})"
        + (f"[{operand.shift}]" if operand.shift else "")
        + (f"@{operand.timeframe}" if operand.timeframe != "1d" else "")
    )


#: Colours of the lines, in order (the candles are green and red, the markers blue, green and red).
LINE_COLORS = ("#c2410c", "#6b3fa0", "#0f7c86", "#9a6700", "#475569", "#db2777", "#2563eb", "#65a30d")


def lines_coloured(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``lines`` (:func:`chart_indicator_lines`) each with a ``color`` of :data:`LINE_COLORS`, in order."""
    return [{**line, "color": LINE_COLORS[i % len(LINE_COLORS)]} for i, line in enumerate(lines)]


#: The titles of the panes below the candles, by pane name (:func:`operand_pane`).
PANE_TITLES = {"rsi": "RSI (0-100)", "roc": "ROC (fraction)", "atr": "ATR (price)", "macd": "MACD (price)"}
