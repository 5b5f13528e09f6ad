"""Which day a live step may trade (issue 11, item 2): today only; past days are the replay's.

The attack of item 2: ``POST /api/sync_new_trades {"as_of": "2024-04-21"}`` on 2024-04-23 opened BTC at that
day's CoinGecko price (64,940.59) with ``entry_at`` = now, from the signal of 2024-04-20.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from pytest_django import Settings
from rest_framework.test import APIClient

from instruments.models import Instrument, InstrumentOHLC
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.cycle.run import StepDayError
from positions.models import Position, StrategyStep
from runs.models import History
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.instruments.factories import InstrumentFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)
NOW = datetime(2024, 4, 23, 0, 40, tzinfo=UTC)  # today is 2024-04-23 UTC
PAST = "2024-04-21"
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}


@pytest.fixture
def bitcoin(db: None) -> Instrument:
    coin: Instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    for n in range(22):  # 2024-04-01 .. 2024-04-22
        price = Decimal(60_000 + 100 * n)
        InstrumentOHLC.objects.create(
            instrument=coin,
            timeframe="1d",
            open_time=datetime(2024, 4, 1, tzinfo=UTC) + timedelta(days=n),
            open=price,
            high=price + 500,
            low=price - 500,
            close=price + 100,
            source="test",
        )
    return coin


@pytest.fixture
def live_strategy(bitcoin: Instrument) -> Strategy:
    strategy = Strategy.objects.create(
        name="live",
        criteria={"version": 1, "side": "long", "entry": ALWAYS, "fee_rate": 0.001, "slippage_ratio": 0.0},
        is_enabled=True,
    )
    strategy.instruments.set([bitcoin])
    return strategy


@pytest.fixture
def price_now(fake_coingecko: FakeCoinGecko) -> FakeCoinGecko:
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 64940.59}}))
    return fake_coingecko


@pytest.fixture
def api(db: None) -> APIClient:
    # A user who may run the steps (issue 11's permission), so this stays about the day, not about who asks.
    user = get_user_model().objects.create_user("cycle", password="unused-password-123")
    user.user_permissions.add(Permission.objects.get(codename="run_steps", content_type__app_label="trading"))
    client = APIClient()
    client.force_authenticate(user)
    return client


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("endpoint", ["/api/sync_new_trades", "/api/sync_close_positions"])
def test_a_past_as_of_is_a_400_on_as_of_that_points_at_replay(
    api: APIClient, live_strategy: Strategy, price_now: FakeCoinGecko, endpoint: str
) -> None:
    answer = api.post(endpoint, {"as_of": PAST}, format="json")

    assert answer.status_code == 400, answer.content
    (message,) = answer.json()["as_of"]
    assert "acts only for today (2024-04-23 UTC)" in message and "was 2024-04-21" in message
    assert "manage.py replay --start 2024-04-21 --end 2024-04-23" in message
    # Nothing traded, nothing claimed, no price asked for, no run recorded.
    assert not Position.objects.exists() and not StrategyStep.objects.exists()
    assert price_now.requests_to("/simple/price") == []
    assert not History.objects.exists()


@time_machine.travel(NOW, tick=False)
def test_today_or_no_as_of_trades_and_past_collect_stays_allowed(
    api: APIClient, live_strategy: Strategy, price_now: FakeCoinGecko, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 1
    collected = api.post("/api/sync_data", {"as_of": PAST}, format="json")  # backfill is harmless
    assert collected.status_code == 200, collected.content

    opened = api.post("/api/sync_new_trades", {"as_of": "2024-04-23"}, format="json")
    assert opened.status_code == 200 and opened.json()["results"][0]["action"] == "opened"
    position = Position.objects.get()
    assert position.entry_price == Decimal("64940.59") and position.entry_at == NOW
    assert api.post("/api/sync_close_positions", format="json").status_code == 200  # no as_of: today


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("command", ["sync_new_trades", "sync_close_positions", "run_cycle"])
def test_the_commands_refuse_a_past_day_and_say_how(
    live_strategy: Strategy, price_now: FakeCoinGecko, command: str
) -> None:
    with pytest.raises(CommandError) as refused:
        call_command(command, "--as-of", PAST)

    assert "acts only for today (2024-04-23 UTC)" in str(refused.value)
    assert "manage.py replay --start 2024-04-21" in str(refused.value)
    assert not Position.objects.exists() and not History.objects.exists()  # run_cycle collects nothing either


@time_machine.travel(NOW, tick=False)
def test_the_celery_tasks_record_a_refused_day_as_a_failed_run(
    live_strategy: Strategy, price_now: FakeCoinGecko
) -> None:
    from positions.tasks import sync_close_positions_task, sync_new_trades_task

    opened = sync_new_trades_task.delay(as_of=PAST).get()
    closed = sync_close_positions_task.delay(as_of=PAST).get()

    assert not Position.objects.exists()
    for summary, step in ((opened, "open"), (closed, "close")):
        assert summary["status"] == "failed" and summary["step"] == step and summary["as_of"] == PAST
        (error,) = summary["errors"]
        assert "acts only for today" in error["message"] and "manage.py replay" in error["message"]
        kinds = [h.kind for h in History.objects.for_run(summary["run_id"])]
        assert kinds == ["run_started", "error", "run_finished"]
        finished = History.objects.get(run_id=summary["run_id"], kind="run_finished")
        assert finished.status == "failed"


@time_machine.travel(NOW, tick=False)
def test_the_service_refuses_live_backends_but_not_the_replay_broker(
    live_strategy: Strategy, price_now: FakeCoinGecko
) -> None:
    from positions.execution.paper import ReplayBroker

    with pytest.raises(StepDayError) as refused:
        sync_new_trades(as_of=date(2024, 4, 21))
    assert refused.value.extra["field"] == "as_of"
    with pytest.raises(StepDayError):
        sync_close_positions(as_of=date(2024, 4, 22))

    # The replay broker fills at the stored open of as_of, so a past day is what it is for.
    replayed = sync_new_trades(as_of=date(2024, 4, 21), broker=ReplayBroker(), strategies=[live_strategy])
    (line,) = replayed["results"]
    position = Position.objects.get()
    assert line["action"] == "opened" and position.entry_at == datetime(2024, 4, 21, tzinfo=UTC)
    assert position.entry_price == Decimal(62_000)  # the open of 2024-04-21 (60,000 + 100 * 20)


@time_machine.travel(NOW, tick=False)
def test_replay_command_still_trades_past_days(
    live_strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("replay", "--start", "2024-04-10", "--end", "2024-04-20", "--strategy", "live")

    assert "11 days replayed" in capsys.readouterr().out
    account = Strategy.objects.get(name__startswith="live [replay 2024-04-10..2024-04-20")
    assert Position.objects.filter(strategy=account).count() == 1
    assert not Position.objects.filter(strategy=live_strategy).exists()
