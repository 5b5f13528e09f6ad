"""The Celery tasks of notifications (with a broker; without one, :mod:`notifications.background` sends), and the
missed-run alarm's check (Celery beat, ``missed-run-check``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from barter_site.tasks import REDELIVERED_WHEN_LOST
from notifications.alarm import missed_run_alarm
from notifications.models import Delivery
from notifications.services import deliveries_flush, delivery_attempt, retry_delay_seconds


@shared_task(name="notifications.deliver", bind=True, **REDELIVERED_WHEN_LOST)
def deliver(self: Task[Any, Any], delivery_id: str) -> bool:
    """Make one attempt of delivery ``delivery_id``; while it stays pending, retry this task after
    :func:`notifications.services.retry_delay_seconds` (doubling), until ``BARTER_NOTIFY_MAX_ATTEMPTS`` attempts.
    Idempotent: a sent or failed delivery is left alone (a task delivered twice sends once).

    Returns:
        Whether the delivery is sent.
    """
    if delivery_attempt(delivery_id):
        return True
    attempts = (
        Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.PENDING)
        .values_list("attempts", flat=True)
        .first()
    )
    if attempts is None:  # failed for good (or gone): recorded by the attempt
        return False
    raise self.retry(
        countdown=retry_delay_seconds(attempts), max_retries=max(settings.BARTER_NOTIFY_MAX_ATTEMPTS, 1)
    )


@shared_task(name="notifications.flush", **REDELIVERED_WHEN_LOST)
def flush() -> int:
    """Dispatch again the pending deliveries whose dispatch was lost (:func:`~notifications.services.deliveries_flush`),
    and start today's report again if it was lost (:func:`notifications.report.daily_report_due`); return how many
    deliveries."""
    from notifications.report import daily_report_due

    daily_report_due()
    return deliveries_flush()


@shared_task(name="notifications.missed_run_check")
def missed_run_check_task() -> dict[str, str] | None:
    """Check for a missed daily cycle now and raise the alarm on every channel
    (:func:`notifications.alarm.missed_run_alarm`); idempotent.

    Returns:
        ``{"key": ..., "title": ...}`` of the day's alarm when the run is missed, else None.
    """
    message = missed_run_alarm(now=timezone.now())
    return None if message is None else {"key": message.key, "title": message.title}


@shared_task(name="notifications.daily_report", **REDELIVERED_WHEN_LOST)
def daily_report_task(as_of: str) -> list[str]:
    """The day's report after its close step (:func:`notifications.report.daily_report`); idempotent (each
    message has its key, the audit rows are per strategy and day).

    Args:
        as_of: ISO date of the day.

    Returns:
        The keys of the messages it produced.
    """
    from notifications.report import daily_report

    return [message.key for message in daily_report(date.fromisoformat(as_of))]
