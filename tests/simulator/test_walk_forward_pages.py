"""The walk-forward pages: started from the simulator form (its sweep section's grid and the walk-forward fields),
errors next to their fields, the result page (stitched curve data, folds, in-sample beside out-of-sample,
stability), the list, the progress fragment, one's own only."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from simulator.models import RunStatus, WalkForward
from tests.simulator.test_views import errors_for, form_data, json_script

pytestmark = pytest.mark.django_db

GRID = {
    "sweep_path_1": "entry.all[0].left.period",
    "sweep_start_1": "5",
    "sweep_stop_1": "15",
    "sweep_step_1": "5",
    "sweep_statistic": "total_return_ratio",
}


@pytest.fixture
def client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("walker"))
    return client


def start(client: Client, capture: DjangoCaptureOnCommitCallbacks, **fields: str) -> object:
    data = form_data(action="walk_forward", **GRID, wf_train_days="240", wf_test_days="90", **fields)
    with capture(execute=True):
        return client.post("/simulator/", data)


def test_the_form_starts_a_walk_forward_and_its_page_shows_the_result(
    shipped_history: None, client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    response = start(client, django_capture_on_commit_callbacks, wf_rule="plateau", wf_radius="1")

    record = WalkForward.objects.get()
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert response["Location"] == f"/simulator/walk-forwards/{record.pk}/"  # type: ignore[index]
    assert (record.rule, record.radius, record.train_days, record.test_days) == ("plateau", 1, 240, 90)
    assert record.status == RunStatus.DONE, record.error
    html = client.get(f"/simulator/walk-forwards/{record.pk}/").content.decode()
    folds = record.result["folds"]
    # 2018-01-01 .. 2019-12-31: five folds of 90 test days after 240 train days.
    assert len(re.findall(r'<tr data-fold="\d+">', html)) == len(folds) == 5
    assert "2018-08-29 to 2018-11-26" in html
    chosen = folds[0]["chosen"]["entry.all[0].left.period"]
    assert f"entry.all[0].left.period = {chosen:g}" in html
    chart = json_script(html, "chart-data")
    assert len(chart["equity"]["time"]) == 5 * 90
    assert chart["equity"]["equity"][-1] == pytest.approx(folds[-1]["final_equity"], abs=0.01)
    assert 'id="chart-equity"' in html and 'id="overall"' in html and 'id="stability"' in html
    assert 'data-key="sharpe_ratio"' in html
    assert "Walk-forward efficiency" in html
    listed = client.get("/simulator/walk-forwards/").content.decode()
    assert f'href="/simulator/walk-forwards/{record.pk}/"' in listed
    assert "Walk-forwards</a>" in listed  # the subnav


def test_bad_windows_are_shown_next_to_their_fields(
    shipped_history: None, client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    response = start(client, django_capture_on_commit_callbacks, wf_step_days="30")

    assert response.status_code == 200  # type: ignore[attr-defined]
    messages = errors_for(response.content.decode(), "wf_step_days")  # type: ignore[attr-defined]
    assert messages and "do not overlap" in messages[0]
    data = form_data(action="walk_forward", **GRID)
    html = client.post("/simulator/", data).content.decode()
    assert errors_for(html, "wf_train_days") == ["required for a walk-forward"]
    assert not WalkForward.objects.exists()


def test_progress_polls_until_it_has_finished_and_others_get_404(
    shipped_history: None, client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    start(client, django_capture_on_commit_callbacks)
    record = WalkForward.objects.get()
    WalkForward.objects.filter(pk=record.pk).update(status=RunStatus.RUNNING, progress_ratio=0.4)
    html = client.get(f"/simulator/walk-forwards/{record.pk}/").content.decode()
    assert "40 % of the folds done" in html and 'hx-get="/simulator/walk-forwards/' in html
    WalkForward.objects.filter(pk=record.pk).update(status=RunStatus.FAILED, error="worker lost")
    progress = client.get(f"/simulator/walk-forwards/{record.pk}/progress/")
    assert progress["HX-Refresh"] == "true"
    assert "The walk-forward failed: worker lost" in progress.content.decode()
    other = Client()
    other.force_login(User.objects.create_user("other"))
    assert other.get(f"/simulator/walk-forwards/{record.pk}/").status_code == 404
