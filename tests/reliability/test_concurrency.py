"""Concurrent runs of one day: the run lock lets one run in, the others get 409 (API) or retry (Celery).

The lock's behaviour is tested in-process on either database; then 20 concurrent POSTs of each step endpoint hit
gunicorn (4 workers x 2 threads) over PostgreSQL, and 20 daily chains go to a real Celery worker on Redis. In
each case: one set of candles, no position opened or closed twice, every run that started finished, a second
run for the day changes nothing, and a later day picks up what the first missed. Figures are printed (``-s``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connections
from pytest_django import Settings

from barter_site.celery_app import app
from instruments import api as instruments_api
from instruments.models import InstrumentOHLC
from positions.models import Position, StrategyStep
from positions.tasks import daily_cycle_task
from runs.locked import run_locked
from runs.locks import RunInProgressError, lock_file_path, run_lock
from runs.models import History, HistoryKind, RunStatus, Step
from tests.accounts import RUN_STEPS, token_client, user_with
from tests.accounts import api_token as token_of
from tests.fakes.clock import clock_command
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.instruments.factories import InstrumentFactory
from tests.ops.test_celery_cycle import MARKET_CHART, World, world
from tests.servers import database_url, gunicorn_serving

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2024-12-02"  # see tests/ops/test_celery_cycle.py: 28 complete candles 11-04 .. 12-01 per coin
LATER = "2024-12-03"  # window 11-03 .. 12-02: one more day for bitcoin, all of litecoin's for litecoin
# The live open and close steps act only for today: the servers and workers run with their clock on the day.
AS_OF_NOW = f"{AS_OF}T00:40:00+00:00"
CANDLES_PER_COIN = 28
STEP_ENDPOINTS = {"sync_data": "collect", "sync_new_trades": "open", "sync_close_positions": "close"}
CALLS_PER_ENDPOINT = 20


# --- the lock in-process (SQLite flock or PostgreSQL advisory lock) -----------------------------------------


def _in_thread(target: Any) -> Any:
    """Run ``target()`` in another thread (another database connection); return or raise what it did."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = target()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_second_run_of_the_same_lock_is_refused_and_names_the_run_in_progress() -> None:
    day = date(2024, 12, 2)
    with run_locked(step=Step.COLLECT, as_of=day, scope="all", params={"as_of": AS_OF}) as recorder:

        def second() -> None:
            with run_lock(step=Step.COLLECT, as_of=day, scope="all"):
                pytest.fail("the lock was taken twice")

        with pytest.raises(RunInProgressError) as refused:
            _in_thread(second)
        # Another scope or day is another lock: the fan-out's one-instrument collects do not block each other.
        assert _in_thread(lambda: _take(Step.COLLECT, day, "bitcoin")) == "collect:2024-12-02:bitcoin"
        assert _in_thread(lambda: _take(Step.COLLECT, date(2024, 12, 3), "all")) == "collect:2024-12-03:all"
        recorder.finish(status=RunStatus.OK, summary={"as_of": AS_OF, "results": []})

    assert refused.value.http_status == 409 and refused.value.retryable
    assert refused.value.extra == {
        "step": "collect",
        "as_of": AS_OF,
        "lock": "collect:2024-12-02:all",
        "run_id": str(recorder.run_id),
    }
    assert refused.value.message == (
        f"another collect run for {AS_OF} is in progress (run {recorder.run_id}, lock "
        "'collect:2024-12-02:all'): wait for it to finish (its summary will be in History) or retry in 10 s"
    )
    started = History.objects.get(kind=HistoryKind.RUN_STARTED)
    assert started.payload == {"as_of": AS_OF, "lock": "collect:2024-12-02:all"}
    assert _in_thread(lambda: _take(Step.COLLECT, day, "all")) == "collect:2024-12-02:all"  # released


def _take(step: Step, day: date, scope: str) -> str:
    with run_lock(step=step, as_of=day, scope=scope) as key:
        return key


