"""The browser-test harness: the app on a free local port, driven by Debian's Chromium.

A test marked ``@pytest.mark.browser`` asks for ``live_browser`` and gives it a list of steps (the scenario
format is documented at the top of ``tools/browser/run.cjs``: goto, fill, select, check, click, press, waitFor,
waitForUrl, count, text, evaluate, addScriptTag, screenshot). The steps run in one fresh Chromium profile via
``node tools/browser/run.cjs`` (npm ``playwright-core``, which downloads no browser), optionally after logging
in through the admin login page, and the test gets the JSON outcome back:

    result = live_browser.run([{"do": "text", "name": "heading", "selector": "h1"}], login_next="/")
    assert result.step("heading")["text"] == "Dashboard"

The app is pytest-django's ``live_server`` (a real threaded HTTP server on the test database, serving static
files from the apps' ``static/`` directories), so the browser sees exactly what a user would.

What the browser tests need, and how to point at it:

- ``node`` on ``PATH``;
- Chromium: ``$BARTER_CHROMIUM``, else ``chromium`` on ``PATH`` (Debian: ``apt-get install chromium``);
- ``playwright-core`` in ``tools/browser/node_modules`` (``npm ci --prefix tools/browser``), or in
  ``$BARTER_BROWSER_NODE_MODULES`` (passed to node as ``NODE_PATH``, which node consults only when
  ``tools/browser/node_modules`` has no ``playwright-core``).

When one is missing, the tests are skipped with the reason, except when ``CI=true`` or
``BARTER_REQUIRE_BROWSER=1`` (``.ci/run``): there they fail, so CI cannot pass without having run them.
Screenshots and failure screenshots go to ``tests/browser/artifacts/<test>/`` or
``$BARTER_TEST_ARTIFACTS/<test>/``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from pytest_django.live_server_helper import LiveServer

from tests.accounts import VIEW_ALL, user_with

REPO = Path(__file__).resolve().parents[2]
BROWSER_TOOLS = REPO / "tools" / "browser"
RUNNER = BROWSER_TOOLS / "run.cjs"
DEFAULT_ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# One Chromium start, a login and a handful of steps take a few seconds; this only stops a hung browser.
SCENARIO_TIMEOUT_SECONDS = 120.0


def browser_required() -> bool:
    """Return True when the browser tests must run: ``CI=true`` (set by GitHub Actions and most CI systems) or
    ``BARTER_REQUIRE_BROWSER=1`` (set by ``.ci/run``)."""
    return (
        os.environ.get("CI", "").strip().lower() in {"true", "1"}
        or os.environ.get("BARTER_REQUIRE_BROWSER") == "1"
    )


def node_modules_dir() -> Path:
    """Return the ``node_modules`` directory that must hold ``playwright-core``."""
    return Path(os.environ.get("BARTER_BROWSER_NODE_MODULES") or BROWSER_TOOLS / "node_modules")


def chromium_executable() -> str | None:
    """Return the Chromium to drive: ``$BARTER_CHROMIUM`` if set (even when missing), else ``chromium`` on PATH."""
    return os.environ.get("BARTER_CHROMIUM") or shutil.which("chromium")


def artifacts_root() -> Path:
    """Return where screenshots go: ``$BARTER_TEST_ARTIFACTS``, else ``tests/browser/artifacts`` (gitignored)."""
    return Path(os.environ.get("BARTER_TEST_ARTIFACTS") or DEFAULT_ARTIFACTS)


def missing_prerequisites() -> list[str]:
    """Return what the browser tests need and do not find, each with how to get it; empty when all is there."""
    missing = []
    if shutil.which("node") is None:
        missing.append("node on PATH (Debian: apt-get install nodejs)")
    chromium = chromium_executable()
    if chromium is None:
        missing.append("Chromium: chromium on PATH or BARTER_CHROMIUM (Debian: apt-get install chromium)")
    elif not os.access(chromium, os.X_OK):
        missing.append(f"Chromium at BARTER_CHROMIUM={chromium}, which is not an executable file")
    playwright_core = node_modules_dir() / "playwright-core" / "package.json"
    if not playwright_core.is_file():
        missing.append(f"{playwright_core.parent} (run: npm ci --prefix tools/browser)")
    return missing


def require_browser() -> None:
    """Skip the current test when a prerequisite is missing, or fail it when the browser tests are required.

    Raises:
        pytest.fail.Exception: something is missing and ``CI=true`` or ``BARTER_REQUIRE_BROWSER=1``.
        pytest.skip.Exception: something is missing otherwise.
    """
    missing = missing_prerequisites()
    if not missing:
        return
    reason = "browser tests need " + "; ".join(missing)
    if browser_required():
        pytest.fail(
            f"{reason} (CI=true or BARTER_REQUIRE_BROWSER=1: a missing browser is a failure, not a skip)",
            pytrace=False,
        )
    pytest.skip(reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check the prerequisites of every ``browser`` test before its fixtures start a server."""
    if item.get_closest_marker("browser") is not None:
        require_browser()


