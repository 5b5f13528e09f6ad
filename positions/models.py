"""Positions (the trading cycle's issue) and ``History``, the append-only record of everything Barter does."""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from instruments.models import Instrument


class Step(models.TextChoices):
    """The steps a run can be of."""

    COLLECT = "collect", "collect (sync_data)"
    OPEN = "open", "open (sync_new_trades)"
    CLOSE = "close", "close (sync_close_positions)"
    IMPORT = "import", "import (import_ohlc)"


class RunStatus(models.TextChoices):
    """How a run ended: ``ok`` (no error), ``partial`` (some items failed), ``failed`` (nothing succeeded)."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"


class HistoryKind(models.TextChoices):
    """What a ``History`` row records. A run is a ``run_started`` row, its events, and a ``run_finished`` row."""

    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    CANDLES_SYNCED = "candles_synced"
    CANDLES_IMPORTED = "candles_imported"
    ERROR = "error"


class HistoryQuerySet(models.QuerySet["History"]):
    """Filters over history rows."""

    def for_run(self, run_id: uuid.UUID | str) -> HistoryQuerySet:
        """Every row of one run, oldest first."""
        return self.filter(run_id=run_id).order_by("created_at", "id")

    def runs_finished(self) -> HistoryQuerySet:
        """The ``run_finished`` rows: one per completed run, carrying its summary in ``payload``."""
        return self.filter(kind=HistoryKind.RUN_FINISHED)


class History(models.Model):
    """One append-only record: the start or end of a run, or an event inside it.

    Rows are never updated or deleted (a database trigger refuses UPDATE, and the admin is read-only).
    ``payload`` is JSON: for ``run_finished`` the run's summary as the API returns it.
    """

    run_id = models.UUIDField(db_index=True, help_text="Groups the rows of one run of a step.")
    step = models.CharField(max_length=16, choices=Step.choices)
    kind = models.CharField(max_length=32, choices=HistoryKind.choices)
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, blank=True, help_text="Set on run_finished."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # PROTECT: an instrument with a history is deactivated, never deleted, so the record stays whole.
    instrument = models.ForeignKey(
        Instrument, null=True, blank=True, on_delete=models.PROTECT, related_name="history"
    )
    message = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = HistoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "history"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["step", "kind", "-created_at"], name="history_step_kind_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.step} {self.kind} {self.status}".rstrip()
