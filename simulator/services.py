"""The simulator's writes: check a request, run it through the engine, save it; sweeps; save as strategy.

Every run goes through :func:`trading.engine.backtest.backtest`, the engine of the daily cycle (a strategy
replayed day by day makes the trades a simulation of the same dates reports). Candles come from the database
through :func:`trading.selectors.candles_before`, the reader the live cycle uses.

What a run means: trades happen at the opens of the days ``start`` .. ``end`` (signals of a day's candle act at
the next day's open, as live); indicators warm up on every stored candle before ``start``; the equity curve is
the account at each day's close from ``start`` to ``end``; what is still open at the close of ``end`` is closed
there (exit reason ``end_of_data``, as freqtrade's backtests do), so every trade counts in the statistics.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import itertools
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import kombu.exceptions
import numpy as np
import redis.exceptions
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min

from barter_site.csv_export import csv_text
from barter_site.errors import ApplicationError
from barter_site.heartbeat import Heartbeat
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from simulator.models import RunStatus, Simulation, Sweep, SweepPoint
from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import CriteriaError, criteria_parse
from trading.engine.limits import (
    EARLIEST_DAY,
    MAX_INSTRUMENTS,
    MAX_SWEEP_CONDITION_POINTS,
    MAX_SWEEP_POINTS,
    condition_count,
    periods_check,
)
from trading.engine.statistics import drawdown_curve
from trading.engine.types import CandleArrays
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS_KEYS
from trading.models import Strategy
from trading.selectors import candles_before, from_seconds, to_decimal, to_seconds

logger = logging.getLogger(__name__)

# MAX_INSTRUMENTS and MAX_SWEEP_POINTS live with the other limits in trading.engine.limits.
#: The largest starting cash accepted, quote currency (beyond it, float64 sums lose cents).
MAX_STARTING_CASH = Decimal("1e12")


class SimulationInputError(ApplicationError):
    """The simulation request is invalid.

    Attributes:
        errors: ``{field: [message, ...]}`` with the request's field names (``instruments``, ``start``, ``end``,
            ``starting_cash``, ``criteria``, ``axes``); criteria messages start with the bad field's path.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{field}: {message}" for field, messages in errors.items() for message in messages),
            {"errors": errors},
        )


class TaskQueueUnavailableError(ApplicationError):
    """The task queue (Celery's broker and result store, Redis at ``REDIS_URL``) did not answer, so the work
    was not queued. Nothing ran; try again once Redis is back (``/healthz`` says whether it answers)."""

    http_status = 503
    retryable = True


#: What Celery raises when Redis cannot be reached while sending: kombu's OperationalError (broker), redis-py's
#: errors, socket errors, and the RuntimeError the Redis result consumer raises once its reconnects are spent.
QUEUE_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.RedisError,
    OSError,
    RuntimeError,
)


def task_send(send: Callable[[], object], *, what: str) -> None:
    """Call ``send`` (which enqueues Celery work) and turn a queue that does not answer into a clear error.

    Without a broker (``CELERY_TASK_ALWAYS_EAGER``) the work runs in-process inside ``send`` and its own errors
    propagate unchanged; only a real broker's connection failures are translated.

    Args:
        send: enqueues, e.g. ``lambda: task.delay(pk)``.
        what: the work, for the message (``"simulation 12"``).

    Raises:
        TaskQueueUnavailableError: (HTTP 503) sending failed on a connection error, after Celery's own retries
            (``CELERY_TASK_PUBLISH_RETRY_POLICY``, ``CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS``).
    """
    from celery import current_app

    if current_app.conf.task_always_eager:
        send()
        return
    try:
        send()
    except QUEUE_ERRORS as exc:
        cause = exc.__cause__ or exc.__context__ or exc
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise TaskQueueUnavailableError(
            f"the task queue (Redis at REDIS_URL) did not answer, so {what} was not started ({reason}); "
            "try again when Redis is back",
            extra={"queue": "redis", "retryable": True},
        ) from exc


