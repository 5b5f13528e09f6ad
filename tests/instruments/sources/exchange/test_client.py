"""The ccxt client factory: settings, sandbox, credentials, lazy loading, and errors that say whether to retry."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import ccxt
import pytest
import responses
import time_machine
from pytest_django import Settings

from instruments.sources.exchange.client import (
    ExchangeApiError,
    ExchangeAuthError,
    ExchangeConfigError,
    ExchangeRateLimitedError,
    ExchangeRejectedError,
    ExchangeSymbolError,
    ExchangeUnavailableError,
    exchange_client,
    exchange_clients_reset,
    exchange_error,
)
from runs.models import History, HistoryKind
from tests.fakes.exchanges import FakeBinance, binance_days_2024
from tests.instruments.sources.exchange.helpers import (
    NEW_YEAR_2025,
    backfill,
    exchange_instrument,
    summary_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_client_is_configured_from_settings_and_shared(exchange_settings: Settings) -> None:
    exchange_settings.BARTER_EXCHANGE_TIMEOUT_SECONDS = 7.5
    exchange_settings.BARTER_EXCHANGES["bybit"]["sandbox"] = True
    client = exchange_client("bybit")

    assert client is exchange_client("bybit")  # one object (one rate limiter) per exchange and process
    assert (client.enableRateLimit, client.timeout) == (True, 7500)
    assert client.options["fetchMarkets"]["types"] == ["spot"]
    assert client.urls["api"]["public"] == "https://api-testnet.{hostname}"  # ccxt fills in bybit.com
    with pytest.raises(
        ExchangeConfigError, match="supported ccxt exchange ids binance, bybit, bitget; was 'kraken'"
    ):
        exchange_client("kraken")


def test_starting_the_app_does_not_load_ccxt_until_an_exchange_is_used() -> None:
    # ccxt costs ~75 MB per process: web and worker processes that trade no exchange never load it
    script = (
        "import sys, django; django.setup(); from django.urls import resolve; resolve('/api/sync_data'); "
        "import positions.cycle.open, positions.cycle.close, positions.execution.backends, positions.tasks, "
        "instruments.tasks, trading.admin, positions.admin; "
        "print('ccxt.base.exchange' in sys.modules); "
        "from instruments.sources.exchange.client import exchange_client; exchange_client('binance'); "
        "print('ccxt.base.exchange' in sys.modules)"
    )
    done = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "-c", script],
        env={"DJANGO_SETTINGS_MODULE": "barter_site.settings.test", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert done.stdout.split() == ["False", "True"]


@pytest.mark.parametrize(
    ("exchange_id", "live", "testnet"),
    [
        ("binance", "https://api.binance.com/api/v3", "https://testnet.binance.vision/api/v3"),
        ("bybit", "https://api.{hostname}", "https://api-testnet.{hostname}"),
    ],
)
def test_sandbox_is_per_exchange_account(
    exchange_settings: Settings, exchange_id: str, live: str, testnet: str
) -> None:
    # BARTER_EXCHANGE_<ID>_SANDBOX switches that account to the exchange's testnet, and no other account
    other, other_live = (
        ("bybit", "https://api.{hostname}")
        if exchange_id == "binance"
        else ("binance", "https://api.binance.com/api/v3")
    )
    exchange_settings.BARTER_EXCHANGES[exchange_id]["sandbox"] = True

    assert exchange_client(exchange_id).urls["api"]["public"] == testnet
    assert exchange_client(other).urls["api"]["public"] == other_live
    exchange_settings.BARTER_EXCHANGES[exchange_id]["sandbox"] = False
    exchange_clients_reset()
    assert exchange_client(exchange_id).urls["api"]["public"] == live


def test_an_authenticated_client_needs_every_credential(exchange_settings: Settings) -> None:
    with pytest.raises(
        ExchangeConfigError,
        match="set BARTER_EXCHANGE_BITGET_KEY and BARTER_EXCHANGE_BITGET_SECRET and BARTER_EXCHANGE_BITGET_PASSWORD",
    ):
        exchange_client("bitget", authenticated=True)
    exchange_settings.BARTER_EXCHANGES["binance"] |= {"api_key": "live-key-1", "secret": ""}
    with pytest.raises(ExchangeConfigError, match="set BARTER_EXCHANGE_BINANCE_SECRET in the environment"):
        exchange_client("binance", authenticated=True)
    exchange_settings.BARTER_EXCHANGES["binance"]["secret"] = "live-secret-1"
    exchange_clients_reset()
    client = exchange_client("binance", authenticated=True)
    assert (client.apiKey, client.secret) == ("live-key-1", "live-secret-1")


@time_machine.travel(NEW_YEAR_2025, tick=True)
def test_keys_never_reach_logs_or_history(
    rsps: responses.RequestsMock, exchange_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    key, secret = "k3yVISIBLEonlyTOccxt", "s3cretVISIBLEonlyTOccxt"
    exchange_settings.BARTER_EXCHANGES["binance"] |= {"api_key": key, "secret": secret}
    fake = FakeBinance(rsps, days=binance_days_2024(), now=NEW_YEAR_2025)
    # An exchange (or a proxy) that echoes the key back in its error.
    fake.fail("/api/v3/klines", status=401, body={"code": -2014, "msg": f"API-key format invalid: {key}"})
    exchange_instrument("binance")
    caplog.set_level(logging.DEBUG)

    summary = summary_of(backfill("--instrument", "bitcoin", "--source", "exchange", "--since", "2024-12-01"))

    assert "***" in summary["results"][0]["error"]
    payload = History.objects.get(kind=HistoryKind.ERROR).payload
    assert payload["ccxt_error"] == "AuthenticationError" and payload["retryable"] is False
    recorded = json.dumps(list(History.objects.values("message", "payload")), default=str)
    for value in (key, secret):
        assert value not in recorded
        assert value not in caplog.text
        assert value not in json.dumps(summary)


@pytest.mark.parametrize(
    ("ccxt_exception", "error_class", "retryable"),
    [
        (ccxt.NetworkError, ExchangeUnavailableError, True),
        (ccxt.RequestTimeout, ExchangeUnavailableError, True),
        (ccxt.DDoSProtection, ExchangeRateLimitedError, True),
        (ccxt.RateLimitExceeded, ExchangeRateLimitedError, True),
        (ccxt.ExchangeNotAvailable, ExchangeUnavailableError, True),
        (ccxt.OnMaintenance, ExchangeUnavailableError, True),
        (ccxt.BadSymbol, ExchangeSymbolError, False),
        (ccxt.AuthenticationError, ExchangeAuthError, False),
        (ccxt.PermissionDenied, ExchangeAuthError, False),
        (ccxt.InsufficientFunds, ExchangeRejectedError, False),
        (ccxt.ExchangeError, ExchangeRejectedError, False),
    ],
)
def test_ccxt_errors_map_to_application_errors_that_say_whether_to_retry(
    ccxt_exception: type[Exception], error_class: type[ExchangeApiError], retryable: bool
) -> None:
    error = exchange_error(
        ccxt_exception("binance GET https://api.binance.com/x?signature=abc 503"),
        what="doing x",
        exchange_id="binance",
    )

    assert type(error) is error_class
    assert error.retryable is retryable and error.extra["retryable"] is retryable
    assert error.message.startswith(
        f"binance failed doing x ({ccxt_exception.__name__}: binance GET https://api.binance.com/x?... 503)"
    )
