"""Celery tasks of the notifications app: the missed-run alarm's check (Celery beat, ``missed-run-check``)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from notifications.alarm import missed_run_record


@shared_task(name="notifications.missed_run_check")
def missed_run_check_task() -> dict[str, str] | None:
    """Check for a missed daily cycle now (:func:`notifications.alarm.missed_run_record`); idempotent.

    Returns:
        ``{"key": ..., "title": ...}`` of the day's alarm when the run is missed, else None.
    """
    message = missed_run_record(now=timezone.now())
    return None if message is None else {"key": message.key, "title": message.title}