class SimulatorBusyError(ApplicationError):
    """Every inline simulation slot of this process is taken (``BARTER_SIMULATOR_INLINE_CONCURRENCY``): nothing
    was run or saved; try again in a few seconds."""

    http_status = 503
    retryable = True
    retry_after_seconds = 5


_slots_guard = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


#: After an inline simulation that read more daily candles than this, a full garbage collection runs before the
#: heap is returned: the engine's arrays of a large run sit in reference cycles until one (measured by
#: benchmarks/abuse.py: 405-409 MB peak per worker without it, 355-367 MB with it). It costs 0.1-0.3 s, small
#: beside such a run's seconds and too much for the small runs' 25 ms.
COLLECT_AFTER_CANDLES = 20_000


@contextmanager
def inline_slot(*, candles: int = 0) -> Iterator[None]:
    """Hold one of the ``BARTER_SIMULATOR_INLINE_CONCURRENCY`` slots of this process while a simulation runs
    inside a web request, or refuse at once; afterwards give the freed memory back.

    A gunicorn worker has a few threads (``gunicorn.conf.py``); were all of them simulating, ``/healthz`` and
    every page would wait behind the simulations (fly's check gives up after 5 s), and each simulation adds its
    memory to the worker's. The slots keep threads free and the worker's peak memory bounded; a request beyond
    them gets a 503 with ``Retry-After`` instead of a wait.

    Args:
        candles: how many daily candles the simulation reads (above :data:`COLLECT_AFTER_CANDLES`, a full
            garbage collection follows it).

    Raises:
        SimulatorBusyError: no slot is free.
    """
    size = max(1, int(settings.BARTER_SIMULATOR_INLINE_CONCURRENCY))
    with _slots_guard:
        slots = _slots.setdefault(size, threading.BoundedSemaphore(size))
    if not slots.acquire(blocking=False):
        raise SimulatorBusyError(
            f"the simulator is running {size} simulation(s) in this process already, its limit "
            "(BARTER_SIMULATOR_INLINE_CONCURRENCY); nothing was run: try again in a few seconds",
            extra={"retryable": True},
        )
    try:
        yield
    finally:
        slots.release()
        _memory_return(collect=candles > COLLECT_AFTER_CANDLES)


def _memory_return(*, collect: bool) -> None:
    """Give the heap a simulation freed back to the operating system (glibc's ``malloc_trim``), so a worker's
    resident memory falls back between simulations instead of staying at its peak (threads' malloc arenas keep
    it otherwise); does nothing where the C library has no ``malloc_trim``.

    Args:
        collect: run a full garbage collection first (see :data:`COLLECT_AFTER_CANDLES`).
    """
    if collect:
        gc.collect()
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


