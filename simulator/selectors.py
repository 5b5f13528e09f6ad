"""Reads of the simulator: instruments with candles, a user's runs and sweeps, a run's candles. Nothing here
writes; what the pages make of the rows is :mod:`simulator.presenters`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from django.db.models import Count, FloatField, Max, Min, Prefetch, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from instruments.candles import TIMEFRAMES
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.selectors import candles_float
from simulator.models import (
    PortfolioSimulation,
    PortfolioSimulationQuerySet,
    Simulation,
    SimulationQuerySet,
    Sweep,
    SweepPoint,
    WalkForward,
)
from trading.engine.types import SECONDS_PER_DAY
from trading.engine.vocabulary import STATISTIC_BY_KEY


@dataclass(frozen=True)
class InstrumentSpan:
    """An instrument with candles, the UTC days of its first and last daily one (of its first stored timeframe
    when it has no daily ones), and the timeframes it has stored (``("1d", "1h")``, in
    :class:`~instruments.models.Timeframe` order)."""

    instrument: Instrument
    first: date
    last: date
    timeframes: tuple[str, ...] = (Timeframe.D1.value,)

    @property
    def timeframe(self) -> str:
        """The timeframe ``first`` and ``last`` are of."""
        return self.timeframes[0]


def instrument_spans() -> list[InstrumentSpan]:
    """Every instrument that has candles of any timeframe, with its first and last candle's day and its stored
    timeframes, by symbol (two queries)."""
    order = [t.value for t in Timeframe]
    bounds: dict[int, dict[str, tuple[datetime, datetime]]] = {}
    for row in (
        InstrumentOHLC.objects.values("instrument", "timeframe")
        .annotate(first_open=Min("open_time"), last_open=Max("open_time"))
        .order_by()
    ):
        bounds.setdefault(row["instrument"], {})[row["timeframe"]] = (row["first_open"], row["last_open"])
    spans = []
    for instrument in Instrument.objects.filter(pk__in=bounds).order_by("symbol", "coingecko_id"):
        stored = sorted(bounds[instrument.pk], key=order.index)
        first, last = bounds[instrument.pk][stored[0]]
        spans.append(InstrumentSpan(instrument, first.date(), last.date(), tuple(stored)))
    return spans


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


#: The most candles a chart of the result page draws per instrument; finer candles are rolled up into bars of a
#: whole number of candles (:func:`chart_bar_seconds`).
MAX_CHART_CANDLES = 5_000


def chart_bar_seconds(*, start: date, end: date, timeframe: str = Timeframe.D1) -> int:
    """The length of a chart bar of a run over ``start`` .. ``end`` on ``timeframe``: the candle length, or the
    shortest of 1 h, 4 h, 1 d, 1 week, 4 weeks (a multiple of it) that keeps the bars within
    :data:`MAX_CHART_CANDLES` (a year of one-minute candles is drawn in 4-hour bars: 2,196 of them)."""
    candle = int(TIMEFRAMES[str(timeframe)].total_seconds())
    span = ((end - start).days + 1) * SECONDS_PER_DAY
    for bar in (candle, 3_600, 4 * 3_600, SECONDS_PER_DAY, 7 * SECONDS_PER_DAY, 28 * SECONDS_PER_DAY):
        if bar >= candle and span // bar <= MAX_CHART_CANDLES:
            return bar
    return 28 * SECONDS_PER_DAY


def simulation_candles(
    *, instruments: Sequence[Instrument], start: date, end: date, timeframe: str = Timeframe.D1
) -> dict[str, list[dict[str, float | None]]]:
    """The candles of ``timeframe`` of each instrument from ``start`` to ``end`` (inclusive UTC days), for the
    charts, rolled up into bars of :func:`chart_bar_seconds` when there would be more than
    :data:`MAX_CHART_CANDLES` (first open, highest high, lowest low, last close of each bar).

    One query per instrument through :func:`instruments.selectors.candles_float`, the reader the live cycle
    uses too (floats straight from the database, no ``Decimal`` or model per candle).

    Returns:
        symbol -> ``[{"time": seconds of the (bar's) open, "open", "high", "low", "close", "volume"}, ...]``
        oldest first (prices float, quote currency; volume base units, None where unknown).
    """
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    bar = chart_bar_seconds(start=start, end=end, timeframe=timeframe)
    found: dict[str, list[dict[str, float | None]]] = {}
    for instrument in instruments:
        columns = candles_float(instrument, since=since, before=until, timeframe=timeframe)
        found[instrument.symbol] = chart_bars(
            columns.open_time, columns.open, columns.high, columns.low, columns.close, bar, columns.volume
        )
    return found


def chart_bar_groups(times: np.ndarray, bar: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How candles (``times``: shape (n,), int64 seconds of each open, oldest first) fall into chart bars of ``bar``
    seconds: ``(bar open times, index of each bar's first candle, index of its last)``, each shape (m,), int64."""
    if not times.size:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    buckets = times - times % bar
    heads = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    tails = np.r_[heads[1:], times.size] - 1
    return buckets[heads], heads, tails


def chart_bars(
    times: np.ndarray,
    opens: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
    closes: np.ndarray,
    bar: int,
    volumes: np.ndarray | None = None,
) -> list[dict[str, float | None]]:
    """Candles (shape (n,) columns, ``times`` int64 seconds of each open, oldest first, prices float64) rolled up
    into bars of ``bar`` seconds (first open, highest high, lowest low, last close, the sum of the known volumes),
    or as they are when ``bar`` is their length: ``[{"time", "open", "high", "low", "close"[, "volume"]}, ...]``
    (:func:`simulation_candles`). ``volume`` (base units) is there when ``volumes`` is given, None for a bar with
    no known volume (NaN: unknown to the source)."""
    shown = volumes
    if times.size:  # the identity when ``bar`` is the candles' length
        bucket_times, heads, tails = chart_bar_groups(times, bar)
        if volumes is not None:
            known = np.isfinite(volumes)
            sums = np.add.reduceat(np.where(known, volumes, 0.0), heads)
            shown = np.where(np.add.reduceat(known.astype(np.int64), heads) > 0, sums, np.nan)
        times, opens, closes = bucket_times, opens[heads], closes[tails]
        highs, lows = np.maximum.reduceat(highs, heads), np.minimum.reduceat(lows, heads)
    bars: list[dict[str, float | None]] = [
        {"time": t, "open": o, "high": h, "low": lo, "close": c}
        for t, o, h, lo, c in zip(
            times.tolist(), opens.tolist(), highs.tolist(), lows.tolist(), closes.tolist(), strict=True
        )
    ]
    if shown is not None:
        for row, volume in zip(bars, shown.tolist(), strict=True):
            row["volume"] = volume if math.isfinite(volume) else None
    return bars


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


def simulations_listed(user: Any) -> QuerySet[Simulation]:
    """The user's runs for the list page, newest first, without their trades and curves; instruments are
    prefetched (two queries a page)."""
    return (
        simulations_for(user)
        .listed()
        .defer("criteria", "trades", "equity_curve")
        .prefetch_related(Prefetch("instruments", queryset=Instrument.objects.order_by("symbol", "pk")))
    )


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


def sweeps_for(user: Any) -> QuerySet[Sweep]:
    """The sweeps ``user`` may see (their own; every one for a superuser)."""
    if getattr(user, "is_superuser", False):
        return Sweep.objects.all()
    return Sweep.objects.filter(created_by=user)


def sweeps_listed(user: Any) -> QuerySet[Sweep]:
    """The user's sweeps for the list page and ``GET /api/sweeps/``, newest first, each annotated with ``done``
    (its grid points saved so far), without its criteria; instruments are prefetched (two queries a page)."""
    return (
        sweeps_for(user)
        .defer("criteria")
        .annotate(done=Count("points"))
        .prefetch_related(Prefetch("instruments", queryset=Instrument.objects.order_by("symbol", "pk")))
        .order_by("-created_at", "-id")
    )


def sweep_points(sweep: Sweep, keys: Iterable[str] | None = None) -> list[SweepPoint]:
    """Every saved grid point of ``sweep``, in grid order (one query).

    Args:
        keys: read only these statistics of each point (a statistic it lacks, or that is None, is left out of its
            ``statistics``): the pages and the API show one or a few, and decoding 10,000 whole documents takes a
            second and 100 MB. All of them when None.
    """
    if keys is not None:
        wanted = sorted(set(keys))
        rows = sweep.points.order_by("index").values_list(
            "pk",
            "index",
            "values",
            "error",
            "skipped",
            "simulation_id",
            *(f"statistics__{k}" for k in wanted),
        )
        return [
            SweepPoint(
                pk=pk,
                sweep_id=sweep.pk,
                index=index,
                values=values,
                error=error,
                skipped=skipped,
                simulation_id=simulation_id,
                statistics={k: v for k, v in zip(wanted, figures, strict=True) if v is not None},
            )
            for pk, index, values, error, skipped, simulation_id, *figures in rows
        ]
    return list(
        sweep.points.only(
            "index", "values", "statistics", "error", "skipped", "simulation_id", "sweep_id"
        ).order_by("index")
    )


def sweep_best_values(sweeps: Sequence[Sweep]) -> dict[int, float]:
    """The best value of each sweep's own statistic over its saved grid points that traded (the highest, or the
    lowest where less is better), computed in the database: one query per distinct statistic among ``sweeps``.

    Returns:
        sweep pk -> best value (in the engine's units: a fraction for ``_ratio`` keys); a sweep without any
        defined value is missing.
    """
    by_statistic: dict[str, list[int]] = {}
    for sweep in sweeps:
        by_statistic.setdefault(sweep.statistic, []).append(sweep.pk)
    best: dict[int, float] = {}
    for key, ids in by_statistic.items():
        statistic = STATISTIC_BY_KEY.get(key)
        pick = Min if statistic is not None and not statistic.higher_is_better else Max
        rows = (
            SweepPoint.objects.filter(sweep_id__in=ids, error="")
            .exclude(
                statistics__n_trades=0
            )  # no trade is no result (simulator.presenters.point_has_no_trades)
            .values("sweep_id")
            .annotate(best=pick(Cast(KeyTextTransform(key, "statistics"), FloatField())))
            .order_by()
        )
        best.update({row["sweep_id"]: row["best"] for row in rows if row["best"] is not None})
    return best


def walk_forwards_for(user: Any) -> QuerySet[WalkForward]:
    """The walk-forwards ``user`` may see (their own; every one for a superuser)."""
    if getattr(user, "is_superuser", False):
        return WalkForward.objects.all()
    return WalkForward.objects.filter(created_by=user)


def walk_forwards_listed(user: Any) -> QuerySet[WalkForward]:
    """The user's walk-forwards for the list page and ``GET /api/walk_forwards/``, newest first, without their
    criteria and result; instruments prefetched."""
    return (
        walk_forwards_for(user)
        .defer("criteria", "result")
        .prefetch_related(Prefetch("instruments", queryset=Instrument.objects.order_by("symbol", "pk")))
        .order_by("-created_at", "-id")
    )


def portfolio_simulations_for(user: Any) -> PortfolioSimulationQuerySet:
    """The portfolio runs ``user`` may see (their own; every one for a superuser)."""
    return PortfolioSimulation.objects.for_user(user)


def portfolio_simulations_listed(user: Any) -> QuerySet[PortfolioSimulation]:
    """The user's portfolio runs for the list page and ``GET /api/portfolio_simulations/``, newest first, without
    their curves (one query a page)."""
    return (
        portfolio_simulations_for(user)
        .defer("equity_curve", "book_curves", "limits_report")
        .order_by("-created_at", "-id")
    )


def deploy_runs_offered(*, user: Any, members: Sequence[Any]) -> dict[int, list[Simulation | WalkForward]]:
    """The runs "Deploy winners" offers for each member of a portfolio (two queries): the user's done
    simulations made from the member's strategy (``source_strategy``), newest first, then the user's done
    walk-forwards whose base criteria equal the strategy's.

    Args:
        user: the acting user (their own runs; every run for a superuser).
        members: ``trading.models.PortfolioStrategy`` rows with their strategies.

    Returns:
        Member id -> its runs, loaded without their results (statistics, trades, curves): for the choices.
    """
    strategy_ids = {member.strategy_id for member in members}
    simulations = list(
        simulations_for(user)
        .filter(status="done", source_strategy_id__in=strategy_ids)
        .only("id", "name", "start", "end", "status", "source_strategy_id", "created_at")
        .order_by("-created_at", "-id")
    )
    walk_forwards = list(
        walk_forwards_for(user)
        .filter(status="done")
        .only("id", "name", "start", "end", "status", "criteria", "created_at")
        .order_by("-created_at", "-id")
    )
    offered: dict[int, list[Simulation | WalkForward]] = {}
    for member in members:
        runs: list[Simulation | WalkForward] = [
            s for s in simulations if s.source_strategy_id == member.strategy_id
        ]
        runs += [w for w in walk_forwards if w.criteria == member.strategy.criteria]
        offered[member.pk] = runs
    return offered
