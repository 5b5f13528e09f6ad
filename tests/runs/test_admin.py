"""The admin page of ``History``: read-only, as the record is append-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runs.models import History, Step
from runs.recorder import run_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client, django_user_model: type[User]) -> Client:
    user = django_user_model.objects.create_superuser("boss", password="unused-password-123")
    client.force_login(user)
    return client


def test_history_is_read_only(staff_client: Client) -> None:
    run_start(step=Step.COLLECT, params={"as_of": "2024-01-01"})
    history = History.objects.get()

    assert staff_client.get("/admin/runs/history/").status_code == 200
    assert staff_client.get("/admin/runs/history/add/").status_code == 403
    assert staff_client.post(f"/admin/runs/history/{history.pk}/delete/", {"post": "yes"}).status_code == 403
