"""``manage.py backfill`` (:func:`instruments.collect.candles_backfill`): refused input, the Demo plan's reach.

Backfills through exchange pages are in ``tests/instruments/sources/exchange/test_daily.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pytest
import time_machine
from django.core.management import CommandError

from instruments.sources.base import DailyFetch
from instruments.sources.coingecko.client import CoinGeckoClient
from runs.models import History
from tests.instruments.factories import InstrumentFactory
from tests.instruments.sources.exchange.helpers import (
    NEW_YEAR_2025,
    backfill,
    exchange_instrument,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "exchange", "--since", "2024-13-01"], "--since must be a date like 2024-01-31"),
        (["--source", "kraken", "--since", "2024-01-01"], "--source must be one of exchange, coingecko"),
        (["--source", "coingecko", "--since", "2024-01-01"], "use --source exchange"),
        (["--source", "exchange", "--since", "2025-01-01"], "since must be before today (2025-01-01 UTC)"),
        (["--source", "exchange", "--since", "2024-01-01", "--page-limit", "5000"], "between 1 and 1000"),
    ],
)
@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_backfill_refuses_bad_input_saying_how_to_fix_it(args: list[str], message: str) -> None:
    exchange_instrument("binance")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        backfill("--instrument", "bitcoin", *args)
    assert not History.objects.exists()


def test_backfill_names_the_known_instruments_for_an_unknown_one() -> None:
    exchange_instrument("binance")
    with pytest.raises(CommandError, match=r"unknown instrument\(s\) 'dogecoin'.*bitcoin"):
        backfill("--instrument", "dogecoin", "--source", "exchange", "--since", "2024-01-01")


@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_a_coingecko_backfill_says_the_demo_plan_reaches_back_365_days(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    asked: list[list[date]] = []

    def fetch(client: CoinGeckoClient, *, days: Sequence[date], **kw: object) -> DailyFetch:
        asked.append(list(days))
        return DailyFetch(source="coingecko:market_chart_hourly")

    monkeypatch.setattr("instruments.sources.coingecko.source.fetch_daily_candles", fetch)

    output = backfill("--instrument", "bitcoin", "--source", "coingecko", "--since", "2020-01-01")

    assert "CoinGecko's Demo plan reaches back 365 days: days before 2024-01-02 were not asked for" in output
    assert asked == [[date(2024, 1, 2) + timedelta(days=n) for n in range(365)]]
