"""What ``make run`` does before serving, in order, offline: the first run of a new user.

The test runs the commands of the Makefile's ``run`` recipe (it checks they are the same ones, in the same order)
with the settings the recipe gives the daily cycle: one try per CoinGecko call, so offline the collect fails at
once instead of retrying. The replay of the examples is ``make replay`` (tests/positions/cycle/test_replay_command.py).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from pytest_django import Settings
from rest_framework.test import APIClient

from instruments.models import Instrument, InstrumentOHLC
from runs.models import History, HistoryKind
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)

#: 2014-11-28 .. 2024-12-31, every day: Bitstamp, then Binance hours rolled up (README "Shipped candle history").
BITCOIN_DAYS = 3687


def _run_recipe() -> list[list[str]]:
    """The commands of the Makefile's ``run`` target, as argument lists (variables left as written)."""
    text = (Path(django_settings.BASE_DIR) / "Makefile").read_text()
    recipe = text.split("\nrun: ", 1)[1].split("\n\n", 1)[0]
    return [
        shlex.split(line.strip().lstrip("@")) for line in recipe.splitlines()[1:] if line.startswith("\t")
    ]


def test_the_run_recipe_replays_nothing_and_warms_the_engine_before_serving() -> None:
    commands = [" ".join(c) for c in _run_recipe() if not c[0].startswith("echo")]
    assert commands == [
        "$(PY) manage.py migrate --noinput",
        # the engine compiles on one core while the history loads on the other; both must succeed
        "$(PY) -m trading.engine.warmup & warm=$$!; $(PY) manage.py load_shipped_history && wait $$warm",
        "$(PY) manage.py load_example_strategies --enable",
        "COINGECKO_MAX_RETRIES=0 COINGECKO_TIMEOUT_SECONDS=$(RUN_COLLECT_TIMEOUT_SECONDS) $(PY) manage.py run_cycle",
        "$(PY) manage.py ensure_admin",
        "BARTER_ENGINE_WARM_AT_START=true $(PY) manage.py runserver --noreload $(HOST):$(PORT)",
    ]


def test_first_run_loads_history_records_the_offline_cycle_and_makes_an_admin(
    settings: Settings, capsys: pytest.CaptureFixture[str], retry_sleeps: list[float]
) -> None:
    settings.COINGECKO_BASE_URL = "http://127.0.0.1:9/api/v3"  # offline: nothing listens on the discard port
    settings.COINGECKO_MAX_RETRIES = 0  # as the recipe sets it for run_cycle

    call_command("load_shipped_history")
    call_command("load_example_strategies", "--enable")
    call_command("run_cycle")
    call_command("ensure_admin")
    out = capsys.readouterr().out

    # No replay any more (make replay), and offline the collect gave up without a single wait.
    assert not Strategy.objects.filter(name__contains="[replay ").exists()
    assert Strategy.objects.enabled().count() == 3
    assert retry_sleeps == []

    assert set(Instrument.objects.values_list("coingecko_id", flat=True)) == {
        "bitcoin",
        "ethereum",
        "litecoin",
    }
    daily = InstrumentOHLC.objects.filter(instrument__coingecko_id="bitcoin", timeframe="1d")
    assert daily.count() == BITCOIN_DAYS
    assert daily.order_by("-open_time").first().open_time.date().isoformat() == "2024-12-31"  # type: ignore[union-attr]
    assert "collect: failed" in out and "bitcoin: 0 added, 0 updated; error: CoinGecko" in out
    errors = History.objects.filter(step="collect", kind=HistoryKind.ERROR)
    assert errors.count() == 3 and all("no response after 0 retries" in e.message for e in errors)

    password_shown = re.search(r"Created admin user 'admin' with password: (\S+)", out)
    token_shown = re.search(r"API token for it \(Authorization: Token <key>\): (\S+)", out)
    assert password_shown is not None and token_shown is not None
    password, token = password_shown.group(1), token_shown.group(1)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/instruments/").json()["count"] == 3

    call_command("load_shipped_history")
    call_command("load_example_strategies", "--enable")
    call_command("ensure_admin")
    again = capsys.readouterr().out
    assert "An admin user exists already" in again and password not in again
    assert daily.count() == BITCOIN_DAYS and Strategy.objects.count() == 3
