"""The REST API: auth, the collect endpoint, instruments, candles, history, the schema and docs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
import time_machine
from pytest_django import Settings
from rest_framework.test import APIClient

from runs.models import History
from tests.accounts import RUN_STEPS, VIEW_ALL, api_token, user_with
from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, json_reply
from tests.instruments.factories import CandleFactory, InstrumentFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def token(db: None) -> str:
    # Reads of instruments, candles and history, and the collect step.
    return api_token(user_with("robot", *VIEW_ALL, *RUN_STEPS))


@pytest.fixture
def api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_no_token_is_401() -> None:
    response = APIClient().post("/api/sync_data", {}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_a_wrong_token_is_401() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.post("/api/sync_data", {}, format="json").status_code == 401


def test_get_on_a_sync_endpoint_is_405(api: APIClient) -> None:
    assert api.get("/api/sync_data").status_code == 405


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"as_of": "2024-13-01"}, "as_of", "Date has wrong format"),
        ({"as_of": "2999-01-01"}, "as_of", "as_of must be today"),
        ({"instruments": "bitcoin"}, "instruments", 'Expected a list of items but got type "str"'),
        ({"instruments": []}, "instruments", "This list may not be empty"),
        ({"instruments": ["dogecoin"]}, "instruments", "unknown instrument(s) 'dogecoin'"),
        ({"instrument": ["bitcoin"]}, "instrument", "unknown field; expected one of as_of, instruments"),
    ],
)
def test_bad_body_is_400_with_field_errors(
    api: APIClient, body: dict[str, object], field: str, message: str
) -> None:
    InstrumentFactory.create(coingecko_id="bitcoin")
    response = api.post("/api/sync_data", body, format="json")
    assert response.status_code == 400
    assert message in response.json()[field][0]
    assert not History.objects.exists()


def test_malformed_json_is_400(api: APIClient) -> None:
    response = api.post("/api/sync_data", "{as_of: ", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@time_machine.travel(datetime(2024, 1, 3, 0, 40, tzinfo=UTC), tick=False)
def test_sync_data_returns_the_run_summary(
    api: APIClient, fake_coingecko: FakeCoinGecko, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 1
    InstrumentFactory.create(coingecko_id="bitcoin")
    InstrumentFactory.create(coingecko_id="ethereum")
    payload = json.loads((RECORDINGS / "derived" / "ohlc_days2_bitcoin_2024-01-03T0040Z.json").read_text())
    fake_coingecko.add("/coins/bitcoin/ohlc", json_reply(payload))

    response = api.post("/api/sync_data", {"as_of": "2024-01-03", "instruments": ["bitcoin"]}, format="json")

    assert response.status_code == 200
    summary = response.json()
    assert set(summary) == {
        "run_id",
        "step",
        "status",
        "started_at",
        "finished_at",
        "as_of",
        "results",
        "errors",
    }
    assert summary["step"] == "collect" and summary["status"] == "ok" and summary["as_of"] == "2024-01-03"
    assert summary["started_at"] == summary["finished_at"] == "2024-01-03T00:40:00+00:00"  # time is frozen
    assert summary["results"] == [
        {"instrument": "bitcoin", "candles_added": 1, "candles_updated": 0, "days_missing": 0, "error": None}
    ]
    assert fake_coingecko.requests_to("/coins/ethereum/ohlc") == []

    history = api.get("/api/history/", {"run_id": summary["run_id"]}).json()
    assert [row["kind"] for row in history["results"]] == ["run_finished", "candles_synced", "run_started"]
    assert history["results"][0]["payload"] == summary


def test_an_empty_body_means_defaults(api: APIClient, fake_coingecko: FakeCoinGecko) -> None:
    response = api.post("/api/sync_data")
    assert response.status_code == 200
    assert response.json()["as_of"] == datetime.now(UTC).date().isoformat()


def test_instruments_and_candles_are_listed(api: APIClient) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    # candles from 2024-01-01 on, with open 100, 101, ...
    CandleFactory.reset_sequence()  # type: ignore[no-untyped-call]  # untyped in factory_boy
    CandleFactory.create_batch(5, instrument=bitcoin)

    instruments = api.get("/api/instruments/").json()
    assert [i["coingecko_id"] for i in instruments["results"]] == ["bitcoin"]

    url = f"/api/instruments/{bitcoin.pk}/candles/"
    candles = api.get(url, {"start": "2024-01-02", "end": "2024-01-04"}).json()
    assert candles["count"] == 3
    assert [c["open_time"] for c in candles["results"]] == [
        "2024-01-02T00:00:00Z",
        "2024-01-03T00:00:00Z",
        "2024-01-04T00:00:00Z",
    ]
    first = candles["results"][0]
    assert (first["open"], first["close"], first["high"], first["low"]) == (
        "101.000000000000000000",
        "102.000000000000000000",
        "107.000000000000000000",
        "96.000000000000000000",
    )


def test_candles_query_is_validated(api: APIClient) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    url = f"/api/instruments/{bitcoin.pk}/candles/"
    assert api.get(url, {"timeframe": "5m"}).json() == {"timeframe": ['"5m" is not a valid choice.']}
    assert api.get(url, {"start": "2024-02-01", "end": "2024-01-01"}).json() == {
        "end": ["must be on or after start (2024-02-01)"]
    }
    assert api.get("/api/instruments/999999/candles/").status_code == 404


def test_candles_are_paginated(api: APIClient) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    CandleFactory.create_batch(501, instrument=bitcoin)
    page = api.get(f"/api/instruments/{bitcoin.pk}/candles/").json()
    assert page["count"] == 501 and len(page["results"]) == 500 and page["next"].endswith("page=2")


def test_reads_need_an_authenticated_user() -> None:
    assert APIClient().get("/api/instruments/").status_code == 401


def test_openapi_schema_and_swagger_ui_are_served_offline(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert {"/api/sync_data", "/api/instruments/", "/api/instruments/{id}/candles/", "/api/history/"} <= set(
        paths
    )
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html and "cdn.jsdelivr" not in html


def test_sync_data_command_prints_the_summary(
    fake_coingecko: FakeCoinGecko, capsys: pytest.CaptureFixture[str]
) -> None:
    from django.core.management import call_command

    InstrumentFactory.create(coingecko_id="bitcoin")
    with time_machine.travel(datetime(2024, 1, 3, 0, 40, tzinfo=UTC), tick=False):
        call_command("sync_data", "--as-of", "2024-01-03", "--instrument", "bitcoin")
    summary = json.loads(capsys.readouterr().out)
    assert summary["as_of"] == "2024-01-03" and summary["step"] == "collect"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "03/01/2024"], "--as-of must be a date like 2024-01-31 (YYYY-MM-DD); was '03/01/2024'"),
        (["--instrument", "nope"], "unknown instrument(s) 'nope'"),
        (["--as-of", date(2999, 1, 1).isoformat()], "as_of must be today"),
    ],
)
def test_sync_data_command_errors_are_command_errors(args: list[str], message: str) -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError) as caught:
        call_command("sync_data", *args)
    assert message in str(caught.value)
