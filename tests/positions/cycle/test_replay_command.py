"""``manage.py replay``: bad input gets a CommandError that says how to fix it; a replay prints its summary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from instruments.models import InstrumentOHLC
from positions.models import Position
from tests.instruments.factories import InstrumentFactory
from trading.models import Strategy

pytestmark = pytest.mark.django_db


@pytest.fixture
def strategy(db: None) -> Strategy:
    coin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    for n, close in enumerate([100, 90, 95, 120, 130, 80, 85, 90, 100, 110]):
        InstrumentOHLC.objects.create(
            instrument=coin,
            timeframe="1d",
            open_time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n),
            open=Decimal(close),
            high=Decimal(close + 5),
            low=Decimal(close - 5),
            close=Decimal(close),
            source="t",
        )
    document = {
        "version": 1,
        "side": "long",
        "fee_rate": 0.0,
        "entry": {"left": {"indicator": "close"}, "op": "<", "right": {"value": 96}},
        "exit": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 115}},
    }
    created = Strategy.objects.create(name="dip", criteria=document, is_enabled=True)
    created.instruments.set([coin])
    return created


def test_replay_prints_what_the_fresh_account_did(
    strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("replay", "--start", "2024-01-01", "--end", "2024-01-10")
    out = capsys.readouterr().out
    # close 90 on 01-02 -> buy at 01-03's open 95; close 120 on 01-04 -> sell at 01-05's open 130;
    # close 80 on 01-06 -> buy at 01-07's open 85, still open on 01-10.
    assert "dip: 10 days replayed into 'dip [replay 2024-01-01..2024-01-10" in out
    assert "2 positions opened, 1 closed, 1 still open" in out
    account = Strategy.objects.exclude(pk=strategy.pk).get()
    assert not account.is_enabled
    first = Position.objects.for_strategy(account).order_by("entry_at").first()
    assert first is not None and first.exit_at is not None
    assert (first.entry_price, first.exit_price, first.exit_reason) == (Decimal(95), Decimal(130), "signal")
    assert first.entry_at.date() == date(2024, 1, 3) and first.exit_at.date() == date(2024, 1, 5)


def test_days_replays_up_to_the_day_after_the_newest_candle(
    strategy: Strategy, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("replay", "--days", "3", "--skip-existing")
    call_command("replay", "--days", "3", "--skip-existing")
    out = capsys.readouterr().out
    assert "dip: 3 days replayed into 'dip [replay 2024-01-09..2024-01-11" in out
    assert "dip: already replayed from 2024-01-09 to 2024-01-11; skipped" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2024-01-10", "--end", "2024-01-01"], "end 2024-01-01 is before start 2024-01-10"),
        (["--start", "2024-01-01"], "give --start and --end (YYYY-MM-DD), or --days N"),
        (["--days", "3", "--start", "2024-01-01"], "give either --days or --start and --end, not both"),
        (["--days", "0"], "--days must be 1 or more; was 0"),
        (["--start", "2024-01-01", "--end", "2999-01-01"], "end 2999-01-01 is in the future"),
        (["--start", "1/1/2024", "--end", "2024-01-02"], "--start must be a date like 2024-01-31"),
        (["--days", "3", "--strategy", "nope"], "unknown strategy 'nope'; known: dip"),
    ],
)
def test_bad_input_is_a_clear_command_error(strategy: Strategy, args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("replay", *args)
    assert message in str(caught.value)


def test_nothing_enabled_says_what_to_do(strategy: Strategy) -> None:
    Strategy.objects.update(is_enabled=False)
    with pytest.raises(CommandError, match="no enabled strategy to replay: pass --strategy NAME"):
        call_command("replay", "--days", "2")
