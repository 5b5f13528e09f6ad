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
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TextIO

#: The cycle's endpoints below ``/api/``, in the order they run.
STEPS = ("sync_data", "sync_new_trades", "sync_close_positions")
URL_ENV = "BARTER_URL"
TOKEN_ENV = "BARTER_API_TOKEN"  # noqa: S105 - the variable's name, not a secret
#: The longest wait a ``Retry-After`` header (409, 429 or 503) can impose, seconds.
RETRY_AFTER_MAX_SECONDS = 120.0
#: How much of an unexpected response body a problem line quotes, characters.
BODY_EXCERPT_CHARS = 300
USER_AGENT = "barter-daily-cycle/1"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_HINTS = {
    401: "check the BARTER_API_TOKEN secret: it may be wrong, revoked or expired (manage.py create_cycle_token "
    "makes a new one)",
    403: "the token's user lacks the permission trading.run_steps (manage.py create_cycle_token makes a user "
    "holding it)",
    404: "BARTER_URL must be the site's root URL, e.g. https://barter.example.com",
    405: "BARTER_URL must be the site's root URL, and the endpoint must be reached with POST",
}


@dataclass
class StepOutcome:
    """What one step's call came to.

    Attributes:
        step: the endpoint's name, e.g. ``"sync_data"``.
        summary: the run summary the server answered, or None when no call succeeded.
        problems: one line per problem (each starts with ``step``); empty when the step is clean.
        attempts: how many HTTP requests were made.
    """

    step: str
    summary: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    attempts: int = 0


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an error: urllib would replay a POST as a GET (answered 405), and could send
    the token to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(kw_only=True)
class _Attempt:
    """The result of one HTTP request: a status and body, or a transport ``failure`` (then status is None)."""

    status: int | None = None
    reason: str = ""
    body: bytes = b""
    retry_after_seconds: float | None = None
    location: str | None = None
    failure: str | None = None

    @property
    def retryable(self) -> bool:
        """True for a timeout or connection failure, 409 (another run in progress), 429 and 5xx."""
        if self.failure is not None:
            return True
        assert self.status is not None  # noqa: S101 - set whenever failure is None
        return self.status in (409, 429) or self.status >= 500

    def describe(self) -> str:
        """One line saying what went wrong."""
        if self.failure is not None:
            return self.failure
        return f"HTTP {self.status} {self.reason}".rstrip()


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


