"""factory_boy factories that always build valid instruments and candles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory

from instruments.models import Instrument, InstrumentOHLC, Timeframe


class InstrumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Instrument
        django_get_or_create = ("coingecko_id",)

    coingecko_id = factory.Sequence(lambda n: f"coin-{n}")
    symbol = factory.LazyAttribute(lambda o: o.coingecko_id[:6].upper())
    name = factory.LazyAttribute(lambda o: o.coingecko_id.title())
    quote_currency = "usd"


class CandleFactory(factory.django.DjangoModelFactory):
    """A daily candle: open 100 + n, high 5 above the body, low 5 below, close open + 1."""

    class Meta:
        model = InstrumentOHLC

    instrument = factory.SubFactory(InstrumentFactory)
    timeframe = Timeframe.D1
    open_time = factory.Sequence(lambda n: datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n))
    open = factory.Sequence(lambda n: Decimal(100 + n))
    close = factory.LazyAttribute(lambda o: o.open + 1)
    high = factory.LazyAttribute(lambda o: max(o.open, o.close) + 5)
    low = factory.LazyAttribute(lambda o: min(o.open, o.close) - 5)
    volume = Decimal("10")
    source = "factory"
