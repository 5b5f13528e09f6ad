"""Without a broker (the embedded mode), a sweep started from the form runs in a background thread of the server,
not in the request, on ``manage.py runserver`` as ``make run`` starts it (threaded: each request in its own thread,
not the one that imported Celery)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from simulator.models import RunStatus, Sweep
from tests.servers import REPO, database_url, free_port
from tests.simulator.candles import bitcoin_days
from tests.simulator.test_views import form_data


@contextmanager
def runserver(log_path: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``manage.py runserver --noreload`` (threaded) over the test database, without ``REDIS_URL`` unless ``env``
    gives one (``env``: variables added to its environment); yield its URL."""
    port = free_port()
    # As `make run` starts it: manage.py picks the local settings itself (DJANGO_SETTINGS_MODULE unset).
    environment = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    environment.update(
        {
            "DATABASE_URL": database_url(),
            "DJANGO_DEBUG": "False",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            **(env or {}),
        }
    )
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    with log_path.open("w") as log:
        server = subprocess.Popen(  # noqa: S603 - our own command line
            command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).close()  # noqa: S310
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                assert time.monotonic() < deadline, log_path.read_text()
                threading.Event().wait(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=20)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _open(request: urllib.request.Request) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, dict(response.headers.items()), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sweep_posted_to_runserver_without_a_broker_runs_in_the_background(tmp_path: Path) -> None:
    bitcoin_days()
    client = Client()
    client.force_login(User.objects.create_user("trader"))
    session = client.cookies["sessionid"].value
    data = form_data(
        action="sweep",
        sweep_path_1="entry.all[0].left.period",
        sweep_start_1="5",
        sweep_stop_1="50",
        sweep_step_1="5",
        sweep_path_2="stop_loss_ratio",
        sweep_start_2="4",
        sweep_stop_2="8",
        sweep_step_2="2",
    )
    with runserver(tmp_path / "server.log") as url:
        status, headers, html = _open(
            urllib.request.Request(f"{url}/simulator/", headers={"Cookie": f"sessionid={session}"})  # noqa: S310
        )
        assert status == 200, html
        cookie_match = re.search(r"csrftoken=([^;]+)", headers["Set-Cookie"])
        form_match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert cookie_match and form_match, html
        csrf_cookie, csrf_form = cookie_match.group(1), form_match.group(1)
        cookies = f"sessionid={session}; csrftoken={csrf_cookie}"

        posted = time.monotonic()
        status, headers, body = _open(
            urllib.request.Request(  # noqa: S310 - our own local server
                f"{url}/simulator/",
                data=urllib.parse.urlencode({**data, "csrfmiddlewaretoken": csrf_form}, doseq=True).encode(),
                headers={"Cookie": cookies, "Content-Type": "application/x-www-form-urlencoded"},
            )
        )
        answered = time.monotonic() - posted
        assert status == 302, f"{status}: {body[-2000:]}\n{(tmp_path / 'server.log').read_text()[-3000:]}"
        sweep = Sweep.objects.get()
        assert headers["Location"] == f"/simulator/sweeps/{sweep.pk}/"

        deadline = time.monotonic() + 60
        while True:
            status, headers, body = _open(
                urllib.request.Request(  # noqa: S310
                    f"{url}/simulator/sweeps/{sweep.pk}/progress/", headers={"Cookie": cookies}
                )
            )
            assert status == 200, body
            if headers.get("HX-Refresh") == "true":
                break
            assert 'hx-trigger="every 500ms"' in body
            assert time.monotonic() < deadline, body
            threading.Event().wait(0.2)

    sweep.refresh_from_db()
    assert (sweep.status, sweep.error, sweep.total) == (RunStatus.DONE, "", 30)
    assert sweep.points.filter(error="").count() == 30
    print(f"\nembedded sweep of 30 points on runserver: the POST answered in {answered:.2f} s")


_APP_IN_A_THREAD = """
from barter_site.settings import select_settings_module
select_settings_module()
import threading
import django
django.setup()
from celery import current_app
seen = []
thread = threading.Thread(target=lambda: seen.append((current_app.main, current_app.conf.task_always_eager)))
thread.start()
thread.join()
print(seen[0])
"""


def test_the_projects_celery_app_is_current_in_every_thread_as_manage_py_starts_it() -> None:
    # manage.py imports barter_site (and so makes the Celery app) before it sets DJANGO_SETTINGS_MODULE, so
    # Celery's Django fixup did not make the app the default: another thread got Celery's bare fallback app.
    environment = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _APP_IN_A_THREAD],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('barter', True)"
