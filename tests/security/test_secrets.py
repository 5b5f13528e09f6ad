"""Secrets never leak: the CoinGecko key and an API token are grepped for after runs that fail on purpose.

The fake CoinGecko (``tests/fakes/coingecko.py``) answers with bodies that echo the key back (a 401 as
CoinGecko's own "invalid key" error, a 500, an HTML page), so a message built from a body would carry it.
After the collect and open steps (through the API and the command), a wrong token, an unexpected crash
(DEBUG False, and DEBUG True's technical page), every place is searched: the captured logs (DEBUG and up),
stdout and stderr, every ``History`` row's message and payload, every API response and every error page.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.test import Client
from pytest_django import Settings

from instruments.api import SyncDataView
from instruments.models import Instrument
from runs.models import History
from tests.fakes.coingecko import FakeCoinGecko, Reply, json_reply
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.security.conftest import Seeded
from tests.trading.factories import StrategyFactory, sma_cross_criteria

AS_OF = date(2026, 3, 1)
KEY = f"CG-leakcheck{uuid.uuid4().hex[:16]}"


def _echoes(status: int, kind: str) -> Reply:
    if kind == "html":
        page = f"<html><body><h1>Bad gateway</h1><p>key={KEY}</p></body></html>"
        return Reply(status, page.encode(), {"Content-Type": "text/html"})
    return json_reply(
        {"status": {"error_code": 10002, "error_message": f"Invalid API Key: {KEY}"}}, status=status
    )


FAULTS = {
    "bitcoin": (401, "json"),
    "ethereum": (500, "json"),
    "litecoin": (200, "html"),
    "ripple": (502, "html"),
}


@pytest.fixture
def leaky_coingecko(fake_coingecko: FakeCoinGecko, settings: Settings) -> FakeCoinGecko:
    settings.COINGECKO_API_KEY = KEY
    settings.BARTER_BACKFILL_DAYS = 3
    settings.COINGECKO_MAX_RETRIES = 1
    for coin, (status, kind) in FAULTS.items():
        for path in (f"/coins/{coin}/ohlc", f"/coins/{coin}/market_chart/range"):
            fake_coingecko.add(path, _echoes(status, kind))
    fake_coingecko.add("/simple/price", _echoes(401, "json"))
    return fake_coingecko


@pytest.fixture
def instruments(db: None) -> list[Instrument]:
    coins = [InstrumentFactory.create(coingecko_id=coin, symbol=coin[:3].upper()) for coin in FAULTS]
    # Cardano has every candle up to the day before AS_OF (nothing to collect), so the open step enters it and
    # asks CoinGecko for a live price (which fails with the key in the body too).
    cardano = InstrumentFactory.create(coingecko_id="cardano", symbol="ADA")
    start = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC) - timedelta(days=40)
    for n in range(40):
        CandleFactory.create(instrument=cardano, open_time=start + timedelta(days=n))
    always = sma_cross_criteria(
        entry={"all": [{"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}]}, exit=None
    )
    StrategyFactory.create(name="always-in", criteria=always, is_enabled=True, instruments=[cardano])
    return coins


def _history_text() -> str:
    rows = History.objects.order_by("id")
    return "\n".join(f"{row.message}\n{json.dumps(row.payload, default=str)}" for row in rows)


def _assert_clean(where: str, text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, (
            f"{where} shows a secret: ...{text[max(0, text.find(secret) - 200) :][:400]}"
        )


@time_machine.travel(datetime.combine(AS_OF, time(0, 40), tzinfo=UTC), tick=True)  # live steps: today only
def test_failed_collect_and_open_runs_leak_no_key_nor_token(
    seeded: Seeded,
    instruments: list[Instrument],
    leaky_coingecko: FakeCoinGecko,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for logger in ("", "urllib3", "django", "instruments", "trading", "positions"):
        caplog.set_level(logging.DEBUG, logger=logger)
    client = Client(HTTP_AUTHORIZATION=f"Token {seeded.token}")
    responses = []
    body = {"as_of": AS_OF.isoformat()}
    for endpoint in ("/api/sync_data", "/api/sync_new_trades", "/api/sync_close_positions"):
        response = client.post(endpoint, body, content_type="application/json")
        assert response.status_code == 200, response.content
        responses.append(response.content.decode())
    collect = json.loads(responses[0])
    # Every instrument failed, each in its own way, and each error says what came back.
    assert collect["status"] == "partial"
    errors = {r["instrument"]: r["error"] for r in collect["results"]}
    assert errors.pop("cardano") is None
    assert set(errors) == set(FAULTS) and all(errors.values())
    assert "HTTP 401" in errors["bitcoin"] and "HTTP 500" in errors["ethereum"]
    assert "[redacted]" in errors["bitcoin"]  # the message is kept, only the key is cut out
    opened = json.loads(responses[1])["results"]
    assert [r["action"] for r in opened] == ["opened"]  # at the last close, since /simple/price failed
    call_command("sync_data", "--as-of", AS_OF.isoformat())
    # The fake really was asked, with the key in its header (and nowhere else).
    assert len(leaky_coingecko.seen) >= 9
    assert all(KEY not in seen.path and KEY not in json.dumps(seen.query) for seen in leaky_coingecko.seen)
    assert all(seen.headers.get("x-cg-demo-api-key") == KEY for seen in leaky_coingecko.seen)

    out, err = capfd.readouterr()
    logged = "\n".join(
        f"{r.getMessage()}\n{r.exc_text or ''}\n{json.dumps(r.__dict__.get('args'), default=str)}"
        for r in caplog.records
    )
    assert len(caplog.records) >= 10
    history = _history_text()
    assert History.objects.count() >= 10 and "HTTP 401" in history
    for where, text in [
        ("API", "\n".join(responses)),
        ("logs", logged),
        ("stdout", out),
        ("stderr", err),
        ("History", history),
    ]:
        _assert_clean(where, text, KEY, seeded.token)


def test_a_wrong_token_is_not_echoed_anywhere(
    seeded: Seeded, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = f"{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
    client = Client(HTTP_AUTHORIZATION=f"Token {wrong}")
    texts = []
    for method, url in [("GET", "/api/instruments/"), ("POST", "/api/sync_data"), ("GET", "/api/schema/")]:
        response = client.generic(method, url)
        assert response.status_code == 401
        texts.append(response.content.decode() + json.dumps(dict(response.headers)))
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for where, text in [("API", "\n".join(texts)), ("logs", logged), ("stdout", out), ("stderr", err)]:
        _assert_clean(where, text, wrong, seeded.token)


@pytest.mark.parametrize("debug", [False, True])
def test_an_error_page_shows_no_secret(
    seeded: Seeded,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    debug: bool,
) -> None:
    # An unexpected crash inside an authenticated API call: the 500 answer must hide the key and the token. With
    # DEBUG (make run) the API answers JSON naming the exception, not Django's technical page of settings and
    # request headers.
    settings.COINGECKO_API_KEY = KEY
    settings.DEBUG = debug
    caplog.set_level(logging.DEBUG)

    def crash(**_: object) -> None:
        raise RuntimeError("the collect step crashed")

    monkeypatch.setattr(SyncDataView, "service", staticmethod(crash))
    client = Client(HTTP_AUTHORIZATION=f"Token {seeded.token}", raise_request_exception=False)
    response = client.post("/api/sync_data", {}, content_type="application/json")
    assert response.status_code == 500
    page = response.content.decode()
    if debug:
        assert json.loads(page)["exception"] == "RuntimeError: the collect step crashed"
        assert "COINGECKO_API_KEY" not in page
    else:
        assert "crashed" not in page
    out, err = capfd.readouterr()
    logged = "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in caplog.records)
    assert "the collect step crashed" in logged  # the crash is logged, with its traceback
    for where, text in [("error page", page), ("logs", logged), ("stdout", out), ("stderr", err)]:
        _assert_clean(where, text, KEY, seeded.token)


def test_no_api_response_carries_a_setting_secret(seeded: Seeded, settings: Settings) -> None:
    # Every read endpoint, with the key and the secret key set to recognisable values.
    settings.COINGECKO_API_KEY = KEY
    from tests.security.urlwalk import routes

    client = Client(HTTP_AUTHORIZATION=f"Token {seeded.token}")
    texts = []
    for route in routes(seeded.ids):
        if route.url.startswith("/api/") and "GET" in route.methods:
            response = client.get(route.url)
            assert response.status_code == 200, route.url
            texts.append(response.content.decode())
    assert len(texts) >= 20
    _assert_clean("API", "\n".join(texts), KEY, settings.SECRET_KEY)
    # Only the token's digest is stored (knox); no read shows the key.
    _assert_clean("API", "\n".join(texts), seeded.token)
