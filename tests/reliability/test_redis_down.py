"""Redis down: what a user sees, and that nothing is lost.

``REDIS_URL``, Celery's broker and its result store point at a local port nothing listens on (found free, then
closed), with Celery no longer eager, as in production with Redis gone. Chosen behaviour:

- a simulation big enough to be queued, and a sweep, are not run in the request instead (a queued run can take
  minutes; a sweep of 10,000 points far more): the API answers 503 JSON naming the task queue, the form comes
  back with that message (503; 200 for htmx, which swaps no error response), and the saved run or sweep is
  ``failed`` with the message, never left pending or running forever. Nothing else is written.
- the sync endpoints enqueue nothing (they call the services in the request), so with the broker down they
  still answer 200 with their summaries, and the collect step stores its candles (the CoinGecko rate limiter,
  kept in Redis, lets calls through when Redis does not answer:
  ``tests/instruments/sources/coingecko/test_ratelimit.py``).

These tests run on SQLite and PostgreSQL alike and need no Redis (none may answer at the closed port).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import Settings
from rest_framework.test import APIClient

from barter_site.celery_app import app
from instruments.models import Instrument, InstrumentOHLC
from runs.models import History, HistoryKind
from simulator.builder.reading import builder_from_criteria
from simulator.models import RunStatus, Simulation, Sweep, WalkForward
from tests.accounts import RUN_STEPS, user_with
from tests.fakes.coingecko import RECORDINGS, FakeCoinGecko, Reply
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.simulator.test_forms import as_post
from tests.trading.factories import sma_cross_criteria

# Transactional: outside a test transaction ``transaction.on_commit`` runs at once, as in a request.
pytestmark = pytest.mark.django_db(transaction=True)

CRITERIA = sma_cross_criteria()
START, END = date(2024, 2, 1), date(2024, 3, 31)
DAYS2 = RECORDINGS / "derived" / "ohlc_days2_bitcoin_2024-01-03T0040Z.json"


def closed_port() -> int:
    """A local TCP port nothing listens on: bound by the OS, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _celery_connections_reset() -> None:
    """Forget Celery's broker pool and result store so the next send connects to the current configuration.

    The pools are not closed: kombu keeps them per connection URL, and the original one is used again after."""
    celery: Any = app  # Any: these private attributes are not in celery-types
    celery._pool = None
    celery.amqp._producer_pool = None
    celery._backend_cache = None
    if hasattr(celery._local, "backend"):
        del celery._local.backend


@pytest.fixture
def redis_down(settings: Settings) -> Iterator[str]:
    """Point REDIS_URL, the broker and the result store at a closed port; Celery sends for real (not eager)."""
    url = f"redis://127.0.0.1:{closed_port()}/0"
    settings.REDIS_URL = url
    saved = {key: app.conf[key] for key in ("broker_url", "result_backend", "task_always_eager")}
    app.conf.update(broker_url=url, result_backend=url, task_always_eager=False)
    _celery_connections_reset()
    yield url
    app.conf.update(saved)
    _celery_connections_reset()


@pytest.fixture
def bitcoin(db: None) -> Instrument:
    """Bitcoin with 120 daily candles from 2024-01-01 (the factory's valid candles)."""
    instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    for n in range(120):
        CandleFactory.create(
            instrument=instrument,
            open_time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n),
            open=Decimal(100 + (n * 7) % 23),
            close=Decimal(100 + (n * 11) % 29),
        )
    return instrument


@pytest.fixture
def trader(db: None) -> User:
    return user_with("trader", *RUN_STEPS)  # runs the sync endpoints too


def form_data(bitcoin: Instrument, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "instruments": [str(bitcoin.pk)],
        "start": START.isoformat(),
        "end": END.isoformat(),
        "starting_cash": "10000",
        "name": "queued",
        "criteria_json": "",
        "action": "run",
        **as_post(builder_from_criteria(CRITERIA)),
    }
    data.update(overrides)
    return data


QUEUE_MESSAGE = "the task queue (Redis at REDIS_URL) did not answer"


def test_a_queued_simulation_is_a_503_naming_the_queue_and_the_run_is_failed_not_pending(
    redis_down: str, bitcoin: Instrument, trader: User, settings: Settings
) -> None:
    settings.BARTER_SIMULATOR_INLINE_CANDLES = 10  # 120 candles: queued
    api = APIClient()
    api.force_authenticate(trader)
    body = {"instruments": ["bitcoin"], "start": "2024-02-01", "end": "2024-03-31", "criteria": CRITERIA}

    response = api.post("/api/simulations/", body, format="json")

    assert response.status_code == 503
    answer = response.json()
    assert answer["error"] == "TaskQueueUnavailableError" and answer["retryable"] is True
    simulation = Simulation.objects.get()
    assert answer["message"].startswith(f"{QUEUE_MESSAGE}, so simulation {simulation.pk} was not started (")
    assert "Connection refused" in answer["message"] and answer["message"].endswith(
        "try again when Redis is back"
    )
    assert simulation.status == RunStatus.FAILED and simulation.error == answer["message"]
    assert simulation.progress_ratio == 1.0 and simulation.trades == [] and simulation.statistics == {}
    # The run's own page shows it failed with the message; there is nothing left to poll.
    client = Client()
    client.force_login(trader)
    progress = client.get(f"/simulator/runs/{simulation.pk}/progress/")
    assert progress["HX-Refresh"] == "true"
    assert QUEUE_MESSAGE in client.get(f"/simulator/runs/{simulation.pk}/").content.decode()


