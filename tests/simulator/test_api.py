"""``/api/simulations/``: 201 with results, 400 with field errors, reads and CSVs of one's own runs only."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from simulator.models import Simulation
from tests.trading.factories import sma_cross_criteria

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("trader"))
    return client


BODY: dict[str, Any] = {
    "instruments": ["bitcoin"],
    "start": "2019-01-01",
    "end": "2020-12-31",
    "starting_cash": "5000",
    "criteria": sma_cross_criteria(),
    "name": "sma 10/20",
}


def test_post_runs_and_answers_201_with_statistics_trades_and_equity_curve(
    shipped_history: None, api: APIClient
) -> None:
    response = api.post("/api/simulations/", BODY, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "done"
    assert body["instruments"] == ["bitcoin"]
    assert body["starting_cash"] == "5000.000000000000000000"
    assert body["statistics"]["n_trades"] == len(body["trades"]) > 0
    assert len(body["equity_curve"]["equity"]) == 731  # 2019-01-01 .. 2020-12-31
    assert body["trades"][0].keys() >= {"instrument", "entry_at", "entry_price", "exit_reason", "pnl_ratio"}
    assert Simulation.objects.get(pk=body["id"]).name == "sma 10/20"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"end": "2018-01-01"}, "end", "must be on or after start"),
        ({"instruments": ["nope"]}, "instruments", "unknown instrument(s): nope"),
        ({"instruments": []}, "instruments", "This list may not be empty."),
        ({"starting_cash": "-1"}, "starting_cash", "must be > 0"),
        ({"start": "2019-02-30"}, "start", "Date has wrong format"),
        ({"criteria": sma_cross_criteria(fee_rate=-0.1)}, "criteria", "fee_rate:"),
        ({"instrument": "bitcoin"}, "instrument", "unknown field"),
    ],
)
def test_bad_bodies_are_400_with_field_errors(
    shipped_history: None, api: APIClient, change: dict[str, Any], field: str, message: str
) -> None:
    response = api.post("/api/simulations/", {**BODY, **change}, format="json")

    assert response.status_code == 400
    errors = response.json()
    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors
    assert not Simulation.objects.exists()


def test_read_list_and_csvs_of_ones_own_runs_only(shipped_history: None, api: APIClient) -> None:
    mine = api.post("/api/simulations/", BODY, format="json").json()
    other = APIClient()
    other.force_authenticate(User.objects.create_user("someone-else"))

    listed = api.get("/api/simulations/").json()
    detail = api.get(f"/api/simulations/{mine['id']}/").json()
    trades_csv = api.get(f"/api/simulations/{mine['id']}/trades.csv")
    equity_csv = api.get(f"/api/simulations/{mine['id']}/equity.csv")

    assert [row["id"] for row in listed["results"]] == [mine["id"]]
    assert "trades" not in listed["results"][0]
    assert detail["trades"] == mine["trades"]
    assert trades_csv["Content-Type"].startswith("text/csv")
    assert len(trades_csv.content.decode().splitlines()) == 1 + mine["statistics"]["n_trades"]
    assert len(equity_csv.content.decode().splitlines()) == 1 + 731
    assert other.get(f"/api/simulations/{mine['id']}/").status_code == 404
    assert other.get("/api/simulations/").json()["results"] == []


def test_the_api_needs_a_token_or_a_session(db: None) -> None:
    assert APIClient().post("/api/simulations/", BODY, format="json").status_code == 401
    assert APIClient().get("/api/simulations/").status_code == 401
