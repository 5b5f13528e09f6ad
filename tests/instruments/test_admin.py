"""The admin pages: instruments (with counts and the "sync now" action) and candles, read-only."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoAssertNumQueries, Settings

from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, json_reply
from tests.instruments.factories import CandleFactory, InstrumentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client, django_user_model: type[User]) -> Client:
    user = django_user_model.objects.create_superuser("boss", password="unused-password-123")
    client.force_login(user)
    return client


def test_instrument_list_shows_candle_count_and_last_day_in_constant_queries(
    staff_client: Client, django_assert_max_num_queries: DjangoAssertNumQueries
) -> None:
    CandleFactory.reset_sequence()  # type: ignore[no-untyped-call]  # untyped in factory_boy
    for coin in ("bitcoin", "ethereum", "litecoin"):
        CandleFactory.create_batch(3, instrument=InstrumentFactory.create(coingecko_id=coin))
    with django_assert_max_num_queries(8):  # session, user, count, page: not one query per instrument
        page = staff_client.get("/admin/instruments/instrument/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('<td class="field-candle_count">3</td>') == 3
    assert html.count('<td class="field-last_candle">2024-01-0') == 3


def test_candles_are_read_only(staff_client: Client) -> None:
    candle = CandleFactory.create()

    assert staff_client.get("/admin/instruments/instrumentohlc/").status_code == 200
    assert staff_client.get("/admin/instruments/instrumentohlc/add/").status_code == 403
    change = staff_client.post(f"/admin/instruments/instrumentohlc/{candle.pk}/change/", {"open": "1"})
    assert change.status_code == 403


@pytest.mark.django_db(transaction=True)
def test_sync_now_action_runs_the_collect_step(
    staff_client: Client, fake_coingecko: FakeCoinGecko, settings: Settings
) -> None:
    import json

    settings.BARTER_BACKFILL_DAYS = 1
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    payload = json.loads((RECORDINGS / "derived" / "ohlc_days2_bitcoin_2024-01-03T0040Z.json").read_text())
    fake_coingecko.add("/coins/bitcoin/ohlc", json_reply(payload))

    with time_machine.travel(datetime(2024, 1, 3, 0, 40, tzinfo=UTC), tick=False):
        response = staff_client.post(
            "/admin/instruments/instrument/",
            {"action": "sync_now", "_selected_action": [bitcoin.pk]},
            follow=True,
        )
    assert [str(m) for m in response.context["messages"]] == ["bitcoin: 1 added, 0 updated"]
    assert bitcoin.candles.get().open_time.date() == date(2024, 1, 2)
