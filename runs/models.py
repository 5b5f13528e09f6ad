"""``History``, the append-only record of everything Barter does, and ``RunHeartbeat``, the pulse of a run.

The bottom app: it imports only ``barter_site``. ``History`` keeps its foreign keys to the instrument, strategy
and position a row is about as string references (``"instruments.Instrument"``...), so no app above is imported.
The tables keep their names from when these models lived in ``positions`` (``positions_history``,
``positions_runheartbeat``): the move changed nothing in the database.
"""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class Step(models.TextChoices):
    """The steps a run can be of; the open and close steps' claims (``StrategyStep``) use ``open`` and ``close``.
    ``deploy`` is no daily step: a person's change of a portfolio's weights ("Deploy winners",
    ``simulator.services.deploy``), one ``weights_changed`` row with a run id of its own. ``notify`` rows are the
    notifications app's: one per delivery attempt (run id = the delivery's id) and the missed-run alarm's
    ``run_missed``. ``audit`` is the daily audit of live against the backtest, run after the close step."""

    COLLECT = "collect", "collect (sync_data)"
    OPEN = "open", "open (sync_new_trades)"
    CLOSE = "close", "close (sync_close_positions)"
    IMPORT = "import", "import (import_ohlc)"
    DEPLOY = "deploy", "deploy (a portfolio's weights)"
    NOTIFY = "notify", "notify (a notification's delivery, the missed-run alarm)"
    AUDIT = "audit", "audit (live against the backtest)"


class RunStatus(models.TextChoices):
    """How a run ended: ``ok`` (no error), ``partial`` (some items failed), ``failed`` (nothing succeeded), or
    ``interrupted``: it never finished (killed, or its database went away), and a later run of the same lock
    appended its ``run_finished`` row (see :func:`runs.reaper.runs_interrupted_finish`)."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class HistoryKind(models.TextChoices):
    """What a ``History`` row records. A run is a ``run_started`` row, its events, and a ``run_finished`` row.
    ``weights_changed`` stands alone: a portfolio's weights set by "Deploy winners" (its payload has each
    member's old and new weight, the rule, the statistic and the runs used). ``notification_sent`` and
    ``notification_failed`` record each attempt to deliver a notification on one channel (never its URL);
    ``run_missed`` the missed-run alarm; ``signal_mismatch`` a signal the daily audit found on one side only
    (the backtest's or live)."""

    RUN_STARTED = "run_started"
    RUN_FINISHED = "run_finished"
    CANDLES_SYNCED = "candles_synced"
    CANDLES_IMPORTED = "candles_imported"
    SIGNAL = "signal"
    ORDER = "order"
    FILL = "fill"
    POSITION_OPENED = "position_opened"
    POSITION_CLOSED = "position_closed"
    ORDER_CANCELED = "order_canceled"
    ORDER_REJECTED = "order_rejected"
    ENTRY_REFUSED = "entry_refused"
    HALT = "halt"
    RECONCILED = "reconciled"
    ERROR = "error"
    WEIGHTS_CHANGED = "weights_changed"
    NOTIFICATION_SENT = "notification_sent"
    NOTIFICATION_FAILED = "notification_failed"
    RUN_MISSED = "run_missed"
    SIGNAL_MISMATCH = "signal_mismatch"


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
        "instruments.Instrument", null=True, blank=True, on_delete=models.PROTECT, related_name="history"
    )
    strategy = models.ForeignKey(
        "trading.Strategy", null=True, blank=True, on_delete=models.PROTECT, related_name="history"
    )
    position = models.ForeignKey(
        "positions.Position", null=True, blank=True, on_delete=models.PROTECT, related_name="history"
    )
    message = models.TextField(blank=True)
    payload = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    objects = HistoryQuerySet.as_manager()

    class Meta:
        db_table = "positions_history"  # its name from the positions app; the append-only trigger is on it
        verbose_name_plural = "history"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["step", "kind", "-created_at"], name="history_step_kind_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.step} {self.kind} {self.status}".rstrip()


class RunHeartbeat(models.Model):
    """The pulse of a run in progress: written at its ``run_started``, beaten while it works, deleted when its
    ``run_finished`` row is appended. ``History`` is append-only, so the beats live here.

    A row whose ``beat_at`` is older than ``BARTER_HEARTBEAT_STALE_SECONDS`` belongs to a run whose process died
    (its beats come from a thread of that process); the reaper (:func:`runs.reaper.runs_reap`) appends that
    run's ``run_finished`` row with status ``interrupted`` and deletes this one.
    """

    run_id = models.UUIDField(unique=True, help_text="The run (History.run_id).")
    step = models.CharField(max_length=16, choices=Step.choices)
    lock = models.CharField(max_length=300, blank=True, help_text="The run lock key, when the run holds one.")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True, help_text="The last beat (aware UTC).")
    pid = models.PositiveIntegerField(help_text="The process running it.")
    host = models.CharField(max_length=255, blank=True, help_text="The machine running it.")

    class Meta:
        db_table = "positions_runheartbeat"  # its name from the positions app

    def __str__(self) -> str:
        return f"{self.step} run {self.run_id} beat {self.beat_at:%Y-%m-%d %H:%M:%S}"
