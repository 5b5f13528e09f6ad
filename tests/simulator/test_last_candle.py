"""The last candle of a simulation is checked for risk exits before what is still open closes ``end_of_data``.

Issue 13, item 2, on the shipped history (bitcoin: Binance BTC/USDT hourly candles rolled up to days): SMA 10/20
cross with an 8 % stop-loss from 2020-09-20 to 2020-09-23 enters at the 09-20 open (the cross holds on the 09-19
candle; the issue's "09-21" was a slip: 11,080.64 is the 09-20 open), and the 09-23 candle's low goes below the
stop, so the trade ends ``stop_loss`` at the stop, not ``end_of_data`` at the 09-23 close.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from instruments.models import InstrumentOHLC, Timeframe
from positions.cycle.replay import replay
from positions.models import Position
from simulator.launch import simulation_start
from simulator.models import RunStatus
from simulator.services.requests import simulation_request_check
from tests.trading.factories import sma_cross_criteria
from trading.models import Strategy

pytestmark = pytest.mark.django_db

START, END = date(2020, 9, 20), date(2020, 9, 23)
CASH = Decimal("10000")
CRITERIA = sma_cross_criteria(stop_loss_ratio=0.08)  # fee_rate 0.001, no slippage, all of the equity


def candle(day: date) -> InstrumentOHLC:
    """The stored daily bitcoin candle that opens on ``day``."""
    return InstrumentOHLC.objects.get(
        instrument__coingecko_id="bitcoin",
        timeframe=Timeframe.D1,
        open_time=datetime(day.year, day.month, day.day, tzinfo=UTC),
    )


def test_a_stop_hit_on_the_last_candle_exits_stop_loss_at_the_stop(shipped_history: None) -> None:
    entry_candle, last = candle(START), candle(END)
    entry_price = entry_candle.open
    stop = entry_price * (1 - Decimal("0.08"))
    # The case the issue describes, read from the candles themselves: the last candle goes through the stop
    # without opening below it (so the fill is at the stop, not at a gapped open) and closes above it.
    assert entry_price == Decimal("11080.64")
    assert last.open > stop > last.low == Decimal("10136.82")
    # ... and it is the first candle that does: the stop is active from the entry candle on.
    assert all(candle(date(2020, 9, day)).low > stop for day in (20, 21, 22))
    assert last.close == Decimal("10241.46") > stop

    simulation = simulation_start(
        request=simulation_request_check(
            instruments=["bitcoin"], start=START, end=END, starting_cash=CASH, criteria=CRITERIA
        )
    )

    assert simulation.status == RunStatus.DONE
    [trade] = simulation.trades
    assert trade["entry_at"] == "2020-09-20T00:00:00Z"
    assert Decimal(trade["entry_price"]) == entry_price
    assert trade["exit_reason"] == "stop_loss"
    assert trade["exit_at"] == "2020-09-23T00:00:00Z"  # a risk exit is timed at its candle's open
    assert Decimal(trade["exit_price"]).quantize(Decimal("0.01")) == Decimal("10194.19")
    assert Decimal(trade["exit_price"]) == pytest.approx(stop, rel=Decimal("1e-12"))
    # CRITERIA.md "Fills" and "Sizing", fee f = 0.001, no slippage, all of the cash:
    #   quantity q = cash / (entry * (1 + f)); pnl = q * stop * (1 - f) - cash (the cost is the cash, fee included).
    fee_rate = Decimal("0.001")
    quantity = CASH / (entry_price * (1 + fee_rate))
    pnl = quantity * stop * (1 - fee_rate) - CASH
    assert pnl.quantize(Decimal("0.01")) == Decimal("-818.38")
    assert Decimal(trade["pnl"]) == pytest.approx(pnl, abs=Decimal("1e-6"))
    assert Decimal(simulation.statistics["final_equity"]) == pytest.approx(CASH + pnl, abs=Decimal("1e-6"))


def test_the_live_cycle_settles_the_same_stop_at_the_next_day(shipped_history: None) -> None:
    """The live cycle checks a candle once it has closed: the 09-23 candle at the 09-24 boundary. Replayed to
    09-23 the position is still open (its last candle has not closed yet); replayed one day further it closes
    exactly as the simulation of 09-20 .. 09-23 reports."""
    simulation = simulation_start(
        request=simulation_request_check(
            instruments=["bitcoin"], start=START, end=END, starting_cash=CASH, criteria=CRITERIA
        )
    )
    [trade] = simulation.trades
    strategy = Strategy.objects.create(name="sma-stop", criteria=CRITERIA, starting_cash=CASH)
    strategy.instruments.set([candle(END).instrument])

    [held] = Position.objects.for_strategy(replay(strategy=strategy, start=START, end=END).account)
    [closed] = Position.objects.for_strategy(
        replay(strategy=strategy, start=START, end=date(2020, 9, 24)).account
    )

    assert held.status == "open"
    assert closed.status == "closed" and closed.exit_reason == trade["exit_reason"] == "stop_loss"
    assert closed.entry_at.isoformat().replace("+00:00", "Z") == trade["entry_at"]
    assert closed.exit_at is not None and closed.exit_price is not None and closed.pnl is not None
    assert closed.exit_at.isoformat().replace("+00:00", "Z") == trade["exit_at"]
    assert closed.exit_price == pytest.approx(Decimal(trade["exit_price"]), rel=Decimal("1e-9"))
    assert closed.pnl == pytest.approx(Decimal(trade["pnl"]), abs=Decimal("1e-6"))
