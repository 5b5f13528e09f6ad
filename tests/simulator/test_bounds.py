"""Bounded cost, applied the same everywhere: the API, the simulator form, ``manage.py simulate`` and the strategy
admin and API refuse what ``trading.engine.limits`` refuses, with the field named, and leave no row behind.

Each case is one the issue found: a period of 100,001 or 1,000,000 and a stddev of 1e308 passed validation and
then TA-Lib failed (``TA_BAD_PARAM``) with the run left ``running``; criteria nested 101 deep were accepted by the
API and 931 deep were a ``RecursionError`` 500 as an HTML page; dates 0001-01-01 and 9999-12-31 were 500s; the
2.4 MB document of 14,000 comparisons ran (1.9 GB in one worker); a body over the upload limit was an HTML 400.
"""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from pytest_django import Settings
from rest_framework.test import APIClient

from simulator.models import RunStatus, Simulation, Sweep
from simulator.services.inline import inline_slot
from simulator.services.requests import SimulationInputError, SimulationRequest, simulation_request_check
from simulator.services.sweeps import sweep_create
from tests.simulator.test_views import errors_for, form_data
from tests.trading.engine.test_limits import many_conditions, nested
from tests.trading.factories import sma_cross_criteria
from trading.engine.limits import MAX_DEPTH
from trading.models import Strategy

pytestmark = pytest.mark.django_db

BODY: dict[str, Any] = {
    "instruments": ["bitcoin"],
    "start": "2019-01-01",
    "end": "2019-12-31",
    "starting_cash": "5000",
    "criteria": sma_cross_criteria(),
}


def criteria_with_left(**operand: Any) -> dict[str, Any]:
    """``sma_cross_criteria`` with the first entry comparison's left operand replaced."""
    document = sma_cross_criteria()
    document["entry"]["all"][0]["left"] = operand
    return document


def deep_criteria(levels: int) -> dict[str, Any]:
    return {**sma_cross_criteria(), "entry": nested(levels)}


def assert_nothing_saved() -> None:
    assert not Simulation.objects.exists()
    assert not Sweep.objects.exists()


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("trader"))
    return client


@pytest.fixture
def logged_in(client: Client, db: None) -> Client:
    client.force_login(User.objects.create_user("form-user"))
    return client


# The API -----------------------------------------------------------------------------------------------------

CRITERIA_CASES = [
    pytest.param(
        criteria_with_left(indicator="sma", period=100_001),
        "entry.all[0].left.period: must be an integer <= 100,000, was 100001",
        id="period-100001",
    ),
    pytest.param(
        criteria_with_left(indicator="sma", period=1_000_000),
        "entry.all[0].left.period: must be an integer <= 100,000, was 1000000",
        id="period-1000000",
    ),
    pytest.param(
        criteria_with_left(indicator="bb_upper", period=20, stddev=1e308),
        "entry.all[0].left.stddev: must be > 0 and <= 100, was 1e+308",
        id="stddev-1e308",
    ),
    pytest.param(
        deep_criteria(101),
        f"nested more than {MAX_DEPTH} levels deep (objects and lists); simplify the criteria",
        id="nesting-101",
    ),
    pytest.param(
        criteria_with_left(indicator="sma", period=5_000),
        "entry.all[0].left.period: must be at most the 1,860 daily candles stored for bitcoin up to 2019-12-31;"
        " was 5,000",
        id="period-over-the-candles-stored",
    ),
]


@pytest.mark.parametrize(("criteria", "message"), CRITERIA_CASES)
def test_api_refuses_criteria_beyond_the_limits_with_a_field_error(
    shipped_history: None, api: APIClient, criteria: dict[str, Any], message: str
) -> None:
    response = api.post("/api/simulations/", {**BODY, "criteria": criteria}, format="json")

    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"criteria": [message]}
    assert_nothing_saved()


def test_api_refuses_the_issues_2_4_mb_document_of_14000_comparisons_by_its_field(
    shipped_history: None, api: APIClient
) -> None:
    body = json.dumps({**BODY, "criteria": many_conditions(14_000)})
    assert 2_400_000 < len(body) < 2_621_440  # under the body limit: refused by the criteria's own limits

    response = api.post("/api/simulations/", body, content_type="application/json")

    assert response.status_code == 400
    messages = response.json()["criteria"]
    assert messages[0].startswith("the criteria are 2,") and messages[0].endswith(
        "bytes as compact JSON; at most 65,536"
    )
    assert messages[1] == "the criteria have 14,000 comparisons (entry and exit); at most 200"
    assert_nothing_saved()


