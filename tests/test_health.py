"""``/healthz``: 200 when the database (and Redis, when configured) answer, 503 naming what failed; answered before
the HTTPS redirect and host validation, as fly's proxy and internal checks need."""

from __future__ import annotations

import logging
import socket

import pytest
from django.db import OperationalError
from django.test import Client
from pytest_django import Settings

from barter_site import health

pytestmark = pytest.mark.django_db

PRIVATE_HOST = "172.19.0.2:8000"  # what fly's internal checks may send as Host


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_healthy_answers_200_with_a_small_json_body(client: Client, settings: Settings) -> None:
    response = client.get("/healthz")

    expected = {"database": "ok", "redis": "ok"} if settings.REDIS_URL else {"database": "ok"}
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "checks": expected}
    assert "no-store" in response["Cache-Control"]


def test_without_redis_url_redis_is_not_checked(client: Client, settings: Settings) -> None:
    settings.REDIS_URL = ""

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok"}


@pytest.mark.redis
def test_a_configured_redis_that_answers_is_reported_ok(client: Client, settings: Settings) -> None:
    assert settings.REDIS_URL

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_a_failing_database_is_503_naming_database(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings.REDIS_URL = ""

    def refuse(**_: object) -> None:
        raise OperationalError("connection to server at 10.0.0.5 port 5432 failed: Connection refused")

    monkeypatch.setattr(health, "database_check", refuse)
    with caplog.at_level(logging.WARNING, logger="barter_site.health"):
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "failed": ["database"],
        "checks": {"database": "OperationalError"},
    }
    assert b"10.0.0.5" not in response.content  # details go to the log only
    assert "health check database failed: OperationalError" in caplog.text and "10.0.0.5" in caplog.text


def test_redis_on_a_closed_port_is_503_naming_redis(client: Client, settings: Settings) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis"]
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"] == "ConnectionError"


def test_production_like_settings_neither_redirect_nor_host_check_healthz(
    client: Client, settings: Settings
) -> None:
    settings.REDIS_URL = ""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["example.com"]

    health_response = client.get("/healthz", HTTP_HOST=PRIVATE_HOST)
    # The same request elsewhere is refused (unknown host) or redirected (plain HTTP): the settings do bite.
    other_path = client.get("/api/instruments/", HTTP_HOST=PRIVATE_HOST)
    plain_http = client.get("/api/instruments/", HTTP_HOST="example.com")

    assert health_response.status_code == 200
    assert health_response.json()["status"] == "ok"
    assert other_path.status_code == 400
    assert plain_http.status_code == 301 and plain_http["Location"] == "https://example.com/api/instruments/"


def test_only_get_and_head_are_allowed(client: Client) -> None:
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_the_response_carries_the_request_id(client: Client) -> None:
    given = client.get("/healthz", HTTP_FLY_REQUEST_ID="01JD0EXAMPLE7XQ-ams")
    generated = client.get("/healthz")

    assert given["Fly-Request-Id"] == "01JD0EXAMPLE7XQ-ams"
    assert len(generated["Fly-Request-Id"]) == 32
