"""A safe redirect after login: an unsafe ``?next=`` after a successful admin login lands on the dashboard
(``LOGIN_REDIRECT_URL``), never on another host and never on a 404; a safe one is followed."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.security.conftest import PASSWORD, Seeded


@pytest.mark.parametrize(
    "unsafe_next",
    [
        "https://evil.example/steal",
        "//evil.example/steal",
        "///evil.example",
        "/\\evil.example",
        "javascript:alert(document.cookie)",
        "http://testserver.evil.example/",
        "https:evil.example",
    ],
)
def test_an_unsafe_next_lands_on_the_dashboard(seeded: Seeded, unsafe_next: str) -> None:
    client = Client()
    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD, "next": unsafe_next})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get(response["Location"]).status_code == 200  # the dashboard, not a 404


def test_an_unsafe_next_in_the_query_string_lands_on_the_dashboard_too(seeded: Seeded) -> None:
    client = Client()
    response = client.post("/admin/login/?next=//evil.example", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize("safe_next", ["/simulator/", "/admin/trading/strategy/", "/api/docs/"])
def test_a_safe_next_is_followed(seeded: Seeded, safe_next: str) -> None:
    client = Client()
    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD, "next": safe_next})
    assert response.status_code == 302 and response["Location"] == safe_next
