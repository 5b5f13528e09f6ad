"""Sending notifications: the channels of ``BARTER_NOTIFY_URLS`` (:func:`channels_sync`), a message to the
channels that want it (:func:`notify`), one attempt of one delivery (:func:`delivery_attempt`), the deliveries
whose dispatch was lost (:func:`deliveries_flush`) and the admin's test message (:func:`test_message_send`).

Sending never blocks nor fails the caller: :func:`notify` only writes ``Delivery`` rows and, after the caller's
transaction commits, hands them to a Celery task (``notifications.deliver``, with a broker) or to the embedded
mode's background threads (:mod:`notifications.background`). Every attempt is one ``History`` row (step
``notify``, run id = the delivery's id). No URL, nor any part of one but its scheme and host, is ever stored,
logged or shown (:mod:`notifications.apprise_send`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from barter_site.notify_channels import notify_channel_key
from notifications.apprise_send import send, url_label
from notifications.background import BackgroundSender
from notifications.events import UNFILTERED_EVENTS, Message, NotificationEvent
from notifications.models import Channel, Delivery
from runs.models import HistoryKind, Step
from runs.recorder import history_append

logger = logging.getLogger(__name__)


def channel_key(url: str) -> str:
    """Return the key of the channel of ``url``: HMAC-SHA256 of it keyed with ``SECRET_KEY``, 64 hex digits
    (:func:`barter_site.notify_channels.notify_channel_key`)."""
    return notify_channel_key(url)


def _urls_by_key() -> dict[str, tuple[int, str]]:
    """``{key: (position, url)}`` of ``BARTER_NOTIFY_URLS`` (positions from 1; a URL listed twice keeps its
    first)."""
    found: dict[str, tuple[int, str]] = {}
    for position, url in enumerate(settings.BARTER_NOTIFY_URLS, start=1):
        found.setdefault(channel_key(url), (position, url))
    return found


def channels_sync() -> list[Channel]:
    """Make the channels match ``BARTER_NOTIFY_URLS``: a row per URL (made with every event when new), its position
    and label brought up to date, ``configured`` false for rows whose URL left the setting. Writes only what
    changed (one read when nothing did).

    Returns:
        The configured channels, by position (enabled or not).
    """
    wanted = _urls_by_key()
    existing = {channel.key: channel for channel in Channel.objects.all()}
    for key, channel in existing.items():
        if key not in wanted and channel.configured:
            channel.configured = False
            channel.save(update_fields=["configured"])
    configured: list[Channel] = []
    for key, (position, url) in wanted.items():
        label = url_label(url)
        found = existing.get(key)
        if found is None:
            try:
                with transaction.atomic():
                    found = Channel.objects.create(key=key, position=position, label=label)
            except IntegrityError:  # made at the same moment by another process
                found = Channel.objects.get(key=key)
        channel = found
        if (channel.position, channel.label, channel.configured) != (position, label, True):
            channel.position, channel.label, channel.configured = position, label, True
            channel.save(update_fields=["position", "label", "configured"])
        configured.append(channel)
    return sorted(configured, key=lambda channel: channel.position)


def retry_delay_seconds(attempts: int) -> float:
    """Seconds to wait after failed attempt number ``attempts`` (from 1) before the next:
    ``BARTER_NOTIFY_RETRY_BASE_SECONDS * 2 ** (attempts - 1)`` (30, 60, 120, 240 s by default)."""
    base = float(settings.BARTER_NOTIFY_RETRY_BASE_SECONDS)
    return base * 2.0 ** max(0, attempts - 1)


def _lease() -> timedelta:
    """How long a dispatched delivery may go unattempted before the flush dispatches it again: longer than a
    queued task normally waits and one send takes (timeouts to connect and to read)."""
    return timedelta(seconds=max(300.0, 3 * settings.BARTER_NOTIFY_TIMEOUT_SECONDS))


def notify(messages: Sequence[Message]) -> list[Delivery]:
    """Deliver ``messages`` to the channels that want them, after the caller's transaction commits.

    A message goes to every enabled, configured channel subscribed to its event (``missed_run``: to every enabled,
    configured channel; ``test`` messages go only through :func:`test_message_send`). A channel gets one delivery
    per message key: producing a message again makes nothing. The new deliveries are dispatched by
    ``transaction.on_commit`` (at once in autocommit), so a message about a write that is rolled back is never
    sent. Fast (a few queries; no network) and never raises for a sending problem: a dispatch that fails is logged
    and the delivery stays pending for :func:`deliveries_flush`.

    Args:
        messages: what to send.

    Returns:
        The deliveries made now (not those that existed), pending.
    """
    made: list[Delivery] = []
    try:
        channels = [channel for channel in channels_sync() if channel.enabled]
    except Exception:
        logger.warning("notifications: the channels could not be read; nothing sent", exc_info=True)
        return made
    if not channels or not messages:
        return made
    now = timezone.now()
    for message in messages:
        event = str(message.event)
        if message.event == NotificationEvent.TEST:
            continue
        for channel in channels:
            if not (channel.subscribed(event) or message.event in UNFILTERED_EVENTS):
                continue
            if Delivery.objects.filter(channel=channel, key=message.key).exists():
                continue
            try:
                with transaction.atomic():
                    delivery = Delivery.objects.create(
                        channel=channel,
                        event=event,
                        key=message.key[:200],
                        title=message.title[:300],
                        body=message.body,
                        next_attempt_at=now + _lease(),
                    )
            except IntegrityError:  # the same key made at the same moment elsewhere: that one is sent
                continue
            made.append(delivery)
    if made:
        ids = [delivery.pk for delivery in made]
        transaction.on_commit(lambda: deliveries_dispatch(ids))
    return made


def eager_mode() -> bool:
    """Whether Celery tasks run in-process (no broker: the embedded mode), so work goes to background threads."""
    from barter_site.celery_app import app

    return bool(app.conf.task_always_eager)


_sender_lock = threading.Lock()
_sender: BackgroundSender | None = None


def background_sender() -> BackgroundSender:
    """The embedded mode's sender of this process (made on first use, ``BARTER_NOTIFY_BACKGROUND_THREADS``
    threads)."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = BackgroundSender(_background_attempt, threads=settings.BARTER_NOTIFY_BACKGROUND_THREADS)
        return _sender


