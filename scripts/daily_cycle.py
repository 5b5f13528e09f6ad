#!/usr/bin/env python3
"""Run Barter's daily cycle through its API: collect, then open, then close.

The daily GitHub Action (``.github/workflows/daily-cycle.yml``) runs this file, and it runs by hand the same
way::

    BARTER_API_TOKEN=<key> python scripts/daily_cycle.py --url https://barter.example.com [--as-of 2024-12-03]

It calls ``POST /api/sync_data``, ``POST /api/sync_new_trades`` and ``POST /api/sync_close_positions`` in that
order with ``Authorization: Token <key>``, retries timeouts, connection errors, 409, 429 and 5xx with exponential
backoff (honouring ``Retry-After``), and prints every step's JSON summary. A 409 means another run of that step
for that day is in progress (its run id is in the answer): the retry then finds the work done. All three steps
are called even when one fails: each step is idempotent, and the close step's exits must run even on a day the
collect step failed. The exit status is
0 when every step answered a summary with ``status`` ``ok`` and no ``errors``, 1 otherwise (after a report of
one line per problem), and 2 for a usage error.

Standard library only (the Action installs nothing). The token is read from the environment only, never from
an argument, and is never printed: any text echoed from the server has it replaced by ``***``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import TextIO

# The HTTP side lives beside this file; under `python -I` (isolated mode, as the tests run it) the script's own
# directory is not on sys.path, so it is put there.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daily_cycle_calls import Redactor, StepOutcome, call_step

#: The cycle's endpoints below ``/api/``, in the order they run.
STEPS = ("sync_data", "sync_new_trades", "sync_close_positions")
URL_ENV = "BARTER_URL"
TOKEN_ENV = "BARTER_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_as_of(text: str) -> date | None:
    """Parse ``--as-of``.

    Args:
        text: ``YYYY-MM-DD``, or empty for the server's today (UTC).

    Returns:
        The date, or None when ``text`` is empty.

    Raises:
        argparse.ArgumentTypeError: ``text`` is not a valid ``YYYY-MM-DD`` date.
    """
    if not text.strip():
        return None
    try:
        if not _DATE.fullmatch(text.strip()):
            raise ValueError
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a date like 2024-12-03; was {text!r}") from None


def _number(kind: type[int] | type[float], *, positive: bool = False) -> Callable[[str], float]:
    """Return an argparse ``type`` that reads a ``kind`` that is >= 0 (> 0 when ``positive``)."""
    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}; was {text!r}") from None
        if value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(
                f"must be {'more than 0' if positive else '0 or more'}; was {text}"
            )
        return value

    return parse


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """Return the command-line parser; ``--url`` defaults to ``BARTER_URL`` from ``environ``.

    Args:
        environ: the process environment.
    """
    parser = argparse.ArgumentParser(
        prog="daily_cycle.py",
        description=(
            "Run Barter's daily cycle through its API: POST /api/sync_data, /api/sync_new_trades and "
            "/api/sync_close_positions, in that order. The API token is read from the environment variable "
            f"{TOKEN_ENV} only."
        ),
        epilog="Exit status: 0 all steps ok; 1 a call failed or a summary reported errors; 2 usage error.",
    )
    parser.add_argument(
        "--url",
        default=environ.get(URL_ENV, ""),
        help=f"the site's root URL, e.g. https://barter.example.com (default: ${URL_ENV})",
    )
    parser.add_argument(
        "--as-of",
        type=parse_as_of,
        default=None,
        help="the run's day, YYYY-MM-DD (UTC); default or empty: the server's today",
    )
    parser.add_argument(
        "--timeout",
        type=_number(float, positive=True),
        default=300.0,
        help="seconds to wait for each answer (default 300)",
    )
    parser.add_argument(
        "--retries",
        type=_number(int),
        default=3,
        help="retries of a timeout, connection error, 429 or 5xx, per step (default 3)",
    )
    parser.add_argument(
        "--retry-base-seconds",
        type=_number(float),
        default=5.0,
        help="the first retry waits this long, each next one twice as long (default 5)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run the three steps and report.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        environ: the environment (default ``os.environ``); ``BARTER_URL`` and ``BARTER_API_TOKEN`` come from
            it. This script is standalone (it runs where Django is not installed), so it reads the environment
            itself rather than through ``barter_site.settings``.
        stdout: where summaries go (default ``sys.stdout``).
        stderr: where retries and the problem report go (default ``sys.stderr``).
        sleep: waits that many seconds between retries.

    Returns:
        The exit status: 0 every step ok, 1 a call failed or a summary reported errors, 2 usage error.
    """
    environ = os.environ if environ is None else environ
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser(environ)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error
        return int(exc.code or 0)
    token = environ.get(TOKEN_ENV, "").strip()
    redact = Redactor(token)
    base_url = args.url.strip().rstrip("/")
    if not base_url:
        return _usage(parser, err, f"no URL: pass --url or set {URL_ENV} to the site's root URL")
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        message = f"--url must be an http(s) URL like https://barter.example.com; was {base_url!r}"
        return _usage(parser, err, redact(message))
    if not token:
        return _usage(
            parser,
            err,
            f"no API token: set {TOKEN_ENV} (the key of a Barter user's API token; it is never an argument)",
        )

    def emit(stream: TextIO, line: str) -> None:
        print(redact(line), file=stream, flush=True)

    outcomes: list[StepOutcome] = []
    for step in STEPS:
        emit(out, f"== {step}: POST {base_url}/api/{step} (as_of {args.as_of or 'today on the server'})")
        outcome = call_step(
            base_url=base_url,
            step=step,
            token=token,
            as_of=args.as_of,
            timeout_seconds=args.timeout,
            retries=args.retries,
            retry_base_seconds=args.retry_base_seconds,
            log=lambda line: emit(err, line),
            sleep=sleep,
        )
        if outcome.summary is not None:
            emit(out, json.dumps(outcome.summary, indent=2))
        for problem in outcome.problems:
            emit(err, problem)
        outcomes.append(outcome)

    problems = [problem for outcome in outcomes for problem in outcome.problems]
    if not problems:
        emit(out, f"daily cycle ok: {', '.join(STEPS)}")
        return 0
    emit(err, f"daily cycle FAILED: {len(problems)} problem(s)")
    for problem in problems:
        emit(err, f"  {problem}")
        if environ.get("GITHUB_ACTIONS") == "true":  # an annotation on the workflow run's page
            emit(err, f"::error title=daily cycle::{_annotation_escape(problem)}")
    return 1


def _annotation_escape(text: str) -> str:
    # GitHub's workflow commands end at a newline; % and line breaks are percent-encoded.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _usage(parser: argparse.ArgumentParser, err: TextIO, message: str) -> int:
    parser.print_usage(err)
    print(f"{parser.prog}: error: {message}", file=err, flush=True)
    return 2


if __name__ == "__main__":
    sys.exit(main())
