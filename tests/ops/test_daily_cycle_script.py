"""``scripts/daily_cycle.py``: the daily GitHub Action's calls, run as the Action runs them (a subprocess).

Most tests point the script at a tiny local HTTP server that plays a Barter whose steps fail in every way the
Action must notice; one runs a whole cycle against the real app served by gunicorn over PostgreSQL. The script
runs with ``python -I -S``, so only the standard library is importable, as on the Action's bare runner.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from instruments.models import InstrumentOHLC
from positions.models import Position
from runs.models import History
from tests.accounts import RUN_STEPS, api_token, user_with
from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, json_reply, recorded
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.servers import gunicorn_serving
from tests.trading.factories import PositionFactory, StrategyFactory

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "daily_cycle.py"
TOKEN = "0123456789abcdef-secret-token-never-printed"
STEPS = ["sync_data", "sync_new_trades", "sync_close_positions"]


def summary(step: str, status: str = "ok", errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A run summary shaped like the API's."""
    return {
        "run_id": f"00000000-0000-0000-0000-00000000000{STEPS.index(step)}",
        "step": {"sync_data": "collect", "sync_new_trades": "open", "sync_close_positions": "close"}[step],
        "status": status,
        "started_at": "2024-12-03T00:40:00+00:00",
        "finished_at": "2024-12-03T00:40:01+00:00",
        "as_of": "2024-12-03",
        "results": [],
        "errors": errors or [],
    }


@dataclass
class Reply:
    """One scripted answer; ``delay_seconds`` longer than the script's ``--timeout`` makes it time out."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    echo_authorization: bool = False


@dataclass
class Seen:
    """A request the fake received."""

    path: str
    method: str
    headers: dict[str, str]
    body: bytes
    at: float


class FakeBarter:
    """Barter's three step endpoints on 127.0.0.1; each request takes the next scripted reply of its path and
    the last one repeats; an unscripted path answers an ``ok`` summary."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                step = self.path.removeprefix("/api/")
                with fake._lock:
                    fake.seen.append(
                        Seen(self.path, self.command, dict(self.headers.items()), body, time.monotonic())
                    )
                    queue = fake.routes.get(step)
                    reply = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else None
                if reply is None:
                    reply = (
                        Reply(body=summary(step)) if step in STEPS else Reply(404, {"detail": "Not found."})
                    )
                time.sleep(reply.delay_seconds)
                payload = reply.body
                if reply.echo_authorization:  # a careless server or proxy that repeats what it got
                    payload = {"detail": "rejected", "authorization": self.headers.get("Authorization")}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_POST = _answer
            do_GET = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            block_on_close = False

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def add(self, step: str, *replies: Reply) -> None:
        """Script the replies of ``/api/<step>``, in order; the last one repeats."""
        self.routes[step] = list(replies)

    def steps_called(self) -> list[str]:
        """The endpoints called, in order, one entry per request."""
        return [s.path.removeprefix("/api/") for s in self.seen]

    def __enter__(self) -> FakeBarter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def barter() -> Iterator[FakeBarter]:
    with FakeBarter() as fake:
        yield fake


