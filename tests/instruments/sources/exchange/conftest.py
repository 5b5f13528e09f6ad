"""Fixtures of the exchange source tests: no keys, no sandbox, fresh ccxt objects; ``responses`` mocks."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import responses
from pytest_django import Settings

from instruments.sources.exchange.client import exchange_clients_reset

NO_KEYS = {
    exchange_id: {"api_key": "", "secret": "", "password": "", "sandbox": False}
    for exchange_id in ("binance", "bybit", "bitget")
}


@pytest.fixture(autouse=True)
def exchange_settings(settings: Settings) -> Iterator[Settings]:
    """No keys, no sandbox, and fresh ccxt objects before and after every test."""
    settings.BARTER_EXCHANGES = json.loads(json.dumps(NO_KEYS))
    exchange_clients_reset()
    yield settings
    exchange_clients_reset()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