def background_sender_if_started() -> BackgroundSender | None:
    """This process's background sender, or None when nothing made it (no send happened here)."""
    with _sender_lock:
        return _sender


def _background_attempt(job: Any) -> float | None:
    """One attempt in a background thread; the seconds until the next one, or None when done."""
    delivery_attempt(job)
    row = Delivery.objects.filter(pk=job, status=Delivery.Status.PENDING).values_list("attempts", flat=True)
    attempts = row.first()
    return None if attempts is None else retry_delay_seconds(attempts)


def deliveries_dispatch(delivery_ids: Sequence[uuid.UUID | str]) -> None:
    """Hand deliveries to their sender: the Celery task ``notifications.deliver`` with a broker, the background
    threads without one (never this thread). A publish that fails is logged; the flush dispatches it later."""
    if eager_mode():
        sender = background_sender()
        for delivery_id in delivery_ids:
            sender.submit(str(delivery_id))
        return
    from barter_site.celery_app import app

    for delivery_id in delivery_ids:
        try:
            app.send_task("notifications.deliver", args=[str(delivery_id)])
        except Exception:
            logger.warning(
                "notifications: delivery %s not queued (broker unavailable); the flush queues it later",
                delivery_id,
                exc_info=True,
            )


def delivery_attempt(delivery_id: uuid.UUID | str, *, max_attempts: int | None = None) -> bool:
    """Make one attempt of a pending delivery, its row locked (no two processes send one delivery; a sent or
    failed one is left alone), and record it.

    Sends with :func:`notifications.apprise_send.send` (timeouts ``BARTER_NOTIFY_TIMEOUT_SECONDS``), then: the
    delivery is ``sent``, or ``failed`` when this was its last attempt (``max_attempts``, by default
    ``BARTER_NOTIFY_MAX_ATTEMPTS``; also when its channel was disabled or left the setting), or stays ``pending``
    with ``next_attempt_at`` after the retry delay (:func:`retry_delay_seconds`); the channel's ``last_sent_at``
    or ``last_error``; one ``History`` row (step ``notify``, kind ``notification_sent`` or
    ``notification_failed``, run id = the delivery's id, payload ``{event, key, channel, channel_key,
    channel_position, attempt, final, error}``; ``channel`` is the label, ``error`` redacted).

    Args:
        delivery_id: the delivery.
        max_attempts: the attempts it may have in all; None reads the setting.

    Returns:
        Whether the delivery is sent (by this attempt or an earlier one).
    """
    limit = max_attempts if max_attempts is not None else settings.BARTER_NOTIFY_MAX_ATTEMPTS
    # PostgreSQL: the row stays locked through the send. SQLite locks no row (one process sends there, and its
    # background sender holds a delivery once); its write lock is taken only for the writes after the send, so a
    # slow channel never keeps the database locked.
    locking = connection.features.has_select_for_update
    with transaction.atomic() if locking else contextlib.nullcontext():
        delivery = (
            Delivery.objects.select_for_update().select_related("channel").filter(pk=delivery_id).first()
        )
        if delivery is None or delivery.status != Delivery.Status.PENDING:
            return delivery is not None and delivery.status == Delivery.Status.SENT
        channel = delivery.channel
        found = _urls_by_key().get(channel.key)
        attempt = delivery.attempts + 1
        if found is None:
            ok, error, final = False, "the channel's URL is no longer in BARTER_NOTIFY_URLS", True
        elif not channel.enabled and delivery.event != NotificationEvent.TEST:
            ok, error, final = False, "the channel was disabled", True
        else:
            result = send(
                found[1],
                title=delivery.title,
                body=delivery.body,
                timeout_seconds=settings.BARTER_NOTIFY_TIMEOUT_SECONDS,
            )
            ok, error = result.ok, result.error
            final = ok or attempt >= limit
        with transaction.atomic():
            if (
                not locking
                and not Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).exists()
            ):
                return Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENT).exists()
            _attempt_save(delivery, channel, attempt=attempt, ok=ok, final=final, error=error)
    if not ok:
        logger.warning(
            "notification %s (%s) to channel %s (%s) failed, attempt %d%s: %s",
            delivery.key,
            delivery.event,
            channel.position,
            channel.label,
            attempt,
            " (the last)" if final else "",
            error,
        )
    return ok


