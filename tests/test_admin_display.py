"""The admin's readable values: decimals stored with 18 places shown rounded and without trailing zeros,
compact UTC datetimes, replay accounts without their stamp, and help texts shown as text (not as HTML)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from barter_site.admin import decimal_text, moment_text
from positions.cycle.replay import strategy_short_name
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.trading.factories import PositionFactory, StrategyFactory


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("64940.580000000000000000"), "64,940.58"),
        (Decimal("0.153846153846153846"), "0.15384615"),  # 8 places: a satoshi
        (Decimal("0.000000005000000000"), "0"),  # half to even: 0.000000005 -> 0.00000000
        (Decimal("0.000000015000000000"), "0.00000002"),
        (Decimal("100.000000000000000000"), "100"),  # not 1E+2
        (Decimal("-9.220000000000000000"), "-9.22"),
        (Decimal("1234567.5"), "1,234,567.5"),
        (Decimal("0E-18"), "0"),
        (None, "-"),
    ],
)
def test_decimal_text(value: Decimal | None, text: str) -> None:
    assert decimal_text(value) == text


def test_moment_text_is_compact_utc() -> None:
    assert moment_text(datetime(2024, 3, 1, 16, 5, 59, tzinfo=UTC)) == "2024-03-01 16:05"
    assert moment_text(datetime(2024, 3, 1, 18, 5, tzinfo=timezone(timedelta(hours=2)))) == "2024-03-01 16:05"
    assert moment_text(None) == "-"


def test_a_replay_accounts_stamp_is_cut_from_its_name() -> None:
    stamped = "SMA 20/50 trend [replay 2023-04-23..2024-04-21 20261203T125643398921]"
    assert strategy_short_name(stamped) == "SMA 20/50 trend [replay 2023-04-23..2024-04-21]"
    assert strategy_short_name("SMA 20/50 trend") == "SMA 20/50 trend"


@pytest.fixture
def superuser_client(client: Client, django_user_model: type[User]) -> Client:
    client.force_login(django_user_model.objects.create_superuser("boss", password="unused-password-123"))
    return client


@pytest.mark.django_db
def test_change_lists_show_readable_decimals_and_datetimes(superuser_client: Client) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    CandleFactory.create(
        instrument=bitcoin,
        open_time=datetime(2024, 4, 20, tzinfo=UTC),
        open=Decimal("64940.580000000000000000"),
        volume=Decimal("541.455450000000000000"),
    )
    replay = StrategyFactory.create(name="trend [replay 2023-04-23..2024-04-21 20261203T125643398921]")
    PositionFactory.create(
        strategy=replay,
        instrument=bitcoin,
        quantity=Decimal("0.153846153846153846"),
        entry_price=Decimal("64940.580000000000000000"),
        entry_at=datetime(2024, 3, 1, 16, tzinfo=UTC),
    )

    candles = superuser_client.get("/admin/instruments/instrumentohlc/").content.decode()
    positions = superuser_client.get(
        "/admin/positions/position/?o=-6"
    ).content.decode()  # sorted by entry price

    assert '<td class="field-open">64,940.58</td>' in candles
    assert '<td class="field-volume">541.45545</td>' in candles
    assert "64940.580000" not in candles + positions
    assert '<td class="field-quantity">0.15384615</td>' in positions
    assert '<td class="field-entry_at">2024-03-01 16:00</td>' in positions
    assert "trend [replay 2023-04-23..2024-04-21]</td>" in positions
    assert 'id="nav-sidebar"' not in positions  # the navigation sidebar is off: the columns get its width


@pytest.mark.django_db
def test_a_help_text_naming_an_environment_variable_pattern_is_shown_whole(superuser_client: Client) -> None:
    html = superuser_client.get("/admin/trading/strategy/add/").content.decode()

    assert "keys from BARTER_EXCHANGE_&lt;ID&gt;_KEY" in html
    assert "BARTER_EXCHANGE_<ID>_KEY" not in html
