"""Strategies: trade criteria (CRITERIA.md) applied to instruments with a paper or exchange account."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q

from instruments.markets import SUPPORTED_EXCHANGE_IDS
from instruments.models import Instrument
from instruments.precision import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
)
from trading.engine.criteria import Criteria, CriteriaError, Limits, criteria_parse, limits_parse
from trading.selectors import criteria_instruments_unknown


class StrategyQuerySet(models.QuerySet["Strategy"]):
    """Filters over strategies."""

    def enabled(self) -> StrategyQuerySet:
        """Strategies the daily cycle trades (``is_enabled``)."""
        return self.filter(is_enabled=True)


def criteria_validate(value: Any) -> None:
    """Django validator: raise ``ValidationError`` listing each problem of a criteria document with its path; an
    operand naming an instrument that is not stored (``"instrument": "bitcoinn"``) is one too."""
    try:
        criteria_parse(value)
    except CriteriaError as exc:
        raise ValidationError(
            [f"{path}: {message}" if path else message for path, message in exc.errors]
        ) from exc
    unknown = criteria_instruments_unknown(value)
    if unknown:
        raise ValidationError([f"{path}: {message}" for path, message in unknown])


class Strategy(models.Model):
    """Trade criteria applied daily to a set of instruments, with its own paper account.

    The account's cash is derived, never stored: ``starting_cash`` minus what open and closed positions cost, plus
    what closed positions returned (``positions.accounts.strategy_cash``).
    """

    class ExecutionBackend(models.TextChoices):
        PAPER = "paper", "paper trading"
        EXCHANGE = "exchange", "exchange (real orders through ccxt)"

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    criteria = models.JSONField(validators=[criteria_validate], help_text="Trade criteria, format version 1.")
    instruments = models.ManyToManyField(Instrument, related_name="strategies")
    is_enabled = models.BooleanField(default=False, help_text="Traded by the daily cycle.")
    starting_cash = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, default=Decimal("10000")
    )
    execution_backend = models.CharField(
        max_length=16, choices=ExecutionBackend.choices, default=ExecutionBackend.PAPER
    )
    exchange_id = models.CharField(
        max_length=32,
        blank=True,
        choices=[(exchange_id, exchange_id) for exchange_id in SUPPORTED_EXCHANGE_IDS],
        help_text="The exchange account an 'exchange' strategy trades on (keys from BARTER_EXCHANGE_<ID>_KEY).",
    )
    trading_enabled = models.BooleanField(
        default=True,
        help_text=(
            "Kill switch of this strategy: off, an exchange strategy opens nothing new; exits, stops and "
            "reconciliation still run (BARTER_TRADING_ENABLED=false does the same for every strategy)."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = StrategyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "strategies"
        ordering = ["name"]
        permissions = [
            # Who may start the daily steps: the three sync endpoints, their Celery tasks and commands. The token
            # of the GitHub Action belongs to a user holding this permission only (manage.py create_cycle_token).
            ("run_steps", "Can run the daily steps (collect, open, close)"),
            # Real money: create, enable, edit or close by hand anything of an exchange strategy, or switch a
            # strategy's backend to the exchange. Needed on top of the model permission of the change.
            ("trade_live", "Can trade real money (exchange strategies)"),
        ]
        constraints = [
            # A paper account needs money to trade with; zero or less would make every ratio meaningless.
            models.CheckConstraint(condition=Q(starting_cash__gt=0), name="strategy_starting_cash_positive"),
            # An exchange strategy must name its exchange account, or its orders would have nowhere to go.
            models.CheckConstraint(
                condition=~Q(execution_backend="exchange") | ~Q(exchange_id=""),
                name="strategy_exchange_backend_names_exchange",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Model validation, run by the admin's form: the backend switch rule of
        :func:`strategy_backend_change_check`, reported on the ``execution_backend`` field."""
        super().clean()
        try:
            strategy_backend_change_check(strategy=self, execution_backend=self.execution_backend)
        except ValidationError as exc:
            raise ValidationError({"execution_backend": exc.error_list}) from exc

    def parsed_criteria(self) -> Criteria:
        """Return the criteria as the engine's :class:`~trading.engine.criteria.Criteria`.

        Raises:
            CriteriaError: the stored document is invalid (it is validated on every save through forms and API).
        """
        return criteria_parse(self.criteria)


