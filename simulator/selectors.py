"""Reads of the simulator: instruments with candles, a user's runs and sweeps, a run's candles. Nothing here
writes; what the pages make of the rows is :mod:`simulator.presenters`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Max, Min, Prefetch, QuerySet

from instruments.models import Instrument, Timeframe
from instruments.selectors import candles_float
from simulator.models import Simulation, SimulationQuerySet, Sweep


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
    # first_open and last_open are annotations: django-stubs does not see them on the model.
    return [
        InstrumentSpan(row, row.first_open.date(), row.last_open.date())  # type: ignore[attr-defined]
        for row in rows
    ]


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


def simulation_candles(
    *, instruments: Sequence[Instrument], start: date, end: date
) -> dict[str, list[dict[str, float]]]:
    """The daily candles of each instrument from ``start`` to ``end`` (inclusive UTC days), for the charts.

    One query per instrument through :func:`instruments.selectors.candles_float`, the reader the live cycle
    uses too (floats straight from the database, no ``Decimal`` or model per candle).

    Returns:
        symbol -> ``[{"time": seconds of the open, "open", "high", "low", "close"}, ...]`` oldest first (prices
        float, quote currency).
    """
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    found: dict[str, list[dict[str, float]]] = {}
    for instrument in instruments:
        columns = candles_float(instrument, since=since, before=until)
        found[instrument.symbol] = [
            {"time": t, "open": o, "high": h, "low": lo, "close": c}
            for t, o, h, lo, c in zip(
                columns.open_time.tolist(),
                columns.open.tolist(),
                columns.high.tolist(),
                columns.low.tolist(),
                columns.close.tolist(),
                strict=True,
            )
        ]
    return found


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