def test_the_form_shows_the_queue_error_for_a_queued_run(
    redis_down: str, bitcoin: Instrument, trader: User, settings: Settings
) -> None:
    settings.BARTER_SIMULATOR_INLINE_CANDLES = 10
    client = Client()
    client.force_login(trader)

    page = client.post("/simulator/", form_data(bitcoin))
    fragment = client.post("/simulator/", form_data(bitcoin, name="htmx"), headers={"HX-Request": "true"})

    assert page.status_code == 503 and QUEUE_MESSAGE in page.content.decode()
    assert 'name="name"' in page.content.decode()  # the form again, filled, to send once Redis is back
    assert fragment.status_code == 200 and QUEUE_MESSAGE in fragment.content.decode()
    assert "HX-Redirect" not in fragment
    runs = list(Simulation.objects.order_by("pk"))
    assert [(r.name, r.status) for r in runs] == [("queued", RunStatus.FAILED), ("htmx", RunStatus.FAILED)]
    assert all(r.error.startswith(f"{QUEUE_MESSAGE}, so simulation {r.pk} was not started") for r in runs)


def test_a_small_run_still_runs_in_the_request(redis_down: str, bitcoin: Instrument, trader: User) -> None:
    client = Client()
    client.force_login(trader)

    response = client.post("/simulator/", form_data(bitcoin))

    simulation = Simulation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/simulator/runs/{simulation.pk}/"
    assert simulation.status == RunStatus.DONE and simulation.error == ""


def test_a_sweep_shows_the_queue_error_and_is_failed_not_running(
    redis_down: str, bitcoin: Instrument, trader: User
) -> None:
    client = Client()
    client.force_login(trader)
    sweep = {
        "action": "sweep",
        "sweep_path_1": "entry.all[0].left.period",
        "sweep_start_1": "5",
        "sweep_stop_1": "15",
        "sweep_step_1": "5",
    }

    response = client.post("/simulator/", form_data(bitcoin, **sweep))

    assert response.status_code == 503
    saved = Sweep.objects.get()
    assert saved.status == RunStatus.FAILED and saved.total == 3
    assert saved.error.startswith(f"{QUEUE_MESSAGE}, so sweep {saved.pk} was not started (")
    assert saved.error in response.content.decode().replace("&#x27;", "'")
    assert saved.points.count() == 0
    # The sweep's page does not poll forever: its progress fragment says it has finished.
    assert client.get(f"/simulator/sweeps/{saved.pk}/progress/")["HX-Refresh"] == "true"


def test_a_walk_forward_shows_the_queue_error_and_is_failed_not_running(
    redis_down: str, bitcoin: Instrument, trader: User
) -> None:
    client = Client()
    client.force_login(trader)
    walk_forward = {
        "action": "walk_forward",
        "sweep_path_1": "entry.all[0].left.period",
        "sweep_start_1": "5",
        "sweep_stop_1": "15",
        "sweep_step_1": "5",
        "wf_train_days": "30",
        "wf_test_days": "20",
    }

    response = client.post("/simulator/", form_data(bitcoin, **walk_forward))

    assert response.status_code == 503
    saved = WalkForward.objects.get()
    assert saved.status == RunStatus.FAILED
    assert saved.error.startswith(f"{QUEUE_MESSAGE}, so walk-forward {saved.pk} was not started (")
    assert saved.error in response.content.decode().replace("&#x27;", "'")
    assert client.get(f"/simulator/walk-forwards/{saved.pk}/progress/")["HX-Refresh"] == "true"
    api = APIClient()
    api.force_authenticate(trader)
    body = {
        "instruments": ["bitcoin"],
        "start": "2024-02-01",
        "end": "2024-03-31",
        "criteria": CRITERIA,
        "axes": [{"path": "entry.all[0].left.period", "values": [5, 10]}],
        "train_days": 30,
        "test_days": 20,
    }
    answer = api.post("/api/walk_forwards/", body, format="json")
    assert answer.status_code == 503
    assert QUEUE_MESSAGE in answer.content.decode()
    assert not WalkForward.objects.exclude(status=RunStatus.FAILED).exists()


@time_machine.travel(datetime(2024, 1, 3, 0, 40, tzinfo=UTC), tick=False)
def test_the_sync_endpoints_enqueue_nothing_and_the_collect_step_completes(
    redis_down: str, fake_coingecko: FakeCoinGecko, trader: User, settings: Settings
) -> None:
    settings.BARTER_BACKFILL_DAYS = 1
    settings.COINGECKO_RATE_LIMIT_PER_MINUTE = 30  # the limiter on, its budget in the Redis that is down
    InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    fake_coingecko.add("/coins/bitcoin/ohlc", Reply(200, DAYS2.read_bytes()))
    api = APIClient()
    api.force_authenticate(trader)

    collect = api.post("/api/sync_data", {"as_of": "2024-01-03"}, format="json")
    opened = api.post("/api/sync_new_trades", {"as_of": "2024-01-03"}, format="json")
    closed = api.post("/api/sync_close_positions", {"as_of": "2024-01-03"}, format="json")

    assert collect.status_code == 200, collect.content
    assert collect.json()["status"] == "ok" and collect.json()["results"][0]["candles_added"] == 1
    assert len(fake_coingecko.requests_to("/coins/bitcoin/ohlc")) == 1
    (candle,) = InstrumentOHLC.objects.filter(instrument__coingecko_id="bitcoin")
    assert candle.open_time == datetime(2024, 1, 2, tzinfo=UTC) and candle.close == Decimal("44946.91")
    assert [opened.status_code, closed.status_code] == [200, 200]
    assert opened.json()["status"] == "ok" and closed.json()["status"] == "ok"
    finished = History.objects.filter(kind=HistoryKind.RUN_FINISHED)
    assert sorted(h.payload["step"] for h in finished) == ["close", "collect", "open"]
