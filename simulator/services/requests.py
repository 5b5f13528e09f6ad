"""A simulation request, checked once for the API, the form and ``manage.py simulate``: instruments, days,
timeframe, starting cash and criteria, against the limits of :mod:`trading.engine.limits` and the candles stored.

A run reads one stored timeframe (``1d``, ``1h`` or ``1m``): its boundaries are every candle's open from
``start`` 00:00 UTC to the open of the last candle on the ``end`` date (:func:`run_bounds`), and only a
timeframe stored for every chosen instrument is valid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Count, Exists, Max, Min, OuterRef

from barter_site.errors import ApplicationError
from instruments.candles import TIMEFRAMES
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from trading.engine.criteria import CriteriaError, criteria_parse, criteria_resolve
from trading.engine.limits import (
    EARLIEST_DAY,
    MAX_INSTRUMENTS,
    criteria_operand_fields,
    periods_check,
)
from trading.selectors import criteria_instruments_unknown

# MAX_INSTRUMENTS and MAX_SWEEP_POINTS live with the other limits in trading.engine.limits.
#: The largest starting cash accepted, quote currency (beyond it, float64 sums lose cents).
MAX_STARTING_CASH = Decimal("1e12")


class SimulationInputError(ApplicationError):
    """The simulation request is invalid.

    Attributes:
        errors: ``{field: [message, ...]}`` with the request's field names (``instruments``, ``start``, ``end``,
            ``timeframe``, ``starting_cash``, ``criteria``, ``axes``); criteria messages start with the bad
            field's path.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{field}: {message}" for field, messages in errors.items() for message in messages),
            {"errors": errors},
        )


@dataclass(frozen=True)
class SimulationRequest:
    """A checked request: what :func:`simulation_run` needs.

    Attributes:
        instruments: the instruments, in symbol order.
        start, end: the first and last UTC day (inclusive).
        starting_cash: quote currency, > 0.
        criteria: the criteria document (CRITERIA.md), valid.
        timeframe: the stored candles the run reads (:class:`~instruments.models.Timeframe`), stored for every
            instrument.
    """

    instruments: tuple[Instrument, ...]
    start: date
    end: date
    starting_cash: Decimal
    criteria: dict[str, Any]
    timeframe: str = Timeframe.D1


def candle_seconds(timeframe: str) -> int:
    """The length of a ``timeframe``'s candles in seconds (86,400 for ``1d``, 3,600 for ``1h``, 60 for ``1m``).

    Raises:
        KeyError: not one of :data:`instruments.candles.TIMEFRAMES`.
    """
    return int(TIMEFRAMES[str(timeframe)].total_seconds())


def run_bounds(start: date, end: date, timeframe: str) -> tuple[datetime, datetime]:
    """The first and last boundary of a run over the UTC days ``start`` .. ``end`` (inclusive) on ``timeframe``:
    ``start`` 00:00 UTC, and the open of the last candle on the ``end`` date (``end`` 00:00 for daily candles,
    23:00 for hourly, 23:59 for one-minute ones); a boundary at every candle's open in between.

    Returns:
        ``(first, last)``, aware UTC datetimes.
    """
    return day_start(start), day_start(end) + timedelta(days=1) - TIMEFRAMES[str(timeframe)]


