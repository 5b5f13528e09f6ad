"""What is held and how it got there: positions, the open and close steps' claims (``StrategyStep``) and the
orders an exchange strategy sends (``Order``). The tables of the last two keep their names from the trading app."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q

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
from runs.models import Step
from trading.engine.vocabulary import ExitReason
from trading.models import Portfolio, Strategy


class PositionQuerySet(models.QuerySet["Position"]):
    """Filters over positions."""

    def open(self) -> PositionQuerySet:
        """Positions not yet closed."""
        return self.filter(status=Position.Status.OPEN)

    def closed(self) -> PositionQuerySet:
        """Closed positions."""
        return self.filter(status=Position.Status.CLOSED)

    def for_strategy(self, strategy: Strategy) -> PositionQuerySet:
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

    strategy = models.ForeignKey(Strategy, on_delete=models.PROTECT, related_name="positions")
    portfolio = models.ForeignKey(
        Portfolio,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="positions",
        help_text="The portfolio whose cash the position spent (its strategy was a member when it opened).",
    )
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

    Rows from before per-instrument claims (migration ``trading.0004_strategystep_instrument``) meant "every instrument
    of the strategy was handled that day"; the migration expanded each into one row per instrument the strategy
    had when it ran (a strategy without instruments had nothing to handle, and its rows were dropped).
    """

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="steps")
    step = models.CharField(max_length=8, choices=[(s.value, s.label) for s in (Step.OPEN, Step.CLOSE)])
    as_of = models.DateField()
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="strategy_steps")
    position = models.ForeignKey(
        "Position", null=True, blank=True, on_delete=models.SET_NULL, related_name="step_claims"
    )
    run_id = models.UUIDField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "trading_strategystep"  # its name from the trading app
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
    """One order an exchange strategy sent (or is about to send) to its exchange, or a paper strategy's resting
    stop-loss or take-profit (``exchange_id`` the paper broker's name: ``paper`` or ``replay``;
    :mod:`positions.execution.paper_orders`).

    Written before the order is sent (status ``new``) under its ``client_order_id``, which is derived from the
    strategy, instrument, day and purpose (:func:`positions.execution.order_state.client_order_id`): a retry, or
    the next run after a crash, asks the exchange for that id instead of placing a second order. Quantities are
    base units, prices and fees quote currency unless ``fee_currency`` says otherwise (fees in a third currency
    are kept apart in ``other_fees``); ``raw`` is the exchange's last answer about the order (as ccxt's ``info``;
    it never contains a key).
    """

    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class Type(models.TextChoices):
        MARKET = "market"
        STOP_LOSS = "stop_loss", "stop-loss (market when triggered)"
        TAKE_PROFIT = "take_profit", "take-profit (paper: fills at its level)"

    class Purpose(models.TextChoices):
        ENTRY = "entry"
        EXIT = "exit"
        PROTECTION = "protection", "protection (a resting stop-loss or take-profit)"

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
        "Position", null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    as_of = models.DateField(help_text="The day of the run that decided the order.")
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.MARKET)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    quantity = models.DecimalField(max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES)
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
        max_digits=QUANTITY_MAX_DIGITS, decimal_places=QUANTITY_DECIMAL_PLACES, default=Decimal(0)
    )
    average_price = models.DecimalField(
        max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES, null=True, blank=True
    )
    fee = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, default=Decimal(0)
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
        db_table = "trading_order"  # its name from the trading app
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
            models.CheckConstraint(
                condition=~Q(type="take_profit") | Q(price__isnull=False), name="order_take_profit_has_price"
            ),
            # At most one live stop-loss (and one live take-profit) per position: replacing one cancels the old
            # one first, so the exchange can never hold two stops that would sell the position twice.
            models.UniqueConstraint(
                fields=["position", "type"],
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


class LimitState(models.Model):
    """A strategy's or a portfolio's risk-limit state between two daily boundaries (docs/criteria.md "Risk
    limits"): what the engine's :class:`trading.engine.step.LimitState` carries, kept by the open step in the
    transaction that holds the strategy's lock, so the next day's open step decides as the backtest does at its
    next boundary.

    The peak and the day's starting equity are measured by the open step at each boundary (cash plus the open
    positions at the day's prices). Deleting the row resets the limits (a drawdown halt ends, the peak is
    measured afresh): the admin's way to resume a strategy halted with nothing open.
    """

    strategy = models.OneToOneField(
        Strategy, null=True, blank=True, on_delete=models.CASCADE, related_name="limit_state"
    )
    portfolio = models.OneToOneField(
        Portfolio, null=True, blank=True, on_delete=models.CASCADE, related_name="limit_state"
    )
    as_of = models.DateField(help_text="The boundary (day) last measured.")
    day = models.DateField(null=True, blank=True, help_text="The UTC day of that boundary's candle t.")
    day_start_equity = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, null=True, blank=True
    )
    last_equity = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, null=True, blank=True
    )
    halt_day = models.DateField(
        null=True, blank=True, help_text="The day the daily loss limit halted entries, if it did."
    )
    peak_equity = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, null=True, blank=True
    )
    drawdown_halt_since = models.DateTimeField(
        null=True, blank=True, help_text="When the drawdown halt in force began, if one is."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One account's state: a strategy's (alone, or as a member of a portfolio) or a portfolio's own.
            models.CheckConstraint(
                condition=Q(strategy__isnull=True) ^ Q(portfolio__isnull=True),
                name="limit_state_of_a_strategy_or_a_portfolio",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.strategy or self.portfolio} limits as of {self.as_of}"


class StrategyAudit(models.Model):
    """The daily audit of one live strategy for one day (:func:`positions.audit.audit_day`; docs/audit.md): what
    the engine's backtest over the stored candles did that day against what live did.

    Signals are the day's entries and exits: an entry is the instrument's CoinGecko id, an exit ``{"instrument",
    "reason"}``. ``missed`` are the backtest's that live has not, ``extra`` live's that the backtest has not, each
    ``{"instrument", "signal": "entry" | "exit", "reason"}``. ``fills`` holds one row per live fill of the day with
    its modelled price and fee (the engine's fill at the day's stored open, or at the risk level crossed) and the
    real ones. Money is quote currency unless a currency is named (``other_fees``). ``slippage_bps`` is positive
    when live paid more on a buy or got less on a sell than the model.
    """

    strategy = models.ForeignKey(Strategy, on_delete=models.CASCADE, related_name="audits")
    as_of = models.DateField(
        help_text="The day audited (UTC): its entries, exits and fills, and the end of it."
    )
    run_id = models.UUIDField(help_text="The audit run (History) that wrote this row last.")
    first_day = models.DateField(
        help_text="The first live day: where the backtest starts, with the starting cash."
    )
    backtest_entries = models.JSONField(default=list, blank=True)
    backtest_exits = models.JSONField(default=list, blank=True)
    live_entries = models.JSONField(default=list, blank=True)
    live_exits = models.JSONField(default=list, blank=True)
    missed = models.JSONField(
        default=list, blank=True, help_text="Signals the backtest has and live has not."
    )
    extra = models.JSONField(default=list, blank=True, help_text="Signals live has and the backtest has not.")
    signal_mismatches = models.PositiveIntegerField(default=0, help_text="len(missed) + len(extra).")
    fills = models.JSONField(
        default=list, blank=True, help_text="Each live fill of the day against the model."
    )
    slippage_bps = models.DecimalField(
        max_digits=RATIO_MAX_DIGITS,
        decimal_places=RATIO_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="Quantity-weighted mean slippage of the day's fills, basis points (null: no fill).",
    )
    slippage_cost = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        default=Decimal(0),
        help_text="What the slippage cost over the model: sum of (fill - modelled) * quantity on buys and "
        "(modelled - fill) * quantity on sells.",
    )
    modelled_fee = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, default=Decimal(0)
    )
    real_fee = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, default=Decimal(0)
    )
    fee_drift = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        default=Decimal(0),
        help_text="real_fee - modelled_fee (quote): fees paid in another currency are not in it (other_fees).",
    )
    other_fees = models.JSONField(
        default=dict, blank=True, help_text="Fees of the day's fills paid in a third currency, by currency."
    )
    open_live = models.JSONField(
        default=list, blank=True, help_text="Live's open positions at the end of the day."
    )
    open_backtest = models.JSONField(default=list, blank=True)
    open_mismatches = models.PositiveIntegerField(
        default=0, help_text="Instruments held at the end of the day by one side only."
    )
    cash_live = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    cash_backtest = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    cash_drift = models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        help_text="cash_live - cash_backtest.",
    )
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-as_of", "strategy_id"]
        constraints = [
            # One audit per strategy and day: a second audit of the day updates it (the audit is idempotent).
            models.UniqueConstraint(fields=["strategy", "as_of"], name="strategy_audit_once_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.strategy} audit of {self.as_of}"

    @property
    def drifted(self) -> bool:
        """Whether live and the backtest differ on a signal or an open position (an error on the dashboard)."""
        return bool(self.signal_mismatches or self.open_mismatches)
