"""Walk-forward analyses in the simulator: ``/api/walk_forwards/`` (201, 400 with field errors, one's own only),
the service's run and result document, ``manage.py walk_forward``, failures stored on the record."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from pytest_django import DjangoCaptureOnCommitCallbacks
from rest_framework.test import APIClient

from simulator.models import RunStatus, WalkForward
from simulator.services.requests import SimulationInputError, simulation_request_check
from simulator.services.sweeps import sweep_grid, sweep_point_criteria
from simulator.services.walk_forwards import walk_forward_create, walk_forward_run
from tests.trading.factories import sma_cross_criteria
from trading.engine.vocabulary import STATISTICS_KEYS

pytestmark = pytest.mark.django_db


def crossover() -> dict[str, Any]:
    document = sma_cross_criteria()
    document["params"] = {"fast": 10, "slow": 40}
    for side in ("entry", "exit"):
        condition = document[side]["all" if side == "entry" else "any"][0]
        condition["left"]["period"] = {"param": "fast"}
        condition["right"]["period"] = {"param": "slow"}
    return document


AXES = [
    {"path": "params.fast", "values": [5, 10, 20]},
    {"path": "params.slow", "values": [30, 60]},
]

BODY: dict[str, Any] = {
    "instruments": ["bitcoin"],
    "start": "2018-01-01",
    "end": "2019-12-31",
    "starting_cash": "10000",
    "criteria": crossover(),
    "axes": AXES,
    "constraints": ["fast < slow"],
    "statistic": "sharpe_ratio",
    "rule": "plateau",
    "radius": 1,
    "train_days": 240,
    "test_days": 90,
    "name": "fast x slow, walk-forward",
}


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("trader"))
    return client


def post(api: APIClient, capture: DjangoCaptureOnCommitCallbacks, body: dict[str, Any]) -> Any:
    """POST a walk-forward and run what it starts once the request commits (the test settings run background
    work in the caller, so it has finished when this returns)."""
    with capture(execute=True):
        return api.post("/api/walk_forwards/", body, format="json")


def test_post_runs_it_and_get_shows_the_folds_the_stitched_curve_and_the_efficiency(
    shipped_history: None, api: APIClient, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    response = post(api, django_capture_on_commit_callbacks, BODY)

    assert response.status_code == 201, response.json()
    record = WalkForward.objects.get(pk=response.json()["id"])
    assert (record.rule, record.train_days, record.test_days, record.step_days) == ("plateau", 240, 90, 90)
    detail = api.get(f"/api/walk_forwards/{record.pk}/").json()
    assert detail["status"] == RunStatus.DONE, detail["error"]
    result = detail["result"]
    # 730 days: (730 - 240 - 90) // 90 + 1 = 5 folds, test windows back to back from 2018-08-29.
    assert len(result["folds"]) == 5
    assert result["folds"][0]["train"] == {"start": "2018-01-01", "end": "2018-08-28"}
    assert result["folds"][0]["test"] == {"start": "2018-08-29", "end": "2018-11-26"}
    assert result["folds"][1]["test"]["start"] == "2018-11-27"
    for fold, following in zip(result["folds"], result["folds"][1:], strict=False):
        assert following["starting_cash"] == pytest.approx(fold["final_equity"])  # one account
    # The chosen points respect the constraint and are grid points.
    for fold in result["folds"]:
        assert fold["chosen"]["params.fast"] < fold["chosen"]["params.slow"]
        assert fold["chosen"]["params.fast"] in (5, 10, 20)
        assert set(fold["out_of_sample_statistics"]) >= set(STATISTICS_KEYS)
        assert len(fold["in_sample_values"]) == len(fold["in_sample_sharpe_ratios"]) == 6
        # The statistic chosen by is the Sharpe ratio here: the two lists agree.
        assert fold["in_sample_values"] == fold["in_sample_sharpe_ratios"]
        assert fold["in_sample_statistic"] == fold["in_sample_values"][fold["chosen_index"]]
    curve = result["curve"]
    assert len(curve["time"]) == 5 * 90
    assert curve["equity"][-1] == pytest.approx(result["folds"][-1]["final_equity"])
    assert result["statistics"]["out_of_sample"]["final_equity"] == pytest.approx(curve["equity"][-1])
    assert [row["path"] for row in result["stability"]] == ["params.fast", "params.slow"]
    assert result["stability"][0]["values"] == [f["chosen"]["params.fast"] for f in result["folds"]]
    assert result["trials"] == 6  # no point breaks fast < slow here
    deflated = result["deflated_sharpe"]  # of each fold's choice (the engine's test checks the formula)
    assert deflated["folds"] == [f["deflated_sharpe_ratio"] for f in result["folds"]]
    assert all(0.0 <= v <= 1.0 for v in deflated["folds"])
    assert deflated["median"] == pytest.approx(sorted(deflated["folds"])[2])
    assert deflated["sentence"].startswith(
        "Each fold chose the best of 6 trials: median deflated Sharpe ratio"
    )
    listed = api.get("/api/walk_forwards/").json()
    assert [row["id"] for row in listed["results"]] == [record.pk]
    assert "result" not in listed["results"][0]


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"train_days": 0}, "train_days", "greater than or equal to 1"),
        ({"test_days": 90, "step_days": 30}, "step_days", "do not overlap"),
        ({"train_days": 700, "test_days": 60}, "train_days", "has 730"),
        ({"rule": "luck"}, "rule", "not a valid choice"),
        ({"axes": [{"path": "params.nope", "values": [1]}]}, "axes", "not a field"),
        ({"constraints": ["fast < sloww"]}, "constraints", "unknown parameter"),
        ({"statistic": "luck"}, "statistic", "not a valid choice"),
        ({"radius": 99}, "radius", "less than or equal to"),
        (  # 100 folds of 2,000 points: 200,000 runs of the grid on train windows
            {
                "train_days": 30,
                "test_days": 7,
                "axes": [
                    {"path": "params.fast", "start": 1, "stop": 100, "step": 1},
                    {"path": "params.slow", "start": 101, "stop": 120, "step": 1},
                ],
            },
            "axes",
            "100 folds x 2,000 grid points are 200,000 runs; at most 100,000",
        ),
    ],
)
def test_bad_input_is_a_400_with_field_errors(
    shipped_history: None,
    api: APIClient,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    change: dict[str, Any],
    field: str,
    words: str,
) -> None:
    response = post(api, django_capture_on_commit_callbacks, {**BODY, **change})

    assert response.status_code == 400
    errors = response.json()
    found = errors.get(field) or errors.get("errors", {}).get(field)
    assert found, errors
    assert words in " ".join(found)
    assert not WalkForward.objects.exists()


def test_windows_longer_than_the_data_say_which_days_have_data(shipped_history: None) -> None:
    first = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2014, 1, 1),
        end=date(2015, 6, 1),
        starting_cash=1000,
        criteria=crossover(),
    )
    with pytest.raises(SimulationInputError) as raised:
        walk_forward_create(request=first, axes=AXES, train_days=300, test_days=30)
    message = raised.value.errors["train_days"][0]
    assert message.startswith(
        "the data covers 2014-11-28 .. 2015-06-01 only: train_days + test_days = 330 days"
    )


def test_anonymous_is_refused_and_others_see_only_their_own(
    shipped_history: None, api: APIClient, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    assert APIClient().get("/api/walk_forwards/").status_code in (401, 403)
    assert APIClient().post("/api/walk_forwards/", BODY, format="json").status_code in (401, 403)
    created = post(api, django_capture_on_commit_callbacks, {**BODY, "axes": [AXES[0]], "constraints": []})
    other = APIClient()
    other.force_authenticate(User.objects.create_user("other"))
    assert other.get(f"/api/walk_forwards/{created.json()['id']}/").status_code == 404
    assert other.get("/api/walk_forwards/").json()["results"] == []


def test_a_failure_is_stored_on_the_record(shipped_history: None, monkeypatch: pytest.MonkeyPatch) -> None:
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2018, 1, 1),
        end=date(2018, 12, 31),
        starting_cash=1000,
        criteria=crossover(),
    )
    record = walk_forward_create(request=request, axes=[AXES[0]], train_days=200, test_days=60)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the engine broke")

    monkeypatch.setattr("simulator.services.walk_forwards.walk_forward", broken)
    record = walk_forward_run(walk_forward_id=record.pk)

    assert record.status == RunStatus.FAILED
    assert "the engine broke" in record.error


def test_the_chosen_point_is_the_best_train_run_of_its_fold(shipped_history: None) -> None:
    """The service's rule ``best`` on total return picks, in each fold, the grid point whose own simulation over
    the train window returns the most (checked against the simulator's single runs)."""
    from simulator.services.simulations import candles_load, engine_run

    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2018, 1, 1),
        end=date(2018, 12, 31),
        starting_cash=1000,
        criteria=crossover(),
    )
    record = walk_forward_create(
        request=request, axes=[AXES[0]], train_days=200, test_days=80, statistic="total_return_ratio"
    )
    record = walk_forward_run(walk_forward_id=record.pk)
    assert record.status == RunStatus.DONE, record.error
    candles = candles_load(list(request.instruments), request.end)
    axes = record.axes
    for fold in record.result["folds"]:
        train_start = date.fromisoformat(fold["train"]["start"])
        train_end = date.fromisoformat(fold["train"]["end"])
        returns = [
            engine_run(
                sweep_point_criteria(record.criteria, axes, values),
                candles,
                train_start,
                train_end,
                request.starting_cash,
            ).statistics["total_return_ratio"]
            for values in sweep_grid(axes)
        ]
        best = max(range(len(returns)), key=lambda i: (returns[i], -i))
        assert fold["chosen_index"] == best
        assert fold["in_sample_statistic"] == pytest.approx(returns[best])


