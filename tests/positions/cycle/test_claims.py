"""Claims per strategy, step, day and instrument (issue 11, items 2 and 3), and instruments keyed by id (item 4).

Every scenario runs on 2024-01-11 at 00:40 UTC (candle 2024-01-10 has closed) against the fake CoinGecko.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine

from instruments.models import Instrument, InstrumentOHLC
from positions.accounts import strategy_cash
from positions.cycle import open as open_step
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.cycle.run import claims_create
from positions.events import StepResult
from positions.models import Position, StrategyStep
from runs.models import History
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.instruments.factories import InstrumentFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime(2024, 1, 11, 0, 40, tzinfo=UTC)
AS_OF = date(2024, 1, 11)
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}
PRICES = {"bitcoin": 105, "ethereum": 52, "litecoin": 21, "wrapped-bitcoin": 104}


def coin(coingecko_id: str, symbol: str, base: int) -> Instrument:
    """An instrument with ten candles 2024-01-01 .. 2024-01-10: open = close = base, high base + 5, low base - 5."""
    instrument: Instrument = InstrumentFactory.create(coingecko_id=coingecko_id, symbol=symbol)
    for n in range(10):
        candle(instrument, date(2024, 1, 1) + timedelta(days=n), base, base + 5, base - 5, base)
    return instrument


def candle(instrument: Instrument, day: date, o: float, h: float, low: float, c: float) -> None:
    InstrumentOHLC.objects.update_or_create(
        instrument=instrument,
        timeframe="1d",
        open_time=datetime(day.year, day.month, day.day, tzinfo=UTC),
        defaults={
            "open": Decimal(o),
            "high": Decimal(h),
            "low": Decimal(low),
            "close": Decimal(c),
            "source": "t",
        },
    )


def strategy(name: str, instruments: list[Instrument], **criteria: Any) -> Strategy:
    document = {
        "version": 1,
        "side": "long",
        "entry": ALWAYS,
        "fee_rate": 0.0,
        "slippage_ratio": 0.0,
        **criteria,
    }
    made = Strategy.objects.create(name=name, criteria=document, is_enabled=True)
    made.instruments.set(instruments)
    return made


@pytest.fixture
def prices(fake_coingecko: FakeCoinGecko) -> FakeCoinGecko:
    fake_coingecko.add(
        "/simple/price", json_reply({coin_id: {"usd": price} for coin_id, price in PRICES.items()})
    )
    return fake_coingecko


def actions(summary: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    return [(r["strategy"], r["instrument"], r["action"]) for r in summary["results"]]


@time_machine.travel(NOW, tick=False)
def test_a_scoped_open_leaves_the_other_instruments_to_the_full_run(prices: FakeCoinGecko) -> None:
    # Item 3: sync_new_trades(instruments=["bitcoin"]) then the full run skipped ETH for the day.
    btc, eth = coin("bitcoin", "BTC", 100), coin("ethereum", "ETH", 50)
    s = strategy("s", [btc, eth], sizing={"method": "fixed_quote", "value": 1000})

    scoped = sync_new_trades(as_of=AS_OF, instruments=["bitcoin"])
    full = sync_new_trades(as_of=AS_OF)

    assert actions(scoped) == [("s", "bitcoin", "opened")]
    assert actions(full) == [("s", "bitcoin", "skipped"), ("s", "ethereum", "opened")]
    assert sorted(Position.objects.values_list("instrument__coingecko_id", flat=True)) == [
        "bitcoin",
        "ethereum",
    ]
    assert set(StrategyStep.objects.values_list("strategy_id", "step", "as_of", "instrument_id")) == {
        (s.pk, "open", AS_OF, btc.pk),
        (s.pk, "open", AS_OF, eth.pk),
    }
    again = sync_new_trades(as_of=AS_OF)
    assert actions(again) == [("s", "bitcoin", "skipped"), ("s", "ethereum", "skipped")]
    assert Position.objects.count() == 2


def _account_holding_bitcoin(
    name: str, btc: Instrument, eth: Instrument, ltc: Instrument, **criteria: Any
) -> Strategy:
    """10,000 cash; 50 BTC bought at 100 on 2024-01-09 (checked through candle 2024-01-09), held through candle
    2024-01-10. Entries are fixed at 4,000 each, and every candle signals an entry (BTC's too)."""
    account = strategy(name, [btc, eth, ltc], sizing={"method": "fixed_quote", "value": 4000}, **criteria)
    Position.objects.create(
        strategy=account,
        instrument=btc,
        side="long",
        quantity=Decimal(50),
        entry_price=Decimal(100),
        entry_at=datetime(2024, 1, 9, 0, 40, tzinfo=UTC),
        entry_fee=Decimal(0),
        stop_loss_price=Decimal(95) if criteria.get("stop_loss_ratio") else None,
        exits_checked_through=datetime(2024, 1, 9, tzinfo=UTC),
    )
    return account


def _book(account: Strategy) -> list[tuple[Any, ...]]:
    return sorted(
        Position.objects.filter(strategy=account).values_list(
            "instrument__coingecko_id",
            "status",
            "quantity",
            "entry_price",
            "exit_price",
            "exit_reason",
            "exit_at",
        )
    )


@time_machine.travel(NOW, tick=False)
def test_a_stop_of_the_last_candle_is_settled_before_the_entries_whichever_step_runs_first(
    prices: FakeCoinGecko,
) -> None:
    # Issue 13, item 1: a stop crossed during candle t is closed before anything at the open of t+1, and the
    # entries there see its cash; the open and close steps settle it first, whichever of them runs first.
    btc, eth, ltc = coin("bitcoin", "BTC", 100), coin("ethereum", "ETH", 50), coin("litecoin", "LTC", 20)
    candle(btc, date(2024, 1, 10), 100, 101, 90, 92)  # low 90 < stop 95: stopped at 95 during 2024-01-10
    first = _account_holding_bitcoin("open first", btc, eth, ltc, stop_loss_ratio=0.05)
    second = _account_holding_bitcoin("close first", btc, eth, ltc, stop_loss_ratio=0.05)

    opened_first = sync_new_trades(as_of=AS_OF, strategies=[first])
    sync_close_positions(as_of=AS_OF, strategies=[first])
    closed = sync_close_positions(as_of=AS_OF, strategies=[second])
    opened = sync_new_trades(as_of=AS_OF, strategies=[second])

    # The stop is settled by whichever step starts first, timed at the candle's open, at its level.
    assert ("open first", "bitcoin", "closed") in actions(opened_first)
    assert ("close first", "bitcoin", "closed") in actions(closed)
    for account in (first, second):
        stopped = Position.objects.get(strategy=account, instrument=btc, status="closed")
        assert stopped.exit_reason == "stop_loss" and stopped.exit_price == Decimal(95)
        assert stopped.exit_at == datetime(2024, 1, 10, tzinfo=UTC)
    # Cash 10,000 - 5,000 + the stop's 4,750 = 9,750: BTC (signal on 01-10) entered again at 105 for 4,000, ETH
    # 4,000, LTC the 1,750 left, in symbol order.
    by_coin = {r["instrument"]: r for r in opened["results"] if r["action"] == "opened"}
    assert set(by_coin) == {"bitcoin", "ethereum", "litecoin"}
    assert _book(first) == _book(second)
    assert abs(strategy_cash(second)) < Decimal("1e-9")  # engine floats, stored to 18 places
    again = Position.objects.get(strategy=second, instrument=btc, status="open")
    assert again.entry_price == Decimal(105) and abs(again.quantity * 105 - 4000) < Decimal("1e-9")
    ltc_position = Position.objects.get(strategy=second, instrument=ltc)
    assert abs(ltc_position.quantity * ltc_position.entry_price - Decimal(1750)) < Decimal("1e-9")


@time_machine.travel(NOW, tick=False)
def test_an_open_step_killed_after_settling_the_stop_and_rerun_ends_as_one_uninterrupted_run(
    prices: FakeCoinGecko, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 13: a day's result does not depend on a step being interrupted and rerun. The open step is killed after
    # its reconcile phase committed the stop of candle 2024-01-10 and before any entry; the rerun enters with the
    # stop's cash exactly as an uninterrupted twin does.
    btc, eth, ltc = coin("bitcoin", "BTC", 100), coin("ethereum", "ETH", 50), coin("litecoin", "LTC", 20)
    candle(btc, date(2024, 1, 10), 100, 101, 90, 92)
    whole = _account_holding_bitcoin("whole", btc, eth, ltc, stop_loss_ratio=0.05)
    killed = _account_holding_bitcoin("killed", btc, eth, ltc, stop_loss_ratio=0.05)
    sync_new_trades(as_of=AS_OF, strategies=[whole])

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(open_step, "claims_create", dies)
    with pytest.raises(Killed):
        sync_new_trades(as_of=AS_OF, strategies=[killed])
    assert Position.objects.get(strategy=killed, instrument=btc).exit_reason == "stop_loss"  # committed
    assert not Position.objects.filter(strategy=killed, status="open").exists()
    monkeypatch.setattr(open_step, "claims_create", claims_create)

    rerun = sync_new_trades(as_of=AS_OF, strategies=[killed])

    assert sorted(actions(rerun)) == [
        ("killed", "bitcoin", "opened"),
        ("killed", "ethereum", "opened"),
        ("killed", "litecoin", "opened"),
    ]  # the stop is not settled twice
    assert _book(killed) == _book(whole)
    assert strategy_cash(killed) == strategy_cash(whole)


@time_machine.travel(NOW, tick=False)
def test_close_before_open_decides_as_open_then_close_does(prices: FakeCoinGecko) -> None:
    # Issue 11, item 2b: a close step for the day run before its open step made the open step skip every strategy.
    # A signal exit fills at the open of as_of, after the entries there (CRITERIA.md): its cash is spent, and its
    # instrument entered again, from the next day on, whichever step runs first.
    btc, eth, ltc = coin("bitcoin", "BTC", 100), coin("ethereum", "ETH", 50), coin("litecoin", "LTC", 20)
    first = _account_holding_bitcoin("open first", btc, eth, ltc, exit=ALWAYS)
    second = _account_holding_bitcoin("close first", btc, eth, ltc, exit=ALWAYS)

    sync_new_trades(as_of=AS_OF, strategies=[first])
    sync_close_positions(as_of=AS_OF, strategies=[first])
    closed = sync_close_positions(as_of=AS_OF, strategies=[second])
    opened = sync_new_trades(as_of=AS_OF, strategies=[second])

    assert actions(closed) == [("close first", "bitcoin", "closed")]
    by_coin = {r["instrument"]: r for r in opened["results"]}
    assert by_coin["ethereum"]["action"] == by_coin["litecoin"]["action"] == "opened"
    assert (
        by_coin["bitcoin"]["action"] == "none" and "exited by the close step" in by_coin["bitcoin"]["reason"]
    )
    # Open first: cash 10,000 - 5,000 (BTC) = 5,000: ETH takes 4,000, LTC the 1,000 left; then BTC's signal exit
    # returns 50 * 105 = 5,250. The freed 5,250 must not be spent today when close ran first either.
    assert _book(first) == _book(second)
    assert strategy_cash(first) == strategy_cash(second)
    assert abs(strategy_cash(second) - Decimal(5250)) < Decimal("1e-9")
    exited = Position.objects.get(strategy=second, instrument=btc)
    assert exited.exit_reason == "signal" and exited.exit_price == Decimal(105)
    ltc_position = Position.objects.get(strategy=second, instrument=ltc)
    assert abs(ltc_position.quantity * ltc_position.entry_price - Decimal(1000)) < Decimal("1e-9")


class Killed(BaseException):
    """Stands for the process being killed: not an ``Exception``, so no handler of the step records it."""


@time_machine.travel(NOW, tick=False)
def test_a_retried_open_after_a_crash_and_a_close_loses_and_doubles_nothing(
    prices: FakeCoinGecko, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Item 2's last clause: a crash between (or inside) open and close, the close step run, then open retried.
    btc, eth = coin("bitcoin", "BTC", 100), coin("ethereum", "ETH", 50)
    a = strategy("a", [btc, eth], sizing={"method": "fixed_quote", "value": 1000})
    b = strategy("b", [btc, eth], sizing={"method": "fixed_quote", "value": 1000})
    real_open = open_step._open_strategy

    def killed_at_b(strategy: Strategy, **kwargs: Any) -> list[StepResult]:
        if strategy.name == "b":
            real_open(strategy, **kwargs)  # b's transaction commits (a's did before it) ...
            raise Killed  # ... and the process dies before the run records or finishes anything more
        return real_open(strategy, **kwargs)

    # The first run: "a" commits its day, "b" commits too and then the process is killed mid-run.
    monkeypatch.setattr(open_step, "_open_strategy", killed_at_b)
    with pytest.raises(Killed):
        sync_new_trades(as_of=AS_OF)
    monkeypatch.setattr(open_step, "_open_strategy", real_open)
    assert Position.objects.count() == 4

    # Now a crash before anything of the day committed: the open step rolled back for "c" ...
    c = strategy("c", [btc, eth], sizing={"method": "fixed_quote", "value": 1000})

    def entries_die(**kwargs: Any) -> Any:
        raise Killed

    monkeypatch.setattr(open_step, "step_entries", entries_die)
    with pytest.raises(Killed):
        sync_new_trades(as_of=AS_OF, strategies=[c])
    monkeypatch.undo()
    assert not Position.objects.filter(strategy=c).exists()

    # ... the close step of the day runs (the GitHub Action calls every step even when one fails) ...
    sync_close_positions(as_of=AS_OF)
    # ... and the retried open enters what was lost and doubles nothing.
    retried = sync_new_trades(as_of=AS_OF)
    assert actions(retried) == [
        ("a", "bitcoin", "skipped"),
        ("a", "ethereum", "skipped"),
        ("b", "bitcoin", "skipped"),
        ("b", "ethereum", "skipped"),
        ("c", "bitcoin", "opened"),
        ("c", "ethereum", "opened"),
    ]
    for account in (a, b, c):
        assert sorted(
            Position.objects.filter(strategy=account).values_list("instrument__symbol", flat=True)
        ) == [
            "BTC",
            "ETH",
        ]
    interrupted = History.objects.filter(kind="run_finished", status="interrupted", step="open")
    assert interrupted.count() == 1  # the killed run of all strategies (c's own run had another lock scope)


@time_machine.travel(NOW, tick=False)
def test_an_instrument_without_the_days_candle_is_entered_by_the_run_after_the_collect(
    prices: FakeCoinGecko,
) -> None:
    btc, eth = coin("bitcoin", "BTC", 100), coin("ethereum", "ETH", 50)
    InstrumentOHLC.objects.filter(instrument=eth, open_time=datetime(2024, 1, 10, tzinfo=UTC)).delete()
    strategy("s", [btc, eth], sizing={"method": "fixed_quote", "value": 1000})

    first = sync_new_trades(as_of=AS_OF)
    assert actions(first) == [("s", "bitcoin", "opened"), ("s", "ethereum", "none")]
    assert first["results"][1]["reason"] == "no candle for the day before as_of (collect first)"
    candle(eth, date(2024, 1, 10), 50, 55, 45, 50)  # the collect brings the day in
    second = sync_new_trades(as_of=AS_OF)
    assert actions(second) == [("s", "bitcoin", "skipped"), ("s", "ethereum", "opened")]


@time_machine.travel(NOW, tick=False)
def test_two_instruments_sharing_a_ticker_are_both_traded_and_named(prices: FakeCoinGecko) -> None:
    # Item 4: keyed by ticker, a strategy holding two "BTC" instruments opened one and reported nothing else.
    bitcoin, wrapped = coin("bitcoin", "BTC", 100), coin("wrapped-bitcoin", "BTC", 99)
    s = strategy("s", [bitcoin, wrapped], sizing={"method": "fixed_quote", "value": 1000})

    summary = sync_new_trades(as_of=AS_OF)

    assert actions(summary) == [("s", "bitcoin", "opened"), ("s", "wrapped-bitcoin", "opened")]
    assert {p.instrument_id: p.entry_price for p in Position.objects.filter(strategy=s)} == {
        bitcoin.pk: Decimal(105),
        wrapped.pk: Decimal(104),
    }
    # One held "BTC" does not make the other look held either.
    other = strategy("other", [bitcoin, wrapped], sizing={"method": "fixed_quote", "value": 1000})
    Position.objects.create(
        strategy=other,
        instrument=bitcoin,
        side="long",
        quantity=Decimal(1),
        entry_price=Decimal(100),
        entry_at=datetime(2024, 1, 9, 0, 40, tzinfo=UTC),
        entry_fee=Decimal(0),
    )
    again = sync_new_trades(as_of=AS_OF, strategies=[other])
    assert actions(again) == [("other", "bitcoin", "none"), ("other", "wrapped-bitcoin", "opened")]
    assert again["results"][0]["reason"] == "a position is already open"


@time_machine.travel(NOW, tick=False)
def test_two_instruments_sharing_a_ticker_close_on_their_own_candles(prices: FakeCoinGecko) -> None:
    bitcoin, wrapped = coin("bitcoin", "BTC", 100), coin("wrapped-bitcoin", "BTC", 100)
    s = strategy(
        "s", [bitcoin, wrapped], stop_loss_ratio=0.05, sizing={"method": "fixed_quote", "value": 1000}
    )
    for instrument in (bitcoin, wrapped):
        Position.objects.create(
            strategy=s,
            instrument=instrument,
            side="long",
            quantity=Decimal(10),
            entry_price=Decimal(100),
            entry_at=datetime(2024, 1, 9, 0, 40, tzinfo=UTC),
            entry_fee=Decimal(0),
            stop_loss_price=Decimal(90),
        )
    candle(wrapped, date(2024, 1, 10), 100, 101, 85, 92)  # only the wrapped one is stopped (low 85 < 90)

    summary = sync_close_positions(as_of=AS_OF)

    assert sorted(actions(summary)) == [("s", "bitcoin", "none"), ("s", "wrapped-bitcoin", "closed")]
    assert Position.objects.get(instrument=wrapped).exit_price == Decimal(90)
    assert Position.objects.get(instrument=bitcoin).status == "open"
