"""Sending notifications to real local servers: an Apprise ``json://`` webhook (http.server) and email (aiosmtpd);
a channel that times out, retries, the dedupe, the filters, and a message of a rolled-back write."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from barter_site.celery_app import app
from notifications.apprise_send import send, text_redact, url_label
from notifications.events import Message, NotificationEvent
from notifications.models import Channel, Delivery
from notifications.services import channel_key, channels_sync, deliveries_flush, delivery_attempt, notify
from runs.models import History, HistoryKind, Step
from tests.fakes.notify_servers import SmtpInbox, Webhook
from tests.notifications.conftest import PASSWORD, TOKEN, settle, webhook_url

# Transactional: the background sender's threads read the rows with their own connections, and outside a test
# transaction ``transaction.on_commit`` runs at once (autocommit), as in a step.
pytestmark = pytest.mark.django_db(transaction=True)

OPENED = Message(
    event=NotificationEvent.POSITION_OPENED,
    key="position_opened:42",
    title="BTC long opened",
    body="sma: long 0.1 BTC at 64,940.58 (signal)",
)


def _attempts(delivery: Delivery) -> list[tuple[str, int, bool]]:
    rows = History.objects.for_run(delivery.pk)
    return [(row.kind, row.payload["attempt"], row.payload["final"]) for row in rows]


def test_a_json_webhook_receives_the_title_and_the_message(
    fast: Settings, webhook: tuple[Webhook, int]
) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)

    made = notify([OPENED])
    settle()

    assert len(made) == 1
    assert [(path, body["title"], body["message"]) for path, body, _ in state.received] == [
        (f"/hooks/barter/{TOKEN}", OPENED.title, OPENED.body)
    ]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (Delivery.Status.SENT, 1, "")
    row = History.objects.get(run_id=delivery.pk)
    assert (row.step, row.kind) == (Step.NOTIFY, HistoryKind.NOTIFICATION_SENT)
    channel = Channel.objects.get()
    assert row.payload == {
        "event": "position_opened",
        "key": "position_opened:42",
        "channel": f"JSON json://127.0.0.1:{port}",
        "channel_key": channel.key,
        "channel_position": 1,
        "attempt": 1,
        "final": True,
        "error": "",
    }
    assert (
        row.message
        == f"notification sent: position opened to channel 1 (JSON json://127.0.0.1:{port}), attempt 1"
    )
    assert channel.last_sent_at is not None and channel.label == f"JSON json://127.0.0.1:{port}"


def test_an_email_reaches_an_smtp_server(fast: Settings, smtp: tuple[SmtpInbox, int]) -> None:
    # mailto:// is plain SMTP (no TLS) on the port given; ?from= and ?to= are the addresses (Apprise's email plugin).
    inbox, port = smtp
    fast.BARTER_NOTIFY_URLS = (f"mailto://127.0.0.1:{port}?from=barter@example.com&to=trader@example.com",)
    digest = Message(
        event=NotificationEvent.DIGEST,
        key="digest:2026-12-03",
        title="Barter digest 2026-12-03",
        body="equity 10,250.00 (day +1.2 %)\nopen positions: BTC long",
    )

    notify([digest])
    settle()

    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "barter@example.com" and envelope.rcpt_tos == ["trader@example.com"]
    content = envelope.content.decode() if isinstance(envelope.content, bytes) else str(envelope.content)
    assert "Subject: Barter digest 2026-12-03" in content
    assert "equity 10,250.00 (day +1.2 %)" in content
    assert Delivery.objects.get().status == Delivery.Status.SENT


def test_a_channel_that_times_out_does_not_delay_the_caller_and_is_retried_until_failed(
    fast: Settings, webhook: tuple[Webhook, int]
) -> None:
    state, port = webhook
    state.hang_seconds = 3.0  # past the 0.5 s read timeout, every time
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)

    started = time.monotonic()
    with transaction.atomic():  # as in a step: the delivery is dispatched when this commits
        made = notify([OPENED])
    spent = time.monotonic() - started
    settle()

    assert len(made) == 1
    assert spent < 0.25, f"notify took {spent:.3f} s; the channel's timeout is 0.5 s"
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.FAILED, 3)
    failed = HistoryKind.NOTIFICATION_FAILED
    assert _attempts(delivery) == [(failed, 1, False), (failed, 2, False), (failed, 3, True)]
    assert state.requests == 3
    assert "A Connection error occurred sending JSON notification to 127.0.0.1" in delivery.last_error
    assert "Read timed out" in delivery.last_error
    channel = Channel.objects.get()
    assert channel.last_error == delivery.last_error and channel.last_sent_at is None


def test_one_attempt_gives_up_after_the_timeout(fast: Settings, webhook: tuple[Webhook, int]) -> None:
    # BARTER_NOTIFY_TIMEOUT_SECONDS is the read timeout of a send: a server that answers after 3 s is left at 0.5 s.
    state, port = webhook
    state.hang_seconds = 3.0
    url = webhook_url(port)

    started = time.monotonic()
    result = send(url, title="t", body="b", timeout_seconds=0.5)
    spent = time.monotonic() - started

    assert not result.ok
    assert 0.45 <= spent < 1.5, spent
    assert "Read timed out. (read timeout=0.5)" in result.error
    assert PASSWORD not in result.error and TOKEN not in result.error


def test_a_channel_that_recovers_gets_the_message_on_a_retry(
    fast: Settings, webhook: tuple[Webhook, int]
) -> None:
    state, port = webhook
    state.statuses = [500, 503]
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)

    notify([OPENED])
    settle()

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 3)
    assert _attempts(delivery) == [
        (HistoryKind.NOTIFICATION_FAILED, 1, False),
        (HistoryKind.NOTIFICATION_FAILED, 2, False),
        (HistoryKind.NOTIFICATION_SENT, 3, True),
    ]
    assert len(state.received) == 1


def test_a_message_produced_twice_is_delivered_once(fast: Settings, webhook: tuple[Webhook, int]) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)

    first = notify([OPENED])
    second = notify([OPENED, OPENED])
    settle()
    third = notify([OPENED])
    settle()

    assert (len(first), len(second), len(third)) == (1, 0, 0)
    assert Delivery.objects.count() == 1
    assert len(state.received) == 1


def test_a_message_about_a_rolled_back_write_is_never_sent(
    fast: Settings, webhook: tuple[Webhook, int]
) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)

    with pytest.raises(RuntimeError), transaction.atomic():
        assert len(notify([OPENED])) == 1
        raise RuntimeError("the step failed after producing the message")
    settle()
    time.sleep(0.2)

    assert Delivery.objects.count() == 0
    assert state.requests == 0
    # Produced again by a run that commits, it is sent.
    notify([OPENED])
    settle()
    assert len(state.received) == 1


def test_filters_select_channels_and_the_missed_run_alarm_goes_to_every_enabled_one(
    fast: Settings, webhook: tuple[Webhook, int]
) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (
        webhook_url(port, "all"),
        webhook_url(port, "digest-only"),
        webhook_url(port, "disabled"),
    )
    everything, digest_only, disabled = channels_sync()
    Channel.objects.filter(pk=digest_only.pk).update(events=[NotificationEvent.DIGEST])
    Channel.objects.filter(pk=disabled.pk).update(enabled=False)
    missed = Message(
        event=NotificationEvent.MISSED_RUN,
        key="missed_run:2026-12-03",
        title="No close step today",
        body="...",
    )
    Channel.objects.filter(pk=everything.pk).update(events=[NotificationEvent.POSITION_OPENED])

    notify([OPENED])
    settle()
    notify([missed])
    settle()

    got = sorted((path.split("/")[2], body["title"]) for path, body, _ in state.received)
    assert got == [
        ("all", "BTC long opened"),
        ("all", "No close step today"),
        ("digest-only", "No close step today"),
    ]
    assert not Delivery.objects.filter(channel=disabled).exists()


def test_no_channel_no_delivery(fast: Settings) -> None:
    fast.BARTER_NOTIFY_URLS = ()
    assert notify([OPENED]) == []
    assert Delivery.objects.count() == 0


def test_channels_follow_the_setting_by_a_keyed_hash_of_the_url(settings: Settings) -> None:
    first, second = "json://127.0.0.1:9/a/one", "jsons://hooks.example.com/b/two"
    settings.BARTER_NOTIFY_URLS = (first, second)
    a, b = channels_sync()
    Channel.objects.filter(pk=b.pk).update(events=["digest"], enabled=False)

    settings.BARTER_NOTIFY_URLS = (second,)
    (kept,) = channels_sync()

    assert kept.pk == b.pk and (kept.position, kept.events, kept.enabled) == (1, ["digest"], False)
    assert kept.key == channel_key(second) and len(kept.key) == 64 and second not in kept.key
    assert Channel.objects.get(pk=a.pk).configured is False
    assert kept.label == "JSON jsons://hooks.example.com"


def test_a_lost_dispatch_is_sent_by_the_flush_once(fast: Settings, webhook: tuple[Webhook, int]) -> None:
    # A delivery made while its thread or worker died: pending, never attempted, its next_attempt_at passed.
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    (channel,) = channels_sync()
    lost = Delivery.objects.create(channel=channel, event=OPENED.event, key=OPENED.key, title="t", body="b")
    later = lost.created_at.replace(year=lost.created_at.year + 1)

    assert deliveries_flush(now=later) == 0  # no next_attempt_at: never dispatched, so never due
    Delivery.objects.filter(pk=lost.pk).update(next_attempt_at=lost.created_at)
    assert deliveries_flush(now=later) == 1
    assert deliveries_flush(now=later) == 0  # given a new next_attempt_at: not twice
    settle()

    lost.refresh_from_db()
    assert lost.status == Delivery.Status.SENT and len(state.received) == 1
    assert delivery_attempt(lost.pk) is True  # a sent delivery is never sent again
    assert len(state.received) == 1


def test_reasons_are_redacted_and_labels_show_no_secret() -> None:
    url = f"json://trader:{PASSWORD}@hooks.example.com:8443/hooks/{TOKEN}?key=q-SECRET-value"
    reason = f"POST {url} failed; user trader:{PASSWORD} path /hooks/{TOKEN} key q-SECRET-value"

    redacted = text_redact(reason, url)

    for secret in (PASSWORD, TOKEN, "q-SECRET-value", url):
        assert secret not in redacted
    assert "hooks.example.com" in redacted  # the host names the channel
    assert url_label(url) == "JSON json://hooks.example.com:8443"
    assert url_label("tgram://123456789:AAH-bot-SECRET/12345") == "Telegram tgram://"
    assert url_label("ntfy://my-secret-topic") == "ntfy ntfy://"
    assert url_label("nope://what") == "invalid URL nope://"


def test_without_a_broker_a_request_flushes_the_lost_deliveries(
    fast: Settings, webhook: tuple[Webhook, int], client: Client
) -> None:
    # The embedded mode: no beat, so the first request after a restart (at most every reaper interval) flushes.
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    fast.BARTER_REAPER_ON_REQUEST = True
    fast.BARTER_REAPER_INTERVAL_SECONDS = 0
    fast.BARTER_RUN_DEADLINE = None  # the missed-run check on requests would send its alarm too
    (channel,) = channels_sync()
    lost = Delivery.objects.create(
        channel=channel,
        event=OPENED.event,
        key=OPENED.key,
        title="t",
        body="b",
        next_attempt_at=timezone.now(),
    )

    client.get("/healthz")
    settle()

    lost.refresh_from_db()
    assert lost.status == Delivery.Status.SENT and len(state.received) == 1


def test_beat_flushes_with_a_registered_task(settings: Settings) -> None:
    app.loader.import_default_modules()  # what a worker does at start: autodiscovers every app's tasks module
    entry = settings.CELERY_BEAT_SCHEDULE["flush-notifications"]
    assert entry["task"] == "notifications.flush" and entry["task"] in app.tasks
    assert entry["schedule"] == settings.BARTER_NOTIFY_FLUSH_INTERVAL_SECONDS == 180.0
    assert "notifications.deliver" in app.tasks
