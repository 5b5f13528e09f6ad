"""The live open and close steps with criteria on another instrument (issue 16): an altcoin entered while
Bitcoin closes above its SMA(3); without Bitcoin's candle of the day before ``as_of`` the signal is not known."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from instruments.models import Instrument, InstrumentOHLC
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.models import Position, StrategyStep
from tests.fakes.coingecko import FakeCoinGecko
from tests.instruments.factories import InstrumentFactory
from tests.positions.cycle.test_cycle import daily
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime(2024, 1, 11, 0, 40, tzinfo=UTC)  # as_of 2024-01-11: the candles of 2024-01-10 have closed
AS_OF = date(2024, 1, 11)
BTC_ABOVE_SMA = {
    "left": {"indicator": "close", "instrument": "bitcoin"},
    "op": ">",
    "right": {"indicator": "sma", "period": 3, "instrument": "bitcoin"},
}
BTC_BELOW_SMA = {**BTC_ABOVE_SMA, "op": "<"}
MISSING = "no candle of bitcoin (named by the criteria) for the day before as_of"


@pytest.fixture
def altcoin(db: None) -> Instrument:
    coin: Instrument = InstrumentFactory.create(coingecko_id="altcoin", symbol="ALT")
    for n in range(10):  # 2024-01-01 .. 2024-01-10, flat at 10
        daily(coin, date(2024, 1, 1) + timedelta(days=n), "10", "11", "9", "10")
    return coin


def bitcoin_closes(closes: list[str]) -> Instrument:
    """Bitcoin (not traded) with these closes from 2024-01-01 on."""
    coin: Instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    for n, close in enumerate(closes):
        daily(
            coin, date(2024, 1, 1) + timedelta(days=n), close, str(int(close) + 5), str(int(close) - 5), close
        )
    return coin


def strategy(altcoin: Instrument) -> Strategy:
    document = {
        "version": 1,
        "side": "long",
        "entry": BTC_ABOVE_SMA,
        "exit": BTC_BELOW_SMA,
        "fee_rate": 0.0,
        "slippage_ratio": 0.0,
    }
    made = Strategy.objects.create(name="alts while btc trends", criteria=document, is_enabled=True)
    made.instruments.set([altcoin])
    return made


@time_machine.travel(NOW, tick=False)
def test_the_altcoin_is_entered_when_bitcoin_closes_above_its_sma(
    altcoin: Instrument, fake_coingecko: FakeCoinGecko
) -> None:
    # 01-08 .. 01-10 closes 100, 100, 103: SMA(3) 101, 103 > 101.
    bitcoin_closes(["100"] * 9 + ["103"])
    strategy(altcoin)
    summary = sync_new_trades(as_of=AS_OF)  # the fake answers 404 for prices: the newest close, 10
    position = Position.objects.get()
    assert (position.instrument, position.entry_price) == (altcoin, Decimal(10))
    assert summary["results"][0]["action"] == "opened"


@time_machine.travel(NOW, tick=False)
def test_no_entry_when_bitcoin_closes_below_its_sma(
    altcoin: Instrument, fake_coingecko: FakeCoinGecko
) -> None:
    # 01-10 closes 97 < SMA(3) (100 + 100 + 97) / 3 = 99: the altcoin's own candles are the same as above.
    bitcoin_closes(["100"] * 9 + ["97"])
    strategy(altcoin)
    summary = sync_new_trades(as_of=AS_OF)
    assert not Position.objects.exists()
    assert summary["results"][0]["reason"] == "no entry signal"


def test_without_bitcoins_candle_of_yesterday_the_signal_is_not_known_until_it_is_collected(
    altcoin: Instrument, fake_coingecko: FakeCoinGecko
) -> None:
    bitcoin = bitcoin_closes(["100"] * 9)  # 01-01 .. 01-09: no 01-10 yet (its 01-09 close was above nothing)
    made = strategy(altcoin)
    with time_machine.travel(NOW, tick=False):
        summary = sync_new_trades(as_of=AS_OF)
    assert not Position.objects.exists()
    (line,) = summary["results"]
    assert (line["instrument"], line["action"]) == ("altcoin", "none")
    assert line["reason"].startswith(MISSING)
    assert not StrategyStep.objects.filter(strategy=made, step="open").exists()  # left for a later run

    daily(bitcoin, date(2024, 1, 10), "103", "108", "98", "103")  # the collect brings it: 103 > 101
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        later = sync_new_trades(as_of=AS_OF)
    assert later["results"][0]["action"] == "opened"
    assert Position.objects.get().instrument == altcoin


def test_the_close_step_waits_for_bitcoins_candle_too(
    altcoin: Instrument, fake_coingecko: FakeCoinGecko
) -> None:
    bitcoin = bitcoin_closes(["100"] * 9 + ["103"])
    strategy(altcoin)
    with time_machine.travel(NOW, tick=False):
        sync_new_trades(as_of=AS_OF)
    daily(altcoin, date(2024, 1, 11), "10", "11", "9", "10")  # the altcoin's candle of 01-11, not Bitcoin's
    with time_machine.travel(NOW + timedelta(days=1), tick=False):
        waiting = sync_close_positions(as_of=date(2024, 1, 12))
    (line,) = waiting["results"]
    assert line["action"] == "none" and line["reason"].startswith(MISSING)
    assert Position.objects.get().status == "open"

    # Bitcoin's 01-11 close 90 < SMA(3) (100 + 103 + 90) / 3 = 97.67: the exit signal, at the newest close 10.
    daily(bitcoin, date(2024, 1, 11), "90", "95", "85", "90")
    with time_machine.travel(NOW + timedelta(days=1, minutes=10), tick=False):
        closed = sync_close_positions(as_of=date(2024, 1, 12))
    assert closed["results"][0]["action"] == "closed"
    position = Position.objects.get()
    assert (position.status, position.exit_reason) == ("closed", "signal")
    assert InstrumentOHLC.objects.filter(instrument=bitcoin).count() == 11
