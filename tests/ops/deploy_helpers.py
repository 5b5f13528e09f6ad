"""Helpers of the deployment tests: production environment variables, a free port, and a gunicorn that is
always stopped (its whole process group) when the test ends."""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_SETTINGS = "barter_site.settings.production"
ALLOWED_HOST = "barter.example.com"
# What fly's internal health checks may send as Host: the machine's private address, not in ALLOWED_HOSTS.
PRIVATE_HOST = "172.19.0.2:8000"
# Variables of the developer's shell that must not leak into a production process started by a test.
_LEAKY_PREFIXES = ("DJANGO_", "COINGECKO_", "BARTER_", "CELERY_")
_LEAKY_NAMES = {"DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV", "PYTHONPATH", "PIP_REQUIRE_VIRTUALENV"}


def production_env(*, database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a production process: the required variables set, the developer's own left out."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _LEAKY_NAMES and not key.startswith(_LEAKY_PREFIXES)
    }
    env.update(
        DJANGO_SETTINGS_MODULE=PRODUCTION_SETTINGS,
        # 50+ characters, many distinct ones, no "django-insecure-" prefix: what check --deploy wants.
        DJANGO_SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=database_url,
        DJANGO_ALLOWED_HOSTS=ALLOWED_HOST,
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Answer:
    """One HTTP response: status, headers (names lower-cased) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def http_get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> Answer:
    """GET ``path`` from 127.0.0.1:``port`` with exactly these headers (``Host`` included when given)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return Answer(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=response.read(),
        )
    finally:
        connection.close()


@contextlib.contextmanager
def running_gunicorn(
    argv: list[str], *, cwd: Path, env: dict[str, str], port: int, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start gunicorn (``argv``, already bound to 127.0.0.1:``port``), wait until /healthz answers, yield it.

    Its output (stdout and stderr) goes to ``log_path``. On the way out, whatever happened, the whole process
    group gets SIGTERM, then SIGKILL if it has not exited after 10 seconds.
    """
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - a fixed command of this repository
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                http_get(port, "/healthz", {"Host": PRIVATE_HOST}, timeout=10)
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"gunicorn did not answer in 60 s:\n{log_path.read_text()}"
                    ) from None
                time.sleep(0.2)
        yield process
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group of ``process`` (started with ``start_new_session``), SIGKILL it after 10 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
