"""Strategies: trade criteria (CRITERIA.md) applied to instruments with a paper (or, later, live) account."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from instruments.models import Instrument
from instruments.precision import PRICE_DECIMAL_PLACES, PRICE_MAX_DIGITS
from trading.engine.criteria import Criteria, CriteriaError, criteria_parse


class StrategyQuerySet(models.QuerySet["Strategy"]):
    """Filters over strategies."""

    def enabled(self) -> StrategyQuerySet:
        """Strategies the daily cycle trades (``is_enabled``)."""
        return self.filter(is_enabled=True)


def criteria_validate(value: Any) -> None:
    """Django validator: raise ``ValidationError`` listing each problem of a criteria document with its path."""
    try:
        criteria_parse(value)
    except CriteriaError as exc:
        raise ValidationError(
            [f"{path}: {message}" if path else message for path, message in exc.errors]
        ) from exc


class Strategy(models.Model):
    """Trade criteria applied daily to a set of instruments, with its own paper account.

    The account's cash is derived, never stored: ``starting_cash`` minus what open and closed positions cost, plus
    what closed positions returned (``trading.selectors.strategy_cash``).
    """

    class ExecutionBackend(models.TextChoices):
        PAPER = "paper", "paper trading"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    criteria = models.JSONField(validators=[criteria_validate], help_text="Trade criteria, format version 1.")
    instruments = models.ManyToManyField(Instrument, related_name="strategies")
    is_enabled = models.BooleanField(default=False, help_text="Traded by the daily cycle.")
    starting_cash = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, default=Decimal("10000")
    )
    execution_backend = models.CharField(
        max_length=16, choices=ExecutionBackend.choices, default=ExecutionBackend.PAPER
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StrategyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "strategies"
        ordering = ["name"]
        constraints = [
            # A paper account needs money to trade with; zero or less would make every ratio meaningless.
            models.CheckConstraint(condition=Q(starting_cash__gt=0), name="strategy_starting_cash_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def parsed_criteria(self) -> Criteria:
        """Return the criteria as the engine's :class:`~trading.engine.criteria.Criteria`.

        Raises:
            CriteriaError: the stored document is invalid (it is validated on every save through forms and API).
        """
        return criteria_parse(self.criteria)


class StrategyStep(models.Model):
    """That a cycle step has run for a strategy and a day: the idempotency key of the open and close steps.

    Written in the same transaction as the positions the step opened or closed, under a unique constraint, so a
    second call of a step for the same ``as_of`` (even a concurrent one) changes nothing.
    """

    class Step(models.TextChoices):
        OPEN = "open"
        CLOSE = "close"

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=8, choices=Step.choices)
    as_of = models.DateField()
    run_id = models.UUIDField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One run of each step per strategy and day: the guard against doubled entries and exits.
            models.UniqueConstraint(fields=["strategy", "step", "as_of"], name="strategy_step_once_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} {self.step} {self.as_of}"