@dataclass(frozen=True)
class SimulationRequest:
    """A checked request: what :func:`simulation_run` needs.

    Attributes:
        instruments: the instruments, in symbol order.
        start, end: the first and last UTC day (inclusive).
        starting_cash: quote currency, > 0.
        criteria: the criteria document (CRITERIA.md), valid.
    """

    instruments: tuple[Instrument, ...]
    start: date
    end: date
    starting_cash: Decimal
    criteria: dict[str, Any]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def simulation_request_check(
    *,
    instruments: Sequence[str | int | Instrument],
    start: date | None,
    end: date | None,
    starting_cash: Decimal | float | int | str | None,
    criteria: Any,
) -> SimulationRequest:
    """Check a simulation request and return it typed, or raise every problem at once.

    Args:
        instruments: CoinGecko ids (``"bitcoin"``), primary keys or instruments; one or several.
        start, end: the first and last UTC day of the run, inclusive.
        starting_cash: quote currency, > 0 (a string is parsed as a decimal).
        criteria: the criteria document, already decoded from JSON.

    Raises:
        SimulationInputError: with ``errors`` naming each bad field, e.g. ``{"end": ["must be on or after
            start (2024-01-31), was 2024-01-01"]}``; stored candles that do not cover the range are an error of
            ``start`` or ``end`` that says which days are stored. Dates outside 2009-01-03 .. today (UTC) are an
            error of their field; criteria beyond :mod:`trading.engine.limits`, or with a look-back period longer
            than the daily candles an instrument has stored up to ``end``, an error of ``criteria`` that starts
            with the path of the bad field.
    """
    errors: dict[str, list[str]] = {}

    def problem(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    found: list[Instrument] = []
    if not instruments:
        problem("instruments", "choose at least one instrument")
    elif len(instruments) > MAX_INSTRUMENTS:
        problem("instruments", f"at most {MAX_INSTRUMENTS} instruments; was {len(instruments)}")
    else:
        objects = [i for i in instruments if isinstance(i, Instrument)]
        keys = [i for i in instruments if not isinstance(i, Instrument)]
        ids = {int(k) for k in keys if isinstance(k, int) or (isinstance(k, str) and k.isdigit())}
        names = {str(k) for k in keys if not (isinstance(k, int) or (isinstance(k, str) and k.isdigit()))}
        by_pk = {i.pk: i for i in Instrument.objects.filter(pk__in=ids)}
        by_name = {i.coingecko_id: i for i in Instrument.objects.filter(coingecko_id__in=names)}
        unknown = sorted(str(i) for i in ids if i not in by_pk) + sorted(n for n in names if n not in by_name)
        if unknown:
            problem("instruments", f"unknown instrument(s): {', '.join(unknown)}")
        found = list({i.pk: i for i in [*objects, *by_pk.values(), *by_name.values()]}.values())
        found.sort(key=lambda i: (i.symbol, i.pk))
        symbols = [i.symbol for i in found]
        repeated = sorted({s for s in symbols if symbols.count(s) > 1})
        if repeated:
            problem("instruments", f"two instruments share the symbol {', '.join(repeated)}; choose one")

    today = datetime.now(tz=UTC).date()
    for name, day in (("start", start), ("end", end)):
        if day is None:
            problem(name, "required")
        elif not EARLIEST_DAY <= day <= today:
            problem(
                name,
                f"must be between {EARLIEST_DAY.isoformat()} (the first Bitcoin block) and today "
                f"({today.isoformat()}, UTC); was {day.isoformat()}",
            )
    if start is not None and end is not None and end < start and not ({"start", "end"} & errors.keys()):
        problem("end", f"must be on or after start ({start.isoformat()}); was {end.isoformat()}")

    cash: Decimal | None = None
    try:
        cash = Decimal(str(starting_cash)) if starting_cash is not None else None
    except InvalidOperation:
        problem("starting_cash", f"must be a number; was {starting_cash!r}")
    if starting_cash is None:
        problem("starting_cash", "required")
    elif cash is not None and not (cash.is_finite() and Decimal(0) < cash <= MAX_STARTING_CASH):
        problem("starting_cash", f"must be > 0 and at most {MAX_STARTING_CASH:,.0f}; was {starting_cash}")

    criteria_valid = True
    try:
        criteria_parse(criteria)
    except CriteriaError as exc:
        criteria_valid = False
        for path, message in exc.errors:
            problem("criteria", f"{path}: {message}" if path else message)

    dates_valid = not ({"start", "end"} & errors.keys())
    if found and start is not None and end is not None and dates_valid and "instruments" not in errors:
        _check_coverage(found, start, end, problem)
        if criteria_valid and not errors:
            _check_periods(found, end, criteria, problem)
    if errors:
        raise SimulationInputError(errors)
    assert start is not None and end is not None and cash is not None  # noqa: S101  # no errors above
    return SimulationRequest(tuple(found), start, end, cash, criteria)


def _check_coverage(
    instruments: list[Instrument], start: date, end: date, problem: Callable[[str, str], None]
) -> None:
    """Every instrument must have daily candles inside ``start`` .. ``end``."""
    spans = {
        row["instrument"]: (row["first"], row["last"])
        for row in InstrumentOHLC.objects.filter(instrument__in=instruments, timeframe=Timeframe.D1)
        .values("instrument")
        .annotate(first=Min("open_time"), last=Max("open_time"))
    }
    for instrument in instruments:
        span = spans.get(instrument.pk)
        if span is None:
            problem(
                "instruments", f"{instrument.coingecko_id} has no stored daily candles; sync or import it"
            )
            continue
        first, last = span[0].date(), span[1].date()
        if start > last:
            problem(
                "start", f"{instrument.coingecko_id} has candles up to {last.isoformat()} only; start earlier"
            )
        elif end < first:
            problem("end", f"{instrument.coingecko_id} has candles from {first.isoformat()} only; end later")


def _check_periods(
    instruments: list[Instrument], end: date, criteria: Any, problem: Callable[[str, str], None]
) -> None:
    """No look-back period may be longer than the daily candles an instrument has stored up to ``end``."""
    counts = {
        row["instrument"]: row["n"]
        for row in InstrumentOHLC.objects.filter(
            instrument__in=instruments,
            timeframe=Timeframe.D1,
            open_time__lt=_day_start(end) + timedelta(days=1),
        )
        .values("instrument")
        .annotate(n=Count("id"))
    }
    fewest = min(instruments, key=lambda i: (counts.get(i.pk, 0), i.symbol))
    where = f"{fewest.coingecko_id} up to {end.isoformat()}"
    for path, message in periods_check(criteria, available=counts.get(fewest.pk, 0), where=where):
        problem("criteria", f"{path}: {message}")


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


def _load_candles(instruments: Sequence[Instrument], end: date) -> list[CandleArrays]:
    """Every stored daily candle of each instrument up to and including day ``end``."""
    until = _day_start(end) + timedelta(days=1)
    return [candles_before(instrument, until) for instrument in instruments]


def _run_engine(
    criteria: dict[str, Any], candles: list[CandleArrays], start: date, end: date, starting_cash: Decimal
) -> BacktestResult:
    return backtest(
        criteria=criteria_parse(criteria),
        instruments=candles,
        start_time_seconds=to_seconds(_day_start(start)),
        end_time_seconds=to_seconds(_day_start(end)),
        starting_cash=float(starting_cash),
        close_at_end=True,
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
        candles = _load_candles(instruments, simulation.end)
        report(0.4)
        result = _run_engine(
            simulation.criteria, candles, simulation.start, simulation.end, simulation.starting_cash
        )
        report(0.8)
        simulation.statistics = result.statistics
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
        open_time__lt=_day_start(request.end) + timedelta(days=1),
    ).count()


def simulation_start(
    *,
    request: SimulationRequest,
    created_by: Any = None,
    name: str = "",
    source_strategy: Strategy | None = None,
) -> Simulation:
    """Save a simulation and run it: in this request when it reads at most ``BARTER_SIMULATOR_INLINE_CANDLES``
    candles (about a second of work at most), else as the Celery task ``simulator.run_simulation`` on the
    simulator's queue, or without a broker in a background thread of this process (:mod:`simulator.background`);
    the result page polls its progress either way.

    Raises:
        TaskQueueUnavailableError: the run had to be queued and the broker did not answer (once the current
            transaction commits; at once outside one); the saved run is then ``failed`` with that message.
        SimulatorBusyError: (HTTP 503, ``Retry-After``) every inline slot of this process is taken; nothing is
            saved.
    """
    candles = simulation_candle_count(request)
    if candles <= settings.BARTER_SIMULATOR_INLINE_CANDLES:
        with inline_slot(candles=candles):  # SimulatorBusyError before anything is saved
            simulation = simulation_create(
                request=request, created_by=created_by, name=name, source_strategy=source_strategy
            )
            return simulation_run(simulation=simulation)
    simulation = simulation_create(
        request=request, created_by=created_by, name=name, source_strategy=source_strategy
    )
    from simulator.background import background_submit, embedded
    from simulator.tasks import run_simulation_task

    if embedded():
        # No broker: a background thread of this process, never this request (simulator.background).
        transaction.on_commit(
            lambda: background_submit(
                lambda: simulation_run_queued(simulation_id=simulation.pk),
                what=f"simulation {simulation.pk}",
                beat=lambda: Simulation.objects.filter(pk=simulation.pk).update(
                    heartbeat_at=datetime.now(tz=UTC)
                ),
            )
        )
        return simulation

    def send() -> None:
        try:
            task_send(lambda: run_simulation_task.delay(simulation.pk), what=f"simulation {simulation.pk}")
        except TaskQueueUnavailableError as exc:
            # The run was saved but will never be picked up: say so on it, rather than leave it pending.
            Simulation.objects.filter(pk=simulation.pk, status=RunStatus.PENDING).update(
                status=RunStatus.FAILED, error=exc.message, progress_ratio=1.0
            )
            raise

    transaction.on_commit(send)
    return simulation


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


# Sweeps -----------------------------------------------------------------------------------------------------

_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def _path_steps(path: str) -> list[str | int]:
    """``entry.all[0].left.period`` -> ``["entry", "all", 0, "left", "period"]``; ValueError when malformed."""
    steps: list[str | int] = []
    for part in path.split("."):
        match = _PATH_PART.fullmatch(part)
        if not match:
            raise ValueError(f"malformed path {path!r}; write it like entry.all[0].left.period")
        steps.append(match.group(1))
        steps.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return steps


def criteria_value_get(document: dict[str, Any], path: str) -> Any:
    """The value at ``path`` (CriteriaError's path syntax) in a criteria document; KeyError/IndexError if absent."""
    node: Any = document
    for step in _path_steps(path):
        node = node[step]
    return node


def criteria_with(document: dict[str, Any], path: str, value: float) -> dict[str, Any]:
    """A copy of ``document`` with ``value`` at ``path`` (an integral value replaces an int as an int)."""
    changed = copy.deepcopy(document)
    steps = _path_steps(path)
    node: Any = changed
    for step in steps[:-1]:
        node = node[step]
    old = node[steps[-1]] if not isinstance(node, dict) or steps[-1] in node else None
    node[steps[-1]] = int(value) if isinstance(old, int) and float(value).is_integer() else value
    return changed


def sweep_axes_check(criteria: dict[str, Any], axes: Any) -> list[dict[str, Any]]:
    """Check sweep axes and return them as ``[{"path", "values"}]``.

    Args:
        criteria: the base criteria document (valid).
        axes: one or two axes, each ``{"path": "entry.all[0].left.period", "start": 5, "stop": 50, "step": 5}``
            (``stop`` included when the steps reach it) or ``{"path": ..., "values": [5, 10, 20]}``; the path
            must name a number in ``criteria``.

    Raises:
        SimulationInputError: ``{"axes": [...]}`` naming each bad axis, or ``{"criteria": [...]}`` when a grid
            point's criteria are invalid (a period of 0, say).
    """
    errors: list[str] = []
    checked: list[dict[str, Any]] = []
    if not isinstance(axes, list) or not 1 <= len(axes) <= 2:
        raise SimulationInputError({"axes": ["give one or two axes"]})
    for n, axis in enumerate(axes):
        where = f"axes[{n}]"
        if not isinstance(axis, dict) or not isinstance(axis.get("path"), str):
            errors.append(f"{where}: must be an object with a path")
            continue
        path = axis["path"]
        try:
            current = criteria_value_get(criteria, path)
        except (KeyError, IndexError, TypeError, ValueError):
            errors.append(f"{where}.path: {path!r} is not a field of the criteria")
            continue
        if isinstance(current, bool) or not isinstance(current, int | float):
            errors.append(f"{where}.path: {path!r} is {current!r}, not a number")
            continue
        values = _axis_values(axis, where, errors)
        if values is not None:
            checked.append({"path": path, "values": values})
    if errors:
        raise SimulationInputError({"axes": errors})
    if len({a["path"] for a in checked}) != len(checked):
        raise SimulationInputError({"axes": ["the two axes must sweep different fields"]})
    total = math.prod(len(a["values"]) for a in checked)
    if total > MAX_SWEEP_POINTS:
        raise SimulationInputError({"axes": [f"at most {MAX_SWEEP_POINTS:,} grid points; was {total:,}"]})
    comparisons = max(1, condition_count(criteria))
    if total * comparisons > MAX_SWEEP_CONDITION_POINTS:
        raise SimulationInputError(
            {
                "axes": [
                    f"{total:,} grid points of criteria with {comparisons:,} comparisons are "
                    f"{total * comparisons:,} evaluations; at most {MAX_SWEEP_CONDITION_POINTS:,}: sweep fewer "
                    "values or simplify the criteria"
                ]
            }
        )
    problems: list[str] = []
    for point in sweep_grid(checked):
        try:
            criteria_parse(sweep_point_criteria(criteria, checked, point))
        except CriteriaError as exc:
            shown = ", ".join(f"{a['path']}={v:g}" for a, v in zip(checked, point, strict=True))
            problems.append(f"at {shown}: {exc}")
            if len(problems) >= 3:
                break
    if problems:
        raise SimulationInputError({"criteria": problems})
    return checked


def _axis_values(axis: dict[str, Any], where: str, errors: list[str]) -> list[float] | None:
    if "values" in axis:
        values = axis["values"]
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        ):
            errors.append(f"{where}.values: must be a non-empty list of numbers")
            return None
        return [float(v) for v in values]
    numbers = {key: axis.get(key) for key in ("start", "stop", "step")}
    bad = [k for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        errors.append(f"{where}: {', '.join(bad)} must be numbers (or give values)")
        return None
    start, stop, step = (float(numbers[k]) for k in ("start", "stop", "step"))  # type: ignore[arg-type]
    if step <= 0 or stop < start:
        errors.append(f"{where}: needs step > 0 and stop >= start; was {start:g}..{stop:g} by {step:g}")
        return None
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_SWEEP_POINTS:
        errors.append(f"{where}: {count:,} values; at most {MAX_SWEEP_POINTS:,}")
        return None
    return [round(start + i * step, 12) for i in range(count)]


def sweep_grid(axes: list[dict[str, Any]]) -> list[tuple[float, ...]]:
    """Every combination of the axes' values, row-major (the last axis varies fastest)."""
    return list(itertools.product(*(a["values"] for a in axes)))


def sweep_point_criteria(
    criteria: dict[str, Any], axes: list[dict[str, Any]], values: Sequence[float]
) -> dict[str, Any]:
    """The criteria of one grid point: ``criteria`` with each axis's path set to its value."""
    document = criteria
    for axis, value in zip(axes, values, strict=True):
        document = criteria_with(document, axis["path"], value)
    return document


def sweep_create(
    *,
    request: SimulationRequest,
    axes: Any,
    statistic: str = HEADLINE_STATISTIC,
    created_by: Any = None,
    name: str = "",
) -> Sweep:
    """Check the axes and save a pending sweep (start it with :func:`sweep_start`).

    Raises:
        SimulationInputError: bad axes (``axes``), a grid point with invalid criteria, or an unknown
            ``statistic``.
    """
    if statistic not in STATISTICS_KEYS:
        raise SimulationInputError({"statistic": [f"must be one of {', '.join(STATISTICS_KEYS)}"]})
    checked = sweep_axes_check(request.criteria, axes)
    with transaction.atomic():
        sweep = Sweep.objects.create(
            name=name[:200],
            created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
            start=request.start,
            end=request.end,
            starting_cash=request.starting_cash,
            criteria=request.criteria,
            axes=checked,
            statistic=statistic,
            total=len(sweep_grid(checked)),
        )
        sweep.instruments.set(request.instruments)
    return sweep


def sweep_chunks(total: int, workers: int) -> list[tuple[int, int]]:
    """Split ``range(total)`` into about four chunks a worker, each ``(first, stop)``."""
    size = max(1, math.ceil(total / max(1, workers * 4)))
    return [(first, min(first + size, total)) for first in range(0, total, size)]


def sweep_start(*, sweep: Sweep) -> None:
    """Start a saved sweep once the current transaction commits: its grid fanned out as a Celery chord of chunks
    on the simulator's queue (``simulator.sweep_chunk``, then ``simulator.sweep_finish``); without a broker,
    every chunk in turn in a background thread of this process (:mod:`simulator.background`), never in the
    request. The sweep stays ``pending`` until a chunk starts (then ``running``, with a heartbeat).

    Raises:
        TaskQueueUnavailableError: the broker did not answer (once the current transaction commits; at once
            outside one); the sweep is then ``failed`` with that message.
    """
    from celery import chord

    from simulator.background import background_submit, embedded
    from simulator.tasks import sweep_chunk_task, sweep_finish_task

    chunks = sweep_chunks(sweep.total, settings.BARTER_SIMULATOR_SWEEP_WORKERS)
    if embedded():
        transaction.on_commit(
            lambda: background_submit(
                lambda: sweep_run_in_process(sweep_id=sweep.pk, chunks=chunks),
                what=f"sweep {sweep.pk}",
                beat=lambda: Sweep.objects.filter(pk=sweep.pk).update(heartbeat_at=datetime.now(tz=UTC)),
            )
        )
        return
    header = [sweep_chunk_task.si(sweep.pk, first, stop) for first, stop in chunks]

    def send() -> None:
        try:
            task_send(lambda: chord(header)(sweep_finish_task.si(sweep.pk)), what=f"sweep {sweep.pk}")
        except TaskQueueUnavailableError as exc:
            Sweep.objects.filter(pk=sweep.pk, status__in=[RunStatus.PENDING, RunStatus.RUNNING]).update(
                status=RunStatus.FAILED, error=exc.message
            )
            raise

    transaction.on_commit(send)


def sweep_run_in_process(*, sweep_id: int, chunks: Sequence[tuple[int, int]]) -> Sweep:
    """Run every chunk of a sweep in turn in this thread, then finish it (the embedded mode's sweep).

    Each chunk goes through :func:`sweep_chunk_run_guarded`, so an unexpected error fails the sweep with its
    message instead of leaving it running.
    """
    began = time.perf_counter()
    for first, stop in chunks:
        sweep_chunk_run_guarded(sweep_id=sweep_id, first=first, stop=stop)
    return sweep_finish(sweep_id=sweep_id, duration_seconds=time.perf_counter() - began)


def sweep_chunk_run_guarded(*, sweep_id: int, first: int, stop: int) -> int:
    """:func:`sweep_chunk_run`, with the sweep marked ``failed`` (with the error) when it raises anything.

    Returns:
        How many points were new (0 when it failed).
    """
    try:
        return sweep_chunk_run(sweep_id=sweep_id, first=first, stop=stop)
    except Exception as exc:
        logger.exception("sweep %s chunk %s..%s failed", sweep_id, first, stop)
        # The first error is kept (chunks run in parallel); sweep_finish adds how many points are missing.
        Sweep.objects.filter(pk=sweep_id).exclude(status__in=[RunStatus.DONE, RunStatus.FAILED]).update(
            status=RunStatus.FAILED,
            error=f"grid points {first}..{stop - 1} failed: internal error {type(exc).__name__}: {exc}",
        )
        return 0


def sweep_chunk_run(*, sweep_id: int, first: int, stop: int) -> int:
    """Run grid points ``first`` .. ``stop - 1`` of a sweep and save their statistics; return how many were new.

    The candles are read once for the chunk. Points already saved (a retried chunk) are skipped. The sweep is
    ``running`` from its first chunk on, and beats (``heartbeat_at``) while a chunk runs.
    """
    now = datetime.now(tz=UTC)
    Sweep.objects.filter(pk=sweep_id, status=RunStatus.PENDING).update(status=RunStatus.RUNNING)
    Sweep.objects.filter(pk=sweep_id).update(heartbeat_at=now)
    with Heartbeat(
        lambda: Sweep.objects.filter(pk=sweep_id).update(heartbeat_at=datetime.now(tz=UTC)),
        name=f"sweep {sweep_id} chunk {first}..{stop - 1}",
    ):
        return _sweep_chunk_compute(sweep_id=sweep_id, first=first, stop=stop)


def _sweep_chunk_compute(*, sweep_id: int, first: int, stop: int) -> int:
    sweep = Sweep.objects.get(pk=sweep_id)
    done = set(
        SweepPoint.objects.filter(sweep=sweep, index__gte=first, index__lt=stop).values_list(
            "index", flat=True
        )
    )
    todo = [i for i in range(first, stop) if i not in done]
    if not todo:
        return 0
    grid = sweep_grid(sweep.axes)
    candles = _load_candles(list(sweep.instruments.order_by("symbol", "pk")), sweep.end)
    points = []
    for index in todo:
        values = grid[index]
        point = SweepPoint(
            sweep=sweep, index=index, values={a["path"]: v for a, v in zip(sweep.axes, values, strict=True)}
        )
        try:
            result = _run_engine(
                sweep_point_criteria(sweep.criteria, sweep.axes, values),
                candles,
                sweep.start,
                sweep.end,
                sweep.starting_cash,
            )
            point.statistics = result.statistics
        except (ValueError, OverflowError, CriteriaError) as exc:
            point.error = f"{type(exc).__name__}: {exc}"
        points.append(point)
    SweepPoint.objects.bulk_create(points, ignore_conflicts=True)
    return len(points)


def sweep_finish(*, sweep_id: int, duration_seconds: float | None = None) -> Sweep:
    """Mark a sweep done once all its points are saved (failed when some are missing). A sweep already failed
    (a chunk's error, the reaper) keeps its error, with the missing points added."""
    sweep = Sweep.objects.get(pk=sweep_id)
    saved = sweep.points.count()
    missing = (
        "" if saved == sweep.total else f"{sweep.total - saved} of {sweep.total} grid points are missing"
    )
    if sweep.status == RunStatus.FAILED and sweep.error:
        sweep.error = f"{sweep.error}; {missing}" if missing and missing not in sweep.error else sweep.error
    else:
        sweep.status = RunStatus.DONE if not missing else RunStatus.FAILED
        sweep.error = missing
    if duration_seconds is not None:
        sweep.duration_seconds = duration_seconds
    elif sweep.created_at:
        sweep.duration_seconds = (datetime.now(tz=UTC) - sweep.created_at).total_seconds()
    sweep.save(update_fields=["status", "error", "duration_seconds"])
    return sweep


def sweep_point_simulation(*, point: SweepPoint, created_by: Any = None) -> Simulation:
    """The full simulation of a grid point (trades, curves), made and run the first time it is asked for."""
    with transaction.atomic():
        locked = SweepPoint.objects.select_for_update().select_related("sweep").get(pk=point.pk)
        if locked.simulation_id is not None:
            simulation = Simulation.objects.get(pk=locked.simulation_id)
        else:
            sweep = locked.sweep
            request = SimulationRequest(
                instruments=tuple(sweep.instruments.order_by("symbol", "pk")),
                start=sweep.start,
                end=sweep.end,
                starting_cash=sweep.starting_cash,
                criteria=sweep_point_criteria(
                    sweep.criteria, sweep.axes, [locked.values[a["path"]] for a in sweep.axes]
                ),
            )
            shown = ", ".join(f"{path}={value:g}" for path, value in locked.values.items())
            simulation = simulation_create(
                request=request, created_by=created_by, name=f"{sweep} at {shown}", sweep=sweep
            )
            locked.simulation = simulation
            locked.save(update_fields=["simulation"])
    return simulation_run(simulation=simulation)
