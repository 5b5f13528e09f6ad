"""Where notifications go (``Channel``: one per Apprise URL of ``BARTER_NOTIFY_URLS``) and each message's way to
one channel (``Delivery``). No URL is stored: a channel is known by a keyed hash of its URL.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from notifications.events import UNFILTERED_EVENTS, NotificationEvent


def events_filterable() -> list[str]:
    """Return the events a channel's filter can select, in declaration order (a new channel's default: all)."""
    return [str(event) for event in NotificationEvent if event not in UNFILTERED_EVENTS]


class ChannelQuerySet(models.QuerySet["Channel"]):
    """Filters over channels."""

    def sending(self) -> ChannelQuerySet:
        """Channels that get messages: configured now (their URL is in the setting) and enabled."""
        return self.filter(configured=True, enabled=True)


class Channel(models.Model):
    """One Apprise URL of ``BARTER_NOTIFY_URLS``, made by :func:`notifications.services.channels_sync`.

    The URL itself is never stored: ``key`` is its HMAC-SHA256 keyed with ``SECRET_KEY`` (so a URL found in the
    setting again finds its row, filters and all), and ``label`` shows only its scheme and host. A URL removed from
    the setting leaves its row with ``configured`` false (it can then be deleted).
    """

    key = models.CharField(
        max_length=64,
        unique=True,
        help_text="HMAC-SHA256 of the URL keyed with SECRET_KEY, hex; never the URL.",
    )
    position = models.PositiveIntegerField(help_text="1-based place of the URL in BARTER_NOTIFY_URLS.")
    label = models.CharField(max_length=200, help_text="The service, scheme and host; no secret.")
    configured = models.BooleanField(default=True, help_text="Its URL is in BARTER_NOTIFY_URLS now.")
    enabled = models.BooleanField(default=True, help_text="Messages are sent to it.")
    events = models.JSONField(
        default=events_filterable,
        blank=True,
        help_text="The events it gets (the missed-run alarm and test messages go to every enabled channel).",
    )
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, help_text="The reason of the last failed attempt, redacted.")
    last_error_at = models.DateTimeField(null=True, blank=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["-configured", "position", "id"]
        permissions = [("send_test_message", "Can send a test message to a notification channel")]

    def __str__(self) -> str:
        return f"{self.position}. {self.label}"

    def subscribed(self, event: str) -> bool:
        """Whether a message of ``event`` goes to this channel (the unfiltered events always do)."""
        return event in UNFILTERED_EVENTS or event in (self.events or [])


class Delivery(models.Model):
    """One message on its way to one channel: ``pending`` until an attempt sends it (``sent``) or the last
    attempt fails (``failed``). Each attempt is a ``History`` row (step ``notify``, run id = this id)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # CASCADE: only a channel no longer configured may be deleted; its deliveries' attempts stay in History.
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=NotificationEvent.choices)
    key = models.CharField(max_length=200, help_text="The message's key (notifications.events.Message.key).")
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, help_text="The reason of the last failed attempt, redacted.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a pending delivery not yet attempted again is dispatched again by the flush.",
    )

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        constraints = [
            # A message produced twice (a step run again, a receiver called twice) reaches a channel once.
            models.UniqueConstraint(fields=["channel", "key"], name="delivery_one_per_channel_and_key"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="delivery_pending_due")]

    def __str__(self) -> str:
        return f"{self.event} {self.key} -> channel {self.channel_id}: {self.status}"


class DailyDigest(models.Model):
    """The equities a day's digest reported (:func:`notifications.report.digest_message`), so the next digest
    measures each account's day P&L from them.

    ``equities`` maps ``"strategy:<id>"`` and ``"portfolio:<id>"`` to the equity (quote currency, decimal text)
    at the newest closes when the digest was made.
    """

    as_of = models.DateField(unique=True, help_text="The day of the close step the digest followed (UTC).")
    equities = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-as_of"]

    def __str__(self) -> str:
        return f"digest {self.as_of.isoformat()}"
