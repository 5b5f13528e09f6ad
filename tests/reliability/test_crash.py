"""A run killed mid-write, or whose database connection is cut, loses nothing committed and leaves no half row.

Each test makes the run block inside its write transaction deterministically: the test's own connection holds
an uncommitted row with the unique key the run is about to write (a candle of the second instrument, or an open
position of the second strategy), so the run's INSERT waits on it. The test waits until PostgreSQL shows the
run's backend waiting on that lock, then kills the process (SIGKILL) or terminates its backend
(``pg_terminate_backend``), and rolls its own row back. The next run then completes the work and appends the
broken run's ``run_finished`` row with status ``interrupted``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
import time_machine

from instruments.collect import sync_data
from instruments.models import Instrument, InstrumentOHLC
from positions.cycle.open import sync_new_trades
from positions.models import Position, StrategyStep
from runs.models import History, HistoryKind, RunHeartbeat
from runs.reaper import runs_reap
from tests.fakes.clock import clock_command
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.instruments.sources.files.test_imports import DAILY_2020
from tests.ops.test_celery_cycle import MARKET_CHART
from tests.reliability.test_concurrency import api_token, gunicorn_server, post
from tests.servers import database_url
from trading.models import Strategy

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2024-12-02"
CANDLES_PER_COIN = 28  # 2024-11-04 .. 12-01 (see tests/ops/test_celery_cycle.py)
FIRST_DAY = datetime(2024, 11, 4, tzinfo=UTC)  # the first candle the run writes for each coin
WAIT_SECONDS = 60


@pytest.fixture
def blocker() -> Iterator[psycopg.Connection[Any]]:
    """The test's own connection to the test database, in a transaction the test rolls back."""
    with psycopg.connect(database_url()) as conn:
        yield conn
        conn.rollback()


def command(fake_base_url: str, *args: str, now: str | None = None) -> subprocess.Popen[str]:
    """Start ``manage.py <args>`` over the test database and the fake CoinGecko, as production would; with its
    clock starting at ``now`` (ISO 8601) when given."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "barter_site.settings.local",
        "DATABASE_URL": database_url(),
        "COINGECKO_BASE_URL": fake_base_url,
        "COINGECKO_API_KEY": "test-demo-key-not-real",
        "COINGECKO_API_PLAN": "demo",
        "COINGECKO_MAX_RETRIES": "0",
        "COINGECKO_RATE_LIMIT_PER_MINUTE": "0",
        "BARTER_BACKFILL_DAYS": "30",
    }
    env.pop("REDIS_URL", None)
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        clock_command(now, "manage.py", *args) if now else [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def backend_waiting_on_a_lock(process: subprocess.Popen[str] | None = None) -> int:
    """Wait until a backend of the test database (not the test's) waits on a row lock; return its pid."""
    with psycopg.connect(database_url(), autocommit=True) as monitor:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            row = monitor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query ILIKE 'INSERT%%'"
            ).fetchone()
            if row:
                return int(row[0])
            if process is not None and process.poll() is not None:
                pytest.fail(f"the run ended before it blocked: {process.communicate()}")
            threading.Event().wait(0.05)  # not time.sleep: the fake_coingecko fixture stubs it
    pytest.fail(f"no backend waited on the test's row lock within {WAIT_SECONDS} s")


def wait_backend_gone(pid: int) -> None:
    """Wait until PostgreSQL has ended backend ``pid`` (and so released its advisory lock)."""
    with psycopg.connect(database_url(), autocommit=True) as monitor:
        deadline = time.monotonic() + WAIT_SECONDS
        while monitor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still alive after {WAIT_SECONDS} s"
            threading.Event().wait(0.05)


def two_coins(fake: Any) -> tuple[Instrument, Instrument]:
    fake.add("/coins/bitcoin/market_chart/range", json_reply(MARKET_CHART))
    fake.add("/coins/ethereum/market_chart/range", json_reply(MARKET_CHART))
    return InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC"), InstrumentFactory.create(
        coingecko_id="ethereum", symbol="ETH"
    )


def hold_candle(conn: psycopg.Connection[Any], instrument: Instrument) -> None:
    """Insert, uncommitted, the first candle the run will write for ``instrument``."""
    conn.execute(
        "INSERT INTO instruments_instrumentohlc (instrument_id, timeframe, open_time, open, high, low, close, "
        "source, created_at, updated_at) VALUES (%s, '1d', %s, 1, 1, 1, 1, 'test-blocker', now(), now())",
        [instrument.pk, FIRST_DAY],
    )


def the_broken_run() -> History:
    (started,) = History.objects.filter(kind=HistoryKind.RUN_STARTED)
    assert not History.objects.filter(run_id=started.run_id, kind=HistoryKind.RUN_FINISHED).exists()
    return started


def assert_marked_interrupted(broken: History, by: str, **kept: Any) -> None:
    finished = History.objects.get(run_id=broken.run_id, kind=HistoryKind.RUN_FINISHED)
    assert finished.status == "interrupted"
    assert finished.payload["found_by"] == by and finished.payload["lock"] == broken.payload["lock"]
    for key, value in kept.items():
        assert finished.payload[key] == value
    assert f"found by run {by}" in finished.message and "was interrupted" in finished.message