@pytest.mark.parametrize("levels", [931, 5_000])
def test_api_refuses_a_body_nested_931_deep_with_json_400_not_a_recursion_error(
    shipped_history: None, api: APIClient, levels: int
) -> None:
    body = (
        '{"instruments": ["bitcoin"], "start": "2019-01-01", "end": "2019-12-31", "criteria": '
        + '{"not": ' * levels
        + "1"
        + "}" * (levels + 1)
    )

    response = api.post("/api/simulations/", body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "detail": "JSON parse error - nested more than 200 levels deep; simplify the body"
    }
    assert_nothing_saved()


@pytest.mark.parametrize(
    ("field", "day"), [("start", "0001-01-01"), ("end", "9999-12-31"), ("start", "2009-01-02")]
)
def test_api_refuses_dates_outside_2009_01_03_to_today_with_a_field_error(
    shipped_history: None, api: APIClient, field: str, day: str
) -> None:
    response = api.post("/api/simulations/", {**BODY, field: day}, format="json")

    assert response.status_code == 400
    [message] = response.json()[field]
    assert message.startswith("must be between 2009-01-03 (the first Bitcoin block) and today (")
    assert message.endswith(f"; was {day}")
    assert_nothing_saved()


def test_api_answers_a_body_over_the_upload_limit_with_json_413(
    shipped_history: None, api: APIClient, settings: Settings
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({**BODY, "name": "x" * 20_000})

    response = api.post("/api/simulations/", body, content_type="application/json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "larger than the 10,000 bytes accepted (DATA_UPLOAD_MAX_MEMORY_SIZE)" in response.json()["detail"]
    assert_nothing_saved()


def test_api_answers_malformed_json_with_json_400(shipped_history: None, api: APIClient) -> None:
    response = api.post("/api/simulations/", '{"instruments": ', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error - ")
    assert_nothing_saved()


# The strategy API and admin: the same limits ----------------------------------------------------------------


@pytest.fixture
def admin_client(client: Client, db: None) -> Client:
    client.force_login(User.objects.create_superuser("boss", password="unused-password-123"))
    return client


@pytest.mark.parametrize(
    ("criteria", "message"),
    [case for case in CRITERIA_CASES if case.id != "period-over-the-candles-stored"],
)
def test_strategy_api_refuses_the_same_criteria(
    api: APIClient, criteria: dict[str, Any], message: str
) -> None:
    boss = APIClient()
    boss.force_authenticate(User.objects.create_superuser("boss", password="unused-password-123"))

    response = boss.post(
        "/api/strategies/",
        {"name": "too much", "criteria": criteria, "instruments": [], "starting_cash": "1000"},
        format="json",
    )

    assert response.status_code == 400, response.content[:300]
    assert message in response.json()["criteria"]
    assert not Strategy.objects.exists()


def test_strategy_admin_refuses_deep_and_huge_criteria_under_the_field(admin_client: Client) -> None:
    for criteria, expected in [
        (deep_criteria(931), f"nested more than {MAX_DEPTH} levels deep"),
        (many_conditions(14_000), "the criteria have 14,000 comparisons (entry and exit); at most 200"),
    ]:
        response = admin_client.post(
            "/admin/trading/strategy/add/",
            {
                "name": "too much",
                "description": "",
                "criteria": json.dumps(criteria),
                "starting_cash": "1000",
                "execution_backend": "paper",
            },
        )

        assert response.status_code == 200  # the form again, with the error under the field
        assert expected in response.content.decode()
    assert not Strategy.objects.exists()


# The simulator form ------------------------------------------------------------------------------------------


def test_form_shows_a_period_of_100001_next_to_its_field(shipped_history: None, logged_in: Client) -> None:
    response = logged_in.post("/simulator/", form_data(**{"entry-0-left_period": "100001"}))

    assert response.status_code == 200
    assert errors_for(response.content.decode(), "entry-0-left_period") == [
        "must be an integer &lt;= 100,000, was 100001"
    ]
    assert_nothing_saved()


def test_form_shows_a_stddev_of_1e308_next_to_its_field(shipped_history: None, logged_in: Client) -> None:
    data = form_data(
        **{"entry-0-left_indicator": "bb_upper", "entry-0-left_period": "20", "entry-0-left_stddev": "1e308"}
    )

    response = logged_in.post("/simulator/", data)

    assert errors_for(response.content.decode(), "entry-0-left_stddev") == [
        "must be &gt; 0 and &lt;= 100, was 1e+308"
    ]
    assert_nothing_saved()


def test_form_shows_a_period_longer_than_the_candles_stored_next_to_its_field(
    shipped_history: None, logged_in: Client
) -> None:
    response = logged_in.post("/simulator/", form_data(**{"entry-0-left_period": "5000"}))

    assert errors_for(response.content.decode(), "entry-0-left_period") == [
        "must be at most the 1,860 daily candles stored for bitcoin up to 2019-12-31; was 5,000"
    ]
    assert_nothing_saved()


@pytest.mark.parametrize(("field", "day"), [("start", "0001-01-01"), ("end", "9999-12-31")])
def test_form_shows_a_date_out_of_range_next_to_its_field(
    shipped_history: None, logged_in: Client, field: str, day: str
) -> None:
    response = logged_in.post("/simulator/", form_data(**{field: day}))

    assert response.status_code == 200
    [message] = errors_for(response.content.decode(), field)
    assert message.startswith("must be between 2009-01-03 (the first Bitcoin block) and today")
    assert_nothing_saved()


@pytest.mark.parametrize("levels", [40, 101, 931])
def test_form_shows_deep_nesting_next_to_the_json_box(
    shipped_history: None, logged_in: Client, levels: int
) -> None:
    # 40 passed the form's old limit of 64 and ran; 101 and 931 must never reach a RecursionError either
    data = form_data(advanced="on", criteria_json=json.dumps(deep_criteria(levels)))

    response = logged_in.post("/simulator/", data)

    assert response.status_code == 200
    assert errors_for(response.content.decode(), "criteria_json") == [
        f"nested more than {MAX_DEPTH} levels deep; simplify the criteria"
    ]
    assert_nothing_saved()


def test_form_shows_the_issues_2_4_mb_document_refused_next_to_the_json_box(
    shipped_history: None, logged_in: Client
) -> None:
    data = form_data(advanced="on", criteria_json=json.dumps(many_conditions(14_000)))

    response = logged_in.post("/simulator/", data, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    shown = errors_for(response.content.decode(), "criteria_json")
    assert shown[0].startswith("the criteria are 2,") and shown[0].endswith(
        "bytes as compact JSON; at most 65,536"
    )
    assert shown[1] == "the criteria have 14,000 comparisons (entry and exit); at most 200"
    # the JSON box shows what was typed; the sweep's field lists do not add 2 x 42,000 options (9 MB) to it
    assert response.content.count(b"<option") < 1_000
    assert_nothing_saved()


def test_form_body_over_the_upload_limit_is_a_413_with_a_message(
    shipped_history: None, logged_in: Client, settings: Settings
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50_000
    data = form_data(advanced="on", criteria_json=" " * 60_000 + json.dumps(sma_cross_criteria()))

    plain = logged_in.post("/simulator/", data)
    htmx = logged_in.post("/simulator/", data, HTTP_HX_REQUEST="true")

    for response in (plain, htmx):
        assert response.status_code == 413
        assert response["Content-Type"].startswith("text/html")
        assert "larger than the 50,000 bytes accepted" in response.content.decode()
    assert_nothing_saved()


# Sweeps ------------------------------------------------------------------------------------------------------


def _request() -> SimulationRequest:
    return simulation_request_check(
        instruments=["bitcoin"],
        start=date(2019, 1, 1),
        end=date(2019, 12, 31),
        starting_cash="1000",
        criteria=sma_cross_criteria(),
    )


def test_a_sweep_of_more_than_200000_comparison_evaluations_is_refused(shipped_history: None) -> None:
    criteria = copy.deepcopy(sma_cross_criteria())
    row = criteria["entry"]["all"][0]
    criteria["entry"]["all"] = [copy.deepcopy(row) for _ in range(40)]  # 40 + 1 exit = 41 comparisons
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2019, 1, 1),
        end=date(2019, 12, 31),
        starting_cash="1000",
        criteria=criteria,
    )
    axes = [
        {"path": "entry.all[0].left.period", "start": 2, "stop": 101, "step": 1},
        {"path": "entry.all[0].right.period", "start": 2, "stop": 51, "step": 1},
    ]  # 100 x 50 = 5,000 points: within 10,000, but 5,000 x 41 = 205,000 evaluations

    with pytest.raises(SimulationInputError) as raised:
        sweep_create(request=request, axes=axes)

    assert raised.value.errors == {
        "axes": [
            "5,000 grid points of criteria with 41 comparisons are 205,000 evaluations; at most 200,000: sweep "
            "fewer values or simplify the criteria"
        ]
    }
    assert_nothing_saved()


def test_a_sweep_of_more_than_10000_points_is_refused(shipped_history: None) -> None:
    axes = [
        {"path": "entry.all[0].left.period", "start": 2, "stop": 102, "step": 1},
        {"path": "entry.all[0].right.period", "start": 2, "stop": 101, "step": 1},
    ]  # 101 x 100 = 10,100 points

    with pytest.raises(SimulationInputError) as raised:
        sweep_create(request=_request(), axes=axes)

    assert raised.value.errors == {"axes": ["at most 10,000 grid points; was 10,100"]}
    assert_nothing_saved()


# manage.py simulate -------------------------------------------------------------------------------------------


def _simulate(tmp_path: Path, criteria: Any, start: str = "2019-01-01", end: str = "2019-12-31") -> None:
    path = tmp_path / "criteria.json"
    path.write_text(json.dumps(criteria))
    call_command(
        "simulate", "--criteria", str(path), "--instrument", "bitcoin", "--start", start, "--end", end
    )


@pytest.mark.parametrize(
    ("criteria", "start", "end", "message"),
    [
        (
            criteria_with_left(indicator="sma", period=100_001),
            "2019-01-01",
            "2019-12-31",
            "--criteria: entry",
        ),
        (
            criteria_with_left(indicator="bb_lower", period=20, stddev=1e308),
            "2019-01-01",
            "2019-12-31",
            "--criteria: entry.all[0].left.stddev: must be > 0 and <= 100",
        ),
        (deep_criteria(931), "2019-01-01", "2019-12-31", f"--criteria: nested more than {MAX_DEPTH} levels"),
        (
            many_conditions(14_000),
            "2019-01-01",
            "2019-12-31",
            "--criteria: the criteria have 14,000 comparisons",
        ),
        (sma_cross_criteria(), "0001-01-01", "2019-12-31", "--start: must be between 2009-01-03"),
        (sma_cross_criteria(), "2019-01-01", "9999-12-31", "--end: must be between 2009-01-03"),
    ],
)
def test_simulate_command_refuses_with_a_command_error(
    shipped_history: None, tmp_path: Path, criteria: dict[str, Any], start: str, end: str, message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        _simulate(tmp_path, criteria, start, end)

    assert message in str(raised.value)
    assert_nothing_saved()


def test_no_run_is_left_running_by_any_refused_request(
    shipped_history: None, api: APIClient, logged_in: Client
) -> None:
    for case in CRITERIA_CASES:
        api.post("/api/simulations/", {**BODY, "criteria": case.values[0]}, format="json")
        logged_in.post("/simulator/", form_data(advanced="on", criteria_json=json.dumps(case.values[0])))

    assert not Simulation.objects.filter(status__in=[RunStatus.RUNNING, RunStatus.PENDING]).exists()
    assert_nothing_saved()


# Inline slots: simulations inside web requests are bounded per process --------------------------------------


def test_a_simulation_beyond_the_inline_slots_is_503_with_retry_after_and_saves_nothing(
    shipped_history: None, api: APIClient, logged_in: Client, settings: Settings
) -> None:
    settings.BARTER_SIMULATOR_INLINE_CONCURRENCY = 1

    with inline_slot():  # another request of this process is simulating
        response = api.post("/api/simulations/", BODY, format="json")
        page = logged_in.post("/simulator/", form_data(), HTTP_HX_REQUEST="true")

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "SimulatorBusyError"
    assert "BARTER_SIMULATOR_INLINE_CONCURRENCY" in response.json()["message"]
    assert page.status_code == 200
    assert errors_for(page.content.decode(), "form")[0].startswith("the simulator is running 1 simulation(s)")
    assert_nothing_saved()
    assert api.post("/api/simulations/", BODY, format="json").status_code == 201  # the slot is free again