def day_start(day: date) -> datetime:
    """The aware UTC datetime at which ``day`` begins (the open time of its daily candle)."""
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def simulation_request_check(
    *,
    instruments: Sequence[str | int | Instrument],
    start: date | None,
    end: date | None,
    starting_cash: Decimal | float | int | str | None,
    criteria: Any,
    timeframe: str | None = Timeframe.D1,
) -> SimulationRequest:
    """Check a simulation request and return it typed, or raise every problem at once.

    Args:
        instruments: CoinGecko ids (``"bitcoin"``), primary keys or instruments; one or several.
        start, end: the first and last UTC day of the run, inclusive.
        timeframe: ``"1d"`` (default, also for None or ``""``), ``"1h"`` or ``"1m"``: the stored candles read.
        starting_cash: quote currency, > 0 (a string is parsed as a decimal).
        criteria: the criteria document, already decoded from JSON.

    Raises:
        SimulationInputError: with ``errors`` naming each bad field, e.g. ``{"end": ["must be on or after
            start (2024-01-31), was 2024-01-01"]}``; stored candles that do not cover the range are an error of
            ``start`` or ``end`` that says which days are stored. A timeframe that is not one of the three, or not
            stored for every chosen instrument, is an error of ``timeframe`` that says what is stored. Dates
            outside 2009-01-03 .. today (UTC) are an error of their field; criteria beyond
            :mod:`trading.engine.limits`, or with a look-back period longer than the candles an instrument
            has stored up to ``end``, an error of ``criteria`` that starts
            with the path of the bad field (look-back periods count candles of ``timeframe``; a weekly one 7 daily
            candles a week). An operand naming an instrument that is not stored, or one without candles of
            ``timeframe``, or a weekly operand in a run that is not on ``1d`` candles, is an error of ``criteria``
            at the operand's field (``entry.all[0].left.instrument: unknown instrument 'bitcoinn'...``).
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

    timeframe = str(timeframe or Timeframe.D1)
    if timeframe not in TIMEFRAMES:
        problem("timeframe", f"must be one of {', '.join(t.value for t in Timeframe)}; was {timeframe!r}")
    elif found and "instruments" not in errors:
        _check_timeframe(found, timeframe, problem)

    cash = days_and_cash_check(start=start, end=end, starting_cash=starting_cash, problem=problem)

    criteria_valid = True
    try:
        criteria_parse(criteria)
    except CriteriaError as exc:
        criteria_valid = False
        for path, message in exc.errors:
            problem("criteria", f"{path}: {message}" if path else message)
    if criteria_valid:
        criteria_valid = _check_operands(criteria, timeframe, problem)

    dates_valid = not ({"start", "end"} & errors.keys())
    if (
        found
        and start is not None
        and end is not None
        and dates_valid
        and not ({"instruments", "timeframe"} & errors.keys())
    ):
        _check_coverage(found, start, end, timeframe, problem)
        if criteria_valid and not errors:
            _check_periods(found, end, timeframe, criteria, problem)
    if errors:
        raise SimulationInputError(errors)
    assert start is not None and end is not None and cash is not None  # noqa: S101  # no errors above
    return SimulationRequest(tuple(found), start, end, cash, criteria, Timeframe(timeframe).value)


def days_and_cash_check(
    *,
    start: date | None,
    end: date | None,
    starting_cash: Decimal | float | int | str | None,
    problem: Callable[[str, str], None],
) -> Decimal | None:
    """Check a run's days and starting cash, as every simulator request does (a simulation, a portfolio run).

    Args:
        start, end: the first and last UTC day, inclusive: each required, between 2009-01-03 and today (UTC), and
            ``end`` on or after ``start``.
        starting_cash: quote currency, > 0 and at most :data:`MAX_STARTING_CASH` (a string is parsed as a decimal).
        problem: called with ``(field, message)`` for each problem (fields ``start``, ``end``, ``starting_cash``).

    Returns:
        The starting cash as a ``Decimal`` (None when it is missing or no number).
    """
    errors: set[str] = set()

    def fail(field: str, message: str) -> None:
        errors.add(field)
        problem(field, message)

    today = datetime.now(tz=UTC).date()
    for name, day in (("start", start), ("end", end)):
        if day is None:
            fail(name, "required")
        elif not EARLIEST_DAY <= day <= today:
            fail(
                name,
                f"must be between {EARLIEST_DAY.isoformat()} (the first Bitcoin block) and today "
                f"({today.isoformat()}, UTC); was {day.isoformat()}",
            )
    if start is not None and end is not None and end < start and not ({"start", "end"} & errors):
        fail("end", f"must be on or after start ({start.isoformat()}); was {end.isoformat()}")

    cash: Decimal | None = None
    try:
        cash = Decimal(str(starting_cash)) if starting_cash is not None else None
    except InvalidOperation:
        fail("starting_cash", f"must be a number; was {starting_cash!r}")
    if starting_cash is None:
        fail("starting_cash", "required")
    elif cash is not None and not (cash.is_finite() and Decimal(0) < cash <= MAX_STARTING_CASH):
        fail("starting_cash", f"must be > 0 and at most {MAX_STARTING_CASH:,.0f}; was {starting_cash}")

    return cash


def stored_timeframes(instruments: Sequence[Instrument]) -> dict[int, list[str]]:
    """The timeframes stored for each of ``instruments`` (one query: an ``EXISTS`` per timeframe, each an index
    lookup, not a scan of a year of one-minute candles).

    Returns:
        instrument pk -> the timeframes it has candles of, in :class:`~instruments.models.Timeframe` order
        (``1d``, ``1h``, ``1m``); an instrument without candles is missing.
    """
    order = [t.value for t in Timeframe]
    rows = Instrument.objects.filter(pk__in=[i.pk for i in instruments]).annotate(
        **{
            f"has_{n}": Exists(InstrumentOHLC.objects.filter(instrument=OuterRef("pk"), timeframe=timeframe))
            for n, timeframe in enumerate(order)
        }
    )
    found: dict[int, list[str]] = {}
    for row in rows.values("pk", *(f"has_{n}" for n in range(len(order)))):
        stored = [timeframe for n, timeframe in enumerate(order) if row[f"has_{n}"]]
        if stored:
            found[row["pk"]] = stored
    return found


def _check_timeframe(
    instruments: list[Instrument], timeframe: str, problem: Callable[[str, str], None]
) -> None:
    """``timeframe`` must be stored for every instrument that has candles (one without any is an error of
    ``instruments``, from the coverage check); the message says what each one has."""
    stored = stored_timeframes(instruments)
    lacking = [i for i in instruments if i.pk in stored and timeframe not in stored[i.pk]]
    if lacking:
        has = "; ".join(
            f"{i.coingecko_id} has {', '.join(stored.get(i.pk, [])) or 'no candles'}" for i in instruments
        )
        problem(
            "timeframe",
            f"{timeframe} candles are not stored for {', '.join(i.coingecko_id for i in lacking)} ({has}); "
            "choose a stored timeframe or import the candles (manage.py import_ohlc)",
        )


def _check_coverage(
    instruments: list[Instrument], start: date, end: date, timeframe: str, problem: Callable[[str, str], None]
) -> None:
    """Every instrument must have candles of ``timeframe`` inside ``start`` .. ``end``."""
    spans = {
        row["instrument"]: (row["first"], row["last"])
        for row in InstrumentOHLC.objects.filter(instrument__in=instruments, timeframe=timeframe)
        .values("instrument")
        .annotate(first=Min("open_time"), last=Max("open_time"))
    }
    for instrument in instruments:
        span = spans.get(instrument.pk)
        if span is None:
            problem(
                "instruments",
                f"{instrument.coingecko_id} has no stored {timeframe} candles; sync or import it",
            )
            continue
        first, last = span[0].date(), span[1].date()
        if start > last:
            problem(
                "start", f"{instrument.coingecko_id} has candles up to {last.isoformat()} only; start earlier"
            )
        elif end < first:
            problem("end", f"{instrument.coingecko_id} has candles from {first.isoformat()} only; end later")


def _check_operands(criteria: Any, timeframe: str, problem: Callable[[str, str], None]) -> bool:
    """The operands' other instruments must be stored, and a weekly operand needs a run on daily candles (a week
    counts on the daily candle of its Sunday: docs/criteria.md). Returns whether they pass."""
    passed = True
    for path, message in criteria_instruments_unknown(criteria):
        problem("criteria", f"{path}: {message}")
        passed = False
    if timeframe != Timeframe.D1:
        for path, value in criteria_operand_fields(criteria, "timeframe"):
            if value == "1w":
                problem(
                    "criteria",
                    f"{path}: a weekly operand is built from daily candles and needs a run on 1d candles; this run "
                    f"reads {timeframe} candles",
                )
                passed = False
    return passed


def _check_periods(
    instruments: list[Instrument],
    end: date,
    timeframe: str,
    criteria: Any,
    problem: Callable[[str, str], None],
) -> None:
    """No look-back period may be longer than the candles of ``timeframe`` an instrument has stored up to
    ``end`` (a weekly one counts 7 daily candles a week; one of another instrument counts that instrument's), and
    an operand's other instrument must have candles of ``timeframe`` up to ``end``."""
    named = criteria_operand_fields(criteria, "instrument")
    others = {i.coingecko_id: i for i in Instrument.objects.filter(coingecko_id__in={v for _, v in named})}
    counts = {
        row["instrument"]: row["n"]
        for row in InstrumentOHLC.objects.filter(
            instrument__in=[*instruments, *others.values()],
            timeframe=timeframe,
            open_time__lt=day_start(end) + timedelta(days=1),
        )
        .values("instrument")
        .annotate(n=Count("id"))
    }
    fewest = min(instruments, key=lambda i: (counts.get(i.pk, 0), i.symbol))
    where = f"{fewest.coingecko_id} up to {end.isoformat()}"
    kind = "daily candles" if timeframe == Timeframe.D1 else f"{timeframe} candles"
    for path, coingecko_id in named:
        if coingecko_id in others and not counts.get(others[coingecko_id].pk):
            problem(
                "criteria",
                f"{path}: {coingecko_id} has no stored {kind} up to {end.isoformat()}; sync or import it",
            )
    for path, message in periods_check(
        criteria_resolve(criteria),  # a period a parameter stands for counts at its value
        available=counts.get(fewest.pk, 0),
        where=where,
        candles=kind,
        references={
            coingecko_id: (counts.get(other.pk, 0), f"{coingecko_id} up to {end.isoformat()}")
            for coingecko_id, other in others.items()
        },
    ):
        problem("criteria", f"{path}: {message}")
