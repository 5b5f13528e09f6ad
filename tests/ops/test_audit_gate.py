"""tools/audit_gate.py: what `.ci/run` does with the result of `make audit`, tried with a fake command that
prints what pip-audit 2.10 prints in each case (its strict run, and the non-strict JSON run it repeats)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from barter_site.settings.base import BASE_DIR

GATE = BASE_DIR / "tools" / "audit_gate.py"
NOT_FOUND = "Dependency not found on PyPI and could not be audited: {0} (1.0)"


def _fake_audit(tmp_path: Path, *, strict: tuple[int, str], json_run: tuple[int, str] = (0, "")) -> Path:
    """A stand-in for `make audit`: prints ``strict`` (exit status, text) when called plainly, ``json_run`` when
    called with AUDIT_STRICT= AUDIT_FORMAT=json, and logs every call."""
    script = tmp_path / "fake-make-audit"
    script.write_text(
        "import sys\n"
        f"log = open({str(tmp_path / 'calls')!r}, 'a'); log.write(' '.join(sys.argv[1:]) + '\\n'); log.close()\n"
        f"strict, json_run = {strict!r}, {json_run!r}\n"
        "code, text = json_run if 'AUDIT_STRICT=' in sys.argv else strict\n"
        "print(text); sys.exit(code)\n"
    )
    return script


def _gate(tmp_path: Path, script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(GATE), sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )


def _report(dependencies: list[dict[str, object]]) -> str:
    return json.dumps({"dependencies": dependencies, "fixes": []})


def test_a_clean_audit_passes(tmp_path: Path) -> None:
    result = _gate(tmp_path, _fake_audit(tmp_path, strict=(0, "No known vulnerabilities found")))
    assert result.returncode == 0
    assert "pip-audit passed" in result.stdout and "NOT RUN" not in result.stdout


def test_a_known_vulnerability_fails(tmp_path: Path) -> None:
    text = "Found 1 known vulnerability in 1 package\nName Version ID Fix\ndjango 5.2.1 PYSEC-2025-1 5.2.2"
    result = _gate(tmp_path, _fake_audit(tmp_path, strict=(1, text)))
    assert result.returncode == 1
    assert "pip-audit FAILED: pip-audit found known vulnerabilities" in result.stderr
    assert "NOT RUN" not in result.stdout


@pytest.mark.parametrize(
    "network_error",
    [
        "ERROR:pip_audit._cli:Could not connect to PyPI's vulnerability feed",
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='x', port=443): Max retries exceeded",
    ],
)
def test_a_network_error_is_reported_as_not_run_with_its_reason(tmp_path: Path, network_error: str) -> None:
    text = f"{network_error}\nERROR:pip_audit._cli:Tip: your network may be blocking this service."
    result = _gate(tmp_path, _fake_audit(tmp_path, strict=(1, text)))
    assert result.returncode == 0
    assert f"pip-audit NOT RUN: {network_error}" in result.stdout


def test_every_package_not_found_is_reported_as_not_run(tmp_path: Path) -> None:
    # A package index without pip-audit's per-version JSON (the development machines): strict stops at the first.
    strict = (1, "ERROR:pip_audit._cli:" + NOT_FOUND.format("aiohttp"))
    report = _report(
        [{"name": n, "skip_reason": NOT_FOUND.format(n)} for n in ("aiohttp", "django", "numpy")]
    )
    result = _gate(tmp_path, _fake_audit(tmp_path, strict=strict, json_run=(0, report)))
    assert result.returncode == 0
    assert (
        "pip-audit NOT RUN: its vulnerability data answered 'not found' for every one of the 3"
        in result.stdout
    )
    assert (tmp_path / "calls").read_text().splitlines() == ["", "AUDIT_STRICT= AUDIT_FORMAT=json"]


def test_one_package_not_found_while_others_are_checked_fails(tmp_path: Path) -> None:
    strict = (1, "ERROR:pip_audit._cli:" + NOT_FOUND.format("private-lib"))
    report = _report(
        [
            {"name": "django", "version": "5.2.19", "vulns": []},
            {"name": "private-lib", "skip_reason": NOT_FOUND.format("private-lib")},
        ]
    )
    result = _gate(tmp_path, _fake_audit(tmp_path, strict=strict, json_run=(0, report)))
    assert result.returncode == 1
    assert "could not check some packages while it could check others" in result.stderr


def test_a_vulnerability_seen_only_in_the_second_run_fails(tmp_path: Path) -> None:
    strict = (1, "ERROR:pip_audit._cli:" + NOT_FOUND.format("aaa"))
    report = _report(
        [
            {"name": "aaa", "skip_reason": NOT_FOUND.format("aaa")},
            {
                "name": "django",
                "version": "5.2.1",
                "vulns": [{"id": "PYSEC-2025-1", "fix_versions": ["5.2.2"]}],
            },
        ]
    )
    result = _gate(tmp_path, _fake_audit(tmp_path, strict=strict, json_run=(1, report)))
    assert result.returncode == 1
    assert "known vulnerabilities" in result.stderr


def test_any_other_error_fails(tmp_path: Path) -> None:
    text = "ERROR:pip_audit._cli:requirements-dev.lock: hash mismatch for django"
    result = _gate(tmp_path, _fake_audit(tmp_path, strict=(1, text)))
    assert result.returncode == 1
    assert "pip-audit FAILED: pip-audit failed with exit status 1" in result.stderr


def test_ci_names_no_host_and_runs_the_gate() -> None:
    ci = (BASE_DIR / ".ci" / "run").read_text()
    assert "python3 tools/audit_gate.py make audit" in ci
    # Nothing probes a host: no URL at all in the CI script or the gate, whose only network user is pip-audit.
    for text in (ci, GATE.read_text()):
        assert "http://" not in text and "https://" not in text
        assert "urlopen" not in text
