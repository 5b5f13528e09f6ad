"""``manage.py check_missed_run``: is today's daily cycle missed? Records the alarm once a day, sends it to every
enabled channel (once a day), and exits 1 if so.

The exit status lets a cron job or a CI step fail on a missed run (``check_missed_run || alert``): 0 when nothing
is missed (before the deadline, alarm off, or today's close step done), 1 when it is, every time it is asked that
day (the ``run_missed`` row is written only the first time).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notifications.alarm import missed_run_alarm


class Command(BaseCommand):
    help = (
        "The missed-run alarm: after BARTER_RUN_DEADLINE (UTC), no close step for today that finished ok or "
        "partial is a missed run. Prints the alarm and exits 1 when the run is missed (recording it in History "
        "and sending it to every notification channel once a day), else prints why nothing is missed and exits 0."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()  # aware, UTC
        message = missed_run_alarm(now=now)
        if message is not None:
            self.stdout.write(f"{message.title}\n{message.body}")
            raise CommandError(f"the daily cycle is missed ({message.key})", returncode=1)
        deadline = settings.BARTER_RUN_DEADLINE
        if deadline is None:
            self.stdout.write("The missed-run alarm is off (BARTER_RUN_DEADLINE is empty).")
        elif now.time() < deadline:
            self.stdout.write(
                f"Nothing missed: the deadline of {now.date().isoformat()} is {deadline:%H:%M} UTC, later than "
                f"now ({now:%H:%M} UTC)."
            )
        else:
            self.stdout.write(
                f"Nothing missed: a close step for {now.date().isoformat()} finished ok or partial."
            )
