"""How long the simulator form's POST of a 1,000-point sweep takes to answer on ``manage.py runserver`` without
``REDIS_URL`` (the embedded mode of ``make run``), and how long the sweep then takes to finish in the background.

    .venv/bin/python benchmarks/simulator_sweep_post.py [--database-url postgres://...] [--repo PATH]

The sweep is that of ``simulator_sweep.py`` (SMA fast 5..50 by 5 x slow 20..218 by 2 of the shipped SMA 20/50
example, every stored BTC day). ``--repo`` serves another checkout of Barter over the same database (to measure
an older version: the database must be migrated to what that checkout expects). The POST is timed from sending to
the redirect to the sweep's page; the sweep's page is then polled every 0.1 s until it is finished.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import DEFAULT_DATABASE_URL, ROOT, django_setup, example_criteria


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _open(url: str, cookies: str, data: bytes | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Cookie": cookies}
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - our own local server
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=600) as response:
            return response.status, dict(response.headers.items()), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout to serve (default this one)")
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()

    django_setup(args.database_url)
    from django.contrib.auth.models import User
    from django.test import Client

    from instruments.models import Instrument

    user, _ = User.objects.get_or_create(username="bench-sweep-post")
    client = Client()
    client.force_login(user)
    session = client.cookies["sessionid"].value
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DATABASE_URL=args.database_url, DJANGO_DEBUG="False", DJANGO_ALLOWED_HOSTS="127.0.0.1")
    server = subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{args.port}"],
        cwd=args.repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{args.port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2).close()  # noqa: S310
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("runserver did not answer within 60 s") from None
                time.sleep(0.2)
        status, headers, html = _open(f"{url}/simulator/", f"sessionid={session}")
        csrf_cookie = re.search(r"csrftoken=([^;]+)", headers.get("Set-Cookie", ""))
        csrf_form = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        if status != 200 or not csrf_cookie or not csrf_form:
            raise SystemExit(f"GET /simulator/ answered {status}")
        cookies = f"sessionid={session}; csrftoken={csrf_cookie.group(1)}"
        form = {
            "csrfmiddlewaretoken": csrf_form.group(1),
            "instruments": str(bitcoin.pk),
            "start": "2014-12-01",
            "end": "2024-04-20",
            "starting_cash": "10000",
            "name": "benchmark: POST of a sweep",
            "advanced": "on",
            "criteria_json": json.dumps(example_criteria()),
            "action": "sweep",
            "sweep_path_1": "entry.all[0].left.period",
            "sweep_start_1": "5",
            "sweep_stop_1": "50",
            "sweep_step_1": "5",
            "sweep_path_2": "entry.all[0].right.period",
            "sweep_start_2": "20",
            "sweep_stop_2": "218",
            "sweep_step_2": "2",
            "sweep_statistic": "sharpe_ratio",
        }
        posted = time.monotonic()
        status, headers, body = _open(f"{url}/simulator/", cookies, urllib.parse.urlencode(form).encode())
        answered = time.monotonic() - posted
        location = headers.get("Location", "")
        if status != 302 or "/sweeps/" not in location:
            raise SystemExit(f"the POST answered {status} {location}: {body[-1500:]}")
        status, _, page = _open(url + location, cookies)
        progress_shown = "sweep-progress" in page
        while True:
            status, headers, _ = _open(f"{url}{location}progress/", cookies)
            if headers.get("HX-Refresh") == "true":
                break
            if time.monotonic() - posted > 600:
                raise SystemExit("the sweep did not finish in 600 s")
            time.sleep(0.1)
        finished = time.monotonic() - posted
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"repo: {args.repo}   database: {args.database_url.split('@')[-1]}   cores: {os.cpu_count()}")
    print("| measure | seconds |")
    print("|---|---|")
    print(f"| POST of the 1,000-point sweep, to its redirect | {answered:.2f} |")
    print(f"| the sweep's page right after shows its progress | {'yes' if progress_shown else 'NO'} |")
    print(f"| from the POST to the sweep finished (progress polled) | {finished:.2f} |")


if __name__ == "__main__":
    main()
