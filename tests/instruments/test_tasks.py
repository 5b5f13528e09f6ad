"""The Celery tasks of the collect step: in-process without a broker, and through a real worker on Redis;
the per-instrument task of the daily cycle's fan-out never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine
from pytest_django import Settings

from barter_site.celery_app import app
from instruments.models import InstrumentOHLC
from instruments.tasks import sync_data_task, sync_instrument_task
from runs.models import History, HistoryKind
from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, json_reply
from tests.instruments.factories import InstrumentFactory

pytestmark = pytest.mark.django_db(transaction=True)
DAYS2 = json.loads((RECORDINGS / "derived" / "ohlc_days2_bitcoin_2024-01-03T0040Z.json").read_text())


def test_task_runs_in_process_without_a_broker(fake_coingecko: FakeCoinGecko, settings: Settings) -> None:
    settings.BARTER_BACKFILL_DAYS = 1
    InstrumentFactory.create(coingecko_id="bitcoin")
    fake_coingecko.add("/coins/bitcoin/ohlc", json_reply(DAYS2))
    with time_machine.travel(datetime(2024, 1, 3, 0, 40, tzinfo=UTC), tick=False):
        summary = sync_data_task.delay(as_of="2024-01-03").get()
    assert summary["results"][0]["candles_added"] == 1
    assert InstrumentOHLC.objects.count() == 1


@pytest.mark.redis
def test_task_runs_on_a_real_worker_over_redis(fake_coingecko: FakeCoinGecko, settings: Settings) -> None:
    from celery.contrib.testing.worker import start_worker

    settings.BARTER_BACKFILL_DAYS = 30
    InstrumentFactory.create(coingecko_id="bitcoin")
    fake_coingecko.add(
        "/coins/bitcoin/market_chart/range",
        json_reply(json.loads((RECORDINGS / "market_chart_bitcoin_usd_30d_2024-12.json").read_text())),
    )
    app.conf.update(broker_url=settings.REDIS_URL, result_backend=settings.REDIS_URL, task_always_eager=False)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            # as_of in the past: the worker's clock is real, and 2024-12-02 needs the window 11-02 .. 12-01.
            result = sync_data_task.delay(as_of="2024-12-02", instruments=["bitcoin"])
            summary = result.get(timeout=30)
    finally:
        app.conf.update(task_always_eager=True)
    assert summary["status"] == "ok"
    assert summary["results"][0]["candles_added"] == 28
    assert InstrumentOHLC.objects.count() == 28


MARKET_CHART_30D = RECORDINGS / "market_chart_bitcoin_usd_30d_2024-12.json"


@time_machine.travel(datetime(2024, 12, 4, 0, 40, tzinfo=UTC), tick=False)
def test_sync_instrument_collects_that_instrument_in_a_run_of_its_own(
    fake_coingecko: FakeCoinGecko, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 30
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    InstrumentFactory.create(coingecko_id="ethereum")
    fake_coingecko.add(
        "/coins/bitcoin/market_chart/range", json_reply(json.loads(MARKET_CHART_30D.read_text()))
    )

    summary = sync_instrument_task.delay("2024-12-02", "bitcoin").get()

    assert summary["status"] == "ok" and summary["step"] == "collect"
    assert [r["instrument"] for r in summary["results"]] == ["bitcoin"]
    assert summary["results"][0]["candles_added"] == 28
    assert InstrumentOHLC.objects.filter(instrument=bitcoin).count() == InstrumentOHLC.objects.count() == 28
    started = History.objects.get(run_id=summary["run_id"], kind=HistoryKind.RUN_STARTED)
    assert (
        started.payload
        == {
            "as_of": "2024-12-02",
            "instruments": ["bitcoin"],
            "lock": "collect:2024-12-02:bitcoin",  # one instrument's lock: the fan-out's tasks do not block each other
        }
    )
    assert not fake_coingecko.requests_to("/coins/ethereum/market_chart/range")


def test_sync_instrument_returns_and_records_what_the_service_raised() -> None:
    # An instrument deleted between the fan-out and its task: the service refuses the unknown id.
    InstrumentFactory.create(coingecko_id="bitcoin")

    summary = sync_instrument_task.delay("2024-12-02", "gone-coin").get()

    assert summary["status"] == "failed" and summary["step"] == "collect" and summary["as_of"] == "2024-12-02"
    (line,) = summary["results"]
    assert line["instrument"] == "gone-coin" and "unknown instrument(s) 'gone-coin'" in line["error"]
    assert summary["errors"] == [{"instrument": None, "message": line["error"]}]
    rows = list(History.objects.for_run(summary["run_id"]))
    assert [r.kind for r in rows] == ["run_started", "error", "run_finished"]
    assert rows[1].payload == {"error": "ApplicationError", "retryable": False}
    assert rows[2].status == "failed" and rows[2].payload["results"] == summary["results"]


def test_sync_instrument_turns_an_unexpected_error_into_a_failed_summary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")

    def broken(**kwargs: object) -> dict[str, object]:
        raise RuntimeError("connection to the database was lost")

    monkeypatch.setattr("instruments.tasks.sync_data", broken)
    summary = sync_instrument_task.delay("2024-12-02", "bitcoin").get()

    message = "internal error RuntimeError: connection to the database was lost"
    assert summary["status"] == "failed" and summary["results"][0]["error"] == message
    error = History.objects.get(run_id=summary["run_id"], kind=HistoryKind.ERROR)
    assert error.instrument == bitcoin and error.message == message
