"""The notifications app: tell the trader what happened (Apprise channels), the missed-run alarm, the digest."""

import atexit
from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started


def _flush_when_due(**kwargs: Any) -> None:
    """Embedded mode (no broker, so no beat): send again, on a request now and then, the deliveries whose
    background thread died with its process."""
    from barter_site.heartbeat import reap_on_request_when_due
    from notifications.services import deliveries_flush

    reap_on_request_when_due("notifications", deliveries_flush)


def _missed_run_check_when_due(**kwargs: Any) -> None:
    """Embedded mode (no beat): check for a missed daily cycle on a request now and then
    (:func:`notifications.alarm.missed_run_alarm`; a server that gets no request is caught by the watchdog)."""
    from django.utils import timezone

    from barter_site.heartbeat import reap_on_request_when_due
    from notifications.alarm import missed_run_alarm

    reap_on_request_when_due("missed_run", lambda: missed_run_alarm(now=timezone.now()))


def background_finish() -> None:
    """At the exit of a process that started background work (the embedded mode's day's report and sends), wait
    for it, at most ``BARTER_NOTIFY_EXIT_WAIT_SECONDS`` in all: ``manage.py run_cycle`` run by cron ends right after
    the close step, and its report and messages must not die with it. What is still pending then (a channel
    retrying) is sent by a later flush. Registered with :mod:`atexit`, which runs before daemon threads stop."""
    import time

    from django.conf import settings

    from notifications.report import report_sender_if_started
    from notifications.services import background_sender_if_started

    deadline = time.monotonic() + settings.BARTER_NOTIFY_EXIT_WAIT_SECONDS
    for sender in (report_sender_if_started(), background_sender_if_started()):
        if sender is not None:
            sender.idle_wait(max(0.0, deadline - time.monotonic()))


class NotificationsConfig(AppConfig):
    """``notifications``: the top app; it reads every app below it and none imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"

    def ready(self) -> None:
        """Connect the receivers of :data:`runs.signals.run_finished` (the producers of notifications), and the
        flush of lost deliveries and the missed-run check on requests when no Celery beat runs them
        (:func:`barter_site.heartbeat.reap_on_request_when_due`)."""
        from notifications import receivers  # noqa: F401 - connects its receivers on import

        atexit.register(background_finish)

        request_started.connect(_flush_when_due, dispatch_uid="notifications.flush_when_due")
        request_started.connect(
            _missed_run_check_when_due, dispatch_uid="notifications.missed_run_check_when_due"
        )