def test_the_command_prints_the_folds_and_the_overall_figures(
    shipped_history: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps(crossover()))
    call_command(
        "walk_forward",
        "--criteria",
        str(criteria),
        "--axes",
        json.dumps(AXES),
        "--constraint",
        "fast < slow",
        "--instrument",
        "bitcoin",
        "--start",
        "2018-01-01",
        "--end",
        "2019-12-31",
        "--train-days",
        "240",
        "--test-days",
        "90",
        "--anchored",
        "--rule",
        "plateau",
    )
    out = capsys.readouterr().out
    assert "anchored, train 240 d, test 90 d, step 90 d, rule plateau (radius 1)" in out
    assert "2018-01-01 .. 2018-08-28  2018-08-29 .. 2018-11-26" in out
    assert "2018-01-01 .. 2019-08-23  2019-08-24 .. 2019-11-21" in out  # the last fold: its train window grew
    assert "Walk-forward efficiency (overall)" in out
    assert "params.fast:" in out
    assert WalkForward.objects.get().status == RunStatus.DONE


def test_the_command_says_how_to_fix_bad_windows(shipped_history: None, tmp_path: Path) -> None:
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps(crossover()))
    arguments = ["--criteria", str(criteria), "--axes", json.dumps(AXES), "--instrument", "bitcoin"]
    with pytest.raises(CommandError, match="--step-days: must be a whole number of days >= test_days"):
        call_command(
            "walk_forward",
            *arguments,
            "--start",
            "2018-01-01",
            "--end",
            "2019-12-31",
            "--train-days",
            "100",
            "--test-days",
            "50",
            "--step-days",
            "10",
        )
    with pytest.raises(CommandError, match="--train-days: train_days \\+ test_days = 900 days"):
        call_command(
            "walk_forward",
            *arguments,
            "--start",
            "2018-01-01",
            "--end",
            "2019-12-31",
            "--train-days",
            "800",
            "--test-days",
            "100",
        )
    with pytest.raises(CommandError, match="--axes: not JSON"):
        call_command(
            "walk_forward",
            "--criteria",
            str(criteria),
            "--axes",
            "[oops",
            "--instrument",
            "bitcoin",
            "--start",
            "2018-01-01",
            "--end",
            "2019-12-31",
            "--train-days",
            "100",
            "--test-days",
            "50",
        )


