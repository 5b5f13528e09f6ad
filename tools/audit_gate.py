"""Run ``make audit`` (pip-audit, strict) and decide what its result means for CI.

Standard library only; ``.ci/run`` calls ``python3 tools/audit_gate.py``. Whether pip-audit can reach its
vulnerability data is found out by running it, never by probing a host:

- the audit passes: exit 0;
- it could not reach its vulnerability data: print ``pip-audit NOT RUN: <its reason>`` and exit 0. That is a
  network error in its output (no connection, a timeout, a name that does not resolve, a redirect loop), or
  every locked package answered "not found" (a registry mirror that serves the package index but not the
  per-version JSON pip-audit reads): the strict run stops at the first such package, so a second, non-strict
  run with a JSON report (``make audit AUDIT_STRICT= AUDIT_FORMAT=json``) gives the answer for every package;
- anything else fails (exit 1): a known vulnerability, a package it could not check while others could be
  checked, a broken lock file, any other error.

Usage: ``python3 tools/audit_gate.py [COMMAND ...]``; the command defaults to ``make audit`` and is run once
more with ``AUDIT_STRICT= AUDIT_FORMAT=json`` appended in the "not found" case.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

#: Lines of pip-audit's output (through requests and urllib3) that mean its data could not be reached.
NETWORK_ERROR = re.compile(
    r"Could not connect to PyPI's vulnerability feed"
    r"|PyPI is not redirecting properly"
    r"|your network may be blocking this service"
    r"|ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|NameResolutionError"
    r"|Failed to establish a new connection|Temporary failure in name resolution|Network is unreachable"
)
NOT_FOUND = "Dependency not found on PyPI and could not be audited"
VULNERABILITIES = re.compile(r"Found \d+ known vulnerabilit")


@dataclass(frozen=True)
class Verdict:
    """What the audit means: ``passed`` (exit 0), ``not_run`` (exit 0, with ``reason``) or ``failed`` (exit 1)."""

    outcome: str
    reason: str = ""


def _run(command: Sequence[str]) -> tuple[int, str]:
    completed = subprocess.run(  # noqa: S603 - the command line CI gives, never user input
        list(command), capture_output=True, text=True, check=False
    )
    return completed.returncode, completed.stdout + completed.stderr


def _network_reason(output: str) -> str:
    """The first line of ``output`` that names a network error, or ``""``."""
    for line in output.splitlines():
        if NETWORK_ERROR.search(line):
            return line.strip()
    return ""


def audit_verdict(command: Sequence[str]) -> tuple[Verdict, str]:
    """Run the strict audit ``command`` (and, if needed, once more non-strict) and classify the result.

    Args:
        command: the audit command line, e.g. ``["make", "audit"]``.

    Returns:
        The verdict and everything the command(s) printed, for the CI log.
    """
    returncode, output = _run(command)
    if returncode == 0:
        return Verdict("passed"), output
    if VULNERABILITIES.search(output):
        return Verdict("failed", "pip-audit found known vulnerabilities"), output
    if reason := _network_reason(output):
        return Verdict("not_run", reason), output
    if NOT_FOUND not in output:
        return Verdict("failed", f"pip-audit failed with exit status {returncode}"), output
    # Strict mode stopped at the first package it could not look up: is it that package or all of them?
    probe_code, probe = _run([*command, "AUDIT_STRICT=", "AUDIT_FORMAT=json"])
    output += "".join(
        f"{line}\n" for line in probe.splitlines() if not line.startswith("{")
    )  # not the report
    if reason := _network_reason(probe):
        return Verdict("not_run", reason), output
    dependencies = _json_dependencies(probe)
    if any(dependency.get("vulns") for dependency in dependencies):
        return Verdict("failed", "pip-audit found known vulnerabilities"), output
    not_found = [d for d in dependencies if NOT_FOUND in str(d.get("skip_reason", ""))]
    if probe_code == 0 and dependencies and len(not_found) == len(dependencies):
        return (
            Verdict(
                "not_run",
                f"its vulnerability data answered 'not found' for every one of the {len(dependencies)} locked "
                "packages (a package index without the per-version JSON pip-audit reads)",
            ),
            output,
        )
    return Verdict("failed", "pip-audit could not check some packages while it could check others"), output


def _json_dependencies(output: str) -> list[dict[str, object]]:
    """The ``dependencies`` of pip-audit's ``--format json`` report in ``output`` (``[]`` when there is none).

    Each is ``{"name", "version", "vulns": [...]}`` for a package it checked, ``{"name", "skip_reason"}`` for
    one it could not.
    """
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if isinstance(report, dict) and isinstance(report.get("dependencies"), list):
                return [d for d in report["dependencies"] if isinstance(d, dict)]
    return []


def main(argv: Sequence[str]) -> int:
    """Run the gate; return the process exit status (0 passed or not run, 1 failed).

    Args:
        argv: the audit command line; default ``make audit``.
    """
    command = list(argv) or ["make", "audit"]
    verdict, output = audit_verdict(command)
    sys.stdout.write(output)
    if verdict.outcome == "passed":
        print("pip-audit passed")
        return 0
    if verdict.outcome == "not_run":
        print(f"pip-audit NOT RUN: {verdict.reason}")
        return 0
    print(f"pip-audit FAILED: {verdict.reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
