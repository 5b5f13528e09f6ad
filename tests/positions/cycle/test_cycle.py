"""The open and close steps live: paper fills at CoinGecko's price, History, idempotency, API and commands."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import connections
from pytest_django import Settings
from rest_framework.test import APIClient

from instruments.models import Instrument, InstrumentOHLC
from positions.cycle.close import sync_close_positions
from positions.cycle.manual import position_close_manual
from positions.cycle.open import sync_new_trades
from positions.events import StepResult
from positions.models import Order, Position, StrategyStep
from runs.locks import RunInProgressError
from runs.models import History
from tests.accounts import RUN_STEPS, token_client, user_with
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.instruments.factories import InstrumentFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime(2024, 1, 11, 0, 40, tzinfo=UTC)  # as_of 2024-01-11: candle 2024-01-10 has closed
AS_OF = date(2024, 1, 11)
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}


def daily(instrument: Instrument, day: date, o: str, h: str, low: str, c: str) -> None:
    InstrumentOHLC.objects.create(
        instrument=instrument,
        timeframe="1d",
        open_time=datetime(day.year, day.month, day.day, tzinfo=UTC),
        open=Decimal(o),
        high=Decimal(h),
        low=Decimal(low),
        close=Decimal(c),
        source="test",
    )


@pytest.fixture
def bitcoin(db: None) -> Instrument:
    coin: Instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    for n in range(10):  # 2024-01-01 .. 2024-01-10, all 100/110/90/100
        daily(coin, date(2024, 1, 1) + timedelta(days=n), "100", "110", "90", "100")
    return coin


def strategy_on(instrument: Instrument, **criteria: object) -> Strategy:
    document = {
        "version": 1,
        "side": "long",
        "entry": ALWAYS,
        "fee_rate": 0.001,
        "slippage_ratio": 0.01,
        **criteria,
    }
    strategy = Strategy.objects.create(
        name=f"s{Strategy.objects.count()}", criteria=document, is_enabled=True
    )
    strategy.instruments.set([instrument])
    return strategy


@pytest.fixture
def price_105(fake_coingecko: FakeCoinGecko) -> FakeCoinGecko:
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 105}}))
    return fake_coingecko


@time_machine.travel(NOW, tick=False)
def test_open_step_buys_at_coingeckos_price_with_slippage_and_fee(
    bitcoin: Instrument, price_105: FakeCoinGecko
) -> None:
    strategy = strategy_on(bitcoin, stop_loss_ratio=0.1)

    summary = sync_new_trades(as_of=AS_OF)

    position = Position.objects.get()
    # price 105 * 1.01 = 106.05; quantity = 10,000 / (106.05 * 1.001); fee = 0.001 * 106.05 * quantity
    quantity = Decimal(10_000) / (Decimal("106.05") * Decimal("1.001"))
    assert position.entry_price == Decimal("106.05")
    assert abs(position.quantity - quantity) < Decimal("1e-12")
    assert abs(position.entry_fee - Decimal("0.10605") * quantity) < Decimal("1e-12")
    assert position.stop_loss_price == Decimal("95.445")  # 106.05 * 0.9
    assert position.entry_at == NOW and position.status == "open"
    assert summary["status"] == "ok"
    (line,) = summary["results"]
    assert (line["strategy"], line["instrument"], line["action"], line["position_id"]) == (
        strategy.name,
        "bitcoin",
        "opened",
        position.pk,
    )
    kinds = [h.kind for h in History.objects.for_run(summary["run_id"])]
    # the buy, its fill, the position, then its stop-loss resting as a paper order (issue 13)
    assert kinds == ["run_started", "signal", "order", "fill", "position_opened", "order", "run_finished"]
    buy, stop = History.objects.for_run(summary["run_id"]).filter(kind="order").order_by("created_at", "id")
    assert buy.payload["source"] == "coingecko:simple_price"
    resting = Order.objects.get(position=position)
    assert (resting.type, resting.purpose, resting.status, resting.exchange_id) == (
        "stop_loss",
        "protection",
        "open",
        "paper",
    )
    assert resting.price == position.stop_loss_price and resting.quantity == position.quantity
    assert stop.payload["client_order_id"] == resting.client_order_id


@time_machine.travel(NOW, tick=False)
def test_a_second_open_call_for_the_day_opens_nothing(bitcoin: Instrument, price_105: FakeCoinGecko) -> None:
    strategy_on(bitcoin)
    sync_new_trades(as_of=AS_OF)
    again = sync_new_trades(as_of=AS_OF)
    assert Position.objects.count() == 1
    assert again["results"][0]["action"] == "skipped"
    assert again["results"][0]["reason"] == "the open step already ran for 2024-01-11"


@time_machine.travel(NOW, tick=False)
def test_without_coingecko_the_newest_close_is_the_price(
    bitcoin: Instrument, fake_coingecko: FakeCoinGecko
) -> None:
    strategy_on(bitcoin, slippage_ratio=0.0)
    summary = sync_new_trades(as_of=AS_OF)  # the fake answers 404 for /simple/price
    assert Position.objects.get().entry_price == Decimal("100")
    assert History.objects.get(run_id=summary["run_id"], kind="order").payload["source"] == "last_close"


@time_machine.travel(NOW, tick=False)
def test_no_candle_for_yesterday_means_no_entry(bitcoin: Instrument, price_105: FakeCoinGecko) -> None:
    InstrumentOHLC.objects.filter(open_time__date=date(2024, 1, 10)).delete()
    strategy_on(bitcoin)
    summary = sync_new_trades(as_of=AS_OF)
    assert not Position.objects.exists()
    assert summary["results"][0]["reason"] == "no candle for the day before as_of (collect first)"


def test_close_step_takes_the_stop_and_catches_up_missed_days(
    bitcoin: Instrument, price_105: FakeCoinGecko
) -> None:
    strategy = strategy_on(bitcoin, stop_loss_ratio=0.1, slippage_ratio=0.0, fee_rate=0.0)
    with time_machine.travel(NOW, tick=False):
        sync_new_trades(as_of=AS_OF)  # bought at 105, stop at 94.5
    daily(bitcoin, date(2024, 1, 11), "105", "106", "100", "101")  # stop holds
    daily(bitcoin, date(2024, 1, 12), "101", "102", "93", "95")  # low 93 < 94.5: stopped
    with time_machine.travel(datetime(2024, 1, 13, 0, 40, tzinfo=UTC), tick=False):
        summary = sync_close_positions(as_of=date(2024, 1, 13))  # the close of 01-12 was never run: caught up

    position = Position.objects.get()
    assert position.status == "closed" and position.exit_reason == "stop_loss"
    assert position.exit_price == Decimal("94.5") and position.exit_at == datetime(2024, 1, 12, tzinfo=UTC)
    # pnl = 94.5 q - 105 q with q = 10,000 / 105
    assert position.pnl is not None
    assert abs(position.pnl - (Decimal("94.5") - Decimal(105)) * Decimal(10_000) / Decimal(105)) < Decimal(
        "1e-9"
    )
    assert summary["results"][0]["action"] == "closed" and summary["results"][0]["reason"] == "stop_loss"
    kinds = [h.kind for h in History.objects.for_run(summary["run_id"])]
    assert kinds == ["run_started", "signal", "order", "fill", "position_closed", "run_finished"]
    assert StrategyStep.objects.filter(strategy=strategy, step="close", as_of=date(2024, 1, 13)).exists()

    with time_machine.travel(datetime(2024, 1, 13, 0, 50, tzinfo=UTC), tick=False):
        again = sync_close_positions(as_of=date(2024, 1, 13))
    assert again["results"][0]["action"] == "skipped"


def test_a_stop_hit_in_the_entry_candle_is_not_timed_before_the_entry(
    bitcoin: Instrument, price_105: FakeCoinGecko
) -> None:
    """A risk exit is timed at its candle's open (CRITERIA.md), but a live entry fills after the boundary, at the
    step's price of now: a stop crossed in the entry's own candle filled no earlier than the entry."""
    strategy_on(bitcoin, stop_loss_ratio=0.1, slippage_ratio=0.0, fee_rate=0.0)
    with time_machine.travel(NOW, tick=False):
        sync_new_trades(as_of=AS_OF)  # bought at 105 after the 01-11 boundary, stop at 94.5
    # The entry's own candle goes through the stop.
    daily(bitcoin, date(2024, 1, 11), "105", "106", "93", "95")
    with time_machine.travel(datetime(2024, 1, 12, 0, 40, tzinfo=UTC), tick=False):
        sync_close_positions(as_of=date(2024, 1, 12))
    position = Position.objects.get()
    assert position.exit_reason == "stop_loss" and position.exit_price == Decimal("94.5")
    assert position.entry_at == NOW
    assert position.exit_at == position.entry_at  # not 2024-01-11 00:00, 20-odd minutes before it was bought


def test_close_step_moves_the_trailing_stop_and_a_signal_exits_at_the_live_price(
    bitcoin: Instrument, price_105: FakeCoinGecko
) -> None:
    strategy_on(
        bitcoin,
        trailing_stop_ratio=0.1,
        slippage_ratio=0.0,
        fee_rate=0.0,
        exit={"left": {"indicator": "close"}, "op": ">", "right": {"value": 125}},
    )
    with time_machine.travel(NOW, tick=False):
        sync_new_trades(as_of=AS_OF)  # at 105: trailing 94.5
    daily(bitcoin, date(2024, 1, 11), "105", "120", "104", "119")
    with time_machine.travel(datetime(2024, 1, 12, 0, 40, tzinfo=UTC), tick=False):
        sync_close_positions(as_of=date(2024, 1, 12))
    position = Position.objects.get()
    assert position.status == "open" and position.trailing_stop_price == Decimal("108")  # 0.9 * 120
    daily(bitcoin, date(2024, 1, 12), "119", "130", "110", "126")  # close 126 > 125: exit signal
    with time_machine.travel(datetime(2024, 1, 13, 0, 40, tzinfo=UTC), tick=False):
        sync_close_positions(as_of=date(2024, 1, 13))
    position.refresh_from_db()
    assert position.exit_reason == "signal" and position.exit_price == Decimal("105")  # CoinGecko's price now
    assert position.exit_at == datetime(2024, 1, 13, 0, 40, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
def test_one_broken_strategy_does_not_stop_the_others(bitcoin: Instrument, price_105: FakeCoinGecko) -> None:
    good = strategy_on(bitcoin)
    broken = strategy_on(bitcoin)
    Strategy.objects.filter(pk=broken.pk).update(
        criteria={"version": 1, "side": "long"}
    )  # bypasses validation
    summary = sync_new_trades(as_of=AS_OF)
    assert Position.objects.filter(strategy=good).count() == 1
    errors = [r for r in summary["results"] if r["error"]]
    assert errors[0]["strategy"] == broken.name and "entry: is required" in errors[0]["error"]
    assert summary["status"] == "partial"


@time_machine.travel(NOW, tick=False)
def test_close_now_by_hand(bitcoin: Instrument, price_105: FakeCoinGecko) -> None:
    strategy_on(bitcoin, slippage_ratio=0.0, fee_rate=0.0)
    sync_new_trades(as_of=AS_OF)
    position = position_close_manual(position=Position.objects.get(), price=Decimal("110"))
    assert position.exit_reason == "manual" and position.exit_price == Decimal("110")
    with pytest.raises(Exception, match="already closed"):
        position_close_manual(position=position)


@pytest.fixture
def api(db: None) -> APIClient:
    return token_client(user_with("robot", *RUN_STEPS))


@time_machine.travel(NOW, tick=False)
def test_api_endpoints_run_the_steps(api: APIClient, bitcoin: Instrument, price_105: FakeCoinGecko) -> None:
    strategy_on(bitcoin)
    assert APIClient().post("/api/sync_new_trades").status_code == 401
    assert api.get("/api/sync_new_trades").status_code == 405
    assert api.post("/api/sync_close_positions", {"as_of": "tomorrow"}, format="json").status_code == 400
    bad = api.post("/api/sync_new_trades", {"instruments": ["nope"]}, format="json")
    assert bad.status_code == 400 and "unknown instrument(s) 'nope'" in bad.json()["instruments"][0]

    opened = api.post("/api/sync_new_trades", {"as_of": "2024-01-11"}, format="json").json()
    assert opened["step"] == "open" and opened["results"][0]["action"] == "opened"
    closed = api.post("/api/sync_close_positions", {"as_of": "2024-01-11"}, format="json").json()
    assert closed["step"] == "close" and closed["results"][0]["action"] == "none"
    assert (
        set(opened)
        == set(closed)
        == {"run_id", "step", "status", "started_at", "finished_at", "as_of", "live", "results", "errors"}
    )


@time_machine.travel(NOW, tick=False)
def test_commands_and_run_cycle(
    bitcoin: Instrument, price_105: FakeCoinGecko, capsys: pytest.CaptureFixture[str], settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 1
    strategy_on(bitcoin)
    call_command("run_cycle", "--as-of", "2024-01-11")
    out = capsys.readouterr().out
    assert "collect: ok" in out and "open: ok" in out and "close: ok" in out
    assert "/ bitcoin: opened (entry signal) at 106.05" in out
    call_command("sync_new_trades", "--as-of", "2024-01-11")
    assert json.loads(capsys.readouterr().out)["results"][0]["action"] == "skipped"
    with pytest.raises(Exception, match="--as-of must be a date like 2024-01-31"):
        call_command("sync_close_positions", "--as-of", "11/01/2024")


@pytest.mark.postgres
@time_machine.travel(NOW, tick=False)
def test_concurrent_open_steps_open_one_position(bitcoin: Instrument, price_105: FakeCoinGecko) -> None:
    # 8 runs at once: one opens; a run that meets the first one's run lock is refused (409), and one that starts
    # after it has finished reports skipped. Nobody waits, nothing is doubled.
    strategy_on(bitcoin)
    barrier = threading.Barrier(8)
    summaries: list[dict[str, Any]] = []
    refused: list[RunInProgressError] = []

    def call() -> None:
        try:
            barrier.wait()
            summaries.append(sync_new_trades(as_of=AS_OF))
        except RunInProgressError as exc:
            refused.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert Position.objects.count() == 1
    assert len(summaries) + len(refused) == 8
    actions = sorted(s["results"][0]["action"] for s in summaries)
    assert actions == ["opened"] + ["skipped"] * (len(summaries) - 1)
    winner = next(s["run_id"] for s in summaries if s["results"][0]["action"] == "opened")
    for exc in refused:
        assert exc.http_status == 409 and exc.extra["lock"] == "open:2024-01-11:all"
        assert exc.extra["run_id"] in (winner, None)
    assert History.objects.filter(kind="run_started").count() == len(
        summaries
    )  # a refused run records nothing
    assert StrategyStep.objects.filter(step="open", as_of=AS_OF).count() == 1


@pytest.mark.postgres
@time_machine.travel(NOW, tick=False)
def test_a_run_refused_by_the_lock_names_the_run_in_progress_then_a_later_run_is_skipped(
    bitcoin: Instrument, price_105: FakeCoinGecko, monkeypatch: pytest.MonkeyPatch
) -> None:
    from positions.cycle import open as open_step

    strategy_on(bitcoin)
    inside, release = threading.Event(), threading.Event()
    real_open = open_step._open_strategy

    def held_open(*args: Any, **kwargs: Any) -> list[StepResult]:
        inside.set()  # the run has its lock and its run_started row; hold it until the test has asked
        assert release.wait(timeout=30)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(open_step, "_open_strategy", held_open)
    first: list[dict[str, Any]] = []

    def run_first() -> None:
        try:
            first.append(sync_new_trades(as_of=AS_OF))
        finally:
            connections.close_all()

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert inside.wait(timeout=30)
        running = History.objects.get(kind="run_started", step="open")
        with pytest.raises(RunInProgressError) as refused:
            sync_new_trades(as_of=AS_OF)
    finally:
        release.set()
        thread.join(timeout=60)
    assert refused.value.extra == {
        "step": "open",
        "as_of": "2024-01-11",
        "lock": "open:2024-01-11:all",
        "run_id": str(running.run_id),
    }
    assert f"run {running.run_id}" in refused.value.message and "retry in 10 s" in refused.value.message
    assert first[0]["run_id"] == str(running.run_id) and first[0]["results"][0]["action"] == "opened"
    # Once the first run has finished, the lock is free: a later run for the day is skipped and opens nothing.
    monkeypatch.setattr(open_step, "_open_strategy", real_open)
    again = sync_new_trades(as_of=AS_OF)
    assert again["results"][0]["action"] == "skipped" and Position.objects.count() == 1
    assert History.objects.filter(kind="run_started").count() == 2


@time_machine.travel(NOW, tick=False)
def test_celery_tasks_run_the_same_steps(bitcoin: Instrument, price_105: FakeCoinGecko) -> None:
    from positions.tasks import sync_close_positions_task, sync_new_trades_task

    strategy_on(bitcoin)
    opened = sync_new_trades_task.delay(as_of="2024-01-11").get()
    closed = sync_close_positions_task.delay(as_of="2024-01-11", instruments=["bitcoin"]).get()
    assert opened["results"][0]["action"] == "opened" and closed["step"] == "close"
    assert Position.objects.count() == 1
