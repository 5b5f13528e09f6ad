"""Simulations: save a checked request, run it through the engine, store its results; CSV; save as strategy.

Every run goes through :func:`trading.engine.backtest.backtest`, the engine of the daily cycle (a strategy
replayed day by day makes the trades a simulation of the same dates reports). Candles come from the database
through :func:`instruments.selectors.candles_float`, the reader the live cycle uses.

What a run means: trades happen at the opens of the candles of its timeframe (``1d``, ``1h`` or ``1m``) from
``start`` 00:00 UTC to the open of the last candle on the ``end`` date (signals of a candle act at the next
candle's open, as live; :func:`simulator.services.requests.run_bounds`); indicators warm up on every stored
candle of that timeframe before ``start``; the equity curve is the account at each candle's close; the risk exits
inside the last candle are settled as inside every other one, and what is still open at its close is closed there
(exit reason ``end_of_data``, as freqtrade's backtests do), so every trade counts in the statistics. Durations in
the criteria keep their units (``max_holding_days`` is days whatever the timeframe), and the statistics'
day-based figures are days (:func:`trading.engine.statistics.backtest_statistics` takes the candle length). A
curve longer than :data:`MAX_CURVE_POINTS` is kept downsampled for display (:func:`equity_curve_as_json`).
``start`` and ``end`` are the days that have data (:mod:`simulator.services.coverage`): a range past the data of
every instrument is clamped to it, and the run keeps what it used in ``statistics["coverage"]``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import numpy as np
from django.db import transaction

from barter_site.csv_export import csv_text
from barter_site.heartbeat import Heartbeat
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from simulator.charts import chart_indicator_lines
from simulator.models import PortfolioSimulation, RunStatus, Simulation, Sweep
from simulator.selectors import chart_bar_seconds, chart_bars
from simulator.services.coverage import coverage_compute
from simulator.services.magnifier import ambiguous_as_json, finer_candles_load
from simulator.services.requests import (
    SimulationInputError,
    SimulationRequest,
    candle_seconds,
    day_start,
    run_bounds,
)
from simulator.services.risk_limits import limits_as_json
from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import Criteria, CriteriaError, criteria_instruments, criteria_parse
from trading.engine.report import cumulative_pnl, monthly_returns, trade_excursions
from trading.engine.statistics import drawdown_curve, equity_at_ruin
from trading.engine.sweep import SweepStatistics, sweep_statistics
from trading.engine.types import SECONDS_PER_DAY, CandleArrays
from trading.models import Strategy
from trading.selectors import candles_before, from_seconds, reference_candles, to_decimal, to_seconds

logger = logging.getLogger(__name__)


def simulation_create(
    *,
    request: SimulationRequest,
    created_by: Any = None,
    name: str = "",
    source_strategy: Strategy | None = None,
    sweep: Sweep | None = None,
) -> Simulation:
    """Save a pending simulation of ``request`` (run it with :func:`simulation_run`)."""
    with transaction.atomic():
        simulation = Simulation.objects.create(
            name=name[:200],
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
            start=request.start,
            end=request.end,
            timeframe=request.timeframe,
            starting_cash=request.starting_cash,
            criteria=request.criteria,
            source_strategy=source_strategy,
            sweep=sweep,
        )
        simulation.instruments.set(request.instruments)
    return simulation


def candles_load(
    instruments: Sequence[Instrument], end: date, timeframe: str = Timeframe.D1
) -> list[CandleArrays]:
    """Every stored candle of ``timeframe`` of each instrument that opens up to the end of day ``end``, as
    engine arrays (one raw query each through :func:`instruments.selectors.candles_float`, the reader the live
    cycle uses)."""
    until = day_start(end) + timedelta(days=1)
    return [candles_before(instrument, until, timeframe=timeframe) for instrument in instruments]


def references_load(
    criteria: Sequence[Criteria], end: date, timeframe: str = Timeframe.D1
) -> dict[str, CandleArrays]:
    """The candles of the other instruments that the operands of ``criteria`` name (``"instrument":
    "bitcoin"``), as :func:`candles_load` reads the traded ones: CoinGecko id -> every stored candle of
    ``timeframe`` up to the end of day ``end`` (:func:`trading.selectors.reference_candles`)."""
    ids = {coingecko_id for parsed in criteria for coingecko_id in criteria_instruments(parsed)}
    return reference_candles(ids, day_start(end) + timedelta(days=1), timeframe=timeframe)


def engine_run(
    criteria: dict[str, Any],
    candles: list[CandleArrays],
    start: date,
    end: date,
    starting_cash: Decimal,
    timeframe: str = Timeframe.D1,
    finer: dict[str, CandleArrays] | None = None,
    references: dict[str, CandleArrays] | None = None,
) -> BacktestResult:
    """Backtest ``criteria`` over ``candles`` (:func:`trading.engine.backtest.backtest`) with trades at the opens of
    the candles of ``timeframe`` from ``start`` 00:00 UTC to the open of the last candle on the ``end`` date
    (:func:`simulator.services.requests.run_bounds`), the last candle's risk exits settled, and what is still
    open then closed at the last close (``end_of_data``). ``finer``: finer candles by symbol
    (:func:`simulator.services.magnifier.finer_candles_load`) that decide the ambiguous candles (docs/criteria.md).
    ``references``: the candles of the other instruments the operands name (:func:`references_load`).

    Raises:
        ValueError, OverflowError, CriteriaError: as the engine does, for criteria it refuses.
    """
    first, last = run_bounds(start, end, timeframe)
    return backtest(
        criteria=criteria_parse(criteria),
        instruments=candles,
        start_time_seconds=to_seconds(first),
        end_time_seconds=to_seconds(last),
        starting_cash=float(starting_cash),
        candle_seconds=candle_seconds(timeframe),
        close_at_end=True,
        finer=finer,
        references=references,
    )


def engine_sweep(
    criteria: Sequence[Criteria],
    candles: list[CandleArrays],
    start: date,
    end: date,
    starting_cash: Decimal,
    finer: dict[str, CandleArrays] | None = None,
    *,
    keep_curves: bool = False,
    references: dict[str, CandleArrays] | None = None,
) -> SweepStatistics:
    """The statistics of many parsed criteria over the same candles and days, each equal to its
    :func:`engine_run` (daily candles: a sweep's timeframe), through the engine's sweep kernel
    (:func:`trading.engine.sweep.sweep_statistics`). ``keep_curves`` keeps each point's equity curve;
    ``references`` the candles of the other instruments the operands name (:func:`references_load`).

    Raises:
        ValueError: as the engine does for the range; a point's own error is in the result's ``errors``.
    """
    first, last = run_bounds(start, end, Timeframe.D1)
    return sweep_statistics(
        criteria=criteria,
        instruments=candles,
        start_time_seconds=to_seconds(first),
        end_time_seconds=to_seconds(last),
        starting_cash=float(starting_cash),
        candle_seconds=SECONDS_PER_DAY,
        close_at_end=True,
        finer=finer,
        keep_curves=keep_curves,
        references=references,
    )


def _money(value: float | None) -> str | None:
    """An engine amount as a decimal string (the one conversion out of the engine), or None."""
    if value is None or not math.isfinite(value):
        return None
    return format(to_decimal(value).normalize(), "f")


def _iso(seconds: int | None) -> str | None:
    return None if seconds is None else from_seconds(seconds).isoformat().replace("+00:00", "Z")


def trades_as_json(
    result: BacktestResult, names: dict[str, str], candles: Sequence[CandleArrays] | None = None
) -> list[dict[str, Any]]:
    """The trades of ``result`` as the JSON rows a :class:`Simulation` keeps (``names``: symbol -> coingecko id).

    Besides the engine's fields, each row has ``duration_days`` (exit time minus entry time), ``cumulative_pnl``
    (realised P&L of the closed trades in exit order up to this one's exit, :func:`trading.engine.report.
    cumulative_pnl`, quote currency) and, when ``candles`` (those the run read) are given, ``mae_ratio`` and
    ``mfe_ratio`` (:func:`trading.engine.report.trade_excursions`); None where undefined (an open trade).
    """
    log = result.trade_log
    if candles is not None:
        mae, mfe = trade_excursions(log, candles)
    else:
        mae = mfe = np.full(len(log), np.nan)
    closed = log.closed
    cumulative = cumulative_pnl(log.exit_time_seconds, np.where(closed, log.pnl, np.nan))
    rows = []
    for trade, mae_ratio, mfe_ratio, running in zip(
        result.trades, mae.tolist(), mfe.tolist(), cumulative.tolist(), strict=True
    ):
        rows.append(
            {
                "instrument": names.get(trade.symbol, trade.symbol),
                "symbol": trade.symbol,
                "entry_at": _iso(trade.entry_time_seconds),
                "entry_price": _money(trade.entry_price),
                "exit_at": _iso(trade.exit_time_seconds),
                "exit_price": _money(trade.exit_price),
                "quantity": _money(trade.quantity),
                "entry_fee": _money(trade.entry_fee),
                "exit_fee": _money(trade.exit_fee),
                "pnl": _money(trade.pnl),
                "pnl_ratio": trade.pnl_ratio,
                "exit_reason": trade.exit_reason or "",
                "duration_days": None
                if trade.exit_time_seconds is None
                else (trade.exit_time_seconds - trade.entry_time_seconds) / SECONDS_PER_DAY,
                "mae_ratio": _float_or_none(mae_ratio),
                "mfe_ratio": _float_or_none(mfe_ratio),
                "cumulative_pnl": _money(running),
            }
        )
    return rows


def _float_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def stored_chart_bars(
    simulation: Simulation, candles: Sequence[CandleArrays]
) -> dict[str, list[dict[str, float | None]]] | None:
    """The candle charts' bars of ``simulation`` (:func:`simulator.selectors.simulation_candles`) from the candles
    the run read, when they are rolled up (an hourly or minute run: the page would otherwise read every candle
    again, ~2 s for a year of minutes); None when the chart draws the candles themselves."""
    bar = chart_bar_seconds(start=simulation.start, end=simulation.end, timeframe=simulation.timeframe)
    if bar == candle_seconds(simulation.timeframe):
        return None
    since = to_seconds(datetime.combine(simulation.start, datetime.min.time(), tzinfo=UTC))
    until = since + ((simulation.end - simulation.start).days + 1) * 86_400
    found = {}
    for c in candles:
        first, last = np.searchsorted(c.open_time_seconds, [since, until])
        window = slice(int(first), int(last))
        found[c.symbol] = chart_bars(
            c.open_time_seconds[window],
            c.open[window],
            c.high[window],
            c.low[window],
            c.close[window],
            bar,
            c.volume[window],
        )
    return found


def monthly_returns_as_json(
    times_seconds: np.ndarray, equity_curve: np.ndarray, starting_cash: float
) -> list[dict[str, Any]]:
    """The equity curve's monthly and yearly returns (:func:`trading.engine.report.monthly_returns`) as JSON:
    ``[{"year": 2024, "months": [ratio or None] * 12, "year_ratio": ratio or None}]``, fractions."""
    return [
        {"year": row.year, "months": list(row.months), "year_ratio": row.year_ratio}
        for row in monthly_returns(times_seconds, equity_curve, starting_cash)
    ]


def ruined_at(result: BacktestResult, candle_length: int) -> str | None:
    """When the account of ``result`` was ruined (its equity reached 0: :func:`trading.engine.statistics.
    equity_at_ruin`), as ISO 8601 UTC: the close of the candle it happened in; None when it was not."""
    _, ruin = equity_at_ruin(result.equity_curve)
    return ruin_time(result.times, ruin, candle_length)


def ruin_time(times: np.ndarray, ruin: int | None, candle_length: int) -> str | None:
    """The close of the candle of a ruin (``times``: shape (n,), int64, the candles' open times, seconds; ``ruin``
    an index of them, or None/negative for none) as ISO 8601 UTC, or None."""
    return None if ruin is None or ruin < 0 else _iso(int(times[ruin]) + candle_length)


#: The most points of an equity curve a run keeps: about 27 years of daily candles, 14 months of hourly ones. A
#: longer curve (a year of one-minute candles is 527,040 points, some 40 MB of JSON) is kept downsampled.
MAX_CURVE_POINTS = 10_000


def curve_points(n: int, drawdown: np.ndarray, most: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Which of ``n`` curve points a run keeps: all of them when ``n <= most``, else every ``step``-th one
    (``step = ceil(n / (most - 2))``) plus the last point and the deepest drawdown's, so the kept curve ends where
    the run ends and shows its maximum drawdown.

    Args:
        n: the full curve's length.
        drawdown: shape (n,), float64, the drawdown ratio at each point.

    Returns:
        shape (m,), int64, increasing indices, ``m <= most``.
    """
    if n <= most:
        return np.arange(n, dtype=np.int64)
    step = math.ceil(n / (most - 2))
    extra = [n - 1, int(np.argmax(drawdown))] if drawdown.size else [n - 1]
    return np.unique(
        np.concatenate((np.arange(0, n, step, dtype=np.int64), np.asarray(extra, dtype=np.int64)))
    )


def equity_curve_as_json(result: BacktestResult, starting_cash: float) -> dict[str, Any]:
    """The curves of ``result``: times (seconds, each candle's open), equity, buy and hold and drawdown.

    A curve of more than :data:`MAX_CURVE_POINTS` points is kept downsampled (:func:`curve_points`), for the
    result page, the API and the equity CSV; the document then says ``"candles"`` (the full length) and
    ``"step"``. The statistics are the engine's, over the full curve.
    """
    document, _ = curve_document(
        result.times, result.equity_curve, result.buy_and_hold_curve, starting_cash=starting_cash
    )
    return document


def curve_document(
    times: np.ndarray, equity: np.ndarray, buy_and_hold: np.ndarray, *, starting_cash: float
) -> tuple[dict[str, Any], np.ndarray]:
    """The curve document of :func:`equity_curve_as_json` from the arrays (a simulation's, a portfolio run's).

    Args:
        times: shape (n,), int64, each candle's open, seconds since epoch.
        equity, buy_and_hold: shape (n,), float64, quote currency, at each candle's close.
        starting_cash: quote currency (the drawdown's first peak).

    Returns:
        ``(document, kept)``: the document, and the indices of the points it keeps (shape (m,), int64;
        :func:`curve_points`), for other curves of the same run to keep the same points.
    """
    drawdown = drawdown_curve(equity, starting_equity=starting_cash)
    n = int(times.shape[0])
    kept = curve_points(n, drawdown)
    document: dict[str, Any] = {
        "time": times[kept].tolist(),
        "equity": np.round(equity[kept], 8).tolist(),
        "buy_and_hold": np.round(buy_and_hold[kept], 8).tolist(),
        "drawdown_ratio": np.round(drawdown[kept], 10).tolist(),
    }
    if kept.shape[0] < n:
        document["candles"] = n
        document["step"] = math.ceil(n / (MAX_CURVE_POINTS - 2))
    return document, kept


def simulation_run(*, simulation: Simulation, progress: Callable[[float], None] | None = None) -> Simulation:
    """Run a pending simulation through the engine and save its results (status ``done``), or its error
    (status ``failed``). A simulation already done is returned as it is, so a retried task does nothing.

    Args:
        simulation: a saved simulation.
        progress: called with a fraction in [0, 1] as the run goes (the task stores it for the progress bar).
    """
    return run_tracked(
        simulation,
        _simulation_compute,
        progress=progress,
        label=f"simulation {simulation.pk}",
        result_fields=["statistics", "trades", "equity_curve", "limits_report"],
    )


_Run = TypeVar("_Run", Simulation, PortfolioSimulation)


def run_tracked(
    record: _Run,
    compute: Callable[[_Run, Callable[[float], None]], None],
    *,
    progress: Callable[[float], None] | None,
    label: str,
    result_fields: Sequence[str],
) -> _Run:
    """Run one saved run of the simulator (a simulation or a portfolio run) as every such run is run: nothing for
    one already done (a retried task); marked ``running`` and beating (``heartbeat_at``, for the reaper) while
    ``compute(record, report)`` sets its results and status; any error ``compute`` did not turn into a
    ``failed`` status itself fails the run with its text (never left running); then its results, status, error,
    progress and duration saved.

    Args:
        record: the saved run.
        compute: sets ``record``'s results and its status (``done``, or ``failed`` with an input error).
        progress: called with a fraction in [0, 1] as the run goes.
        label: how logs and the heartbeat's thread name the run (``"simulation 12"``).
        result_fields: the fields ``compute`` sets, saved with the status.
    """
    if record.status == RunStatus.DONE:
        return record
    report = progress or (lambda ratio: None)
    began = time.perf_counter()
    rows = type(record).objects.filter(pk=record.pk)
    rows.update(status=RunStatus.RUNNING, progress_ratio=0.05, heartbeat_at=datetime.now(tz=UTC))
    beats = Heartbeat(lambda: rows.update(heartbeat_at=datetime.now(tz=UTC)), name=label)
    try:
        with beats:
            compute(record, report)
    except Exception as exc:
        # Anything else (a bug, the database for a moment): the run is failed with the error, never left running.
        logger.exception("%s failed", label)
        record.status = RunStatus.FAILED
        record.error = f"internal error {type(exc).__name__}: {exc}"
    record.progress_ratio = 1.0
    record.duration_seconds = time.perf_counter() - began
    record.save(update_fields=[*result_fields, "status", "error", "progress_ratio", "duration_seconds"])
    report(1.0)
    return record


def _simulation_compute(simulation: Simulation, report: Callable[[float], None]) -> None:
    """Run the engine for ``simulation`` and set its results (status ``done``) or its input error (``failed``)."""
    try:
        instruments = list(simulation.instruments.order_by("symbol", "pk"))
        candles = candles_load(instruments, simulation.end, simulation.timeframe)
        coverage = coverage_compute(
            candles=candles,
            names={i.symbol: i.coingecko_id for i in instruments},
            start=simulation.start,
            end=simulation.end,
        )
        report(0.4)
        # Only the days that have data: a range past every instrument's data is clamped to it (issue 13, item 3).
        finer = finer_candles_load(instruments, coverage.start, coverage.end, simulation.timeframe)
        result = engine_run(
            simulation.criteria,
            candles,
            coverage.start,
            coverage.end,
            simulation.starting_cash,
            simulation.timeframe,
            finer,
            references_load([criteria_parse(simulation.criteria)], simulation.end, simulation.timeframe),
        )
        report(0.8)
        simulation.statistics = {
            **result.statistics,
            "coverage": coverage.document,
            "ambiguous": ambiguous_as_json(result, {i.symbol: i.coingecko_id for i in instruments}),
            "ruined_at": ruined_at(result, candle_seconds(simulation.timeframe)),
        }
        simulation.limits_report = limits_as_json(result, {i.symbol: i.coingecko_id for i in instruments})
        simulation.trades = trades_as_json(result, {i.symbol: i.coingecko_id for i in instruments}, candles)
        simulation.equity_curve = equity_curve_as_json(result, float(simulation.starting_cash))
        # Over the full curve (the kept one may be downsampled); with the curve, as a sweep point's statistics
        # (the engine's alone) must equal those of its full run.
        simulation.equity_curve["monthly_returns"] = monthly_returns_as_json(
            result.times, result.equity_curve, float(simulation.starting_cash)
        )
        bars = stored_chart_bars(simulation, candles)
        if bars is not None:
            simulation.equity_curve["chart_candles"] = bars
        # The criteria's indicators at the chart's bars, from the candles the engine read (simulator.charts).
        simulation.equity_curve["chart_indicators"] = chart_indicator_lines(
            criteria=simulation.criteria,
            candles=candles,
            start=simulation.start,
            end=simulation.end,
            bar_seconds=chart_bar_seconds(
                start=simulation.start, end=simulation.end, timeframe=simulation.timeframe
            ),
        )
        simulation.status = RunStatus.DONE
        simulation.error = ""
    except (ValueError, OverflowError, CriteriaError) as exc:
        simulation.status = RunStatus.FAILED
        simulation.error = f"{type(exc).__name__}: {exc}"


def simulation_run_queued(*, simulation_id: int) -> str:
    """Run a queued simulation by id, storing its progress as it goes; return its final status.

    What the Celery task ``simulator.run_simulation`` and the embedded background thread both call.
    """
    simulation = Simulation.objects.get(pk=simulation_id)

    def progress(ratio: float) -> None:
        Simulation.objects.filter(pk=simulation_id).update(
            progress_ratio=min(max(ratio, 0.0), 1.0), heartbeat_at=datetime.now(tz=UTC)
        )

    return str(simulation_run(simulation=simulation, progress=progress).status)


def simulation_candle_count(request: SimulationRequest) -> int:
    """How many candles (of its timeframe) a run of ``request`` reads (what decides whether it runs in a task)."""
    return InstrumentOHLC.objects.filter(
        instrument__in=request.instruments,
        timeframe=request.timeframe,
        open_time__lt=day_start(request.end) + timedelta(days=1),
    ).count()


#: The OHLC columns a run holds per candle besides its indicator series (open, high, low, close).
OHLC_SERIES = 4


def simulation_candle_series(request: SimulationRequest, *, candles: int) -> int:
    """The work and memory of a run of ``request``: candles read x (the 4 OHLC series + one per distinct
    indicator operand of its criteria). A run holds one float64 array per series over its candles, and each
    indicator is computed over all of them, so this, not the candle count alone, is what a run costs (200
    comparisons over 400 indicators make a run of few candles as heavy as one of many)."""
    operands = set(criteria_parse(request.criteria).operands())
    return candles * (OHLC_SERIES + len(operands))


def simulation_to_strategy(*, simulation: Simulation, name: str) -> Strategy:
    """Save the simulation's criteria, instruments and starting cash as a new, disabled strategy.

    Raises:
        SimulationInputError: ``name`` is empty or already taken (``{"name": [...]}``).
    """
    name = name.strip()
    if not name:
        raise SimulationInputError({"name": ["required"]})
    with transaction.atomic():
        if Strategy.objects.filter(name=name).exists():
            raise SimulationInputError({"name": [f"a strategy named {name!r} exists; choose another name"]})
        strategy = Strategy.objects.create(
            name=name[:100],
            description=f"Saved from simulation {simulation.pk} ({simulation.start} .. {simulation.end}"
            + (
                ""
                if simulation.timeframe == Timeframe.D1
                else f", run on {simulation.timeframe} candles; the strategy trades daily"
            )
            + ").",
            criteria=simulation.criteria,
            is_enabled=False,
            starting_cash=simulation.starting_cash,
        )
        strategy.instruments.set(simulation.instruments.all())
    return strategy


TRADE_CSV_COLUMNS = (
    "instrument",
    "symbol",
    "entry_at",
    "entry_price",
    "exit_at",
    "exit_price",
    "quantity",
    "entry_fee",
    "exit_fee",
    "pnl",
    "pnl_ratio",
    "exit_reason",
    "duration_days",
    "mae_ratio",
    "mfe_ratio",
    "cumulative_pnl",
)


def simulation_trades_csv(simulation: Simulation) -> str:
    """The simulation's trades as CSV text, one row a trade, with the columns of :data:`TRADE_CSV_COLUMNS`; text
    that could start a spreadsheet formula is neutralised (:func:`barter_site.csv_export.csv_text`)."""
    return csv_text(
        TRADE_CSV_COLUMNS, ([trade.get(c) for c in TRADE_CSV_COLUMNS] for trade in simulation.trades)
    )


def simulation_equity_csv(simulation: Simulation) -> str:
    """The equity curve as CSV text: ``time`` (ISO UTC of each candle's open; values are at its close),
    ``equity``, ``buy_and_hold``, ``drawdown_ratio``."""
    curve = simulation.equity_curve or {}
    rows = zip(
        curve.get("time", []),
        curve.get("equity", []),
        curve.get("buy_and_hold", []),
        curve.get("drawdown_ratio", []),
        strict=True,
    )
    return csv_text(
        ["time", "equity", "buy_and_hold", "drawdown_ratio"], ([_iso(r[0]), *r[1:]] for r in rows)
    )
