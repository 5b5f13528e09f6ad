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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
import time_machine
from celery import chord
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from celery.schedules import crontab
from django.db import connection

from barter_site.celery_app import app
from instruments import tasks as instrument_tasks
from instruments.models import Instrument, InstrumentOHLC
from positions.models import History, HistoryKind, Position
from tests.fakes.clock import clock_command
from tests.fakes.coingecko import RECORDINGS, json_reply
from tests.instruments.factories import InstrumentFactory
from trading.models import Strategy
from trading.tasks import daily_cycle_signature, daily_cycle_task

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
    bitcoin = InstrumentFactory(coingecko_id="bitcoin", symbol="BTC")
    InstrumentFactory(coingecko_id="ethereum", symbol="ETH")
    litecoin = InstrumentFactory(coingecko_id="litecoin", symbol="LTC")
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
    assert lines_of(opened, "seller") == [("bitcoin", "none")]
    bought = Position.objects.get(strategy=w.buyer)
    assert bought.instrument == w.bitcoin and bought.status == "open"
    assert bought.entry_price == Decimal("97000")  # /simple/price, no slippage
    assert lines_of(closed, "seller") == [("bitcoin", "closed")]
    w.held.refresh_from_db()
    # Exit signal on the first candle checked (2024-11-20), filled at the next open (2024-11-21).
    assert w.held.status == "closed" and w.held.exit_reason == "signal"
    assert w.held.exit_at == datetime(2024, 11, 21, tzinfo=UTC)
    assert (
        w.held.exit_price == InstrumentOHLC.objects.get(instrument=w.bitcoin, open_time=w.held.exit_at).open
    )


@time_machine.travel(datetime.fromisoformat(AS_OF_NOW), tick=True)
def test_without_a_broker_the_chain_runs_in_process(fake_coingecko, settings):
    settings.BARTER_BACKFILL_DAYS = 30
    w = world(fake_coingecko)
    chain_id = daily_cycle_task.delay(AS_OF).get()
    assert isinstance(chain_id, str) and chain_id
    assert_one_cycle_ran(w)


@time_machine.travel(datetime.fromisoformat(AS_OF_NOW), tick=True)
def test_a_collect_task_that_blows_up_stops_neither_open_nor_close(fake_coingecko, settings, monkeypatch):
    settings.BARTER_BACKFILL_DAYS = 30
    world(fake_coingecko)
    real_sync_data = instrument_tasks.sync_data

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


def test_a_day_in_the_future_starts_nothing():
    with pytest.raises(Exception, match=r"as_of must be today \(.*\) or earlier; was 2999-01-01"):
        daily_cycle_task.delay("2999-01-01").get()
    assert not History.objects.exists()


def test_without_instruments_open_and_close_still_run(fake_coingecko):
    daily_cycle_task.delay(AS_OF).get()
    assert not runs("collect") and len(runs("open")) == len(runs("close")) == 1


# --- a real worker on Redis ------------------------------------------------------------------------------------


def _database_url() -> str:
    db = connection.settings_dict  # during tests NAME is the test database
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


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


@pytest.fixture
def worker(fake_coingecko, transactional_db, settings, tmp_path) -> Iterator[Worker]:
    """``celery -A barter_site worker --concurrency 2`` on the test database, Redis and fake CoinGecko.

    Depends on ``transactional_db`` so that it is stopped before the tables are flushed.
    """
    queue = f"barter-test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "barter_site.settings.local",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "BARTER_CELERY_QUEUE": queue,
        "COINGECKO_BASE_URL": fake_coingecko.base_url,
        "COINGECKO_API_KEY": "test-demo-key-not-real",
        "COINGECKO_API_PLAN": "demo",
        "COINGECKO_TIMEOUT_SECONDS": "5",
        # The limiter is on (in Redis) but roomy: its behaviour is tested in tests/instruments/test_ratelimit.py.
        "COINGECKO_RATE_LIMIT_PER_MINUTE": "600",
        "BARTER_BACKFILL_DAYS": "30",
        "DJANGO_DEBUG": "False",
        "PYTHONPATH": str(REPO),
    }
    log = tmp_path / "worker.log"
    command = clock_command(AS_OF_NOW, "-m", "celery", "-A", "barter_site", "worker", "--loglevel=INFO")
    command += ["--concurrency=2", "-Q", queue, "-n", f"{queue}@%h"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Worker(process=process, queue=queue, log=log)
    app.conf.update(broker_url=settings.REDIS_URL, result_backend=settings.REDIS_URL, task_always_eager=False)
    try:
        running.wait_ready()
        yield running
    finally:
        app.conf.update(task_always_eager=True)
        process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current tasks, then exit
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool children (its own session)
            process.wait(timeout=10)
        # The queue's list and kombu's binding tables for it (names unique to this test).
        broker = redis.Redis.from_url(settings.REDIS_URL)
        for key in list(broker.scan_iter(match=f"*{queue}*")):
            broker.delete(key)


@pytest.mark.redis
@pytest.mark.postgres
def test_a_real_worker_runs_the_daily_chain(worker, fake_coingecko):
    w = world(fake_coingecko)

    started = daily_cycle_task.apply_async(args=[AS_OF], queue=worker.queue)
    chain_id = worker.result(started.id)
    close_summary = worker.result(chain_id)

    assert close_summary["step"] == "close" and close_summary["as_of"] == AS_OF
    assert_one_cycle_ran(w)
    assert close_summary == runs("close")[0]


@pytest.mark.redis
@pytest.mark.postgres
def test_two_chains_at_once_double_nothing(worker, fake_coingecko):
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
    assert History.objects.filter(kind=HistoryKind.POSITION_OPENED).count() == 1
    assert History.objects.filter(kind=HistoryKind.POSITION_CLOSED, position=w.held).count() == 1
    w.held.refresh_from_db()
    assert w.held.status == "closed" and w.held.exit_at == datetime(2024, 11, 21, tzinfo=UTC)


# --- beat ------------------------------------------------------------------------------------------------------


def test_beat_runs_the_daily_cycle_at_0040_utc_by_default(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["daily-cycle"]
    assert entry["task"] == "trading.daily_cycle" == daily_cycle_task.name
    assert entry["schedule"] == crontab(minute=40, hour=0)
    assert app.conf.beat_schedule["daily-cycle"]["task"] == "trading.daily_cycle"
    assert app.conf.timezone == "UTC"
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


def test_the_cron_comes_from_the_environment():
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
def test_a_malformed_cron_stops_startup_with_a_clear_message(cron, why):
    done = _settings_with_cron(cron)
    assert done.returncode != 0
    assert (
        "ImproperlyConfigured: BARTER_DAILY_CYCLE_CRON must be a cron expression of 5 fields" in done.stderr
    )
    assert (
        f"'minute hour day-of-month month day-of-week' in UTC, e.g. '40 0 * * *'; was {cron!r} ({why})"
        in (done.stderr)
    )


def test_the_chain_fans_out_over_active_instruments_with_the_day_fixed():
    # as_of reaches every step as the same ISO date, so a chain that runs past midnight trades the day it began.
    for coin in ("ethereum", "bitcoin"):
        InstrumentFactory(coingecko_id=coin)
    InstrumentFactory(coingecko_id="dogecoin", is_active=False)

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
