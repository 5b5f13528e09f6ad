"""The HTTP side of ``scripts/daily_cycle.py``: one step's call with its retries, and what its answer means.

Standard library only, like the script that imports it (the Action installs nothing); the script's directory is
on ``sys.path`` when it runs (``python scripts/daily_cycle.py``), so it imports this module by its name.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

#: The longest wait a ``Retry-After`` header (409, 429 or 503) can impose, seconds.
RETRY_AFTER_MAX_SECONDS = 120.0
#: How much of an unexpected response body a problem line quotes, characters.
BODY_EXCERPT_CHARS = 300
USER_AGENT = "barter-daily-cycle/1"

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
        step: one of the cycle's endpoints (``daily_cycle.STEPS``).
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
