"""Strategies: trade criteria (CRITERIA.md) applied to instruments with a paper or exchange account; the orders
an exchange strategy sends."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q

from instruments.models import Instrument
from instruments.precision import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
)
from instruments.sources.exchange.validation import SUPPORTED_EXCHANGE_IDS
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


class StrategyStep(models.Model):
    """That a cycle step has handled one instrument of a strategy for a day: the open and close steps' claim.

    One row per (strategy, step, as_of, instrument), written in the same transaction as the positions the step
    opened or closed for that instrument, under a unique constraint, so a second call of a step for the same
    ``as_of`` (even a concurrent one) changes nothing for an instrument already handled, while an instrument not
    handled yet (a run scoped to other instruments, an instrument without the day's candle, a strategy rolled
    back by a crash) is still handled by the next call.

    ``position`` is what the step did to the instrument, when it did something: the position the open step
    opened (paper; an exchange entry's position comes from its ``Order``), or the position the close step exited
    (paper: closed in the same transaction; exchange: its exit order was written in it). The open step reads the
    close step's ones when the close step of its day ran first, to decide as if it had run before it (the
    order the backtest uses): those positions count as still held, and their proceeds as not yet in cash.

    Rows from before per-instrument claims (migration ``0004_strategystep_instrument``) meant "every instrument
    of the strategy was handled that day"; the migration expanded each into one row per instrument the strategy
    had when it ran (a strategy without instruments had nothing to handle, and its rows were dropped).
    """

    class Step(models.TextChoices):
        OPEN = "open"
        CLOSE = "close"

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=8, choices=Step.choices)
    as_of = models.DateField()
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="strategy_steps")
    position = models.ForeignKey(
        "positions.Position", null=True, blank=True, on_delete=models.SET_NULL, related_name="step_claims"
    )
    run_id = models.UUIDField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # One run of each step per strategy, day and instrument: the guard against doubled entries and exits
            # (two concurrent runs that both passed the check cannot both commit their claim).
            models.UniqueConstraint(
                fields=["strategy", "step", "as_of", "instrument"],
                name="strategy_step_once_per_day_instrument",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} {self.step} {self.as_of} {self.instrument_id}"


class OrderQuerySet(models.QuerySet["Order"]):
    """Filters over orders."""

    def live(self) -> OrderQuerySet:
        """Orders the exchange may still fill: ``new`` (not confirmed yet), ``open``, ``partially_filled``."""
        return self.filter(status__in=Order.LIVE_STATUSES)

    def for_strategy(self, strategy: Strategy) -> OrderQuerySet:
        """Orders of one strategy."""
        return self.filter(strategy=strategy)


class Order(models.Model):
    """One order an exchange strategy sent (or is about to send) to its exchange.

    Written before the order is sent (status ``new``) under its ``client_order_id``, which is derived from the
    strategy, instrument, day and purpose (:func:`trading.execution.client_order_id`): a retry, or the next run
    after a crash, asks the exchange for that id instead of placing a second order. Quantities are base units,
    prices and fees quote currency unless ``fee_currency`` says otherwise (fees in a third currency are kept apart
    in ``other_fees``); ``raw`` is the exchange's last answer
    about the order (as ccxt's ``info``; it never contains a key).
    """

    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class Type(models.TextChoices):
        MARKET = "market"
        STOP_LOSS = "stop_loss", "stop-loss (market when triggered)"

    class Purpose(models.TextChoices):
        ENTRY = "entry"
        EXIT = "exit"
        PROTECTION = "protection", "protection (stop-loss on the exchange)"

    class Status(models.TextChoices):
        NEW = "new", "new (not confirmed by the exchange)"
        OPEN = "open"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCELED = "canceled"
        REJECTED = "rejected"
        EXPIRED = "expired"

    LIVE_STATUSES = (Status.NEW, Status.OPEN, Status.PARTIALLY_FILLED)

    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="orders")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="orders")
    position = models.ForeignKey(
        "positions.Position", null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    as_of = models.DateField(help_text="The day of the run that decided the order.")
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.MARKET)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    quantity = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS,
        decimal_places=PRICE_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="Trigger price of a stop-loss; for a market order the price it was sized at.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    exchange_id = models.CharField(max_length=32)
    market_symbol = models.CharField(max_length=41, help_text="ccxt unified symbol, e.g. BTC/USDT.")
    exchange_order_id = models.CharField(max_length=64, blank=True)
    client_order_id = models.CharField(max_length=36, unique=True)
    filled_quantity = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, default=Decimal(0)
    )
    average_price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, null=True, blank=True
    )
    fee = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, default=Decimal(0)
    )
    fee_currency = models.CharField(max_length=16, blank=True)
    # Fees in a currency that is neither the market's base nor its quote (binance's BNB discount), by currency
    # code, as decimal text: {"BNB": "0.00031"}. Never part of ``fee``, a position's fees or its pnl.
    other_fees = models.JSONField(
        default=dict,
        blank=True,
        help_text="Fees paid in a third currency (e.g. BNB), by currency: not in fee, entry/exit fees or pnl.",
    )
    filled_at = models.DateTimeField(
        null=True, blank=True, help_text="When the last fill happened (aware UTC)."
    )
    exit_reason = models.CharField(
        max_length=16, blank=True, help_text="Of an exit order: the engine's exit reason it executes."
    )
    error = models.TextField(blank=True, help_text="Why the exchange rejected it, or why it was given up.")
    raw = models.JSONField(default=dict, blank=True, help_text="The exchange's last answer (no secrets).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["strategy", "status"], name="order_strategy_status")]
        constraints = [
            # An order of nothing cannot be sent; a fill can never exceed what was ordered.
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(filled_quantity__lte=models.F("quantity")),
                name="order_filled_within_quantity",
            ),
            # A stop-loss without its trigger price would be a market order in disguise.
            models.CheckConstraint(
                condition=~Q(type="stop_loss") | Q(price__isnull=False), name="order_stop_loss_has_price"
            ),
            # At most one live stop-loss per position: replacing one cancels the old one first, so the exchange
            # can never hold two stops that would sell the position twice.
            models.UniqueConstraint(
                fields=["position"],
                condition=Q(purpose="protection", status__in=["new", "open", "partially_filled"]),
                name="order_one_live_protection_per_position",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.side} {self.quantity} {self.market_symbol} {self.status}"

    @property
    def is_live(self) -> bool:
        """Whether the exchange may still fill it."""
        return self.status in self.LIVE_STATUSES
