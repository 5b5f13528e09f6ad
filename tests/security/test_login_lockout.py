"""The login lockout is django-axes': its settings come from Barter's variables, and its records are shown
read-only in the admin (the behaviour itself is tested in test_throttle.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from axes.models import AccessAttempt
from django.test import Client

from barter_site.settings.base import BASE_DIR
from tests.security.conftest import PASSWORD, Seeded


def test_the_lockout_variables_configure_axes() -> None:
    code = (
        "from barter_site.settings import base as s;"
        "print(s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()), s.AXES_LOCKOUT_PARAMETERS)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARTER_LOGIN")}
    env.update(
        DJANGO_SETTINGS_MODULE="barter_site.settings.base",
        BARTER_LOGIN_FAILURES_MAX="7",
        BARTER_LOGIN_FAILURES_WINDOW_SECONDS="120",
    )
    out = subprocess.run(  # noqa: S603 - the test's own interpreter and code
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "7 120 [['username', 'ip_address']]"


def test_the_lockout_records_are_read_only_in_the_admin(seeded: Seeded) -> None:
    attacker = Client(REMOTE_ADDR="203.0.113.7")
    for _ in range(2):
        attacker.post("/admin/login/", {"username": "alice", "password": "wrong"})
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == ("alice", "203.0.113.7", 2)

    admin = Client()
    assert admin.login(username="alice", password=PASSWORD)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and b"203.0.113.7" in listing.content
    assert b"action-select" not in listing.content  # no bulk actions (delete, clean up)
    assert admin.get("/admin/axes/accessattempt/add/").status_code == 403
    assert admin.get(f"/admin/axes/accessattempt/{attempt.pk}/delete/").status_code == 403
    change = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/change/", {"failures_since_start": 0})
    assert change.status_code == 403
    assert AccessAttempt.objects.get().failures_since_start == 2
    assert admin.get("/admin/axes/accessfailurelog/").status_code == 200
    assert admin.get("/admin/axes/accessfailurelog/add/").status_code == 403
