"""A paper position's stop and take-profit rest as ``Order`` rows (purpose ``protection``), as an exchange holds them
(issue 13, item 1): placed when the position opens, replaced when the trailing level rises, the one crossed filled
and the other cancelled when the position closes, both cancelled by any other exit.

Replayed over synthetic daily candles (the replay broker fills at each day's stored open): no price source needed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from instruments.models import Instrument, InstrumentOHLC
from positions.cycle.replay import replay
from positions.models import Order, Position
from tests.instruments.factories import InstrumentFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db
FIRST = date(2024, 1, 1)
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}


def coin(rows: list[tuple[float, float, float, float]]) -> Instrument:
    """Bitcoin with one daily candle per row (open, high, low, close) from 2024-01-01 on."""
    instrument: Instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    for n, (o, h, low, c) in enumerate(rows):
        InstrumentOHLC.objects.create(
            instrument=instrument,
            timeframe="1d",
            open_time=datetime.combine(FIRST + timedelta(days=n), datetime.min.time(), tzinfo=UTC),
            open=Decimal(str(o)),
            high=Decimal(str(h)),
            low=Decimal(str(low)),
            close=Decimal(str(c)),
            source="test",
        )
    return instrument


def replayed(instrument: Instrument, days: int, **criteria: Any) -> list[Position]:
    """Replay a strategy entering on every candle from 2024-01-02 for ``days`` days; its positions in entry order."""
    document = {
        "version": 1,
        "side": "long",
        "entry": ALWAYS,
        "fee_rate": 0.0,
        "slippage_ratio": 0.0,
        **criteria,
    }
    strategy = Strategy.objects.create(name="s", criteria=document, starting_cash=Decimal(1000))
    strategy.instruments.set([instrument])
    start = FIRST + timedelta(days=1)
    account = replay(strategy=strategy, start=start, end=start + timedelta(days=days - 1)).account
    return list(Position.objects.filter(strategy=account).order_by("entry_at"))


def protection(position: Position) -> list[tuple[str, Decimal | None, str]]:
    return [
        (o.type, o.price, o.status)
        for o in Order.objects.filter(position=position, purpose="protection").order_by("id")
    ]


def test_a_trailing_stop_is_replaced_as_it_rises_and_the_crossed_one_fills() -> None:
    # Entered at the 01-02 open 100 (stop 90, take-profit 150); the 01-02 and 01-03 highs raise the trailing level
    # to 99 and 108; candle 01-04 goes through 108 and the stop fills there, cancelling the take-profit.
    instrument = coin([(100, 100, 100, 100), (100, 110, 99, 105), (105, 120, 104, 115), (115, 116, 100, 101)])
    position = replayed(instrument, 4, trailing_stop_ratio=0.1, take_profit_ratio=0.5)[0]

    assert (position.status, position.exit_reason, position.exit_price) == (
        "closed",
        "trailing_stop",
        Decimal(108),
    )
    assert protection(position) == [
        ("stop_loss", Decimal(90), "canceled"),
        ("take_profit", Decimal(150), "canceled"),
        ("stop_loss", Decimal(99), "canceled"),
        ("stop_loss", Decimal(108), "filled"),
    ]
    filled = Order.objects.get(position=position, status="filled")
    assert (filled.filled_quantity, filled.average_price, filled.exit_reason) == (
        position.quantity,
        Decimal(108),
        "trailing_stop",
    )
    assert filled.filled_at == datetime(2024, 1, 4, tzinfo=UTC)  # a risk exit is timed at its candle's open


def test_a_take_profit_fills_and_the_stop_is_cancelled() -> None:
    instrument = coin([(100, 100, 100, 100), (100, 126, 99, 105), (105, 106, 104, 105)])
    position = replayed(instrument, 2, stop_loss_ratio=0.05, take_profit_ratio=0.25)[0]

    assert (position.exit_reason, position.exit_price) == ("take_profit", Decimal(125))
    assert protection(position) == [
        ("stop_loss", Decimal(95), "canceled"),
        ("take_profit", Decimal(125), "filled"),
    ]


def test_a_signal_exit_cancels_both_resting_orders() -> None:
    instrument = coin([(100, 100, 100, 100), (100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100)])
    position = replayed(instrument, 3, exit=ALWAYS, stop_loss_ratio=0.05, take_profit_ratio=0.1)[0]

    assert position.exit_reason == "signal"
    assert {status for _, _, status in protection(position)} == {"canceled"}
    assert len(protection(position)) == 2
    assert not Order.objects.live().filter(position__status="closed").exists()


def test_a_trailing_stop_that_did_not_rise_is_not_replaced() -> None:
    """Each step walks the open position again: a trailing level that did not move must leave the resting stop
    alone, whatever the float rounding of prices like these (one order a move, not one a step)."""
    instrument = coin(
        [
            (38_000.0, 38_100.0, 37_900.0, 38_050.0),
            (
                38_701.86126,
                43_044.123457,
                38_500.0,
                42_000.0,
            ),  # entry at the open; the high sets the trailing level
            (42_000.0, 42_500.987654, 41_000.0, 41_500.0),  # lower highs, lows above the level: nothing moves
            (41_500.0, 42_100.0, 40_900.0, 41_000.0),
            (41_000.0, 41_900.0, 40_800.0, 41_200.0),
        ]
    )
    position = replayed(instrument, 4, trailing_stop_ratio=0.07)[0]

    assert position.status == "open"
    orders = protection(position)
    assert [(kind, status) for kind, _, status in orders] == [
        ("stop_loss", "canceled"),
        ("stop_loss", "open"),
    ]
    moved = orders[1][1]
    assert moved is not None and abs(moved - Decimal("43044.123457") * Decimal("0.93")) < Decimal("1e-6")