def strategy_backend_change_check(*, strategy: Strategy, execution_backend: str) -> None:
    """Refuse switching a saved strategy's execution backend (paper <-> exchange) while it has open positions.

    The next close step would otherwise sell on the exchange what was bought on paper (or the reverse). The one
    rule behind the admin form (:meth:`Strategy.clean`) and the API (``StrategySerializer``). The strategy's row
    is locked (``select_for_update``) as the daily steps lock it before they open anything, so inside the
    caller's transaction no step can open a position between this check and the save.

    Args:
        strategy: the strategy as it is being changed (unsaved: nothing to check).
        execution_backend: the backend it is to have.

    Raises:
        ValidationError: a plain message (no field) naming the open positions and how to proceed.
    """
    if strategy.pk is None:
        return
    with transaction.atomic():
        stored = (
            Strategy.objects.select_for_update()
            .filter(pk=strategy.pk)
            .values_list("execution_backend", flat=True)
            .first()
        )
        if stored is None or stored == execution_backend:
            return
        open_ids = sorted(strategy.positions.filter(status="open").values_list("pk", flat=True))
    if open_ids:
        shown = ", ".join(str(pk) for pk in open_ids[:10]) + (", ..." if len(open_ids) > 10 else "")
        raise ValidationError(
            f"cannot switch the execution backend from {stored!r} to {execution_backend!r} while "
            f"{len(open_ids)} position(s) are open (ids {shown}): the next close step would sell on "
            f"{execution_backend!r} what was bought on {stored!r}. Close them first (admin: Positions, "
            '"Close now") or let the close step exit them, then switch.',
            code="open_positions",
        )


def limits_validate(value: Any) -> None:
    """Django validator of a portfolio's ``limits`` object: each problem with its path."""
    try:
        limits_parse(value)
    except CriteriaError as exc:
        raise ValidationError(
            [f"{path}: {message}" if path else message for path, message in exc.errors]
        ) from exc


class Portfolio(models.Model):
    """Several strategies with weights trading one account's cash (docs/portfolios.md).

    Each member strategy's budget is its weight of the portfolio's equity; the members share the cash, whose
    balance is derived from the positions they opened as members (``Position.portfolio``), never stored. The
    portfolio's own ``limits`` (docs/criteria.md "Risk limits") apply over every member; each member's criteria
    keep their own. The daily open step decides a portfolio's entries together, in member order.
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    starting_cash = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, default=Decimal("10000")
    )
    limits = models.JSONField(
        default=dict,
        blank=True,
        validators=[limits_validate],
        help_text='Risk limits over every member, e.g. {"max_open_positions": 5, '
        '"max_drawdown_halt_ratio": 0.2} (docs/criteria.md "Risk limits").',
    )
    is_enabled = models.BooleanField(
        default=False, help_text="Traded by the daily cycle (with its enabled members)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(starting_cash__gt=0), name="portfolio_starting_cash_positive"),
        ]

    def __str__(self) -> str:
        return self.name

    def parsed_limits(self) -> Limits:
        """The portfolio's own limits, typed (:func:`trading.engine.criteria.limits_parse`)."""
        return limits_parse(self.limits or {})


class PortfolioStrategy(models.Model):
    """A strategy's membership of a portfolio, with its weight: its budget is ``weight`` of the portfolio's
    equity. A strategy belongs to at most one portfolio (its entries spend the portfolio's cash from then on)."""

    portfolio = models.ForeignKey(Portfolio, on_delete=models.CASCADE, related_name="members")
    strategy = models.OneToOneField(Strategy, on_delete=models.PROTECT, related_name="membership")
    weight = models.DecimalField(
        max_digits=7, decimal_places=6, help_text="The strategy's share of the portfolio's equity, 0 to 1."
    )
    order = models.PositiveIntegerField(default=0, help_text="Members enter in this order (then by name).")

    class Meta:
        ordering = ["portfolio", "order", "strategy__name"]
        verbose_name_plural = "portfolio strategies"
        constraints = [
            models.CheckConstraint(
                condition=Q(weight__gte=0) & Q(weight__lte=1), name="portfolio_strategy_weight_0_to_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} in {self.portfolio} ({self.weight})"