@dataclass
class Run:
    """A finished run of the script."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_script(*args: str, token: str | None = TOKEN, timeout: float = 60, **env: str) -> Run:
    """Run the script as the Action does, with only the standard library importable (``-I -S``)."""
    environment = {"PATH": os.environ.get("PATH", ""), **env}
    if token is not None:
        environment["BARTER_API_TOKEN"] = token
    done = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, "-I", "-S", str(SCRIPT), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def fast(url: str, *args: str) -> list[str]:
    """Arguments for a quick run: tiny backoff, short timeout."""
    return ["--url", url, "--retry-base-seconds", "0.01", "--timeout", "5", *args]


def printed_summaries(stdout: str) -> list[dict[str, Any]]:
    """The JSON summaries the script printed, in order."""
    decoder = json.JSONDecoder()
    found, position = [], 0
    while (start := stdout.find("{", position)) != -1:
        value, position = decoder.raw_decode(stdout, start)
        found.append(value)
    return found


# --- a healthy server -------------------------------------------------------------------------------------


def test_a_clean_cycle_posts_the_three_steps_in_order_with_the_token_and_exits_0(barter: FakeBarter) -> None:
    run = run_script(*fast(barter.url, "--as-of", "2024-12-03"))

    assert run.returncode == 0, run.output
    assert barter.steps_called() == STEPS
    for seen in barter.seen:
        assert seen.method == "POST"
        assert seen.headers["Authorization"] == f"Token {TOKEN}"
        assert seen.headers["Content-Type"] == "application/json"
        assert json.loads(seen.body) == {"as_of": "2024-12-03"}
    assert printed_summaries(run.stdout) == [summary(step) for step in STEPS]
    assert '\n  "status": "ok",\n' in run.stdout  # pretty JSON, one field a line
    assert run.stdout.rstrip().endswith("daily cycle ok: sync_data, sync_new_trades, sync_close_positions")
    assert run.stderr == ""
    assert TOKEN not in run.output


@pytest.mark.parametrize("as_of_args", [[], ["--as-of", ""]])
def test_without_as_of_the_server_picks_its_today(barter: FakeBarter, as_of_args: list[str]) -> None:
    run = run_script(*fast(barter.url, *as_of_args))

    assert run.returncode == 0, run.output
    assert [json.loads(s.body) for s in barter.seen] == [{}, {}, {}]


def test_the_url_comes_from_barter_url_and_a_trailing_slash_is_fine(barter: FakeBarter) -> None:
    run = run_script("--retry-base-seconds", "0", BARTER_URL=barter.url + "/")

    assert run.returncode == 0, run.output
    assert [s.path for s in barter.seen] == [f"/api/{step}" for step in STEPS]


# --- failures: each is reported, and the other steps still run ---------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retried_then_reported_and_the_other_steps_still_run(barter: FakeBarter, status: int) -> None:
    barter.add("sync_data", Reply(status, {"detail": "upstream trouble"}))

    run = run_script(*fast(barter.url, "--retries", "2"))

    assert run.returncode == 1
    # 1 try + 2 retries of the failing step, then the two others once each.
    assert barter.steps_called() == ["sync_data"] * 3 + ["sync_new_trades", "sync_close_positions"]
    assert f"sync_data: attempt 1 of 3: HTTP {status}" in run.stderr
    assert f"sync_data: HTTP {status}" in run.stderr and "after 3 attempts" in run.stderr
    assert "upstream trouble" in run.stderr
    assert "daily cycle FAILED: 1 problem(s)" in run.stderr
    assert [s["step"] for s in printed_summaries(run.stdout)] == ["open", "close"]


def test_a_step_that_recovers_on_a_retry_is_ok(barter: FakeBarter) -> None:
    barter.add(
        "sync_new_trades", Reply(502, b"<html>bad gateway</html>"), Reply(body=summary("sync_new_trades"))
    )

    run = run_script(*fast(barter.url))

    assert run.returncode == 0, run.output
    assert barter.steps_called() == [
        "sync_data",
        "sync_new_trades",
        "sync_new_trades",
        "sync_close_positions",
    ]
    assert "sync_new_trades: attempt 1 of 4: HTTP 502 Bad Gateway; retrying in 0.01 s" in run.stderr


def test_retries_back_off_exponentially(barter: FakeBarter) -> None:
    barter.add("sync_data", Reply(503))

    run = run_script(*fast(barter.url, "--retries", "3", "--retry-base-seconds", "0.1"))

    assert run.returncode == 1
    waits = [line.rsplit("retrying in ", 1)[1] for line in run.stderr.splitlines() if "retrying in" in line]
    assert waits == ["0.1 s", "0.2 s", "0.4 s"]  # base * 2 ** (retry - 1)
    arrivals = [s.at for s in barter.seen if s.path == "/api/sync_data"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 3
    for gap, wait in zip(gaps, (0.1, 0.2, 0.4), strict=True):
        assert gap >= wait


def test_retry_after_is_honoured_when_longer_than_the_backoff(barter: FakeBarter) -> None:
    barter.add(
        "sync_close_positions",
        Reply(429, {"detail": "slow down"}, {"Retry-After": "1"}),
        Reply(body=summary("sync_close_positions")),
    )

    run = run_script(*fast(barter.url))

    assert run.returncode == 0, run.output
    assert "sync_close_positions: attempt 1 of 4: HTTP 429 Too Many Requests; retrying in 1 s" in run.stderr
    first, second = [s.at for s in barter.seen if s.path == "/api/sync_close_positions"]
    assert second - first >= 1.0


RUN_IN_PROGRESS = {
    "error": "RunInProgressError",
    "message": "another open run for 2024-12-03 is in progress (run 11111111-2222-3333-4444-555555555555, "
    "lock 'open:2024-12-03:all'): wait for it to finish (its summary will be in History) or retry in 10 s",
    "step": "open",
    "as_of": "2024-12-03",
    "lock": "open:2024-12-03:all",
    "run_id": "11111111-2222-3333-4444-555555555555",
}


def test_a_409_run_in_progress_is_retried_after_retry_after_and_then_ok(barter: FakeBarter) -> None:
    barter.add(
        "sync_new_trades",
        Reply(409, RUN_IN_PROGRESS, {"Retry-After": "1"}),
        Reply(body=summary("sync_new_trades")),
    )

    run = run_script(*fast(barter.url))

    assert run.returncode == 0, run.output
    assert "sync_new_trades: attempt 1 of 4: HTTP 409 Conflict; retrying in 1 s" in run.stderr
    first, second = [s.at for s in barter.seen if s.path == "/api/sync_new_trades"]
    assert second - first >= 1.0  # Retry-After (1 s) beat the 0.01 s backoff
    assert [s["step"] for s in printed_summaries(run.stdout)] == ["collect", "open", "close"]


def test_a_run_still_in_progress_when_the_retries_run_out_is_reported_with_its_run_id(
    barter: FakeBarter,
) -> None:
    barter.add("sync_data", Reply(409, RUN_IN_PROGRESS, {"Retry-After": "0"}))

    run = run_script(*fast(barter.url, "--retries", "2"))

    assert run.returncode == 1
    assert barter.steps_called() == ["sync_data"] * 3 + ["sync_new_trades", "sync_close_positions"]
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("  sync_data:")]
    assert line.startswith(
        "  sync_data: HTTP 409 Conflict: another run was in progress "
        "(run 11111111-2222-3333-4444-555555555555); it was still running when the retries ran out"
    )
    assert line.endswith("or retry in 10 s after 3 attempts")


def test_a_timeout_is_retried_then_reported(barter: FakeBarter) -> None:
    barter.add("sync_new_trades", Reply(body=summary("sync_new_trades"), delay_seconds=1.5))

    run = run_script(*fast(barter.url, "--timeout", "0.3", "--retries", "1"))

    assert run.returncode == 1
    assert barter.steps_called().count("sync_new_trades") == 2
    assert (
        "sync_new_trades: attempt 1 of 2: no answer within 0.3 s (timed out); retrying in 0.01 s"
        in run.stderr
    )
    assert "  sync_new_trades: no answer within 0.3 s (timed out) after 2 attempts" in run.stderr
    assert barter.steps_called()[-1] == "sync_close_positions"


def test_a_server_that_is_down_is_retried_then_reported() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    run = run_script(*fast(f"http://127.0.0.1:{port}", "--retries", "1"))

    assert run.returncode == 1
    for step in STEPS:
        assert f"{step}: attempt 1 of 2: cannot connect" in run.stderr
        assert f"  {step}: cannot connect:" in run.stderr
    assert "daily cycle FAILED: 3 problem(s)" in run.stderr


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (400, '{"as_of": ["as_of must be today'),
        (401, "check the BARTER_API_TOKEN secret"),
        (403, "lacks the permission trading.run_steps"),
        (404, "must be the site's root URL"),
        (405, "must be the site's root URL"),
    ],
)
def test_4xx_is_not_retried_and_says_what_to_fix(barter: FakeBarter, status: int, hint: str) -> None:
    body = {"as_of": ["as_of must be today (2024-12-03 UTC) or earlier; was 2030-01-01"]}
    barter.add("sync_data", Reply(status, body if status == 400 else {"detail": "no"}))

    run = run_script(*fast(barter.url, "--retries", "3"))

    assert run.returncode == 1
    assert barter.steps_called() == STEPS  # one request each: a 4xx does not change by asking again
    assert "retrying" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("  sync_data:")]
    assert line.startswith(f"  sync_data: HTTP {status} ")
    assert hint in line


def test_a_redirect_is_reported_not_followed(barter: FakeBarter) -> None:
    barter.add("sync_data", Reply(301, b"", {"Location": "https://barter.example.com/api/sync_data"}))

    run = run_script(*fast(barter.url))

    assert run.returncode == 1
    assert barter.steps_called() == STEPS  # not replayed as a GET, not retried
    assert (
        "sync_data: HTTP 301 Moved Permanently: redirected to https://barter.example.com/api/sync_data"
        in (run.stderr)
    )


@pytest.mark.parametrize("status", ["failed", "partial"])
def test_a_summary_whose_status_is_not_ok_fails_the_run_with_its_errors(
    barter: FakeBarter, status: str
) -> None:
    errors = [{"instrument": "bitcoin", "message": "CoinGecko had no complete data for 1 day(s): 2024-12-02"}]
    barter.add("sync_data", Reply(body=summary("sync_data", status, errors)))

    run = run_script(*fast(barter.url))

    assert run.returncode == 1
    assert barter.steps_called() == STEPS  # a 200 is not retried, whatever it says
    report = run.stderr.split("daily cycle FAILED: 2 problem(s)\n", 1)[1].splitlines()
    assert report == [
        f"  sync_data: status '{status}' with 1 error(s) (run 00000000-0000-0000-0000-000000000000)",
        "  sync_data: error: instrument bitcoin: CoinGecko had no complete data for 1 day(s): 2024-12-02",
    ]
    assert printed_summaries(run.stdout)[0]["status"] == status  # the summary is printed too


def test_errors_in_an_ok_summary_fail_the_run(barter: FakeBarter) -> None:
    errors = [{"instrument": None, "strategy": "SMA 20/50 trend", "message": "internal error KeyError: 'x'"}]
    barter.add("sync_close_positions", Reply(body=summary("sync_close_positions", "ok", errors)))

    run = run_script(*fast(barter.url))

    assert run.returncode == 1
    assert run.stderr.splitlines()[-1] == (
        "  sync_close_positions: error: strategy SMA 20/50 trend: internal error KeyError: 'x'"
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"<html>maintenance</html>", "the body is not JSON"), (b"[]", "the body is not a run summary")],
)
def test_a_200_without_a_summary_fails_the_run(barter: FakeBarter, body: bytes, reason: str) -> None:
    barter.add("sync_new_trades", Reply(200, body))

    run = run_script(*fast(barter.url))

    assert run.returncode == 1
    assert f"sync_new_trades: HTTP 200 but {reason}" in run.stderr


def test_every_failing_step_is_one_line_of_the_report_and_an_annotation_in_actions(
    barter: FakeBarter,
) -> None:
    barter.add("sync_data", Reply(500))
    barter.add(
        "sync_new_trades", Reply(body=summary("sync_new_trades", "partial", [{"message": "100% bad"}]))
    )
    barter.add("sync_close_positions", Reply(401, {"detail": "Invalid token."}))

    run = run_script(*fast(barter.url, "--retries", "0"), GITHUB_ACTIONS="true")

    assert run.returncode == 1
    report = [line for line in run.stderr.splitlines() if line.startswith("  ")]
    assert [line.split(":")[0].strip() for line in report] == [
        "sync_data",
        "sync_new_trades",
        "sync_new_trades",
        "sync_close_positions",
    ]
    annotations = [line for line in run.stderr.splitlines() if line.startswith("::error title=daily cycle::")]
    assert len(annotations) == 4
    assert "100%25 bad" in annotations[2]  # workflow commands percent-encode %


# --- the token --------------------------------------------------------------------------------------------


def test_the_token_is_never_printed_even_when_the_server_echoes_it(barter: FakeBarter) -> None:
    barter.add("sync_data", Reply(500, echo_authorization=True))
    barter.add("sync_new_trades", Reply(401, echo_authorization=True))
    barter.add("sync_close_positions", Reply(200, echo_authorization=True))

    run = run_script(*fast(barter.url, "--retries", "1"), GITHUB_ACTIONS="true")

    assert run.returncode == 1
    assert barter.seen[0].headers["Authorization"] == f"Token {TOKEN}"  # it was sent...
    assert TOKEN not in run.output  # ...and never shown
    assert '"authorization": "Token ***"' in run.stderr


def test_the_token_is_not_an_argument(barter: FakeBarter) -> None:
    run = run_script(*fast(barter.url, "--token", TOKEN), token=None)

    assert run.returncode == 2
    assert "unrecognized arguments: --token" in run.stderr
    assert barter.seen == []


# --- usage errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        ([], TOKEN, "error: no URL: pass --url or set BARTER_URL"),
        (["--url", "http://127.0.0.1:9"], None, "error: no API token: set BARTER_API_TOKEN"),
        (["--url", "http://127.0.0.1:9"], "  ", "error: no API token: set BARTER_API_TOKEN"),
        (["--url", "file:///etc/passwd"], TOKEN, "error: --url must be an http(s) URL"),
        (["--url", "http://127.0.0.1:9", "--as-of", "03/12/2024"], TOKEN, "must be a date like 2024-12-03"),
        (["--url", "http://127.0.0.1:9", "--as-of", "2024-02-30"], TOKEN, "must be a date like 2024-12-03"),
        (["--url", "http://127.0.0.1:9", "--retries", "-1"], TOKEN, "must be 0 or more"),
        (["--url", "http://127.0.0.1:9", "--retries", "1.5"], TOKEN, "must be a whole number"),
        (["--url", "http://127.0.0.1:9", "--timeout", "soon"], TOKEN, "must be a number"),
        (["--url", "http://127.0.0.1:9", "--timeout", "0"], TOKEN, "must be more than 0"),
    ],
)
def test_usage_errors_exit_2_before_any_call(args: list[str], token: str | None, message: str) -> None:
    run = run_script(*args, token=token)

    assert run.returncode == 2
    assert run.stderr.startswith("usage: daily_cycle.py")
    assert message in run.stderr
    assert run.stdout == ""


# --- the real thing: gunicorn over PostgreSQL ---------------------------------------------------------------


@pytest.fixture
def gunicorn(transactional_db: None, fake_coingecko: FakeCoinGecko, tmp_path: Path) -> Iterator[str]:
    """The app served by gunicorn (2 workers) on a free port, over the test database; yields its URL."""
    env = {
        "COINGECKO_BASE_URL": fake_coingecko.base_url,
        "COINGECKO_API_KEY": "test-demo-key-not-real",
        "COINGECKO_API_PLAN": "demo",
        "COINGECKO_MAX_RETRIES": "0",
    }
    # The live open and close steps act only for today: the server's clock starts on the day the test runs for.
    with gunicorn_serving(env, tmp_path / "gunicorn.log", workers=2, now="2024-12-03T00:40:00+00:00") as url:
        yield url


def seed_a_trading_day() -> tuple[str, Position]:
    """Bitcoin with stored candles 2024-11-01..30, a strategy that enters on any candle and one holding a
    position that it exits on any candle; returns an API token and that position."""
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    for n in range(30):
        base = Decimal(90_000 + 100 * n)
        CandleFactory.create(
            instrument=bitcoin,
            open_time=datetime(2024, 11, 1, tzinfo=UTC) + timedelta(days=n),
            open=base,
            close=base + 50,
            high=base + 300,
            low=base - 300,
        )
    always = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}
    never = {"left": {"indicator": "close"}, "op": "<", "right": {"value": 0}}
    costs = {"version": 1, "side": "long", "fee_rate": 0.001, "slippage_ratio": 0.0}
    StrategyFactory.create(
        name="enters", is_enabled=True, criteria={**costs, "entry": always}, instruments=[bitcoin]
    )
    exits = StrategyFactory.create(
        name="exits",
        is_enabled=True,
        criteria={**costs, "entry": never, "exit": always},
        instruments=[bitcoin],
    )
    held = PositionFactory.create(
        strategy=exits,
        instrument=bitcoin,
        entry_price=Decimal("92700"),
        entry_at=datetime(2024, 11, 28, tzinfo=UTC),
    )
    # The GitHub Action's user holds only run_steps (manage.py create_cycle_token).
    return api_token(user_with("github-action", *RUN_STEPS)), held


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_script_runs_a_whole_cycle_against_gunicorn_over_postgresql(
    gunicorn: str, fake_coingecko: FakeCoinGecko
) -> None:
    # Collect: 2024-12-01 and 12-02 are missing; CoinGecko's recorded hourly prices (to 2024-12-03 20:57) build
    # them. Open: "enters" buys at CoinGecko's recorded simple price. Close: "exits" sells its position.
    fake_coingecko.add(
        "/coins/bitcoin/market_chart/range",
        json_reply(json.loads((RECORDINGS / "market_chart_bitcoin_usd_30d_2024-12.json").read_text())),
    )
    fake_coingecko.add("/simple/price", recorded("test_that_it_gets_simple_price_for_one_coin.yml"))
    token, held = seed_a_trading_day()

    run = run_script("--url", gunicorn, "--as-of", "2024-12-03", "--retry-base-seconds", "0.5", token=token)
    print(run.stdout, run.stderr, sep="\n")  # shown with -s / -rP: the script's output against the server

    assert run.returncode == 0, run.output
    assert token not in run.output
    assert run.stdout.rstrip().endswith("daily cycle ok: sync_data, sync_new_trades, sync_close_positions")
    finished = History.objects.filter(kind="run_finished").order_by("created_at")
    assert [(h.step, h.status) for h in finished] == [("collect", "ok"), ("open", "ok"), ("close", "ok")]
    for row in finished:
        kinds = [h.kind for h in History.objects.for_run(row.run_id)]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert History.objects.values("run_id").distinct().count() == 3
    assert [s["run_id"] for s in printed_summaries(run.stdout)] == [str(h.run_id) for h in finished]

    (seen,) = fake_coingecko.requests_to("/coins/bitcoin/market_chart/range")
    assert seen.query["from"] == ["1733011200"] and seen.query["to"] == ["1733184000"]  # 12-01 .. 12-03 00:00
    collected = InstrumentOHLC.objects.filter(source="coingecko:market_chart_hourly").order_by("open_time")
    assert [c.open_time.date() for c in collected] == [date(2024, 12, 1), date(2024, 12, 2)]
    opened = Position.objects.get(strategy__name="enters")
    assert opened.status == "open" and opened.entry_price == Decimal("49013")  # the recorded simple price
    held.refresh_from_db()
    assert held.status == "closed" and held.exit_reason == "signal"
    # The exit signal of candle 11-28 (its entry day) fills at the next open: 11-29 opened at 90,000 + 100 * 28.
    assert held.exit_price == Decimal("92800") and held.exit_at == datetime(2024, 11, 29, tzinfo=UTC)