def test_a_walk_forward_whose_worker_died_is_failed_by_the_reaper(shipped_history: None) -> None:
    from datetime import UTC, datetime, timedelta

    from simulator.reaper import simulations_reap

    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2018, 1, 1),
        end=date(2018, 12, 31),
        starting_cash=1000,
        criteria=crossover(),
    )
    record = walk_forward_create(request=request, axes=[AXES[0]], train_days=200, test_days=60)
    last = datetime.now(tz=UTC) - timedelta(hours=1)
    WalkForward.objects.filter(pk=record.pk).update(
        status=RunStatus.RUNNING, heartbeat_at=last, progress_ratio=0.4
    )
    alive = walk_forward_create(request=request, axes=[AXES[0]], train_days=200, test_days=60)
    WalkForward.objects.filter(pk=alive.pk).update(
        status=RunStatus.RUNNING, heartbeat_at=datetime.now(tz=UTC)
    )

    assert simulations_reap() == {
        "simulations": [],
        "sweeps": [],
        "walk_forwards": [record.pk],
        "portfolio_simulations": [],
    }

    record.refresh_from_db()
    assert record.status == RunStatus.FAILED
    assert record.error == f"worker lost: no heartbeat since {last.isoformat()} (it was at 40%)"
    assert WalkForward.objects.get(pk=alive.pk).status == RunStatus.RUNNING
