"""The candle source registry: one source per ``Instrument.candle_source`` value, and each named as before."""

from __future__ import annotations

from datetime import date

import pytest
from pytest_django import Settings

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from instruments.sources.registry import CANDLE_SOURCES, candle_source_for
from tests.instruments.factories import InstrumentFactory


def test_every_candle_source_choice_has_a_source_and_no_other_is_registered() -> None:
    assert sorted(CANDLE_SOURCES) == sorted(Instrument.CandleSource.values)


@pytest.mark.django_db
def test_each_instrument_gets_its_own_source_and_names() -> None:
    on_coingecko = InstrumentFactory.create(coingecko_id="bitcoin")
    on_binance = InstrumentFactory.create(
        coingecko_id="ethereum", candle_source="exchange", exchange_id="binance", market_symbol="ETH/USDT"
    )

    coingecko, exchange = candle_source_for(on_coingecko), candle_source_for(on_binance)

    assert (coingecko.describe(on_coingecko), coingecko.label(on_coingecko)) == ("CoinGecko", "coingecko")
    assert (exchange.describe(on_binance), exchange.label(on_binance)) == (
        "binance (ETH/USDT)",
        "exchange:binance",
    )
    assert exchange.reach(date(2025, 1, 1)) is None  # an exchange reaches back to the listing


def test_the_demo_plan_reaches_back_backfill_days_and_a_paid_plan_to_the_start(settings: Settings) -> None:
    coingecko = CANDLE_SOURCES["coingecko"]
    settings.COINGECKO_API_PLAN, settings.BARTER_BACKFILL_DAYS = "demo", 365

    reach = coingecko.reach(date(2025, 1, 1))

    assert reach is not None and reach[0] == date(2024, 1, 2)  # 2025-01-01 - 365 days (2024 is a leap year)
    assert "Demo plan reaches back 365 days: days before 2024-01-02" in reach[1]
    settings.COINGECKO_API_PLAN = "pro"
    assert coingecko.reach(date(2025, 1, 1)) is None


def test_an_unregistered_source_is_a_clear_error() -> None:
    instrument = Instrument(coingecko_id="dogecoin", candle_source="kraken")

    with pytest.raises(
        ApplicationError, match="candle source 'kraken'; the known ones are exchange, coingecko"
    ):
        candle_source_for(instrument)
