"""Positions (the trading cycle's issue) and ``History``, the append-only record of everything Barter does."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from instruments.models import Instrument
from instruments.precision import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    QUANTITY_DECIMAL_PLACES,
    QUANTITY_MAX_DIGITS,
    RATIO_DECIMAL_PLACES,
    RATIO_MAX_DIGITS,
)
from trading.engine.vocabulary import ExitReason


class Step(models.TextChoices):
    """The steps a run can be of."""

    COLLECT = "collect", "collect (sync_data)"
    OPEN = "open", "open (sync_new_trades)"
    CLOSE = "close", "close (sync_close_positions)"
    IMPORT = "import", "import (import_ohlc)"


class RunStatus(models.TextChoices):
    """How a run ended: ``ok`` (no error), ``partial`` (some items failed), ``failed`` (nothing succeeded), or
    ``interrupted``: it never finished (killed, or its database went away), and a later run of the same lock
    appended its ``run_finished`` row (see :func:`positions.history.runs_interrupted_finish`)."""

    OK = "ok"
    PARTIAL = "partial"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class HistoryKind(models.TextChoices):
    """What a ``History`` row records. A run is a ``run_started`` row, its events, and a ``run_finished`` row."""

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
    RECONCILED = "reconciled"
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
    strategy = models.ForeignKey(
        "trading.Strategy", null=True, blank=True, on_delete=models.PROTECT, related_name="history"
    )
    position = models.ForeignKey(
        "Position", null=True, blank=True, on_delete=models.PROTECT, related_name="history"
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


class RunHeartbeat(models.Model):
    """The pulse of a run in progress: written at its ``run_started``, beaten while it works, deleted when its
    ``run_finished`` row is appended. ``History`` is append-only, so the beats live here.

    A row whose ``beat_at`` is older than ``BARTER_HEARTBEAT_STALE_SECONDS`` belongs to a run whose process died
    (its beats come from a thread of that process); the reaper (:func:`positions.history.runs_reap`) appends that
    run's ``run_finished`` row with status ``interrupted`` and deletes this one.
    """

    run_id = models.UUIDField(unique=True, help_text="The run (History.run_id).")
    step = models.CharField(max_length=16, choices=Step.choices)
    lock = models.CharField(max_length=300, blank=True, help_text="The run lock key, when the run holds one.")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True, help_text="The last beat (aware UTC).")
    pid = models.PositiveIntegerField(help_text="The process running it.")
    host = models.CharField(max_length=255, blank=True, help_text="The machine running it.")

    def __str__(self) -> str:
        return f"{self.step} run {self.run_id} beat {self.beat_at:%Y-%m-%d %H:%M:%S}"


class PositionQuerySet(models.QuerySet["Position"]):
    """Filters over positions."""

    def open(self) -> PositionQuerySet:
        """Positions not yet closed."""
        return self.filter(status=Position.Status.OPEN)

    def closed(self) -> PositionQuerySet:
        """Closed positions."""
        return self.filter(status=Position.Status.CLOSED)

    def for_strategy(self, strategy: Any) -> PositionQuerySet:
        """Positions of one strategy."""
        return self.filter(strategy=strategy)


class Position(models.Model):
    """A position a strategy holds (or held) in one instrument. Money fields are quote currency.

    ``pnl = exit_price * quantity - exit_fee - (entry_price * quantity + entry_fee)``;
    ``pnl_ratio = pnl / (entry_price * quantity + entry_fee)`` (a fraction: 0.05 is +5 %).
    """

    class Side(models.TextChoices):
        LONG = "long"
        SHORT = "short"

    class Status(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"

    class Protection(models.TextChoices):
        """Whether a stop-loss order guards the position on the exchange between daily runs."""

        PROTECTED = "protected", "protected (stop-loss order on the exchange)"
        UNPROTECTED = "unprotected", "unprotected (the exchange holds no stop for it)"
        NOT_APPLICABLE = "not_applicable", "not applicable (paper, or no stop in the criteria)"

    #: The one table of exit reasons (stored value, label, the engine's code).
    ExitReason = ExitReason

    strategy = models.ForeignKey("trading.Strategy", on_delete=models.PROTECT, related_name="positions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="positions")
    side = models.CharField(max_length=8, choices=Side.choices, default=Side.LONG)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    quantity = models.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES)
    entry_price = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    entry_at = models.DateTimeField(help_text="When the entry filled (aware UTC).")
    entry_fee = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    exit_price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, null=True, blank=True
    )
    exit_at = models.DateTimeField(null=True, blank=True)
    exit_fee = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, null=True, blank=True
    )
    exit_reason = models.CharField(max_length=16, choices=ExitReason.choices(), blank=True)
    stop_loss_price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, null=True, blank=True
    )
    take_profit_price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, null=True, blank=True
    )
    trailing_stop_price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS,
        decimal_places=PRICE_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="The trailing stop level in force (it only rises).",
    )
    exits_checked_through = models.DateTimeField(
        null=True, blank=True, help_text="Open time of the last candle the exit rules were checked against."
    )
    # db_default too: rows written without the ORM (older code, SQL by hand) are "not applicable", never NULL.
    protection = models.CharField(
        max_length=16,
        choices=Protection.choices,
        default=Protection.NOT_APPLICABLE,
        db_default=Protection.NOT_APPLICABLE,
    )
    pnl = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, null=True, blank=True
    )
    pnl_ratio = models.DecimalField(
        max_digits=RATIO_MAX_DIGITS, decimal_places=RATIO_DECIMAL_PLACES, null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PositionQuerySet.as_manager()

    class Meta:
        ordering = ["-entry_at", "id"]
        constraints = [
            # At most one open position per strategy and instrument: a second daily run can never double one.
            models.UniqueConstraint(
                fields=["strategy", "instrument"],
                condition=Q(status="open"),
                name="position_one_open_per_strategy_instrument",
            ),
            # Exit fields are set if and only if the position is closed, so no half-closed row can exist.
            models.CheckConstraint(
                condition=(
                    Q(
                        status="open",
                        exit_price__isnull=True,
                        exit_at__isnull=True,
                        exit_fee__isnull=True,
                        exit_reason="",
                        pnl__isnull=True,
                        pnl_ratio__isnull=True,
                    )
                    | (
                        Q(
                            status="closed",
                            exit_price__isnull=False,
                            exit_at__isnull=False,
                            exit_fee__isnull=False,
                            pnl__isnull=False,
                            pnl_ratio__isnull=False,
                        )
                        & ~Q(exit_reason="")
                    )
                ),
                name="position_exit_fields_iff_closed",
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="position_quantity_positive"),
            models.CheckConstraint(condition=Q(entry_price__gt=0), name="position_entry_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} {self.instrument.symbol} {self.side} {self.status}"
