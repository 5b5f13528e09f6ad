"""``GET /api/history/``: the journal of every run, filtered by run and step."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.accounts import VIEW_ALL, api_token, user_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user_with('robot', *VIEW_ALL))}")
    return client


def test_history_filters_are_validated(api: APIClient) -> None:
    assert "step" in api.get("/api/history/", {"step": "dance"}).json()
    assert "run_id" in api.get("/api/history/", {"run_id": "nope"}).json()


def test_reads_need_an_authenticated_user() -> None:
    assert APIClient().get("/api/history/").status_code == 401
