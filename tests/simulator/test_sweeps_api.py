"""``/api/sweeps/``: 201 and a sweep that runs (in the caller under the test settings), 400 with field errors from
the same checks as the form, progress and the grid of any statistic, one's own sweeps only."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from simulator.models import RunStatus, Sweep
from simulator.services.requests import simulation_request_check
from simulator.services.sweeps import sweep_chunk_run, sweep_create, sweep_grid
from tests.accounts import api_token
from tests.simulator.candles import bitcoin_days
from tests.simulator.test_background import runserver
from tests.trading.factories import sma_cross_criteria
from trading.engine.limits import MAX_SWEEP_POINTS
from trading.engine.vocabulary import STATISTIC_BY_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("trader"))
    return client


AXES = [
    {"path": "entry.all[0].left.period", "start": 5, "stop": 15, "step": 5},
    {"path": "stop_loss_ratio", "values": [0.04, 0.08]},
]


def post(api: APIClient, capture: DjangoCaptureOnCommitCallbacks, body: dict[str, Any]) -> Any:
    """POST a sweep and run what it starts once the request's transaction commits (the test settings run the
    background work in the caller, so the sweep is finished when this returns)."""
    with capture(execute=True):
        return api.post("/api/sweeps/", body, format="json")


BODY: dict[str, Any] = {
    "instruments": ["bitcoin"],
    "start": "2018-01-01",
    "end": "2019-12-31",
    "starting_cash": "10000",
    "criteria": sma_cross_criteria(),
    "axes": AXES,
    "statistic": "sharpe_ratio",
    "name": "fast x stop",
}


def test_post_starts_the_sweep_and_answers_201_then_get_shows_its_progress_and_grid(
    shipped_history: None, api: APIClient, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    response = post(api, django_capture_on_commit_callbacks, BODY)

    assert response.status_code == 201, response.json()
    created = response.json()
    sweep = Sweep.objects.get(pk=created["id"])
    assert (sweep.name, sweep.statistic, sweep.total) == ("fast x stop", "sharpe_ratio", 6)
    assert created["instruments"] == ["bitcoin"]
    assert created["axes"] == [
        {"path": "entry.all[0].left.period", "values": [5.0, 10.0, 15.0]},
        {"path": "stop_loss_ratio", "values": [0.04, 0.08]},
    ]
    # The test settings run background work in the caller: the sweep is done by now.
    detail = api.get(f"/api/sweeps/{sweep.pk}/").json()
    assert (detail["status"], detail["total"], detail["done"], detail["progress_ratio"]) == (
        "done",
        6,
        6,
        1.0,
    )
    grid = detail["grid"]
    assert grid["statistic"] == "sharpe_ratio"
    assert [p["index"] for p in grid["points"]] == list(range(6))
    assert grid["points"][3]["values"] == {"entry.all[0].left.period": 10.0, "stop_loss_ratio": 0.08}
    # Each value is the point's own saved statistic, and the best is the highest of them.
    saved = {p.index: p.statistics for p in sweep.points.all()}
    for point in grid["points"]:
        assert point["value"] == pytest.approx(saved[point["index"]]["sharpe_ratio"])
        assert point["n_trades"] == saved[point["index"]]["n_trades"] > 0
        assert point["simulation"] is None  # no run until the point is opened
    best = max(grid["points"], key=lambda p: p["value"])
    assert grid["best"] == best
    assert detail["best_value"] == pytest.approx(best["value"])


def test_the_grid_of_another_statistic_is_read_without_running_again(
    shipped_history: None, api: APIClient, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    sweep_id = post(api, django_capture_on_commit_callbacks, BODY).json()["id"]
    saved = {p.index: p.statistics for p in Sweep.objects.get(pk=sweep_id).points.all()}

    drawdown = api.get(f"/api/sweeps/{sweep_id}/", {"statistic": "max_drawdown_ratio"}).json()["grid"]
    unknown = api.get(f"/api/sweeps/{sweep_id}/", {"statistic": "luck"})

    assert not STATISTIC_BY_KEY["max_drawdown_ratio"].higher_is_better
    assert [p["value"] for p in drawdown["points"]] == [saved[i]["max_drawdown_ratio"] for i in range(6)]
    assert drawdown["best"]["value"] == min(
        saved[i]["max_drawdown_ratio"] for i in range(6)
    )  # less is better
    assert unknown.status_code == 400
    assert "must be one of" in unknown.json()["statistic"][0]


def test_list_is_paginated_newest_first_with_progress_and_best_value(
    shipped_history: None, api: APIClient, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    first = post(api, django_capture_on_commit_callbacks, BODY).json()
    second = post(api, django_capture_on_commit_callbacks, {**BODY, "statistic": "total_return_ratio"}).json()

    listed = api.get("/api/sweeps/").json()

    assert listed["count"] == 2 and listed["next"] is None
    assert [row["id"] for row in listed["results"]] == [second["id"], first["id"]]
    assert "grid" not in listed["results"][0] and "criteria" not in listed["results"][0]
    assert listed["results"][0]["done"] == listed["results"][0]["total"] == 6
    returns = [p.statistics["total_return_ratio"] for p in Sweep.objects.get(pk=second["id"]).points.all()]
    assert listed["results"][0]["best_value"] == pytest.approx(max(returns))


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"axes": []}, "axes", "give one or two axes"),
        (
            {"axes": [{"path": "entry.all[9].left.period", "values": [5]}]},
            "axes",
            "is not a field of the criteria",
        ),
        ({"axes": [{"path": "stop_loss_ratio", "start": 1, "stop": 0, "step": 1}]}, "axes", "needs step > 0"),
        (
            {
                "axes": [
                    {"path": "entry.all[0].left.period", "start": 1, "stop": 200, "step": 1},
                    {"path": "entry.all[0].right.period", "start": 1, "stop": 200, "step": 1},
                ]
            },
            "axes",
            f"at most {MAX_SWEEP_POINTS:,} grid points; was 40,000",
        ),
        (
            {"axes": [{"path": "entry.all[0].left.period", "values": [0, 5]}]},
            "criteria",
            "at entry.all[0].left.period=0",
        ),
        ({"statistic": "luck"}, "statistic", "is not a valid choice"),
        ({"timeframe": "1h"}, "timeframe", "a sweep runs over daily candles only"),
        ({"end": "2017-01-01"}, "end", "must be on or after start"),
        ({"instruments": ["nope"]}, "instruments", "unknown instrument(s): nope"),
        ({"criteria": sma_cross_criteria(fee_rate=-0.1)}, "criteria", "fee_rate:"),
        ({"axis": []}, "axis", "unknown field"),
    ],
)
def test_bad_bodies_are_400_with_field_errors_and_save_nothing(
    shipped_history: None, api: APIClient, change: dict[str, Any], field: str, message: str
) -> None:
    response = api.post("/api/sweeps/", {**BODY, **change}, format="json")

    assert response.status_code == 400, response.json()
    errors = response.json()
    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors
    assert not Sweep.objects.exists()


def test_a_missing_body_names_every_required_field(db: None, api: APIClient) -> None:
    response = api.post("/api/sweeps/", {}, format="json")

    assert response.status_code == 400
    assert set(response.json()) == {"instruments", "start", "end", "criteria", "axes"}


def test_one_sees_only_ones_own_sweeps_and_a_superuser_every_one(
    shipped_history: None, api: APIClient, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    mine = post(api, django_capture_on_commit_callbacks, BODY).json()
    other = APIClient()
    other.force_authenticate(User.objects.create_user("someone-else"))
    root = APIClient()
    root.force_authenticate(User.objects.create_superuser("root"))

    assert other.get(f"/api/sweeps/{mine['id']}/").status_code == 404
    assert other.get("/api/sweeps/").json()["results"] == []
    assert root.get(f"/api/sweeps/{mine['id']}/").status_code == 200
    assert [row["id"] for row in root.get("/api/sweeps/").json()["results"]] == [mine["id"]]


def test_without_credentials_or_with_an_unknown_token_the_api_answers_401(db: None) -> None:
    assert APIClient().post("/api/sweeps/", BODY, format="json").status_code == 401
    assert APIClient().get("/api/sweeps/").status_code == 401
    forged = APIClient(HTTP_AUTHORIZATION="Token " + "0" * 64)
    assert forged.get("/api/sweeps/").status_code == 401
    assert forged.post("/api/sweeps/", BODY, format="json").status_code == 401
    assert not Sweep.objects.exists()


def test_a_sweep_that_runs_shows_its_progress(shipped_history: None, api: APIClient) -> None:
    """A sweep whose grid is half saved reads ``running`` with 3 of 6 points and the best of those."""
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2018, 1, 1),
        end=date(2019, 12, 31),
        starting_cash="10000",
        criteria=sma_cross_criteria(),
    )
    user = User.objects.get(username="trader")
    sweep = sweep_create(request=request, axes=AXES, statistic="sharpe_ratio", created_by=user)
    assert len(sweep_grid(sweep.axes)) == 6
    sweep_chunk_run(sweep_id=sweep.pk, first=0, stop=3)

    detail = api.get(f"/api/sweeps/{sweep.pk}/").json()

    assert (detail["status"], detail["done"], detail["total"]) == (RunStatus.RUNNING, 3, 6)
    assert detail["progress_ratio"] == 0.5
    assert [p["index"] for p in detail["grid"]["points"]] == [0, 1, 2]
    assert detail["best_value"] == detail["grid"]["best"]["value"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_runserver_without_a_broker_the_post_answers_at_once_and_get_shows_the_progress(
    tmp_path: Path,
) -> None:
    """The embedded mode of ``make run``: the grid runs in a background thread of the server, and the API's
    answers show it pending or running with a part of the grid, then done with all of it."""
    bitcoin_days()
    token = api_token(User.objects.create_user("api-trader"))
    body = {**BODY, "axes": [{"path": "entry.all[0].left.period", "start": 2, "stop": 101, "step": 1}]}
    with runserver(tmp_path / "server.log") as url:
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        posted = time.monotonic()
        post = urllib.request.Request(f"{url}/api/sweeps/", data=json.dumps(body).encode(), headers=headers)  # noqa: S310
        created = urllib.request.urlopen(post, timeout=60)  # noqa: S310 - our own local server
        answered = time.monotonic() - posted
        sweep = json.loads(created.read())
        assert created.status == 201
        assert sweep["status"] in ("pending", "running") and sweep["total"] == 100
        seen = []
        deadline = time.monotonic() + 120
        while True:
            get = urllib.request.Request(f"{url}/api/sweeps/{sweep['id']}/", headers=headers)  # noqa: S310
            with urllib.request.urlopen(get, timeout=60) as response:  # noqa: S310
                detail = json.loads(response.read())
            seen.append((detail["status"], detail["done"]))
            assert len(detail["grid"]["points"]) == detail["done"]
            if detail["status"] in ("done", "failed"):
                break
            assert time.monotonic() < deadline, seen
            threading.Event().wait(0.05)

    assert (detail["status"], detail["done"], detail["progress_ratio"]) == ("done", 100, 1.0)
    assert seen[0][1] < 100  # the answer came before the grid was done
    assert detail["grid"]["best"] is not None
    print(
        f"\nPOST /api/sweeps/ of 100 points on runserver answered in {answered:.2f} s; polls saw {seen[:3]}..."
    )


def param_criteria() -> dict[str, Any]:
    """An SMA fast/slow crossover whose entry and exit periods are the named parameters ``fast`` and ``slow``."""
    fast, slow = {"param": "fast"}, {"param": "slow"}
    return {
        **sma_cross_criteria(),
        "params": {"fast": 10, "slow": 30},
        "entry": {
            "left": {"indicator": "sma", "period": fast},
            "op": "crosses_above",
            "right": {"indicator": "sma", "period": slow},
        },
        "exit": {
            "left": {"indicator": "sma", "period": fast},
            "op": "crosses_below",
            "right": {"indicator": "sma", "period": slow},
        },
    }


def test_a_named_parameter_sweep_with_a_constraint_reports_the_points_it_skipped(
    shipped_history: None, api: APIClient, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    """``params`` and ``constraints`` through the API: the grid points that break ``fast < slow`` are saved
    skipped (saying which constraint), with no statistics: never run."""
    body = {
        **BODY,
        "criteria": param_criteria(),
        "axes": [
            {"path": "params.fast", "values": [10, 20, 30]},
            {"path": "params.slow", "values": [20, 30]},
        ],
        "constraints": ["fast < slow"],
    }
    response = post(api, django_capture_on_commit_callbacks, body)
    assert response.status_code == 201, response.json()
    assert response.json()["constraints"] == ["fast < slow"]
    grid = api.get(f"/api/sweeps/{response.json()['id']}/").json()["grid"]
    by_cell = {(p["values"]["params.fast"], p["values"]["params.slow"]): p for p in grid["points"]}
    assert len(by_cell) == 6
    skipped = {cell for cell, point in by_cell.items() if point["skipped"]}
    assert skipped == {(20.0, 20.0), (30.0, 20.0), (30.0, 30.0)}
    for cell, point in by_cell.items():
        if cell in skipped:
            assert point["skipped"] == "fast >= slow"
            assert (point["value"], point["n_trades"]) == (None, None)
        else:
            assert point["n_trades"] is not None and point["n_trades"] > 0


def test_a_bad_constraint_is_a_400_on_the_constraints_field(
    db: None, api: APIClient, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    body = {
        **BODY,
        "criteria": param_criteria(),
        "axes": [{"path": "params.fast", "values": [5, 10]}],
        "constraints": ["fast < nope"],
    }
    response = post(api, django_capture_on_commit_callbacks, body)
    assert response.status_code == 400
    assert set(response.json()) == {"constraints"}, response.json()
    assert not Sweep.objects.exists()
