"""The daily audit of an exchange strategy (positions.audit): fills the fake Binance makes at a known slippage over
the day's stored open, with their fee paid in BNB, are reported with exactly that slippage and that fee."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import responses
import time_machine
from pytest_django import Settings

from instruments.models import Instrument
from instruments.sources.exchange.client import exchange_clients_reset
from positions.audit import audit_day, cumulative_drift
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.models import Order, Position
from runs.models import History, HistoryKind
from tests.fakes.exchange_orders import DUMMY_KEY, DUMMY_SECRET, FakeBinance
from tests.instruments.factories import InstrumentFactory, flat_daily_candles
from trading.models import Strategy

pytestmark = pytest.mark.django_db
ENTRY_DAY, EXIT_DAY = date(2024, 1, 11), date(2024, 1, 12)
OPEN = Decimal("100")  # every stored candle opens at 100
SLIPPAGE_RATIO = Decimal("0.0005")  # the strategy's model: 5 bps
BUY_SLIPPAGE = Decimal("0.0025")  # the fake fills the buy at open * (1 + 0.0025)
SELL_SLIPPAGE = Decimal("0.003")  # and the sell at open * (1 - 0.003)
BNB_FEE = Decimal("0.00075")  # BNB paid per fill, the whole fee


def _daily(instrument: Instrument, day: date, days: int = 1) -> None:
    """Candles opening at ``OPEN`` whose range (99 .. 101) crosses no stop or take-profit of these tests."""
    flat_daily_candles(instrument, day, days, open_price=OPEN, high=Decimal("101"), low=Decimal("99"))


@pytest.fixture(autouse=True)
def dummy_keys(settings: Settings) -> Iterator[None]:
    settings.BARTER_EXCHANGES = {
        "binance": {"api_key": DUMMY_KEY, "secret": DUMMY_SECRET, "password": "", "sandbox": False}
    }
    settings.BARTER_TRADING_ENABLED = True
    exchange_clients_reset()
    yield
    exchange_clients_reset()


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeBinance(mock, usdt="1000")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_an_exchange_strategys_slippage_and_bnb_fee_are_audited_exactly(fake: FakeBinance) -> None:
    coin = InstrumentFactory.create(
        coingecko_id="bitcoin",
        symbol="BTC",
        candle_source="exchange",
        exchange_id="binance",
        market_symbol="BTC/USDT",
    )
    _daily(coin, date(2024, 1, 1), days=10)  # 2024-01-01 .. 2024-01-10
    strategy = Strategy.objects.create(
        name="live-binance",
        criteria={
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
            "exit": None,
            "max_holding_days": 1,
            "fee_rate": 0.001,
            "slippage_ratio": float(SLIPPAGE_RATIO),
            "sizing": {"method": "equity_fraction", "value": 0.5},
        },
        is_enabled=True,
        starting_cash=Decimal(1000),
        execution_backend=Strategy.ExecutionBackend.EXCHANGE,
        exchange_id="binance",
    )
    strategy.instruments.set([coin])
    fake.bnb_fee = BNB_FEE
    buy_price = OPEN * (1 + BUY_SLIPPAGE)  # 100.25
    sell_price = OPEN * (1 - SELL_SLIPPAGE)  # 99.70

    # Day 1: the open step buys at 100.25 (the stored open of the day is 100).
    at = datetime(2024, 1, 11, 0, 40, tzinfo=UTC)
    fake.prices[fake.market_id], fake.time_ms = buy_price, _ms(at)
    with time_machine.travel(at, tick=False):
        sync_new_trades(as_of=ENTRY_DAY)
        sync_close_positions(as_of=ENTRY_DAY)
    _daily(coin, ENTRY_DAY)  # the collect of the next day stores the candle of the first
    # Day 2: held one day, the close step sells at 99.70 (maximum holding).
    at = datetime(2024, 1, 12, 0, 40, tzinfo=UTC)
    fake.prices[fake.market_id], fake.time_ms = sell_price, _ms(at)
    with time_machine.travel(at, tick=False):
        sync_new_trades(as_of=EXIT_DAY)
        sync_close_positions(as_of=EXIT_DAY)
    _daily(coin, EXIT_DAY)
    position = Position.objects.get(strategy=strategy)
    assert (position.status, position.exit_reason) == ("closed", "max_holding")
    assert (position.entry_price, position.exit_price) == (buy_price, sell_price)
    assert position.entry_fee == 0 and position.exit_fee == 0  # the fees were paid in BNB
    assert Order.objects.get(purpose="entry").other_fees == {"BNB": str(BNB_FEE)}
    quantity = position.quantity

    with time_machine.travel(datetime(2024, 1, 13, 1, 0, tzinfo=UTC), tick=False):
        (entry_day,) = audit_day(as_of=ENTRY_DAY)
        (exit_day,) = audit_day(as_of=EXIT_DAY)

    # The buy: modelled at 100 * (1 + 0.0005) = 100.05; paid 100.25: (100.25 / 100.05 - 1) * 10,000 bps.
    modelled_buy = OPEN * (1 + SLIPPAGE_RATIO)
    buy_bps = (buy_price / modelled_buy - 1) * 10_000
    assert entry_day.signal_mismatches == 0 and entry_day.open_mismatches == 0
    assert entry_day.live_entries == entry_day.backtest_entries == ["bitcoin"]
    [buy] = entry_day.fills
    assert Decimal(buy["modelled_price"]) == modelled_buy
    assert Decimal(buy["price"]) == buy_price
    assert entry_day.slippage_bps == buy_bps.quantize(Decimal("0.0001"))
    assert entry_day.slippage_bps == Decimal("19.9900")  # 19.99000499...: paid more than the model
    assert entry_day.slippage_cost == ((buy_price - modelled_buy) * quantity).quantize(Decimal("0.000001"))
    # The fee: the model's 0.1 % of the modelled fill in USDT; the real one was 0 USDT and 0.00075 BNB.
    modelled_fee = Decimal("0.001") * modelled_buy * quantity
    assert entry_day.real_fee == 0
    assert entry_day.modelled_fee == modelled_fee.quantize(Decimal("0.000001"))
    assert entry_day.fee_drift == -modelled_fee.quantize(Decimal("0.000001"))
    assert entry_day.other_fees == {"BNB": str(BNB_FEE)}
    assert buy["other_fees"] == {"BNB": str(BNB_FEE)}
    # Cash at the end of the day: live paid 100.25 a unit and no USDT fee.
    assert entry_day.cash_live == (1000 - buy_price * quantity).quantize(Decimal("0.000001"))
    # The backtest spent half its equity, fee included (sizing equity_fraction 0.5): 500 of 1000.
    assert entry_day.cash_backtest == 500
    assert entry_day.cash_drift == entry_day.cash_live - 500

    # The sell: modelled at 100 * (1 - 0.0005) = 99.95; got 99.70: (1 - 99.70 / 99.95) * 10,000 bps.
    modelled_sell = OPEN * (1 - SLIPPAGE_RATIO)
    sell_bps = (1 - sell_price / modelled_sell) * 10_000
    assert exit_day.signal_mismatches == 0
    assert (
        exit_day.live_exits == exit_day.backtest_exits == [{"instrument": "bitcoin", "reason": "max_holding"}]
    )
    [sell] = exit_day.fills
    assert (sell["side"], Decimal(sell["modelled_price"])) == ("sell", modelled_sell)
    assert exit_day.slippage_bps == sell_bps.quantize(Decimal("0.0001")) == Decimal("25.0125")
    assert exit_day.other_fees == {"BNB": str(BNB_FEE)}
    assert exit_day.open_live == exit_day.open_backtest == []

    drift = cumulative_drift(strategy)
    assert drift["days"] == 2 and drift["fills"] == 2
    assert drift["other_fees"] == {"BNB": 2 * BNB_FEE}
    assert drift["fee_drift"] == entry_day.fee_drift + exit_day.fee_drift
    assert drift["slippage_cost"] == entry_day.slippage_cost + exit_day.slippage_cost > 0
    assert not History.objects.filter(kind=HistoryKind.SIGNAL_MISMATCH).exists()
