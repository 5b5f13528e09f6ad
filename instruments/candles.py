"""The candle as a domain value, shared by every candle source (CoinGecko, files, exchanges).

Pure Python (no Django): sources parse their wire or file formats into :class:`Candle` values, which refuse
to exist when they break an OHLC invariant, and :func:`candles_rollup` turns finer candles (or price points)
into coarser ones. The database enforces the same invariants again with constraints.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from barter_site.errors import ApplicationError

#: Timeframes a candle may have, with their length. ``1d`` is what the cycle trades on.
TIMEFRAMES: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}


class CandleInvalidError(ApplicationError):
    """A candle breaks an OHLC invariant (``high < low``, a price <= 0, a naive time...)."""


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLC candle.

    Attributes:
        open_time: aware UTC datetime at which the candle starts.
        open, high, low, close: quote-currency prices, ``Decimal``, > 0, with
            ``low <= min(open, close)`` and ``high >= max(open, close)``.
        volume: base-currency volume, ``Decimal`` >= 0, or ``None`` where the source gives none
            (CoinGecko's ``/ohlc`` has no volume).

    Raises:
        CandleInvalidError: at construction, naming the broken invariant and the values received.
    """

    open_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal | None = None

    def __post_init__(self) -> None:
        problem = candle_problem(self)
        if problem:
            raise CandleInvalidError(
                f"invalid candle at {self.open_time.isoformat() if self.open_time else self.open_time}: "
                f"{problem}",
                extra={"open_time": str(self.open_time)},
            )


def candle_problem(candle: Candle) -> str:
    """Return why ``candle`` breaks an invariant, or ``""`` when it is valid. Does not raise."""
    if candle.open_time.tzinfo is None or candle.open_time.utcoffset() != timedelta(0):
        return f"open_time must be an aware UTC datetime, was {candle.open_time!r}"
    prices = {"open": candle.open, "high": candle.high, "low": candle.low, "close": candle.close}
    for name, value in prices.items():
        if not isinstance(value, Decimal):
            return f"{name} must be a Decimal, was {type(value).__name__} {value!r}"
        if not value.is_finite() or value <= 0:
            return f"{name} must be a finite price > 0, was {value}"
    if candle.high < candle.low:
        return f"high {candle.high} is below low {candle.low}"
    if candle.low > min(candle.open, candle.close):
        return f"low {candle.low} is above min(open {candle.open}, close {candle.close})"
    if candle.high < max(candle.open, candle.close):
        return f"high {candle.high} is below max(open {candle.open}, close {candle.close})"
    if candle.volume is not None and (not candle.volume.is_finite() or candle.volume < 0):
        return f"volume must be >= 0 or empty, was {candle.volume}"
    return ""


def floor_time(moment: datetime, period: timedelta) -> datetime:
    """Return the start of the UTC period (``1m``, ``1h``, ``1d``, ...) that contains ``moment``.

    Args:
        moment: aware datetime.
        period: a whole number of seconds that divides a day (periods align to 00:00 UTC).
    """
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    step = int(period.total_seconds())
    seconds = int((moment - epoch).total_seconds())
    return epoch + timedelta(seconds=seconds - seconds % step)


@dataclass(frozen=True, slots=True)
class Rollup:
    """What :func:`candles_rollup` made.

    Attributes:
        candles: the complete coarse candles, in time order.
        incomplete: open times of the periods that had data but not enough to cover them, in time order.
    """

    candles: list[Candle]
    incomplete: list[datetime]


def candles_rollup(
    candles: Iterable[Candle],
    *,
    period: timedelta,
    span: timedelta,
    max_gap: timedelta = timedelta(0),
) -> Rollup:
    """Roll finer candles (or price points) up into candles of ``period``.

    A coarse candle takes the first open, the highest high, the lowest low, the last close, and the sum of the
    volumes (``None`` when any input has none). It is *complete* when its inputs cover the period: no
    uncovered stretch longer than ``max_gap`` at its start, between inputs, or at its end, where input ``i``
    covers ``[open_time, open_time + span)``. Incomplete periods are left out and reported.

    Args:
        candles: finer candles in any order; duplicates of one ``open_time`` keep the last one given.
        period: the coarse length, e.g. one day; periods start at multiples of it from 00:00 UTC.
        span: how long one input covers: the fine timeframe (30 minutes for CoinGecko's ``days=2`` candles,
            one hour for an hourly file) or zero for instantaneous price points (``market_chart``).
        max_gap: the longest uncovered stretch still accepted; zero demands full coverage.

    Returns:
        :class:`Rollup` with the complete candles and the open times of the incomplete periods.
    """
    unique = {c.open_time: c for c in candles}
    ordered = [unique[t] for t in sorted(unique)]
    buckets: dict[datetime, list[Candle]] = {}
    for candle in ordered:
        buckets.setdefault(floor_time(candle.open_time, period), []).append(candle)

    complete: list[Candle] = []
    incomplete: list[datetime] = []
    for start, group in buckets.items():
        if _covers(group, start=start, end=start + period, span=span, max_gap=max_gap):
            complete.append(_merge(start, group))
        else:
            incomplete.append(start)
    return Rollup(candles=complete, incomplete=incomplete)


def _covers(
    group: Sequence[Candle], *, start: datetime, end: datetime, span: timedelta, max_gap: timedelta
) -> bool:
    covered_until = start
    for candle in group:
        if candle.open_time - covered_until > max_gap:
            return False
        covered_until = max(covered_until, candle.open_time + span)
    return end - covered_until <= max_gap


def _merge(start: datetime, group: Sequence[Candle]) -> Candle:
    volumes = [c.volume for c in group]
    return Candle(
        open_time=start,
        open=group[0].open,
        high=max(c.high for c in group),
        low=min(c.low for c in group),
        close=group[-1].close,
        volume=None
        if any(v is None for v in volumes)
        else sum((v for v in volumes if v is not None), Decimal(0)),
    )


def price_point(at: datetime, price: Decimal) -> Candle:
    """Return a price observed at one moment as a zero-length candle (open = high = low = close = price)."""
    return Candle(open_time=at, open=price, high=price, low=price, close=price)