def assert_collect_completed_after(broken: History, bitcoin: Instrument, ethereum: Instrument) -> None:
    summary = sync_data(as_of=date(2024, 12, 2))
    added = {r["instrument"]: r["candles_added"] for r in summary["results"]}
    assert added == {"bitcoin": 0, "ethereum": CANDLES_PER_COIN}
    assert InstrumentOHLC.objects.filter(instrument=ethereum).count() == CANDLES_PER_COIN
    assert not InstrumentOHLC.objects.filter(source="test-blocker").exists()
    assert_marked_interrupted(broken, summary["run_id"], instruments_committed=["bitcoin"])


def test_a_collect_killed_mid_write_keeps_what_committed_and_the_next_run_completes_it(
    fake_coingecko: FakeCoinGecko, blocker: psycopg.Connection[Any]
) -> None:
    bitcoin, ethereum = two_coins(fake_coingecko)
    hold_candle(blocker, ethereum)
    process = command(fake_coingecko.base_url, "sync_data", "--as-of", AS_OF)
    pid = backend_waiting_on_a_lock(process)

    # Bitcoin's transaction committed before ethereum's began; ethereum's is open, waiting on the test's row.
    assert InstrumentOHLC.objects.filter(instrument=bitcoin).count() == CANDLES_PER_COIN
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=WAIT_SECONDS)
    blocker.rollback()
    wait_backend_gone(pid)

    assert process.returncode == -signal.SIGKILL
    assert InstrumentOHLC.objects.filter(instrument=bitcoin).count() == CANDLES_PER_COIN
    assert InstrumentOHLC.objects.filter(instrument=ethereum).count() == 0  # no half-written instrument
    broken = the_broken_run()
    assert History.objects.filter(run_id=broken.run_id, kind=HistoryKind.CANDLES_SYNCED).count() == 1
    assert_collect_completed_after(broken, bitcoin, ethereum)
    print(
        f"\nSIGKILL collect: 1 fault, {2 * CANDLES_PER_COIN} candles checked, killed run marked interrupted"
    )


def test_a_collect_whose_database_connection_is_cut_exits_with_a_clear_error(
    fake_coingecko: FakeCoinGecko, blocker: psycopg.Connection[Any]
) -> None:
    bitcoin, ethereum = two_coins(fake_coingecko)
    hold_candle(blocker, ethereum)
    process = command(fake_coingecko.base_url, "sync_data", "--as-of", AS_OF)
    pid = backend_waiting_on_a_lock(process)

    blocker.execute("SELECT pg_terminate_backend(%s)", [pid])
    blocker.rollback()
    _, stderr = process.communicate(timeout=WAIT_SECONDS)

    assert process.returncode == 1
    name = database_url().rsplit("/", 1)[1]
    assert (
        f"CommandError: the postgresql database '{name}' at 127.0.0.1:5432 is unavailable or dropped the "
        f"connection during the collect run for {AS_OF} (OperationalError: terminating connection"
    ) in stderr
    assert "Traceback" not in stderr
    assert InstrumentOHLC.objects.filter(instrument=bitcoin).count() == CANDLES_PER_COIN
    assert InstrumentOHLC.objects.filter(instrument=ethereum).count() == 0
    assert_collect_completed_after(the_broken_run(), bitcoin, ethereum)
    print("\npg_terminate_backend collect command: 1 fault, exit 1 with a clear message, nothing lost")


def test_an_api_call_whose_database_connection_is_cut_answers_503_and_nothing_is_lost(
    fake_coingecko: FakeCoinGecko, blocker: psycopg.Connection[Any], tmp_path: Path
) -> None:
    bitcoin, ethereum = two_coins(fake_coingecko)
    token = api_token()
    hold_candle(blocker, ethereum)
    with gunicorn_server(fake_coingecko.base_url, tmp_path / "gunicorn.log", workers=2, threads=1) as url:
        answers: list[Any] = []
        caller = threading.Thread(target=lambda: answers.append(post(url, token, "sync_data", AS_OF)))
        caller.start()
        pid = backend_waiting_on_a_lock()
        blocker.execute("SELECT pg_terminate_backend(%s)", [pid])
        blocker.rollback()
        caller.join(timeout=WAIT_SECONDS)
        (answer,) = answers

        assert answer.status == 503 and answer.retry_after == "30"
        assert answer.body["error"] == "DatabaseUnavailable"
        assert "dropped the connection during the collect run for 2024-12-02" in answer.body["message"]
        assert InstrumentOHLC.objects.filter(instrument=bitcoin).count() == CANDLES_PER_COIN
        assert InstrumentOHLC.objects.filter(instrument=ethereum).count() == 0
        broken = the_broken_run()

        again = post(url, token, "sync_data", AS_OF)  # the next call completes the work
    assert again.status == 200
    assert {r["instrument"]: r["candles_added"] for r in again.body["results"]} == {
        "bitcoin": 0,
        "ethereum": CANDLES_PER_COIN,
    }
    assert_marked_interrupted(broken, again.body["run_id"], instruments_committed=["bitcoin"])
    print(
        "\npg_terminate_backend under gunicorn: 1 fault, answered 503 JSON, the next call completed the day"
    )


