"""``/healthz``: 200 when the database (and Redis, when configured) answer, 503 naming what failed; answered before
the HTTPS redirect and host validation, as fly's proxy and internal checks need."""

from __future__ import annotations

import logging
import socket
import uuid
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.db import OperationalError
from django.test import Client
from pytest_django import Settings

from barter_site import health
from runs import selectors as runs_selectors
from runs.models import RunStatus, Step
from runs.recorder import run_start

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


# --- /healthz?max_run_age_hours=N: the last successful daily cycle's age, for external monitors (issue 17)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def close_run(*, at: datetime, status: RunStatus = RunStatus.OK) -> None:
    """One close step for the day of ``at``, finished at ``at``, through the real recorder."""
    with time_machine.travel(at, tick=False):
        recorder = run_start(step=Step.CLOSE, params={"as_of": at.date().isoformat()})
        recorder.finish(status=status, summary={"as_of": at.date().isoformat(), "results": []})


@pytest.fixture
def no_redis(settings: Settings) -> None:
    settings.REDIS_URL = ""


@pytest.mark.usefixtures("no_redis")
def test_a_fresh_close_run_is_200_with_its_age(client: Client) -> None:
    close_run(at=datetime(2026, 12, 3, 0, 41, 30, tzinfo=UTC))

    with time_machine.travel(NOW, tick=False):
        response = client.get("/healthz?max_run_age_hours=26")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {
            "database": "ok",
            "daily_cycle": "last successful close run 2026-12-03T00:41:30+00:00 is 11.3 h old (max 26)",
        },
    }


@pytest.mark.usefixtures("no_redis")
def test_an_old_close_run_is_503_naming_daily_cycle(client: Client) -> None:
    # 30.1 h before NOW; a failed close step since does not count.
    close_run(at=datetime(2026, 12, 2, 5, 54, tzinfo=UTC))
    close_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC), status=RunStatus.FAILED)

    with time_machine.travel(NOW, tick=False):
        response = client.get("/healthz?max_run_age_hours=26")
        within = client.get("/healthz?max_run_age_hours=30.5")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "failed": ["daily_cycle"],
        "checks": {
            "database": "ok",
            "daily_cycle": "last successful close run 2026-12-02T05:54:00+00:00 is 30.1 h old (max 26)",
        },
    }
    assert within.status_code == 200  # a fractional limit is a limit too


@pytest.mark.usefixtures("no_redis")
def test_no_close_run_at_all_is_503(client: Client) -> None:
    response = client.get("/healthz?max_run_age_hours=26")

    assert response.status_code == 503
    assert response.json()["failed"] == ["daily_cycle"]
    assert response.json()["checks"]["daily_cycle"] == "no successful close run"


@pytest.mark.usefixtures("no_redis")
def test_without_the_parameter_an_old_cycle_changes_nothing(client: Client) -> None:
    # fly's routing check calls plain /healthz: a dead daily cycle must not take the app out of service.
    close_run(at=datetime(2026, 11, 1, 0, 41, tzinfo=UTC))

    with time_machine.travel(NOW, tick=False):
        response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


@pytest.mark.usefixtures("no_redis")
def test_a_failing_database_fails_the_daily_cycle_check_too(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**_: object) -> None:
        raise OperationalError("connection refused")

    def refuse_cycle() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(health, "database_check", refuse)
    monkeypatch.setattr("runs.selectors.last_daily_cycle", refuse_cycle)

    response = client.get("/healthz?max_run_age_hours=26")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "failed": ["database", "daily_cycle"],
        "checks": {"database": "OperationalError", "daily_cycle": "OperationalError"},
    }


@pytest.mark.parametrize(
    "query",
    [
        "max_run_age_hours=soon",
        "max_run_age_hours=",
        "max_run_age_hours=-1",
        "max_run_age_hours=0",
        "max_run_age_hours=nan",
        "max_run_age_hours=inf",
        "max_run_age_hours=-inf",
        "max_run_age_hours=1e400",
        "max_run_age_hours=8784.5",
        "max_run_age_hours=26&max_run_age_hours=48",
    ],
)
def test_a_bad_max_run_age_is_400_naming_the_field(client: Client, query: str) -> None:
    response = client.get(f"/healthz?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "bad_request" and set(body["errors"]) == {"max_run_age_hours"}
    (error,) = body["errors"]["max_run_age_hours"]
    if "&" in query:
        assert error == "give max_run_age_hours once; was given 2 times"
    else:
        value = query.split("=", 1)[1]
        assert error == (
            "max_run_age_hours must be a number of hours greater than 0 and at most 8784 (366 days), e.g. 26; "
            f"was {value!r}"
        )


@pytest.mark.usefixtures("no_redis")
def test_the_limit_itself_is_accepted(client: Client) -> None:
    close_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC))

    with time_machine.travel(NOW, tick=False):
        assert client.get("/healthz?max_run_age_hours=8784").status_code == 200
        assert client.get("/healthz?max_run_age_hours=0.5").status_code == 503


@pytest.mark.usefixtures("no_redis")
def test_head_answers_the_same_statuses(client: Client) -> None:
    close_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC))

    with time_machine.travel(NOW, tick=False):
        fresh = client.head("/healthz?max_run_age_hours=26")
        old = client.head("/healthz?max_run_age_hours=1")
    bad = client.head("/healthz?max_run_age_hours=zero")

    assert (fresh.status_code, old.status_code, bad.status_code) == (200, 503, 400)


@pytest.mark.usefixtures("no_redis")
def test_the_age_check_is_answered_before_the_https_redirect_and_host_validation(
    client: Client, settings: Settings
) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["example.com"]
    close_run(at=datetime(2026, 12, 3, 0, 41, tzinfo=UTC))

    with time_machine.travel(NOW, tick=False):
        fresh = client.get("/healthz?max_run_age_hours=26", HTTP_HOST=PRIVATE_HOST)
        old = client.get("/healthz?max_run_age_hours=2", HTTP_HOST=PRIVATE_HOST)
    bad = client.get("/healthz?max_run_age_hours=x", HTTP_HOST=PRIVATE_HOST)

    assert (fresh.status_code, old.status_code, bad.status_code) == (200, 503, 400)


def test_the_health_view_finds_the_selector_through_the_setting(client: Client, settings: Settings) -> None:
    settings.REDIS_URL = ""
    settings.BARTER_HEALTH_LAST_DAILY_CYCLE = "tests.test_health.a_cycle_of_2026_12_03"

    with time_machine.travel(NOW, tick=False):
        response = client.get("/healthz?max_run_age_hours=24")

    assert response.status_code == 200
    assert response.json()["checks"]["daily_cycle"] == (
        "last successful close run 2026-12-03T06:00:00+00:00 is 6.0 h old (max 24)"
    )


def a_cycle_of_2026_12_03() -> runs_selectors.DailyCycle:
    """A stand-in selector named by the setting above."""
    return runs_selectors.DailyCycle(
        run_id=uuid.UUID(int=1),
        as_of=date(2026, 12, 3),
        finished_at=datetime(2026, 12, 3, 6, tzinfo=UTC),
        status="ok",
    )
