"""What Barter tells the trader about: the events a channel can subscribe to, and one message to send.

The vocabulary shared by the producers (:mod:`notifications.receivers`, :mod:`notifications.alarm`) and the
sending (:mod:`notifications.services`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class NotificationEvent(models.TextChoices):
    """An event a channel can subscribe to (``Channel.events``); a new channel gets every one of them.

    ``missed_run`` and ``test`` ignore the filters: the missed-run alarm goes to every enabled channel, and a test
    message to the one channel it tests.
    """

    POSITION_OPENED = "position_opened", "position opened"
    POSITION_CLOSED = "position_closed", "position closed"
    STOP = "stop", "stop placed, moved or filled on the exchange"
    UNPROTECTED = "unprotected", "position left unprotected"
    STEP_FAILED = "step_failed", "step failed or partial"
    HALT = "halt", "halt (risk limit or kill switch)"
    DIGEST = "digest", "daily digest"
    AUDIT_MISMATCH = "audit_mismatch", "audit: signal mismatch"
    MISSED_RUN = "missed_run", "missed-run alarm"
    TEST = "test", "test message"


#: Events a channel's filter cannot turn off.
UNFILTERED_EVENTS = frozenset({NotificationEvent.MISSED_RUN, NotificationEvent.TEST})


@dataclass(frozen=True)
class Message:
    """One notification, before it is sent.

    Attributes:
        event: what it is about (the channels' filters select by it).
        key: what makes it one message: a channel gets one delivery per key, so producing it twice (a run
            repeated, a receiver called again) sends it once, e.g. ``"position_opened:42"``, ``"digest:2026-12-03"``.
        title: one line.
        body: plain text, a few lines; never a key, token or URL of a channel.
    """

    event: NotificationEvent
    key: str
    title: str
    body: str