def test_lock_files_are_per_database_and_key(on_postgres: bool) -> None:
    if on_postgres:
        pytest.skip("PostgreSQL uses advisory locks, not files")
    one = lock_file_path("collect:2024-12-02:all")
    assert one == lock_file_path("collect:2024-12-02:all")
    assert one != lock_file_path("collect:2024-12-02:bitcoin") != lock_file_path("open:2024-12-02:all")
    assert one.name.startswith("barter-run-") and one.suffix == ".lock"


def test_the_api_answers_409_with_the_run_id_and_retry_after_while_a_run_holds_the_lock() -> None:
    InstrumentFactory.create(coingecko_id="bitcoin")
    client = token_client(user_with("robot", *RUN_STEPS))
    inside, release = threading.Event(), threading.Event()

    def hold() -> str:
        with run_locked(step=Step.COLLECT, as_of=date(2024, 12, 2), scope="all", params={}) as recorder:
            inside.set()
            assert release.wait(timeout=30)
            recorder.finish(status=RunStatus.OK, summary={"as_of": AS_OF, "results": []})
            return str(recorder.run_id)

    holder = threading.Thread(target=lambda: holder_result.append(_in_thread(hold)))
    holder_result: list[str] = []
    holder.start()
    try:
        assert inside.wait(timeout=30)
        answer = client.post("/api/sync_data", {"as_of": AS_OF}, format="json")
    finally:
        release.set()
        holder.join(timeout=30)

    assert answer.status_code == 409
    assert answer["Retry-After"] == "10"
    body = answer.json()
    assert body["error"] == "RunInProgressError" and body["run_id"] == holder_result[0]
    assert body["step"] == "collect" and body["as_of"] == AS_OF
    assert f"run {holder_result[0]}" in body["message"]
    assert (
        History.objects.filter(kind=HistoryKind.RUN_STARTED).count() == 1
    )  # the refused call recorded nothing


