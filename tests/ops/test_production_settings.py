"""Production settings, each loaded fresh in a subprocess: clean ``check --deploy``, required variables, JSON logs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_django import Settings

from tests.ops.deploy_helpers import (
    ALLOWED_HOST,
    PRIVATE_HOST,
    REPO,
    free_port,
    http_get,
    production_env,
    running_gunicorn,
)


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this repository's manage.py
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_reports_nothing(tmp_path: Path) -> None:
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=production_env(database_url=f"sqlite:///{tmp_path}/db"),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "how_to_set"),
    [
        ("DJANGO_SECRET_KEY", "`fly secrets set DJANGO_SECRET_KEY=...`"),
        ("DATABASE_URL", "`fly postgres attach <postgres-app>`"),
        ("DJANGO_ALLOWED_HOSTS", "`fly secrets set DJANGO_ALLOWED_HOSTS=...`"),
    ],
)
@pytest.mark.parametrize("absent_as", ["unset", "empty"])
def test_production_refuses_to_start_without_a_required_variable(
    tmp_path: Path, variable: str, how_to_set: str, absent_as: str
) -> None:
    env = production_env(database_url=f"sqlite:///{tmp_path}/db")
    if absent_as == "unset":
        del env[variable]
    else:
        env[variable] = ""  # also keeps a developer's .env from supplying it

    result = manage("check", env=env)

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {variable} is not set: production needs it; set it with {how_to_set}" in (
        result.stderr
    )


def production_values(env: dict[str, str], *names: str) -> dict[str, Any]:
    """The values of settings ``names`` as production loads them with ``env`` (JSON-encoded; repr for others)."""
    script = (
        "import json, django\n"
        "from django.conf import settings\n"
        "django.setup()\n"
        f"print(json.dumps({{name: getattr(settings, name) for name in {list(names)!r}}}, default=repr))\n"
    )
    result = subprocess.run(  # noqa: S603 - a fixed script
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])  # JSON: values of any type
    return values


def test_production_security_database_and_static_settings(tmp_path: Path) -> None:
    env = production_env(
        database_url=f"sqlite:///{tmp_path}/db",
        DJANGO_ALLOWED_HOSTS="barter.fly.dev, trade.example.org",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://barter.fly.dev, https://trade.example.org",
    )

    values = production_values(
        env,
        "DEBUG",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "DATABASES",
        "STORAGES",
        "MIDDLEWARE",
    )

    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["barter.fly.dev", "trade.example.org"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://barter.fly.dev", "https://trade.example.org"]
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] == 31_536_000
    assert values["DATABASES"]["default"]["CONN_MAX_AGE"] == 60
    assert values["DATABASES"]["default"]["CONN_HEALTH_CHECKS"] is True
    assert values["DATABASES"]["default"]["NAME"] == f"{tmp_path}/db"
    assert (
        values["STORAGES"]["staticfiles"]["BACKEND"]
        == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )
    middleware = values["MIDDLEWARE"]
    security = middleware.index("django.middleware.security.SecurityMiddleware")
    assert middleware[security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"
    assert middleware.index("barter_site.health.HealthCheckMiddleware") < security


def test_connection_max_age_comes_from_the_environment(tmp_path: Path) -> None:
    env = production_env(database_url=f"sqlite:///{tmp_path}/db", DJANGO_CONN_MAX_AGE_SECONDS="0")

    assert production_values(env, "DATABASES")["DATABASES"]["default"]["CONN_MAX_AGE"] == 0


def test_tests_and_local_settings_keep_plain_static_storage(settings: Settings) -> None:
    assert (
        settings.STORAGES["staticfiles"]["BACKEND"] == "django.contrib.staticfiles.storage.StaticFilesStorage"
    )


def test_a_request_logs_json_lines_carrying_the_request_id_of_its_response_header(tmp_path: Path) -> None:
    """gunicorn with the production settings, as fly runs it: every line on stdout is JSON, and each request's
    lines (gunicorn's access line, Django's own) carry the id returned in ``Fly-Request-Id``: fly's when it sent
    one, a generated one otherwise."""
    port = free_port()
    env = production_env(database_url=f"sqlite:///{tmp_path}/db")
    argv = [sys.executable, "-m", "gunicorn", "barter_site.wsgi", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", "1", "--access-logfile", "-"]
    log_path = tmp_path / "gunicorn.log"
    https = {"Host": ALLOWED_HOST, "X-Forwarded-Proto": "https"}
    with running_gunicorn(argv, cwd=REPO, env=env, port=port, log_path=log_path):
        generated = http_get(port, "/healthz", {"Host": PRIVATE_HOST})
        from_fly = http_get(port, "/api/instruments/", {**https, "Fly-Request-Id": "01JD0EXAMPLE7XQ-ams"})

    lines = [json.loads(line) for line in log_path.read_text().splitlines()]  # every line parses as JSON
    generated_id = generated.headers["fly-request-id"]
    assert generated.status == 200 and len(generated_id) == 32
    assert from_fly.status == 401 and from_fly.headers["fly-request-id"] == "01JD0EXAMPLE7XQ-ams"

    access_lines = [line for line in lines if line["logger"] == "gunicorn.access"]
    # One line per request (running_gunicorn's readiness probes made some more), each with its own id.
    request_ids = [line["request_id"] for line in access_lines]
    assert len(set(request_ids)) == len(request_ids) >= 3
    access = {line["request_id"]: line for line in access_lines}
    assert access[generated_id]["path"] == "/healthz" and access[generated_id]["status"] == 200
    assert access["01JD0EXAMPLE7XQ-ams"]["path"] == "/api/instruments/"
    assert access["01JD0EXAMPLE7XQ-ams"]["status"] == 401
    # Django's own record of the refused call, through the request-id log filter (not copied from a header).
    (unauthorized,) = [line for line in lines if line["logger"] == "django.request"]
    assert unauthorized["request_id"] == "01JD0EXAMPLE7XQ-ams"
    assert unauthorized["level"] == "WARNING" and unauthorized["message"] == "Unauthorized: /api/instruments/"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        # gunicorn imports barter_site.wsgi, whose package also holds the Celery app: production, not local.
        ("import barter_site.wsgi", "barter_site.settings.production"),
        # the celery command names no settings module; it gets the local (embedded) default.
        ("from barter_site.celery_app import app; app.conf.broker_url", "barter_site.settings.local"),
    ],
)
def test_each_entry_point_picks_its_own_default_settings(tmp_path: Path, entry: str, expected: str) -> None:
    env = production_env(database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    del env["DJANGO_SETTINGS_MODULE"]

    result = subprocess.run(  # noqa: S603 - this repository's own modules
        [sys.executable, "-c", f"import os; {entry}; print(os.environ['DJANGO_SETTINGS_MODULE'])"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
