"""What ``make run`` does before serving, in order, offline: the first run of a new user."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from pytest_django import Settings
from rest_framework.test import APIClient

from instruments.models import Instrument, InstrumentOHLC
from positions.models import Position
from runs.models import History, HistoryKind
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)


def test_first_run_loads_history_records_the_offline_cycle_and_makes_an_admin(
    settings: Settings, capsys: pytest.CaptureFixture[str], retry_sleeps: list[float]
) -> None:
    settings.COINGECKO_BASE_URL = "http://127.0.0.1:9/api/v3"  # offline: nothing listens on the discard port

    call_command("load_shipped_history")
    call_command("load_example_strategies", "--enable")
    call_command("replay", "--days", "365", "--skip-existing")
    call_command("run_cycle")
    call_command("ensure_admin")
    out = capsys.readouterr().out

    # The examples, replayed by the real daily cycle over the last stored year, opened and closed positions.
    replayed = Position.objects.filter(strategy__name__contains="[replay ")
    assert replayed.closed().exists() and replayed.count() >= 3
    assert set(replayed.values_list("strategy__is_enabled", flat=True)) == {False}
    assert Strategy.objects.enabled().count() == 3

    assert set(Instrument.objects.values_list("coingecko_id", flat=True)) == {
        "bitcoin",
        "ethereum",
        "litecoin",
    }
    assert InstrumentOHLC.objects.filter(instrument__coingecko_id="bitcoin", timeframe="1d").count() == 3432
    assert "collect: failed" in out and "bitcoin: 0 added, 0 updated; error: CoinGecko" in out
    errors = History.objects.filter(step="collect", kind=HistoryKind.ERROR)
    assert errors.count() == 3 and all("no response" in e.message for e in errors)

    password_shown = re.search(r"Created admin user 'admin' with password: (\S+)", out)
    token_shown = re.search(r"API token for it \(Authorization: Token <key>\): (\S+)", out)
    assert password_shown is not None and token_shown is not None
    password, token = password_shown.group(1), token_shown.group(1)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/instruments/").json()["count"] == 3

    before = Position.objects.count()
    call_command("load_shipped_history")
    call_command("load_example_strategies", "--enable")
    call_command("replay", "--days", "365", "--skip-existing")
    call_command("ensure_admin")
    again = capsys.readouterr().out
    assert Position.objects.count() == before and "already replayed" in again
    assert "An admin user exists already" in again and password not in again
    assert InstrumentOHLC.objects.filter(instrument__coingecko_id="bitcoin", timeframe="1d").count() == 3432