class Redactor:
    """Replaces the token in any text before it is printed."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, text: str) -> str:
        """Return ``text`` with every occurrence of the secret replaced by ``***``."""
        return text.replace(self.secret, "***") if self.secret else text


def _excerpt(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip().replace("\n", " ")
    if len(text) > BODY_EXCERPT_CHARS:
        text = text[:BODY_EXCERPT_CHARS] + "..."
    return text or "(empty body)"


def _retry_after_seconds(value: str | None) -> float | None:
    # Only the delta-seconds form; an HTTP date falls back to the backoff.
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), RETRY_AFTER_MAX_SECONDS)


def _post(opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float) -> _Attempt:
    try:
        with opener.open(request, timeout=timeout) as response:
            return _Attempt(status=response.status, reason=response.reason, body=response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read()
        except (OSError, http.client.HTTPException):
            body = b""
        return _Attempt(
            status=exc.code,
            reason=str(exc.reason),
            body=body,
            retry_after_seconds=_retry_after_seconds(exc.headers.get("Retry-After")),
            location=exc.headers.get("Location"),
        )
    except TimeoutError:
        return _Attempt(failure=f"no answer within {timeout:g} s (timed out)")
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return _Attempt(failure=f"no answer within {timeout:g} s (timed out connecting)")
        return _Attempt(failure=f"cannot connect: {exc.reason}")
    except (OSError, http.client.HTTPException) as exc:
        return _Attempt(failure=f"connection failed: {type(exc).__name__}: {exc}")


def call_step(
    *,
    base_url: str,
    step: str,
    token: str,
    as_of: date | None,
    timeout_seconds: float,
    retries: int,
    retry_base_seconds: float,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> StepOutcome:
    """POST one cycle endpoint, retrying what may pass on a second try, and check the summary it answers.

    Timeouts, connection errors, 409, 429 and 5xx are retried up to ``retries`` times; retry ``n`` (from 1)
    waits ``retry_base_seconds * 2 ** (n - 1)`` seconds, or the server's ``Retry-After`` when longer (capped at
    :data:`RETRY_AFTER_MAX_SECONDS`). A 409 is another run of the step for the day in progress: once it has
    finished, the retry answers a summary (the work is done, nothing is doubled). Other statuses are not
    retried: a 4xx will not change by asking again.

    Args:
        base_url: the site's root URL (``http`` or ``https``), without a trailing slash.
        step: one of :data:`STEPS`.
        token: the API token, sent as ``Authorization: Token <token>``.
        as_of: the run's day, or None for the server's today.
        timeout_seconds: how long to wait for each answer.
        retries: how many times to try again.
        retry_base_seconds: the first retry's wait.
        log: prints one line about a retry.
        sleep: waits that many seconds (a test may pass a recorder instead).

    Returns:
        :class:`StepOutcome`; ``problems`` is empty when the server answered a summary with ``status`` ``ok``
        and no ``errors``.
    """
    outcome = StepOutcome(step=step)
    body = json.dumps({"as_of": as_of.isoformat()} if as_of else {}).encode()
    # The scheme is checked in main() to be http or https.
    request = urllib.request.Request(  # noqa: S310
        f"{base_url}/api/{step}",
        data=body,
        method="POST",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
    )
    opener = urllib.request.build_opener(_RefuseRedirects)
    attempts = retries + 1
    for number in range(1, attempts + 1):
        attempt = _post(opener, request, timeout_seconds)
        outcome.attempts = number
        if attempt.retryable and number < attempts:
            wait = retry_base_seconds * 2 ** (number - 1)
            if attempt.retry_after_seconds is not None:
                wait = max(wait, attempt.retry_after_seconds)
            log(f"{step}: attempt {number} of {attempts}: {attempt.describe()}; retrying in {wait:g} s")
            sleep(wait)
            continue
        break
    outcome.summary, outcome.problems = _judge(step, attempt, attempts=number)
    return outcome


def _judge(step: str, attempt: _Attempt, *, attempts: int) -> tuple[dict[str, Any] | None, list[str]]:
    """Return the summary (if any) and the problems of a step's last attempt."""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if attempt.failure is not None:
        return None, [f"{step}: {attempt.failure}{tries}"]
    assert attempt.status is not None  # noqa: S101 - set whenever failure is None
    if attempt.status == 409:
        return None, [f"{step}: {_in_progress_line(attempt)}{tries}"]
    if not 200 <= attempt.status < 300:
        line = f"{step}: {attempt.describe()}{tries}"
        if 300 <= attempt.status < 400:
            line += f": redirected to {attempt.location or '(no Location)'}; put the final URL in BARTER_URL"
        else:
            line += f": {_excerpt(attempt.body)}"
        hint = _HINTS.get(attempt.status)
        return None, [line + (f" ({hint})" if hint else "")]
    try:
        summary = json.loads(attempt.body)
    except ValueError:
        return None, [f"{step}: HTTP {attempt.status} but the body is not JSON: {_excerpt(attempt.body)}"]
    if not isinstance(summary, dict):
        return None, [
            f"{step}: HTTP {attempt.status} but the body is not a run summary: {_excerpt(attempt.body)}"
        ]
    problems = []
    status = summary.get("status")
    errors = summary.get("errors")
    if status != "ok":
        count = len(errors) if isinstance(errors, list) else 0
        problems.append(f"{step}: status {status!r} with {count} error(s) (run {summary.get('run_id')})")
    if isinstance(errors, list):
        problems += [f"{step}: error: {_error_line(error)}" for error in errors]
    elif errors is not None:
        problems.append(f"{step}: errors is not a list: {errors!r}")
    return summary, problems


def _in_progress_line(attempt: _Attempt) -> str:
    """Describe a 409: another run was in progress, with its run id when the server named it."""
    try:
        body = json.loads(attempt.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"{attempt.describe()}: {_excerpt(attempt.body)}"
    run = body.get("run_id") or "not yet recorded"
    message = body.get("message") or body.get("detail") or _excerpt(attempt.body)
    return (
        f"{attempt.describe()}: another run was in progress (run {run}); it was still running when the "
        f"retries ran out: check its summary in History, or run this step again: {message}"
    )


def _error_line(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    where = ", ".join(f"{key} {error[key]}" for key in ("strategy", "instrument") if error.get(key))
    message = error.get("message", json.dumps(error, sort_keys=True))
    return f"{where}: {message}" if where else str(message)


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
