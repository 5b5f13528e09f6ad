"""The Celery path (a broker: REDIS_URL): notify queues the task ``notifications.deliver`` after commit; the task,
run as a worker runs it, retries a failed send with the exponential countdown, then sends; the flush task."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.exceptions import Retry
from django.conf import settings as django_settings
from pytest_django import Settings

from barter_site.celery_app import app
from notifications.events import Message, NotificationEvent
from notifications.models import Delivery
from notifications.services import notify
from notifications.tasks import deliver
from runs.models import History, HistoryKind
from tests.fakes.notify_servers import Webhook
from tests.notifications.conftest import webhook_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not django_settings.REDIS_URL, reason="needs REDIS_URL (a broker)"),
]

QUEUE = "barter-test-notifications"


def _reset_connections() -> None:
    celery: Any = app  # Any: private attributes, not in celery-types
    celery._pool = None
    celery.amqp._producer_pool = None


@pytest.fixture
def broker(settings: Settings) -> Iterator[redis.Redis]:
    """Celery sends for real to REDIS_URL (not eager), to a queue of this test's own."""
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=settings.REDIS_URL, task_always_eager=False, task_default_queue=QUEUE)
    _reset_connections()
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)
    app.conf.update(saved)
    _reset_connections()


def _queued(client: redis.Redis) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(QUEUE, 0, -1)]


def test_notify_queues_the_task_and_a_failed_send_retries_with_a_growing_countdown(
    fast: Settings, webhook: tuple[Webhook, int], broker: redis.Redis
) -> None:
    state, port = webhook
    state.statuses = [500, 500]
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    message = Message(event=NotificationEvent.HALT, key="halt:sma:2026-12-03", title="sma halted", body="...")

    (delivery,) = notify([message])

    queued = _queued(broker)
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in queued] == [
        ("notifications.deliver", repr([str(delivery.pk)]))
    ]
    assert state.requests == 0  # queued, not sent in the caller

    countdowns = []
    for retries in (0, 1):  # the worker runs the task; each failure publishes its retry with a countdown
        deliver.push_request(
            id=f"task-{retries}", args=[str(delivery.pk)], retries=retries, called_directly=False
        )
        try:
            with pytest.raises(Retry) as retry:
                deliver.run(str(delivery.pk))
        finally:
            deliver.pop_request()
        countdowns.append(retry.value.when)
    # BARTER_NOTIFY_RETRY_BASE_SECONDS 0.05, doubling: after attempt 1 0.05 s, after attempt 2 0.1 s
    assert countdowns == [0.05, 0.1]
    retried = _queued(broker)[:2]
    assert all(m["headers"]["task"] == "notifications.deliver" and m["headers"]["eta"] for m in retried)
    assert sorted(m["headers"]["retries"] for m in retried) == [1, 2]

    deliver.push_request(id="task-2", args=[str(delivery.pk)], retries=2, called_directly=False)
    try:
        assert deliver.run(str(delivery.pk)) is True
    finally:
        deliver.pop_request()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 3)
    kinds = list(History.objects.for_run(delivery.pk).values_list("kind", flat=True))
    assert kinds == [
        HistoryKind.NOTIFICATION_FAILED,
        HistoryKind.NOTIFICATION_FAILED,
        HistoryKind.NOTIFICATION_SENT,
    ]
    # Delivered again (acks_late: a lost worker's message comes back), the task sends nothing twice.
    assert deliver.run(str(delivery.pk)) is True
    assert len(state.received) == 1


def test_the_task_stops_after_the_last_attempt(
    fast: Settings, webhook: tuple[Webhook, int], broker: redis.Redis
) -> None:
    state, port = webhook
    state.statuses = [500, 500, 500, 500]
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    fast.BARTER_NOTIFY_MAX_ATTEMPTS = 2

    (delivery,) = notify([Message(event=NotificationEvent.HALT, key="halt:x", title="t", body="b")])
    deliver.push_request(id="a", args=[str(delivery.pk)], retries=0, called_directly=False)
    try:
        with pytest.raises(Retry):
            deliver.run(str(delivery.pk))
        assert deliver.run(str(delivery.pk)) is False  # the second attempt was the last: no retry
    finally:
        deliver.pop_request()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.FAILED, 2)
    assert state.requests == 2


def test_a_broker_down_leaves_the_delivery_pending_for_the_flush(
    fast: Settings, webhook: tuple[Webhook, int], broker: redis.Redis
) -> None:
    _, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    from tests.reliability.test_redis_down import closed_port

    app.conf.update(broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    _reset_connections()
    (delivery,) = notify(
        [Message(event=NotificationEvent.HALT, key="halt:y", title="t", body="b")]
    )  # no raise

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING and delivery.attempts == 0
    assert delivery.next_attempt_at is not None
