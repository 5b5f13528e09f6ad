"""The daily cycle on Celery: a real ``celery -A barter_site worker`` on Redis runs ``trading.daily_cycle``
(collect fanned out per instrument, then open, then close), twice at once without doubling anything; the
same chain runs in-process without a broker; beat's schedule comes from ``BARTER_DAILY_CYCLE_CRON``.

The worker is a subprocess with the local settings, reading the environment like production: the test
database (PostgreSQL, so that both processes see committed rows), the test's Redis, its own queue (so other
workers on the same Redis neither take its tasks nor give it theirs) and the fake CoinGecko.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from celery import chord
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from celery.schedules import crontab
from pytest_django import Settings

from barter_site.celery_app import app
from instruments import collect
from instruments import tasks as instrument_tasks
from instruments.models import Instrument, InstrumentOHLC
from positions.models import Position
from positions.tasks import daily_cycle_signature, daily_cycle_task
from runs.models import History, HistoryKind
from tests.fakes.clock import clock_command
from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, Reply, json_reply
from tests.instruments.factories import InstrumentFactory
from tests.servers import database_url
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]
# The recording covers 2024-11-03 21:20 .. 2024-12-03 20:57 UTC. For as_of 2024-12-02 with a 30-day backfill the
# window is 11-02 .. 12-01, and 11-04 .. 12-01 are complete: 28 candles. The live open and close steps act only
# for today, so the worker's clock (and this process's, for the in-process chains) starts on that day at 00:40.
AS_OF = "2024-12-02"
AS_OF_NOW = f"{AS_OF}T00:40:00+00:00"
CANDLES_PER_COIN = 28
MARKET_CHART = json.loads((RECORDINGS / "market_chart_bitcoin_usd_30d_2024-12.json").read_text())
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}
CHAIN_TIMEOUT_SECONDS = 90
WORKER_READY_SECONDS = 60


@dataclass
class World:
    """What the cycle acts on: three instruments (litecoin cannot be collected) and two enabled strategies."""

    bitcoin: Instrument
    buyer: Strategy  # enters on every candle: opens bitcoin; litecoin has no candle
    seller: Strategy  # exits on every candle: closes the bitcoin position it holds since 2024-11-20
    held: Position


def world(fake: Any) -> World:
    """Script the fake CoinGecko and create the instruments, strategies and the position to close."""
    # One recording serves both coins (ethereum gets bitcoin's prices): the collect code does not care whose.
    fake.add("/coins/bitcoin/market_chart/range", json_reply(MARKET_CHART))
    fake.add("/coins/ethereum/market_chart/range", json_reply(MARKET_CHART))
    # /coins/litecoin/... is not scripted: the fake answers 404 "coin not found", a collect error.
    fake.add("/simple/price", json_reply({"bitcoin": {"usd": 97000}, "litecoin": {"usd": 90}}))
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH")
    litecoin = InstrumentFactory.create(coingecko_id="litecoin", symbol="LTC")
    criteria = {"version": 1, "side": "long", "entry": ALWAYS, "fee_rate": 0.001, "slippage_ratio": 0.0}
    buyer = Strategy.objects.create(name="buyer", criteria=criteria, is_enabled=True)
    buyer.instruments.set([bitcoin, litecoin])
    seller = Strategy.objects.create(name="seller", criteria={**criteria, "exit": ALWAYS}, is_enabled=True)
    seller.instruments.set([bitcoin])
    held = Position.objects.create(
        strategy=seller,
        instrument=bitcoin,
        quantity=Decimal("0.1"),
        entry_price=Decimal("92000"),
        entry_at=datetime(2024, 11, 20, tzinfo=UTC),
        entry_fee=Decimal("9.2"),
    )
    return World(bitcoin=bitcoin, buyer=buyer, seller=seller, held=held)


def runs(step: str) -> list[dict[str, Any]]:
    """The summaries (``run_finished`` payloads) of the runs of ``step``, oldest first."""
    rows = History.objects.filter(step=step, kind=HistoryKind.RUN_FINISHED).order_by("created_at")
    return [row.payload for row in rows]


def run_started_at(run_id: str) -> datetime:
    return History.objects.get(run_id=run_id, kind=HistoryKind.RUN_STARTED).created_at


def run_finished_at(run_id: str) -> datetime:
    return History.objects.get(run_id=run_id, kind=HistoryKind.RUN_FINISHED).created_at


def lines_of(summary: dict[str, Any], strategy: str) -> list[tuple[str | None, str]]:
    return [(r["instrument"], r["action"]) for r in summary["results"] if r["strategy"] == strategy]


def assert_one_cycle_ran(w: World) -> None:
    """One collect run per instrument, then one open run, then one close run, and what each did."""
    collects = runs("collect")
    by_coin = {s["results"][0]["instrument"]: s for s in collects}
    assert len(collects) == 3 and sorted(by_coin) == ["bitcoin", "ethereum", "litecoin"]
    assert all(len(s["results"]) == 1 and s["as_of"] == AS_OF for s in collects)
    assert by_coin["bitcoin"]["status"] == by_coin["ethereum"]["status"] == "ok"
    assert by_coin["bitcoin"]["results"][0]["candles_added"] == CANDLES_PER_COIN
    assert by_coin["litecoin"]["status"] == "failed"
    assert by_coin["litecoin"]["results"][0]["error"].endswith("HTTP 404: coin not found")
    assert InstrumentOHLC.objects.filter(instrument__coingecko_id="ethereum").count() == CANDLES_PER_COIN
    assert InstrumentOHLC.objects.count() == 2 * CANDLES_PER_COIN

    (opened,) = runs("open")
    (closed,) = runs("close")
    # Open starts after every collect run has finished (a chord), close after open has finished.
    assert run_started_at(opened["run_id"]) > max(run_finished_at(s["run_id"]) for s in collects)
    assert run_started_at(closed["run_id"]) > run_finished_at(opened["run_id"])

    # The failed collect did not stop the open and close steps; they ran on the stored candles.
    assert opened["as_of"] == closed["as_of"] == AS_OF
    assert lines_of(opened, "buyer") == [("bitcoin", "opened"), ("litecoin", "none")]
    # The open step's reconcile phase catches up the seller's missed days first (CRITERIA.md: what happened before
    # the boundary is settled before the entries): its position exited long ago, so it enters again today.
    assert lines_of(opened, "seller") == [("bitcoin", "closed"), ("bitcoin", "opened")]
    bought = Position.objects.get(strategy=w.buyer)
    assert bought.instrument == w.bitcoin and bought.status == "open"
    assert bought.entry_price == Decimal("97000")  # /simple/price, no slippage
    assert lines_of(closed, "seller") == [("bitcoin", "none")]  # entered today: not open during candle D-1
    w.held.refresh_from_db()
    # Exit signal on the first candle checked (2024-11-20), filled at the next open (2024-11-21).
    assert w.held.status == "closed" and w.held.exit_reason == "signal"
    assert w.held.exit_at == datetime(2024, 11, 21, tzinfo=UTC)
    assert (
        w.held.exit_price == InstrumentOHLC.objects.get(instrument=w.bitcoin, open_time=w.held.exit_at).open
    )


@time_machine.travel(datetime.fromisoformat(AS_OF_NOW), tick=True)
def test_without_a_broker_the_chain_runs_in_process(
    fake_coingecko: FakeCoinGecko, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    w = world(fake_coingecko)
    chain_id = daily_cycle_task.delay(AS_OF).get()
    assert isinstance(chain_id, str) and chain_id
    assert_one_cycle_ran(w)


@time_machine.travel(datetime.fromisoformat(AS_OF_NOW), tick=True)
def test_a_collect_task_that_blows_up_stops_neither_open_nor_close(
    fake_coingecko: FakeCoinGecko, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    world(fake_coingecko)
    real_sync_data = collect.sync_data  # what instruments.tasks calls

    def sync_data(*, as_of: date, instruments: list[str]) -> dict[str, Any]:
        if instruments == ["ethereum"]:
            raise RuntimeError("the database went away")
        return real_sync_data(as_of=as_of, instruments=instruments)

    monkeypatch.setattr(instrument_tasks, "sync_data", sync_data)
    daily_cycle_task.delay(AS_OF).get()  # eager errors propagate: a raising collect task would raise here

    failed = next(s for s in runs("collect") if s["results"][0]["instrument"] == "ethereum")
    assert failed["status"] == "failed"
    assert failed["results"][0]["error"] == "internal error RuntimeError: the database went away"
    assert len(runs("collect")) == 3 and len(runs("open")) == len(runs("close")) == 1
    assert Position.objects.filter(strategy__name="buyer").count() == 1


def test_a_day_in_the_future_starts_nothing() -> None:
    with pytest.raises(Exception, match=r"as_of must be today \(.*\) or earlier; was 2999-01-01"):
        daily_cycle_task.delay("2999-01-01").get()
    assert not History.objects.exists()


def test_without_instruments_open_and_close_still_run(fake_coingecko: FakeCoinGecko) -> None:
    daily_cycle_task.delay(AS_OF).get()
    assert not runs("collect") and len(runs("open")) == len(runs("close")) == 1


# --- a real worker on Redis ------------------------------------------------------------------------------------


@dataclass
class Worker:
    """A running worker subprocess: its queue and its log."""

    process: subprocess.Popen[bytes]
    queue: str
    log: Path

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WORKER_READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited with {self.process.returncode}:\n{self.tail()}")
            if " ready." in self.log.read_text(errors="replace"):
                return
            threading.Event().wait(0.2)  # not time.sleep: the fake_coingecko fixture stubs it
        pytest.fail(f"the worker was not ready within {WORKER_READY_SECONDS} s:\n{self.tail()}")

    def result(self, task_id: str) -> Any:
        """Wait for a task's result; fail with the worker's log when it does not come in time."""
        try:
            return AsyncResult(task_id, app=app).get(timeout=CHAIN_TIMEOUT_SECONDS)
        except CeleryTimeoutError:
            pytest.fail(f"task {task_id} did not finish within {CHAIN_TIMEOUT_SECONDS} s:\n{self.tail()}")


@contextmanager
def worker_running(
    *,
    fake_base_url: str,
    redis_url: str,
    log: Path,
    concurrency: int = 2,
    queues: str = "",
    env: dict[str, str] | None = None,
    now: str | None = AS_OF_NOW,
) -> Iterator[Worker]:
    """``celery -A barter_site worker`` on the test database, Redis and fake CoinGecko, until the block ends.

    Args:
        fake_base_url: the fake CoinGecko's base URL.
        redis_url: the test's Redis.
        log: where the worker's output goes.
        concurrency: pool processes.
        queues: ``-Q`` (the test's own queue when empty; ``"{queue}"`` in it is replaced by that name).
        env: variables added to the worker's environment.
        now: the worker's clock (ISO time; live steps act only for today), or None for the real clock.
    """
    queue = f"barter-test-{uuid.uuid4().hex[:12]}"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "barter_site.settings.local",
        "DATABASE_URL": database_url(),
        "REDIS_URL": redis_url,
        "BARTER_CELERY_QUEUE": queue,
        "COINGECKO_BASE_URL": fake_base_url,
        "COINGECKO_API_KEY": "test-demo-key-not-real",
        "COINGECKO_API_PLAN": "demo",
        "COINGECKO_TIMEOUT_SECONDS": "5",
        # The limiter is on (in Redis) but roomy: its behaviour is tested in
        # tests/instruments/sources/coingecko/test_ratelimit.py.
        "COINGECKO_RATE_LIMIT_PER_MINUTE": "600",
        "BARTER_BACKFILL_DAYS": "30",
        "DJANGO_DEBUG": "False",
        "PYTHONPATH": str(REPO),
        **(env or {}),
    }
    # The worker's clock is on the recorded day: live steps act only for today (positions.cycle.run.step_day_validate).
    arguments = ("-m", "celery", "-A", "barter_site", "worker", "--loglevel=INFO")
    command = clock_command(now, *arguments) if now is not None else [sys.executable, *arguments]
    command += [f"--concurrency={concurrency}", "-Q", (queues or "{queue}").format(queue=queue)]
    command += ["-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            command, cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Worker(process=process, queue=queue, log=log)
    # What the test process's app had before: restored afterwards, or a later test in this process would send its
    # tasks to this worker's queue (the sweep browser tests run before tests/instruments/test_tasks.py).
    before = {
        key: app.conf[key]
        for key in ("broker_url", "result_backend", "task_always_eager", "task_default_queue", "task_routes")
    }
    app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False)
    # Sends from the test go where the worker's own settings route them.
    app.conf.update(
        task_default_queue=queue,
        task_routes={
            name: {"queue": f"{queue}-simulator"}
            for name in ("simulator.run_simulation", "simulator.sweep_chunk", "simulator.sweep_finish")
        },
    )
    try:
        running.wait_ready()
        yield running
    finally:
        app.conf.update(before)
        process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current tasks, then exit
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool children (its own session)
            process.wait(timeout=10)
        # The queue's list and kombu's binding tables for it (names unique to this test).
        broker = redis.Redis.from_url(redis_url)
        for key in list(broker.scan_iter(match=f"*{queue}*")):
            broker.delete(key)


@pytest.fixture
def worker(
    fake_coingecko: FakeCoinGecko, transactional_db: None, settings: Settings, tmp_path: Path
) -> Iterator[Worker]:
    """``celery -A barter_site worker --concurrency 2`` on the test database, Redis and fake CoinGecko.

    Depends on ``transactional_db`` so that it is stopped before the tables are flushed.
    """
    with worker_running(
        fake_base_url=fake_coingecko.base_url, redis_url=settings.REDIS_URL, log=tmp_path / "worker.log"
    ) as running:
        yield running


def pool_children(parent: int) -> list[int]:
    """The pids of the processes whose parent is ``parent`` (the worker's pool processes)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def wait_for(predicate: Any, what: str, worker: Worker, seconds: float = CHAIN_TIMEOUT_SECONDS) -> None:
    # Any: a predicate may be a lambda binding the loop's variable as a default (ruff B023), which mypy cannot
    # infer against a Callable.
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {seconds} s:\n{worker.tail()}")
        threading.Event().wait(0.05)  # not time.sleep: the fake_coingecko fixture stubs it


@pytest.mark.redis
@pytest.mark.postgres
def test_a_real_worker_runs_the_daily_chain(worker: Worker, fake_coingecko: FakeCoinGecko) -> None:
    w = world(fake_coingecko)

    started = daily_cycle_task.apply_async(args=[AS_OF], queue=worker.queue)
    chain_id = worker.result(started.id)
    close_summary = worker.result(chain_id)

    assert close_summary["step"] == "close" and close_summary["as_of"] == AS_OF
    assert_one_cycle_ran(w)
    assert close_summary == runs("close")[0]


@pytest.mark.redis
@pytest.mark.postgres
def test_two_chains_at_once_double_nothing(worker: Worker, fake_coingecko: FakeCoinGecko) -> None:
    w = world(fake_coingecko)

    started = [daily_cycle_task.apply_async(args=[AS_OF], queue=worker.queue) for _ in range(2)]
    chain_ids = [worker.result(s.id) for s in started]
    for chain_id in chain_ids:
        worker.result(chain_id)

    # Both chains collected every instrument; the upserts left one candle per coin and day.
    collects = runs("collect")
    assert len(collects) == 6
    assert (
        sorted(s["results"][0]["instrument"] for s in collects)
        == ["bitcoin"] * 2 + ["ethereum"] * 2 + ["litecoin"] * 2
    )
    assert InstrumentOHLC.objects.count() == 2 * CANDLES_PER_COIN
    days = InstrumentOHLC.objects.filter(instrument=w.bitcoin).values_list("open_time__date", flat=True)
    assert sorted(days) == sorted(set(days)) and len(days) == CANDLES_PER_COIN

    # Each strategy's open and close ran once for the day and instrument; the other chain's runs report skipped
    # for them. Litecoin, never collected, had no candle to decide on: its open is claimed by neither run (a run
    # after its collect may still enter it), so both report it "none".
    for step in ("open", "close"):
        summaries = runs(step)
        assert len(summaries) == 2
        for strategy in ("buyer", "seller"):
            first, later = sorted(
                (lines_of(s, strategy) for s in summaries),
                key=lambda lines: "skipped" in dict(lines).values(),
            )
            assert "skipped" not in dict(first).values(), (step, strategy, first)
            assert "skipped" in dict(later).values(), (step, strategy, later)
            for instrument, action in later:
                assert action == "skipped" or (step, instrument, action) == ("open", "litecoin", "none"), (
                    later
                )
    assert Position.objects.filter(strategy=w.buyer).count() == 1
    # the buyer's, and the seller's again (its missed days caught up)
    assert History.objects.filter(kind=HistoryKind.POSITION_OPENED).count() == 2
    assert History.objects.filter(kind=HistoryKind.POSITION_CLOSED, position=w.held).count() == 1
    w.held.refresh_from_db()
    assert w.held.status == "closed" and w.held.exit_at == datetime(2024, 11, 21, tzinfo=UTC)


# --- beat ------------------------------------------------------------------------------------------------------


def test_beat_runs_the_daily_cycle_at_0040_utc_by_default(settings: Settings) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["daily-cycle"]
    assert entry["task"] == "trading.daily_cycle" == daily_cycle_task.name
    assert entry["schedule"] == crontab(minute=40, hour=0)
    assert app.conf.beat_schedule["daily-cycle"]["task"] == "trading.daily_cycle"
    assert app.conf.timezone == "UTC"  # type: ignore[comparison-overlap]  # celery-types says tzinfo; it is the setting
    # The next run after 2024-12-01 23:00 UTC is 00:40 UTC the next day.
    remaining = entry["schedule"].remaining_delta(datetime(2024, 12, 1, 23, 0, tzinfo=UTC))
    assert remaining[0] + remaining[1] == datetime(2024, 12, 2, 0, 40, tzinfo=UTC)


_PRINT_SCHEDULE = """
import django
from django.conf import settings
django.setup()
s = settings.CELERY_BEAT_SCHEDULE["daily-cycle"]["schedule"]
print(sorted(s.minute), sorted(s.hour), sorted(s.day_of_week), sorted(s.day_of_month), sorted(s.month_of_year))
"""


def _settings_with_cron(cron: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "barter_site.settings.local",
        "BARTER_DAILY_CYCLE_CRON": cron,
    }
    return subprocess.run(  # noqa: S603 (our own interpreter and script)
        [sys.executable, "-c", _PRINT_SCHEDULE], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_cron_comes_from_the_environment() -> None:
    done = _settings_with_cron("15 1 * * 1-5")
    assert done.returncode == 0, done.stderr
    # minute, hour, weekdays (Monday 1 .. Friday 5), every day of the month, every month
    assert done.stdout.split("\n")[0] == f"[15] [1] [1, 2, 3, 4, 5] {list(range(1, 32))} {list(range(1, 13))}"


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("40 0 * *", "found 4 field(s)"),
        ("61 0 * * *", "Invalid end range: 61 > 59"),
        ("40 0 * * funday", "Invalid weekday literal 'funday'"),
    ],
)
def test_a_malformed_cron_stops_startup_with_a_clear_message(cron: str, why: str) -> None:
    done = _settings_with_cron(cron)
    assert done.returncode != 0
    assert (
        "ImproperlyConfigured: BARTER_DAILY_CYCLE_CRON must be a cron expression of 5 fields" in done.stderr
    )
    assert (
        f"'minute hour day-of-month month day-of-week' in UTC, e.g. '40 0 * * *'; was {cron!r} ({why})"
        in (done.stderr)
    )


def test_the_chain_fans_out_over_active_instruments_with_the_day_fixed() -> None:
    # as_of reaches every step as the same ISO date, so a chain that runs past midnight trades the day it began.
    for coin in ("ethereum", "bitcoin"):
        InstrumentFactory.create(coingecko_id=coin)
    InstrumentFactory.create(coingecko_id="dogecoin", is_active=False)

    canvas = daily_cycle_signature(as_of=date(2024, 12, 2))

    # A group followed by tasks is a chord: the collect tasks are its header, open then close its body.
    assert isinstance(canvas, chord)
    opening, closing = canvas.body.tasks
    assert [(t.task, tuple(t.args), t.immutable) for t in canvas.tasks] == [
        ("instruments.sync_instrument", (AS_OF, "bitcoin"), True),
        ("instruments.sync_instrument", (AS_OF, "ethereum"), True),
    ]
    assert (opening.task, tuple(opening.args), opening.immutable) == (
        "trading.sync_new_trades",
        (AS_OF,),
        True,
    )
    assert (closing.task, tuple(closing.args), closing.immutable) == (
        "trading.sync_close_positions",
        (AS_OF,),
        True,
    )
    # When the chord fails (a collect lost for good), its error callback records it and runs open and close.
    (rescue,) = canvas.body.options["link_error"]
    assert (rescue["task"], tuple(rescue["args"]), rescue["immutable"]) == (
        "trading.daily_cycle_rescue",
        (AS_OF,),
        True,
    )


# --- a lost task (issue 11, item 6) ------------------------------------------------------------------------------

ETHEREUM = "/coins/ethereum/market_chart/range"


@pytest.mark.redis
@pytest.mark.postgres
def test_sigkill_of_the_worker_child_mid_collect_redelivers_it_and_open_and_close_still_run(
    fake_coingecko: FakeCoinGecko, transactional_db: None, settings: Settings, tmp_path: Path
) -> None:
    w = world(fake_coingecko)
    # Ethereum's first request is held for 4 s (under the client's 5 s timeout): the collect is then in the
    # middle of its run, with its run_started written and its run lock held, when the test kills its process.
    fake_coingecko.add(
        ETHEREUM, Reply(body=json.dumps(MARKET_CHART).encode(), delay_seconds=4), json_reply(MARKET_CHART)
    )
    with worker_running(
        fake_base_url=fake_coingecko.base_url,
        redis_url=settings.REDIS_URL,
        log=tmp_path / "worker.log",
        concurrency=1,
    ) as worker:
        (child,) = pool_children(worker.process.pid)
        started = daily_cycle_task.apply_async(args=[AS_OF], queue=worker.queue)
        chain_id = worker.result(started.id)
        wait_for(lambda: fake_coingecko.requests_to(ETHEREUM), "ethereum's collect", worker)
        os.kill(child, signal.SIGKILL)
        close_summary = worker.result(chain_id)  # the chain completes: the collect was run again

    assert close_summary["step"] == "close" and close_summary["as_of"] == AS_OF
    assert "WorkerLostError" in worker.log.read_text()  # the child really died mid-task
    assert len(fake_coingecko.requests_to(ETHEREUM)) == 2
    lost, again = _ethereum_runs()
    # The redelivered run found the killed one unfinished, with its lock free, and finished it as interrupted.
    assert lost.status == "interrupted" and lost.payload["found_by"] == again.payload["run_id"]
    assert "was interrupted (it never finished and its lock was free)" in lost.message
    assert again.status == "ok" and again.payload["results"][0]["candles_added"] == CANDLES_PER_COIN
    assert InstrumentOHLC.objects.filter(instrument__coingecko_id="ethereum").count() == CANDLES_PER_COIN
    (opened,) = runs("open")
    (closed,) = runs("close")
    assert run_started_at(opened["run_id"]) > run_finished_at(again.payload["run_id"])
    assert lines_of(opened, "buyer") == [("bitcoin", "opened"), ("litecoin", "none")]
    # its old position was settled by the open step
    assert lines_of(closed, "seller") == [("bitcoin", "none")]
    w.held.refresh_from_db()
    assert w.held.status == "closed"
    print("\nSIGKILL of the worker child mid-collect: 1 fault; the collect ran again, open and close ran")


def _ethereum_runs() -> tuple[History, History]:
    """Ethereum's killed collect run and the run that redid it (run_finished rows)."""
    rows = [
        row
        for row in History.objects.filter(step="collect", kind=HistoryKind.RUN_FINISHED).order_by(
            "created_at"
        )
        if (row.payload.get("lock") or "").endswith(":ethereum")
        or (row.payload.get("results") and row.payload["results"][0]["instrument"] == "ethereum")
    ]
    by_status = {row.status: row for row in rows}
    assert len(rows) == 2, [(r.status, r.message) for r in rows]
    return by_status["interrupted"], by_status["ok"]


@pytest.mark.redis
@pytest.mark.postgres
def test_a_collect_killed_past_its_time_limit_fails_the_chord_and_the_rescue_runs_open_and_close(
    fake_coingecko: FakeCoinGecko, transactional_db: None, settings: Settings, tmp_path: Path
) -> None:
    w = world(fake_coingecko)
    # Ethereum's CoinGecko never answers within the collect's time limit (2 s), on any try.
    fake_coingecko.add(ETHEREUM, Reply(body=json.dumps(MARKET_CHART).encode(), delay_seconds=20))
    with worker_running(
        fake_base_url=fake_coingecko.base_url,
        redis_url=settings.REDIS_URL,
        log=tmp_path / "worker.log",
        concurrency=2,
        env={"BARTER_COLLECT_TIME_LIMIT_SECONDS": "2", "COINGECKO_TIMEOUT_SECONDS": "30"},
    ) as worker:
        daily_cycle_task.apply_async(args=[AS_OF], queue=worker.queue)
        wait_for(lambda: len(runs("close")) == 1, "the close step", worker)

    lost = [
        row
        for row in History.objects.filter(kind=HistoryKind.ERROR)
        if row.payload.get("error") == "CollectLost"
    ]
    assert len(lost) == 1 and lost[0].instrument is not None and lost[0].instrument.coingecko_id == "ethereum"
    assert lost[0].message.startswith(f"the collect of ethereum for {AS_OF} was lost: ")
    (opened,) = runs("open")
    (closed,) = runs("close")
    assert lines_of(opened, "buyer") == [("bitcoin", "opened"), ("litecoin", "none")]
    # its old position was settled by the open step
    assert lines_of(closed, "seller") == [("bitcoin", "none")]
    w.held.refresh_from_db()
    assert w.held.status == "closed"
    assert "its task failed (killed past its time limit, or its worker lost)" in lost[0].message
    print(f"\ncollect past its time limit: {worker.log.read_text().count('TimeLimitExceeded')} time limit(s)")


@pytest.mark.redis
@pytest.mark.postgres
def test_a_collect_that_kills_its_worker_every_time_is_given_up_after_three_and_the_chain_goes_on(
    fake_coingecko: FakeCoinGecko, transactional_db: None, settings: Settings, tmp_path: Path
) -> None:
    w = world(fake_coingecko)
    fake_coingecko.add(ETHEREUM, Reply(body=json.dumps(MARKET_CHART).encode(), delay_seconds=4))
    with worker_running(
        fake_base_url=fake_coingecko.base_url,
        redis_url=settings.REDIS_URL,
        log=tmp_path / "worker.log",
        concurrency=1,
    ) as worker:
        started = daily_cycle_task.apply_async(args=[AS_OF], queue=worker.queue)
        chain_id = worker.result(started.id)
        for kill in range(1, 4):  # each delivery of ethereum's collect dies mid-request
            wait_for(
                lambda n=kill: len(fake_coingecko.requests_to(ETHEREUM)) == n, f"delivery {kill}", worker
            )
            (child,) = pool_children(worker.process.pid)
            os.kill(child, signal.SIGKILL)
        close_summary = worker.result(chain_id)

    assert close_summary["step"] == "close"
    assert len(fake_coingecko.requests_to(ETHEREUM)) == 3  # the fourth delivery did not try again
    rows = [
        row
        for row in History.objects.filter(step="collect", kind=HistoryKind.RUN_FINISHED).order_by(
            "created_at"
        )
        if (row.payload.get("lock") or "").endswith(":ethereum")
        or (row.payload.get("results") and row.payload["results"][0]["instrument"] == "ethereum")
    ]
    assert [row.status for row in rows] == ["interrupted", "interrupted", "interrupted", "failed"]
    assert (
        "its worker was lost 3 times (killed mid-run); it is not tried again for this day"
        in rows[-1].payload["results"][0]["error"]
    )
    (opened,) = runs("open")
    assert lines_of(opened, "buyer") == [("bitcoin", "opened"), ("litecoin", "none")]
    assert len(runs("close")) == 1
    w.held.refresh_from_db()
    assert w.held.status == "closed"
