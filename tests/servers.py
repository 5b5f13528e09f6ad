"""The app served by a real gunicorn on a free 127.0.0.1 port, for tests that go through HTTP and processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests.fakes.clock import clock_command

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url() -> str:
    """``DATABASE_URL`` of the test database this test process uses (pytest-django's ``test_<name>``)."""
    db = connection.settings_dict
    credentials = quote(db.get("USER") or "postgres", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@contextmanager
def gunicorn_serving(
    env: dict[str, str], log_path: Path, *, workers: int = 2, threads: int = 1, now: str | None = None
) -> Iterator[str]:
    """Run ``gunicorn barter_site.wsgi`` with ``env`` over the test database until the block ends; yield its URL.

    Args:
        env: variables added to this process's environment (``DATABASE_URL`` defaults to the test database;
            ``REDIS_URL`` is removed unless given, so the steps run in the request).
        log_path: where gunicorn's output (access log included) goes; shown when it fails to start.
        workers: gunicorn worker processes.
        threads: threads per worker.
        now: ISO 8601 moment the server's clock starts at (``tests/fakes/clock.py``); default the real clock. The
            live open and close steps act only for the server's today.
    """
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    environment.update(
        {
            "DJANGO_SETTINGS_MODULE": "barter_site.settings.local",
            "DATABASE_URL": database_url(),
            "DJANGO_DEBUG": "False",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            # The day's report after a close step (an audit run, a digest) is off as in the test settings; a
            # test of it passes BARTER_DAILY_REPORT=true in env.
            "BARTER_DAILY_REPORT": "false",
            **env,
        }
    )
    command = [sys.executable, "-m", "gunicorn", "barter_site.wsgi", "--workers", str(workers)]
    if now is not None:
        command = clock_command(now, *command[1:])
    command += ["--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--timeout", "120"]
    command += ["--access-logfile", "-"]
    with log_path.open("w") as log:
        server = subprocess.Popen(  # noqa: S603 - our own command line
            command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"gunicorn exited with {server.returncode}:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(f"{url}/api/instruments/", timeout=2).close()  # noqa: S310
                break
            except urllib.error.HTTPError:
                break  # 401 without a token: it answers
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"gunicorn did not answer within 60 s:\n{log_path.read_text()}")
                threading.Event().wait(0.2)  # not time.sleep: the fake_coingecko fixture stubs it
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)
