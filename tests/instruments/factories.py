"""factory_boy factories that always build valid instruments and candles.

Make objects with ``InstrumentFactory.create(...)`` (typed: returns an ``Instrument``), not ``InstrumentFactory()``
(factory_boy's metaclass ``__call__`` is untyped, so mypy would take the result for a factory).
"""

# factory_boy's declarations (Sequence, LazyAttribute, SubFactory) have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from factory.declarations import LazyAttribute, Sequence, SubFactory
from factory.django import DjangoModelFactory

from instruments.models import Instrument, InstrumentOHLC, Timeframe


class InstrumentFactory(DjangoModelFactory[Instrument]):
    class Meta:
        model = Instrument
        django_get_or_create = ("coingecko_id",)

    coingecko_id = Sequence(lambda n: f"coin-{n}")
    symbol = LazyAttribute(lambda o: o.coingecko_id[:6].upper())
    name = LazyAttribute(lambda o: o.coingecko_id.title())
    quote_currency = "usd"


class CandleFactory(DjangoModelFactory[InstrumentOHLC]):
    """A daily candle: open 100 + n, high 5 above the body, low 5 below, close open + 1."""

    class Meta:
        model = InstrumentOHLC

    instrument = SubFactory(InstrumentFactory)
    timeframe = Timeframe.D1
    open_time = Sequence(lambda n: datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n))
    open = Sequence(lambda n: Decimal(100 + n))
    close = LazyAttribute(lambda o: o.open + 1)
    high = LazyAttribute(lambda o: max(o.open, o.close) + 5)
    low = LazyAttribute(lambda o: min(o.open, o.close) - 5)
    volume = Decimal("10")
    source = "factory"


def flat_daily_candles(
    instrument: Instrument,
    first: date,
    days: int,
    *,
    open_price: Decimal = Decimal(100),
    high: Decimal = Decimal(110),
    low: Decimal = Decimal(90),
    close: Decimal = Decimal(100),
) -> list[InstrumentOHLC]:
    """Store ``days`` daily candles of ``instrument`` from ``first`` (00:00 UTC each), all with the same OHLC.

    Defaults: open 100, high 110, low 90, close 100 (a flat market whose every day crosses 10% either way).
    """
    return [
        CandleFactory.create(
            instrument=instrument,
            open_time=datetime(day.year, day.month, day.day, tzinfo=UTC),
            open=open_price,
            high=high,
            low=low,
            close=close,
            source="test",
        )
        for day in (first + timedelta(days=n) for n in range(days))
    ]