@dataclass(frozen=True)
class ScenarioResult:
    """What ``tools/browser/run.cjs`` printed for one scenario.

    Attributes:
        ok: every step passed.
        steps: one dict per passed step, in order: ``do``, ``name``, ``ms`` (duration, milliseconds) and the
            step's output (``status``, ``url``, ``count``, ``text``, ``value``, ``path``).
        error: the failed step and Playwright's message, or None.
        console: the page's console messages, ``{"type", "text"}``.
        page_errors: uncaught exceptions thrown in the page.
        failed_requests: requests that got no response, ``{"url", "failure"}``.
        browser_version: Chromium's version, e.g. ``"156.0.8078.79"``.
    """

    ok: bool
    steps: list[dict[str, Any]]
    error: str | None
    console: list[dict[str, str]]
    page_errors: list[str]
    failed_requests: list[dict[str, Any]]
    browser_version: str | None

    def step(self, name: str) -> dict[str, Any]:
        """Return the result of the step with this ``name``.

        Raises:
            KeyError: no passed step has that name.
        """
        for step in self.steps:
            if step.get("name") == name:
                return step
        raise KeyError(f"no step named {name!r}; named steps: {[s['name'] for s in self.steps if s['name']]}")


@dataclass
class LiveBrowser:
    """A running app and a logged-in-able user, and the means to drive Chromium against them.

    Attributes:
        base_url: the app's root, ``http://localhost:<port>`` (no trailing slash).
        username, password: a staff user (the admin login page admits staff only).
        artifacts: this test's artifact directory (created on first use).
    """

    base_url: str
    username: str
    password: str
    artifacts: Path
    chromium: str
    node_modules: Path
    work_dir: Path
    _runs: int = field(default=0, init=False)

    def url(self, path: str) -> str:
        """Return the absolute URL of an app path such as ``"/static/x.js"``."""
        return self.base_url + path

    def artifact(self, file_name: str) -> Path:
        """Return the path of an artifact of this test, e.g. ``artifact("dashboard.png")``."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        return self.artifacts / file_name

    def login_steps(self, next_path: str = "/") -> list[dict[str, Any]]:
        """Return the steps that log in through ``/admin/login/?next=<next_path>`` and land on ``next_path``.

        Landing is recognised by the logout form, which both the admin and ``base.html`` render for a
        logged-in user and the login page does not.
        """
        return [
            {"do": "goto", "name": "login page", "url": self.url(f"/admin/login/?next={quote(next_path)}")},
            {"do": "fill", "selector": "#id_username", "value": self.username},
            {"do": "fill", "selector": "#id_password", "value": self.password},
            {"do": "click", "selector": "#login-form [type=submit]"},
            {
                "do": "waitFor",
                "name": "logged in",
                "selector": "form[action='/admin/logout/']",
                "state": "attached",
            },
        ]

    def run(
        self,
        steps: list[dict[str, Any]],
        *,
        login_next: str | None = None,
        check: bool = True,
        timeout_seconds: float = SCENARIO_TIMEOUT_SECONDS,
        viewport: tuple[int, int] | None = None,
    ) -> ScenarioResult:
        """Run steps in a fresh Chromium profile and return the outcome.

        Args:
            steps: scenario steps (see ``tools/browser/run.cjs``); relative screenshot paths are put in
                this test's artifact directory.
            login_next: when given, log in first and land on this path (e.g. ``"/"``).
            check: fail the test, with the step's error and the page's console, when a step failed.
            timeout_seconds: wall-clock limit for the whole scenario, browser start included.
            viewport: the window's ``(width, height)`` in CSS pixels; default run.cjs's 1280 x 800.

        Returns:
            The parsed result; ``ok`` is False only when ``check`` is False.
        """
        self._runs += 1
        steps = [self._resolve(step) for step in steps]
        if login_next is not None:
            steps = self.login_steps(login_next) + steps
        scenario: dict[str, Any] = {
            "steps": steps,
            "screenshotOnFailure": str(self.artifact(f"failure-{self._runs}.png")),
        }
        if viewport is not None:
            scenario["viewport"] = {"width": viewport[0], "height": viewport[1]}
        scenario_path = self.work_dir / f"scenario-{self._runs}.json"
        scenario_path.write_text(json.dumps(scenario, indent=2))
        env = {**os.environ, "BARTER_CHROMIUM": self.chromium, "NODE_PATH": str(self.node_modules)}
        try:
            completed = subprocess.run(  # noqa: S603 - fixed program and arguments
                [shutil.which("node") or "node", str(RUNNER), str(scenario_path)],
                capture_output=True,
                text=True,
                timeout=timeout_seconds,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"the browser scenario took more than {timeout_seconds} s: {scenario_path}", pytrace=False
            )
        try:
            raw = json.loads(completed.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            pytest.fail(
                f"run.cjs printed no result (exit {completed.returncode}).\nstdout: {completed.stdout}\n"
                f"stderr: {completed.stderr}",
                pytrace=False,
            )
        result = ScenarioResult(
            ok=raw["ok"],
            steps=raw["steps"],
            error=raw["error"],
            console=raw["console"],
            page_errors=raw["pageErrors"],
            failed_requests=raw["failedRequests"],
            browser_version=raw["browserVersion"],
        )
        if check and not result.ok:
            pytest.fail(
                f"browser scenario failed: {result.error}\npage errors: {result.page_errors}\n"
                f"console: {result.console}\nfailed requests: {result.failed_requests}\n"
                f"screenshot: {scenario['screenshotOnFailure']}\nstderr: {completed.stderr[-2000:]}",
                pytrace=False,
            )
        return result

    def _resolve(self, step: dict[str, Any]) -> dict[str, Any]:
        if step.get("do") == "screenshot" and "path" in step and not Path(step["path"]).is_absolute():
            return {**step, "path": str(self.artifact(step["path"]))}
        return step


@pytest.fixture
def live_browser(
    request: pytest.FixtureRequest, live_server: LiveServer, django_user_model: Any, tmp_path: Path
) -> LiveBrowser:
    """The app served on a free local port, a staff user, and a ``run(steps)`` that drives Chromium against it.

    Raises:
        pytest.fail.Exception: the test is not marked ``@pytest.mark.browser``.
    """
    if request.node.get_closest_marker("browser") is None:
        pytest.fail("tests that use live_browser must be marked @pytest.mark.browser", pytrace=False)
    return browser_on(request, live_server.url, tmp_path)


def browser_on(
    request: pytest.FixtureRequest, base_url: str, tmp_path: Path, *, other_process: bool = False
) -> LiveBrowser:
    """A :class:`LiveBrowser` against a server that serves the test database at ``base_url``: pytest-django's
    ``live_server`` (the ``live_browser`` fixture), or, with ``other_process``, a test's own ``manage.py
    runserver`` or gunicorn process with the project's settings (a test with ``django_db(transaction=True)``, so
    that the server sees the staff user made here; its password is hashed with PBKDF2, which those settings
    check, rather than the test settings' fast hasher).

    Raises:
        pytest.skip.Exception, pytest.fail.Exception: a browser prerequisite is missing (:func:`require_browser`).
    """
    require_browser()
    password = secrets.token_urlsafe(16)
    # Staff with the reads of the dashboard (strategies, positions, history); the simulator needs no permission.
    user = user_with("browser", *VIEW_ALL, password=password, is_staff=True)
    if other_process:
        hasher = PBKDF2PasswordHasher()
        user.password = hasher.encode(password, hasher.salt(), iterations=1_000)  # few: a test user
        user.save(update_fields=["password"])
    artifacts = artifacts_root() / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(artifacts, ignore_errors=True)  # this test's screenshots of an earlier run
    return LiveBrowser(
        base_url=base_url.rstrip("/"),
        username=user.get_username(),
        password=password,
        artifacts=artifacts,
        chromium=chromium_executable() or "chromium",
        node_modules=node_modules_dir(),
        work_dir=tmp_path,
    )
