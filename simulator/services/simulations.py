"""Simulations: save a checked request, run it through the engine, store its results; CSV; save as strategy.

Every run goes through :func:`trading.engine.backtest.backtest`, the engine of the daily cycle (a strategy
replayed day by day makes the trades a simulation of the same dates reports). Candles come from the database
through :func:`trading.selectors.candles_before`, the reader the live cycle uses.

What a run means: trades happen at the opens of the days ``start`` .. ``end`` (signals of a day's candle act at
the next day's open, as live); indicators warm up on every stored candle before ``start``; the equity curve is
the account at each day's close from ``start`` to ``end``; the risk exits inside the candle of ``end`` are settled
as on every other day, and what is still open at the close of ``end`` is closed there (exit reason
``end_of_data``, as freqtrade's backtests do), so every trade counts in the statistics. ``start`` and ``end`` are
the days that have data (:mod:`simulator.services.coverage`): a range past the data of every instrument is
clamped to it, and the run keeps what it used in ``statistics["coverage"]``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction

from barter_site.csv_export import csv_text
from barter_site.heartbeat import Heartbeat
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from simulator.models import RunStatus, Simulation, Sweep
from simulator.services.coverage import coverage_compute
from simulator.services.magnifier import ambiguous_as_json, finer_candles_load
from simulator.services.requests import SimulationInputError, SimulationRequest, day_start
from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import CriteriaError, criteria_parse
from trading.engine.statistics import drawdown_curve
from trading.engine.types import CandleArrays
from trading.models import Strategy
from trading.selectors import candles_before, from_seconds, to_decimal, to_seconds

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
            starting_cash=request.starting_cash,
            criteria=request.criteria,
            source_strategy=source_strategy,
            sweep=sweep,
        )
        simulation.instruments.set(request.instruments)
    return simulation


def candles_load(instruments: Sequence[Instrument], end: date) -> list[CandleArrays]:
    """Every stored daily candle of each instrument up to and including day ``end``."""
    until = day_start(end) + timedelta(days=1)
    return [candles_before(instrument, until) for instrument in instruments]


def engine_run(
    criteria: dict[str, Any],
    candles: list[CandleArrays],
    start: date,
    end: date,
    starting_cash: Decimal,
    finer: dict[str, CandleArrays] | None = None,
) -> BacktestResult:
    """Backtest ``criteria`` over ``candles`` (:func:`trading.engine.backtest.backtest`) with trades at the opens of
    the days ``start`` .. ``end``, the last candle's risk exits settled, and what is still open then closed at the
    last close (``end_of_data``). ``finer``: finer candles by symbol (:func:`simulator.services.magnifier.
    finer_candles_load`) that decide the ambiguous daily candles (docs/criteria.md).

    Raises:
        ValueError, OverflowError, CriteriaError: as the engine does, for criteria it refuses.
    """
    return backtest(
        criteria=criteria_parse(criteria),
        instruments=candles,
        start_time_seconds=to_seconds(day_start(start)),
        end_time_seconds=to_seconds(day_start(end)),
        starting_cash=float(starting_cash),
        close_at_end=True,
        finer=finer,
    )


def _money(value: float | None) -> str | None:
    """An engine amount as a decimal string (the one conversion out of the engine), or None."""
    if value is None or not math.isfinite(value):
        return None
    return format(to_decimal(value).normalize(), "f")


def _iso(seconds: int | None) -> str | None:
    return None if seconds is None else from_seconds(seconds).isoformat().replace("+00:00", "Z")


def trades_as_json(result: BacktestResult, names: dict[str, str]) -> list[dict[str, Any]]:
    """The trades of ``result`` as the JSON rows a :class:`Simulation` keeps (``names``: symbol -> coingecko id)."""
    rows = []
    for trade in result.trades:
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
            }
        )
    return rows


def equity_curve_as_json(result: BacktestResult, starting_cash: float) -> dict[str, list[float] | list[int]]:
    """The curves of ``result``: times (seconds, each candle's open), equity, buy and hold and drawdown."""
    return {
        "time": result.times.tolist(),
        "equity": np.round(result.equity_curve, 8).tolist(),
        "buy_and_hold": np.round(result.buy_and_hold_curve, 8).tolist(),
        "drawdown_ratio": np.round(
            drawdown_curve(result.equity_curve, starting_equity=starting_cash), 10
        ).tolist(),
    }


def simulation_run(*, simulation: Simulation, progress: Callable[[float], None] | None = None) -> Simulation:
    """Run a pending simulation through the engine and save its results (status ``done``), or its error
    (status ``failed``). A simulation already done is returned as it is, so a retried task does nothing.

    Args:
        simulation: a saved simulation.
        progress: called with a fraction in [0, 1] as the run goes (the task stores it for the progress bar).
    """
    if simulation.status == RunStatus.DONE:
        return simulation
    report = progress or (lambda ratio: None)
    began = time.perf_counter()
    Simulation.objects.filter(pk=simulation.pk).update(
        status=RunStatus.RUNNING, progress_ratio=0.05, heartbeat_at=datetime.now(tz=UTC)
    )
    beats = Heartbeat(
        lambda: Simulation.objects.filter(pk=simulation.pk).update(heartbeat_at=datetime.now(tz=UTC)),
        name=f"simulation {simulation.pk}",
    )
    try:
        with beats:
            _simulation_compute(simulation, report)
    except Exception as exc:
        # Anything else (a bug, the database for a moment): the run is failed with the error, never left running.
        logger.exception("simulation %s failed", simulation.pk)
        simulation.status = RunStatus.FAILED
        simulation.error = f"internal error {type(exc).__name__}: {exc}"
    simulation.progress_ratio = 1.0
    simulation.duration_seconds = time.perf_counter() - began
    simulation.save(
        update_fields=[
            "statistics",
            "trades",
            "equity_curve",
            "status",
            "error",
            "progress_ratio",
            "duration_seconds",
        ]
    )
    report(1.0)
    return simulation


def _simulation_compute(simulation: Simulation, report: Callable[[float], None]) -> None:
    """Run the engine for ``simulation`` and set its results (status ``done``) or its input error (``failed``)."""
    try:
        instruments = list(simulation.instruments.order_by("symbol", "pk"))
        candles = candles_load(instruments, simulation.end)
        coverage = coverage_compute(
            candles=candles,
            names={i.symbol: i.coingecko_id for i in instruments},
            start=simulation.start,
            end=simulation.end,
        )
        report(0.4)
        # Only the days that have data: a range past every instrument's data is clamped to it (issue 13, item 3).
        finer = finer_candles_load(instruments, coverage.start, coverage.end)
        result = engine_run(
            simulation.criteria, candles, coverage.start, coverage.end, simulation.starting_cash, finer
        )
        report(0.8)
        simulation.statistics = {
            **result.statistics,
            "coverage": coverage.document,
            "ambiguous": ambiguous_as_json(result, {i.symbol: i.coingecko_id for i in instruments}),
        }
        simulation.trades = trades_as_json(result, {i.symbol: i.coingecko_id for i in instruments})
        simulation.equity_curve = equity_curve_as_json(result, float(simulation.starting_cash))
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
    """How many daily candles a run of ``request`` reads (what decides whether it runs in a task)."""
    return InstrumentOHLC.objects.filter(
        instrument__in=request.instruments,
        timeframe=Timeframe.D1,
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
            description=f"Saved from simulation {simulation.pk} ({simulation.start} .. {simulation.end}).",
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
