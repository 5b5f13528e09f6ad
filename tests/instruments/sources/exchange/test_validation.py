"""An instrument's exchange fields: the database constraint and the field validators."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from instruments.models import Instrument

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "fields",
    [
        {"candle_source": "exchange"},
        {"candle_source": "exchange", "exchange_id": "binance"},
        {"candle_source": "exchange", "exchange_id": "kraken", "market_symbol": "BTC/USD"},
        {"candle_source": "coingecko", "exchange_id": "binance", "market_symbol": "BTC/USDT"},
        {"candle_source": "coingecko", "market_symbol": "BTC/USDT"},
    ],
)
def test_the_database_refuses_exchange_fields_without_the_exchange_source(fields: dict[str, str]) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Instrument.objects.create(coingecko_id="bitcoin", symbol="BTC", **fields)


def test_the_exchange_fields_are_validated_with_clear_messages() -> None:
    ok = Instrument(
        coingecko_id="bitcoin",
        symbol="BTC",
        candle_source="exchange",
        exchange_id="bybit",
        market_symbol="BTC/USDT",
    )
    ok.full_clean()
    ok.save()
    with pytest.raises(ValidationError) as unknown:
        Instrument(
            coingecko_id="b2",
            symbol="B",
            candle_source="exchange",
            exchange_id="kraken",
            market_symbol="BTCUSDT",
        ).full_clean()
    assert unknown.value.message_dict["exchange_id"] == [
        "exchange_id must be one of the supported ccxt exchange ids binance, bybit, bitget; was 'kraken'"
    ]
    assert "BASE/QUOTE in upper case, e.g. 'BTC/USDT'" in unknown.value.message_dict["market_symbol"][0]
    with pytest.raises(ValidationError) as missing:
        Instrument(coingecko_id="b3", symbol="B", candle_source="exchange").full_clean()
    assert set(missing.value.message_dict) == {"exchange_id", "market_symbol"}
    with pytest.raises(ValidationError) as stray:
        Instrument(coingecko_id="b4", symbol="B", market_symbol="BTC/USDT").full_clean()
    assert stray.value.message_dict["market_symbol"] == ["leave empty unless candle source is 'exchange'"]
