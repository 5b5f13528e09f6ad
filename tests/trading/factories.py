"""factory_boy factories that always build valid strategies and positions.

``PositionFactory()`` is an open long position; ``PositionFactory(closed=True)`` a closed one with every exit
field set and ``pnl``/``pnl_ratio`` computed as ``Position`` defines them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import factory

from instruments.precision import price_quantize
from positions.models import Position
from tests.instruments.factories import InstrumentFactory
from trading.engine.examples import sma_cross_criteria as engine_sma_cross_criteria
from trading.models import Strategy

FEE_RATE = Decimal("0.001")


def sma_cross_criteria(**overrides: Any) -> dict[str, Any]:
    """A valid criteria document: SMA(10) crosses above SMA(20), exit on the cross below; fee 0.1 %, no slippage."""
    document: dict[str, Any] = {
        **engine_sma_cross_criteria(),
        "stop_loss_ratio": 0.08,
        "sizing": {"method": "equity_fraction", "value": 1.0},
        "fee_rate": 0.001,
        "slippage_ratio": 0.0,
    }
    document.update(overrides)
    return document


class StrategyFactory(factory.django.DjangoModelFactory):
    """A disabled paper strategy with 10 000 starting cash; ``instruments=[...]`` links instruments."""

    class Meta:
        model = Strategy
        django_get_or_create = ("name",)
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"strategy-{n}")
    description = "made by a test"
    criteria = factory.LazyFunction(sma_cross_criteria)
    is_enabled = False
    starting_cash = Decimal("10000")

    @factory.post_generation
    def instruments(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            self.instruments.add(*extracted)


def _exit_fee(position: Any) -> Decimal:
    return price_quantize(position.exit_price * position.quantity * FEE_RATE)


def _pnl(position: Any) -> Decimal:
    cost = position.entry_price * position.quantity + position.entry_fee
    return price_quantize(position.exit_price * position.quantity - position.exit_fee - cost)


def _pnl_ratio(position: Any) -> Decimal:
    cost = position.entry_price * position.quantity + position.entry_fee
    return price_quantize(position.pnl / cost)


class PositionFactory(factory.django.DjangoModelFactory):
    """An open long position of 1 unit entered at 100 with a 0.1 % fee; ``closed=True`` exits it at 110."""

    class Meta:
        model = Position

    class Params:
        closed = factory.Trait(
            status=Position.Status.CLOSED,
            exit_price=Decimal("110"),
            exit_at=factory.LazyAttribute(lambda o: o.entry_at + timedelta(days=3)),
            exit_fee=factory.LazyAttribute(_exit_fee),
            exit_reason=Position.ExitReason.SIGNAL,
            pnl=factory.LazyAttribute(_pnl),
            pnl_ratio=factory.LazyAttribute(_pnl_ratio),
        )

    strategy = factory.SubFactory(StrategyFactory)
    instrument = factory.SubFactory(InstrumentFactory)
    side = Position.Side.LONG
    status = Position.Status.OPEN
    quantity = Decimal("1")
    entry_price = Decimal("100")
    entry_at = factory.Sequence(lambda n: datetime(2024, 3, 1, tzinfo=UTC) + timedelta(days=n))
    entry_fee = factory.LazyAttribute(lambda o: price_quantize(o.entry_price * o.quantity * FEE_RATE))
