"""The Celery task of the collect step: in-process without a broker, and through a real worker on Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import time_machine

from barter_site.celery_app import app
from instruments.models import InstrumentOHLC
from instruments.tasks import sync_data_task
from tests.fakes.coingecko import RECORDINGS, json_reply
from tests.instruments.factories import InstrumentFactory

pytestmark = pytest.mark.django_db(transaction=True)
DAYS2 = json.loads((RECORDINGS / "derived" / "ohlc_days2_bitcoin_2024-01-03T0040Z.json").read_text())


def test_task_runs_in_process_without_a_broker(fake_coingecko, settings):
    settings.BARTER_BACKFILL_DAYS = 1
    InstrumentFactory(coingecko_id="bitcoin")
    fake_coingecko.add("/coins/bitcoin/ohlc", json_reply(DAYS2))
    with time_machine.travel(datetime(2024, 1, 3, 0, 40, tzinfo=UTC), tick=False):
        summary = sync_data_task.delay(as_of="2024-01-03").get()
    assert summary["results"][0]["candles_added"] == 1
    assert InstrumentOHLC.objects.count() == 1


@pytest.mark.redis
def test_task_runs_on_a_real_worker_over_redis(fake_coingecko, settings):
    from celery.contrib.testing.worker import start_worker

    settings.BARTER_BACKFILL_DAYS = 30
    InstrumentFactory(coingecko_id="bitcoin")
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