def test_an_open_step_killed_mid_strategy_leaves_no_position_and_no_claim(
    fake_coingecko: FakeCoinGecko, blocker: psycopg.Connection[Any]
) -> None:
    # Strategies "a" and "b" both enter bitcoin on every candle; "a" commits first, "b" blocks on the test's
    # uncommitted open position of (b, bitcoin), after writing its day's claim in the same transaction.
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 97000}}))
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    for n in range(30):  # 2024-11-01 .. 11-30
        base = Decimal(90_000 + 100 * n)
        CandleFactory.create(
            instrument=bitcoin,
            open_time=datetime(2024, 11, 1, tzinfo=UTC) + timedelta(days=n),
            open=base,
            close=base + 50,
            high=base + 300,
            low=base - 300,
        )
    criteria = {
        "version": 1,
        "side": "long",
        "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
        "fee_rate": 0.001,
        "slippage_ratio": 0.0,
    }
    a, b = (Strategy.objects.create(name=n, criteria=criteria, is_enabled=True) for n in ("a", "b"))
    for strategy in (a, b):
        strategy.instruments.set([bitcoin])
    blocker.execute(
        "INSERT INTO positions_position (strategy_id, instrument_id, side, status, quantity, entry_price, "
        "entry_at, entry_fee, exit_reason, created_at, updated_at) "
        "VALUES (%s, %s, 'long', 'open', 1, 1, now(), 0, '', now(), now())",
        [b.pk, bitcoin.pk],
    )
    # The live open step acts only for today: the command's clock, and this test's, are on 2024-12-01.
    process = command(
        fake_coingecko.base_url, "sync_new_trades", "--as-of", "2024-12-01", now="2024-12-01T00:40:00+00:00"
    )
    pid = backend_waiting_on_a_lock(process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=WAIT_SECONDS)
    blocker.rollback()
    wait_backend_gone(pid)

    assert Position.objects.filter(strategy=a).count() == 1
    assert not Position.objects.filter(strategy=b).exists()
    assert list(StrategyStep.objects.values_list("strategy__name", flat=True)) == ["a"]
    broken = the_broken_run()

    with time_machine.travel(datetime(2024, 12, 1, 0, 41, tzinfo=UTC), tick=False):
        summary = sync_new_trades(as_of=date(2024, 12, 1))
    assert [(r["strategy"], r["action"]) for r in summary["results"]] == [("a", "skipped"), ("b", "opened")]
    assert Position.objects.filter(strategy=b).count() == Position.objects.filter(strategy=a).count() == 1
    assert StrategyStep.objects.filter(strategy=b, step="open", run_id=summary["run_id"]).count() == 1
    assert_marked_interrupted(broken, summary["run_id"], strategies_committed=["a"])
    print("\nSIGKILL open step: 1 fault, 2 strategies checked, b opened exactly once by the next run")


def test_an_import_killed_mid_file_is_finished_as_interrupted_by_the_reaper(
    blocker: psycopg.Connection[Any], tmp_path: Path
) -> None:
    # import_ohlc holds no run lock, so no next run closes it: the reaper does, from its stopped heartbeat.
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    blocker.execute(
        "INSERT INTO instruments_instrumentohlc (instrument_id, timeframe, open_time, open, high, low, close, "
        "source, created_at, updated_at) VALUES (%s, '1d', %s, 1, 1, 1, 1, 'test-blocker', now(), now())",
        [bitcoin.pk, datetime(2020, 1, 1, tzinfo=UTC)],
    )
    process = command("http://127.0.0.1:9", "import_ohlc", str(DAILY_2020), "--instrument", "bitcoin")
    pid = backend_waiting_on_a_lock(process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=WAIT_SECONDS)
    blocker.rollback()
    wait_backend_gone(pid)

    broken = the_broken_run()
    assert broken.step == "import"
    beat = RunHeartbeat.objects.get(run_id=broken.run_id)
    assert runs_reap() == []  # its last beat is recent: it could still be working
    (summary,) = runs_reap(stale_seconds=0)

    finished = History.objects.get(run_id=broken.run_id, kind=HistoryKind.RUN_FINISHED)
    assert finished.status == "interrupted" and finished.payload == summary
    assert summary["found_by"] == "reaper"
    assert summary["reason"] == (
        f"worker lost: no heartbeat since {beat.beat_at.isoformat()} (pid {beat.pid} on {beat.host})"
    )
    assert f"was interrupted (worker lost: no heartbeat since {beat.beat_at.isoformat()}" in finished.message
    assert not RunHeartbeat.objects.exists()
    assert runs_reap(stale_seconds=0) == []  # reaped once
    assert not InstrumentOHLC.objects.filter(instrument=bitcoin).exists()
    print("\nSIGKILL import_ohlc: 1 fault; the reaper finished the run as interrupted")