def test_a_database_error_in_an_api_call_is_a_503_without_secrets(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    settings.DATABASES["default"]["PASSWORD"] = "s3cret-db-password"
    client = token_client(user_with("robot", *RUN_STEPS))

    def dropped(**kwargs: Any) -> dict[str, Any]:
        raise OperationalError(
            'connection to server at "127.0.0.1", port 5432 failed: password s3cret-db-password refused\nmore'
        )

    monkeypatch.setattr(instruments_api.SyncDataView, "service", staticmethod(dropped))
    answer = client.post("/api/sync_data", {}, format="json")

    assert answer.status_code == 503 and answer["Retry-After"] == "30"
    body = answer.json()
    assert body["error"] == "DatabaseUnavailable"
    assert (
        "is unavailable or dropped the connection during this request (OperationalError:" in body["message"]
    )
    assert "s3cret-db-password" not in answer.content.decode() and "password *** refused" in body["message"]


# --- gunicorn over PostgreSQL ------------------------------------------------------------------------------


def gunicorn_server(
    fake_base_url: str, log_path: Path, *, workers: int = 4, threads: int = 2, now: str | None = None
) -> AbstractContextManager[str]:
    """Serve the app with gunicorn over the test database, CoinGecko being the fake at ``fake_base_url``, its
    clock starting at ``now`` when given (the live open and close steps act only for the server's today)."""
    env = {
        "COINGECKO_BASE_URL": fake_base_url,
        "COINGECKO_API_KEY": "test-demo-key-not-real",
        "COINGECKO_API_PLAN": "demo",
        "COINGECKO_MAX_RETRIES": "0",
        "COINGECKO_RATE_LIMIT_PER_MINUTE": "0",
        "BARTER_BACKFILL_DAYS": "30",
    }
    return gunicorn_serving(env, log_path, workers=workers, threads=threads, now=now)


@dataclass
class Answer:
    """One HTTP answer."""

    status: int
    body: dict[str, Any]
    retry_after: str | None


def post(url: str, token: str, step: str, as_of: str, timeout: float = 120) -> Answer:
    """POST ``/api/<step>`` with ``{"as_of": as_of}``; return the status, JSON body and Retry-After."""
    request = urllib.request.Request(  # noqa: S310 - our own local URL
        f"{url}/api/{step}",
        data=json.dumps({"as_of": as_of}).encode(),
        method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Answer(response.status, json.loads(response.read()), response.headers.get("Retry-After"))
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"raw": raw.decode(errors="replace")[:500]}
        return Answer(exc.code, body, exc.headers.get("Retry-After"))


def api_token() -> str:
    return token_of(user_with("github-action", *RUN_STEPS))


def snapshot() -> dict[str, Any]:
    """Everything a second run for the day must leave as it is."""
    return {
        "candles": list(
            InstrumentOHLC.objects.order_by("instrument__coingecko_id", "open_time").values_list(
                "instrument__coingecko_id",
                "open_time",
                "open",
                "high",
                "low",
                "close",
                "volume",
                "updated_at",
            )
        ),
        "positions": list(
            Position.objects.order_by("pk").values_list(
                "pk", "status", "entry_price", "exit_price", "exit_at", "exits_checked_through", "updated_at"
            )
        ),
        "claims": sorted(StrategyStep.objects.values_list("strategy__name", "step", "as_of", "run_id")),
        "events": History.objects.exclude(kind__in=[HistoryKind.RUN_STARTED, HistoryKind.RUN_FINISHED])
        .exclude(kind=HistoryKind.ERROR)
        .count(),
    }


def assert_one_day_done(w: World) -> int:
    """Assert what one day of the cycle must leave, however many runs raced; return the rows checked."""
    per_coin = {
        coin: InstrumentOHLC.objects.filter(instrument__coingecko_id=coin).count()
        for coin in ("bitcoin", "ethereum", "litecoin")
    }
    assert per_coin == {"bitcoin": CANDLES_PER_COIN, "ethereum": CANDLES_PER_COIN, "litecoin": 0}
    for coin in ("bitcoin", "ethereum"):
        days = list(
            InstrumentOHLC.objects.filter(instrument__coingecko_id=coin).values_list("open_time", flat=True)
        )
        assert len(days) == len(set(days)) == CANDLES_PER_COIN
    assert Position.objects.filter(strategy=w.buyer).count() == 1
    # the buyer's, and the seller's again once its missed days were caught up (its position exited long ago)
    assert History.objects.filter(kind=HistoryKind.POSITION_OPENED).count() == 2
    assert History.objects.filter(kind=HistoryKind.POSITION_CLOSED, position=w.held).count() == 1
    w.held.refresh_from_db()
    assert w.held.status == "closed" and w.held.exit_reason == "signal"
    # One claim per strategy, step, day and instrument; litecoin had no candle, so no open claimed it.
    claims = list(
        StrategyStep.objects.values_list("strategy__name", "step", "as_of", "instrument__coingecko_id")
    )
    day = date(2024, 12, 2)
    assert sorted(claims) == [
        ("buyer", "close", day, "bitcoin"),
        ("buyer", "close", day, "litecoin"),
        ("buyer", "open", day, "bitcoin"),
        ("seller", "close", day, "bitcoin"),
        ("seller", "open", day, "bitcoin"),
    ]
    # No deadlock, nothing left hanging: every run that started has finished, none interrupted.
    started = set(History.objects.filter(kind=HistoryKind.RUN_STARTED).values_list("run_id", flat=True))
    finished = set(History.objects.filter(kind=HistoryKind.RUN_FINISHED).values_list("run_id", flat=True))
    assert started == finished
    assert not History.objects.filter(status="interrupted").exists()
    return sum(per_coin.values()) + Position.objects.count() + len(claims) + 2 * len(started)


@pytest.mark.postgres
def test_20_concurrent_calls_of_each_endpoint_on_gunicorn_do_everything_once(
    fake_coingecko: FakeCoinGecko, tmp_path: Path
) -> None:
    w = world(fake_coingecko)  # litecoin cannot be collected: the fake answers 404
    token = api_token()
    figures: dict[str, dict[str, int]] = {}
    with gunicorn_server(fake_coingecko.base_url, tmp_path / "gunicorn.log", now=AS_OF_NOW) as url:
        for step, step_name in STEP_ENDPOINTS.items():
            barrier = threading.Barrier(CALLS_PER_ENDPOINT)

            def call(_: int, step: str = step, barrier: threading.Barrier = barrier) -> Answer:
                barrier.wait(timeout=30)
                return post(url, token, step, AS_OF)

            with ThreadPoolExecutor(CALLS_PER_ENDPOINT) as pool:
                answers = list(pool.map(call, range(CALLS_PER_ENDPOINT), timeout=180))

            statuses = [a.status for a in answers]
            assert set(statuses) <= {200, 409}, [a.body for a in answers if a.status not in (200, 409)]
            assert 200 in statuses
            runs = {str(r) for r in History.objects.filter(step=step_name).values_list("run_id", flat=True)}
            for answer in answers:
                if answer.status == 409:
                    assert answer.body["error"] == "RunInProgressError" and answer.retry_after == "10"
                    assert answer.body["lock"] == f"{step_name}:{AS_OF}:all"
                    # None only while the winner has the lock but not yet its run_started row (documented).
                    assert answer.body["run_id"] is None or answer.body["run_id"] in runs
                else:
                    assert answer.body["step"] == step_name and answer.body["run_id"] in runs
            figures[step] = {
                "sent": len(answers),
                "200": statuses.count(200),
                "409": statuses.count(409),
                "409 without run_id": sum(1 for a in answers if a.status == 409 and a.body["run_id"] is None),
                "runs": len(runs),
            }
        rows_checked = assert_one_day_done(w)

        # A second run for the day, one call after another, changes nothing.
        before = snapshot()
        again = {step: post(url, token, step, AS_OF) for step in STEP_ENDPOINTS}
        assert all(a.status == 200 for a in again.values())
        assert [r["candles_added"] + r["candles_updated"] for r in again["sync_data"].body["results"]] == [
            0,
            0,
            0,
        ]
        # Every instrument handled is skipped; litecoin, never collected, had no candle to decide on, so its open
        # was not claimed (a run after its collect may still enter it) and is reported again.
        assert sorted(
            (r["strategy"], r["instrument"], r["action"]) for r in again["sync_new_trades"].body["results"]
        ) == [
            ("buyer", "bitcoin", "skipped"),
            ("buyer", "litecoin", "none"),
            ("seller", "bitcoin", "skipped"),
        ]
        assert {r["action"] for r in again["sync_close_positions"].body["results"]} == {"skipped"}
        assert snapshot() == before

        # The next day picks up what this one missed: CoinGecko answers for litecoin now.
        fake_coingecko.add("/coins/litecoin/market_chart/range", json_reply(MARKET_CHART))
    # The next day's collect (allowed for any past day) on a server with the real clock.
    with gunicorn_server(fake_coingecko.base_url, tmp_path / "gunicorn-later.log") as url:
        later = post(url, token, "sync_data", LATER)
    assert later.status == 200
    by_coin = {r["instrument"]: r for r in later.body["results"]}
    # Litecoin: 11-04 .. 12-02 (11-03 is incomplete in the recording); the others: the new day 12-02 only.
    assert by_coin["litecoin"]["candles_added"] == CANDLES_PER_COIN + 1
    assert by_coin["bitcoin"]["candles_added"] == by_coin["ethereum"]["candles_added"] == 1
    assert InstrumentOHLC.objects.count() == 3 * (CANDLES_PER_COIN + 1)
    print(f"\ngunicorn 4 workers x 2 threads, {CALLS_PER_ENDPOINT} concurrent POSTs per endpoint: {figures}")
    print(f"rows checked after the race: {rows_checked}; sequential second run: 3 calls, nothing changed")


# --- a real Celery worker on Redis --------------------------------------------------------------------------


@contextmanager
def celery_worker(fake_base_url: str, redis_url: str, log: Path, *, concurrency: int) -> Iterator[str]:
    """``celery -A barter_site worker`` on the test database, Redis and the fake; yields its queue."""
    queue = f"{os.environ.get('BARTER_CELERY_QUEUE', 'barter')}-reliability-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "barter_site.settings.local",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "BARTER_CELERY_QUEUE": queue,
        "COINGECKO_BASE_URL": fake_base_url,
        "COINGECKO_API_KEY": "test-demo-key-not-real",
        "COINGECKO_API_PLAN": "demo",
        "COINGECKO_TIMEOUT_SECONDS": "5",
        "COINGECKO_RATE_LIMIT_PER_MINUTE": "0",
        "BARTER_BACKFILL_DAYS": "30",
        "DJANGO_DEBUG": "False",
        "PYTHONPATH": str(REPO),
    }
    command = clock_command(AS_OF_NOW, "-m", "celery", "-A", "barter_site", "worker", "--loglevel=INFO")
    command += [f"--concurrency={concurrency}", "-Q", queue, "-n", f"{queue}@%h"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    try:
        deadline = time.monotonic() + 60
        while " ready." not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{log.read_text(errors='replace')[-3000:]}")
            threading.Event().wait(0.2)
        yield queue
    finally:
        app.conf.update(task_always_eager=True)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        import redis

        broker = redis.Redis.from_url(redis_url)
        for key in list(broker.scan_iter(match=f"*{queue}*")):
            broker.delete(key)


@pytest.mark.redis
@pytest.mark.postgres
def test_20_daily_chains_at_once_on_a_celery_worker_do_everything_once(
    fake_coingecko: FakeCoinGecko, settings: Settings, tmp_path: Path
) -> None:
    from celery.result import AsyncResult

    w = world(fake_coingecko)
    log = tmp_path / "worker.log"
    with celery_worker(fake_coingecko.base_url, settings.REDIS_URL, log, concurrency=4) as queue:
        started = [daily_cycle_task.apply_async(args=[AS_OF], queue=queue) for _ in range(CALLS_PER_ENDPOINT)]
        try:
            chain_ids: list[str] = [AsyncResult(s.id, app=app).get(timeout=60) for s in started]
            closes: list[dict[str, Any]] = [AsyncResult(c, app=app).get(timeout=120) for c in chain_ids]
        except Exception:
            pytest.fail(f"a chain did not finish:\n{log.read_text(errors='replace')[-4000:]}")
    text = log.read_text(errors="replace")
    retries = text.count("; retrying in ")

    assert all(c["step"] == "close" and c["as_of"] == AS_OF for c in closes)
    rows_checked = assert_one_day_done(w)
    open_runs = History.objects.filter(step="open", kind=HistoryKind.RUN_FINISHED).count()
    collect_runs = History.objects.filter(step="collect", kind=HistoryKind.RUN_FINISHED).count()
    # Every chain ran each of its steps once, waiting (retrying) where another run held the lock.
    assert open_runs == History.objects.filter(step="close", kind=HistoryKind.RUN_FINISHED).count()
    assert open_runs == CALLS_PER_ENDPOINT and collect_runs == 3 * CALLS_PER_ENDPOINT
    assert "raised unexpected" not in text  # no task failed (a refused run retried instead)
    print(
        f"\nCelery worker concurrency 4: {CALLS_PER_ENDPOINT} daily chains ({5 * CALLS_PER_ENDPOINT} step tasks),"
        f" {retries} lock retries, {collect_runs} collect / {open_runs} open / {open_runs} close runs,"
        f" rows checked {rows_checked}"
    )
