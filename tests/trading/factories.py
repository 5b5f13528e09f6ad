"""factory_boy factories that always build valid strategies and positions.

``PositionFactory.create()`` is an open long position; ``PositionFactory.create(closed=True)`` a closed one with
every exit field set and ``pnl``/``pnl_ratio`` computed as ``Position`` defines them.

Make objects with ``XFactory.create(...)`` (typed: returns the model), not ``XFactory(...)`` (factory_boy's
metaclass ``__call__`` is untyped, so mypy would take the result for a factory).
"""

# factory_boy's declarations (Sequence, LazyAttribute, SubFactory, Trait...) have untyped constructors.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from factory.declarations import LazyAttribute, LazyFunction, PostGeneration, Sequence, SubFactory, Trait
from factory.django import DjangoModelFactory

from instruments.models import Instrument
from instruments.precision import decimal_quantize
from positions.models import Position
from tests.instruments.factories import InstrumentFactory
from trading.engine.examples import sma_cross_criteria as engine_sma_cross_criteria
from trading.models import Strategy

FEE_RATE = Decimal("0.001")


# CRITERIA.md's example, as written there.
CRITERIA_MD_EXAMPLE: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "entry": {
        "all": [
            {
                "left": {"indicator": "sma", "period": 10},
                "op": "crosses_above",
                "right": {"indicator": "sma", "period": 20},
            },
            {"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 70}},
        ]
    },
    "exit": {
        "any": [
            {
                "left": {"indicator": "sma", "period": 10},
                "op": "crosses_below",
                "right": {"indicator": "sma", "period": 20},
            }
        ]
    },
    "stop_loss_ratio": 0.08,
    "take_profit_ratio": None,
    "trailing_stop_ratio": None,
    "max_holding_days": None,
    "sizing": {"method": "equity_fraction", "value": 1.0},
    "fee_rate": 0.001,
    "slippage_ratio": 0.0,
}


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


def _link_instruments(
    strategy: Strategy, create: bool, extracted: Iterable[Instrument] | None, **kwargs: object
) -> None:
    """``StrategyFactory``'s post-generation hook: link the instruments passed as ``instruments=[...]``."""
    if create and extracted:
        strategy.instruments.add(*extracted)


class StrategyFactory(DjangoModelFactory[Strategy]):
    """A disabled paper strategy with 10 000 starting cash; ``instruments=[...]`` links instruments."""

    class Meta:
        model = Strategy
        django_get_or_create = ("name",)
        skip_postgeneration_save = True

    name = Sequence(lambda n: f"strategy-{n}")
    description = "made by a test"
    criteria = LazyFunction(sma_cross_criteria)
    is_enabled = False
    starting_cash = Decimal("10000")
    # What factory_boy's @post_generation decorator makes (that decorator is untyped, so a method under it
    # would lose its types).
    instruments = PostGeneration(_link_instruments)


# The LazyAttribute helpers get factory_boy's Resolver (the attributes resolved so far), which is untyped.
def _exit_fee(position: Any) -> Decimal:
    return decimal_quantize(position.exit_price * position.quantity * FEE_RATE)


def _pnl(position: Any) -> Decimal:
    cost = position.entry_price * position.quantity + position.entry_fee
    return decimal_quantize(position.exit_price * position.quantity - position.exit_fee - cost)


def _pnl_ratio(position: Any) -> Decimal:
    cost = position.entry_price * position.quantity + position.entry_fee
    return decimal_quantize(position.pnl / cost)


class PositionFactory(DjangoModelFactory[Position]):
    """An open long position of 1 unit entered at 100 with a 0.1 % fee; ``closed=True`` exits it at 110."""

    class Meta:
        model = Position

    class Params:
        closed = Trait(
            status=Position.Status.CLOSED,
            exit_price=Decimal("110"),
            exit_at=LazyAttribute(lambda o: o.entry_at + timedelta(days=3)),
            exit_fee=LazyAttribute(_exit_fee),
            exit_reason=Position.ExitReason.SIGNAL,
            pnl=LazyAttribute(_pnl),
            pnl_ratio=LazyAttribute(_pnl_ratio),
        )

    strategy = SubFactory(StrategyFactory)
    instrument = SubFactory(InstrumentFactory)
    side = Position.Side.LONG
    status = Position.Status.OPEN
    quantity = Decimal("1")
    entry_price = Decimal("100")
    entry_at = Sequence(lambda n: datetime(2024, 3, 1, tzinfo=UTC) + timedelta(days=n))
    entry_fee = LazyAttribute(lambda o: decimal_quantize(o.entry_price * o.quantity * FEE_RATE))