def _attempt_save(
    delivery: Delivery, channel: Channel, *, attempt: int, ok: bool, final: bool, error: str
) -> None:
    """Write what one attempt did: the delivery, its channel's last send or error, the History row."""
    now = timezone.now()
    delivery.attempts = attempt
    delivery.last_error = error
    if ok:
        delivery.status, delivery.sent_at, delivery.next_attempt_at = Delivery.Status.SENT, now, None
    elif final:
        delivery.status, delivery.next_attempt_at = Delivery.Status.FAILED, None
    else:
        delivery.next_attempt_at = now + timedelta(seconds=retry_delay_seconds(attempt)) + _lease()
    delivery.save(update_fields=["attempts", "last_error", "status", "sent_at", "next_attempt_at"])
    if ok:
        Channel.objects.filter(pk=channel.pk).update(last_sent_at=now)
    else:
        Channel.objects.filter(pk=channel.pk).update(last_error=error, last_error_at=now)
    _attempt_record(delivery, channel, attempt=attempt, ok=ok, final=final, error=error)


def _attempt_record(
    delivery: Delivery, channel: Channel, *, attempt: int, ok: bool, final: bool, error: str
) -> None:
    event_label = (
        NotificationEvent(delivery.event).label if delivery.event in NotificationEvent.values else ""
    )
    what = f"{event_label or delivery.event} to channel {channel.position} ({channel.label})"
    if ok:
        message = f"notification sent: {what}, attempt {attempt}"
    else:
        message = f"notification failed: {what}, attempt {attempt}{' (final)' if final else ''}: {error}"
    history_append(
        delivery.pk,
        Step.NOTIFY,
        HistoryKind.NOTIFICATION_SENT if ok else HistoryKind.NOTIFICATION_FAILED,
        message=message,
        payload={
            "event": delivery.event,
            "key": delivery.key,
            "channel": channel.label,
            "channel_key": channel.key,
            "channel_position": channel.position,
            "attempt": attempt,
            "final": final,
            "error": error,
        },
    )


def deliveries_flush(*, now: datetime | None = None) -> int:
    """Dispatch again the pending deliveries whose ``next_attempt_at`` has passed: their worker, thread or publish
    was lost (a dispatched delivery is attempted long before). Each is given a new ``next_attempt_at`` (now plus
    the lease) in the same transaction, so a second flush at once dispatches nothing: idempotent.

    Run by Celery beat (``notifications.flush``) and, without a broker, on requests now and then
    (:func:`barter_site.heartbeat.reap_on_request_when_due`).

    Args:
        now: the time to compare with (aware); None is now.

    Returns:
        How many deliveries were dispatched.
    """
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:500]
        )
        if not due:
            return 0
        Delivery.objects.filter(pk__in=due).update(next_attempt_at=now + _lease())
        transaction.on_commit(lambda: deliveries_dispatch(due))
    logger.info("notifications: %d pending deliveries dispatched again", len(due))
    return len(due)


def test_message_send(channel: Channel) -> tuple[bool, str]:
    """Send a test message to ``channel`` now, in this thread (one attempt, final), recorded like any attempt.

    Args:
        channel: a configured channel (enabled or not: it is the one being tested).

    Returns:
        ``(True, "")`` when the service accepted it, else ``(False, reason)`` (redacted).
    """
    message = Message(
        event=NotificationEvent.TEST,
        key=f"test:{uuid.uuid4()}",
        title="Barter: test message",
        body=f"This is a test message from Barter to channel {channel.position} ({channel.label}).",
    )
    delivery = Delivery.objects.create(
        channel=channel,
        event=message.event,
        key=message.key,
        title=message.title,
        body=message.body,
    )
    ok = delivery_attempt(delivery.pk, max_attempts=1)
    if ok:
        return True, ""
    delivery.refresh_from_db(fields=["last_error"])
    return False, delivery.last_error
