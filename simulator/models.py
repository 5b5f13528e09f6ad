"""Saved simulator runs and parameter sweeps.

A :class:`Simulation` keeps what was asked (instruments, dates, starting cash, criteria) and what the engine
answered (statistics, trades, equity curve), so a run can be shown, compared, downloaded and turned into a
strategy later without running it again. A :class:`Sweep` is a grid of criteria values; each grid point's
statistics are a :class:`SweepPoint`, and a point becomes a full :class:`Simulation` when someone opens it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from instruments.models import Instrument, Timeframe
from instruments.precision import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS
from trading.engine.vocabulary import HEADLINE_STATISTIC
from trading.models import Portfolio, Strategy, criteria_validate, limits_validate


class RunStatus(models.TextChoices):
    """Where a simulation or sweep is: waiting for a worker, running, finished, or failed."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SimulationQuerySet(models.QuerySet["Simulation"]):
    """Filters over simulations."""

    def for_user(self, user: Any) -> SimulationQuerySet:  # Any: a User or AnonymousUser (request.user)
        """The simulations ``user`` made (every simulation for a superuser)."""
        if getattr(user, "is_superuser", False):
            return self
        return self.filter(created_by=user)

    def listed(self) -> SimulationQuerySet:
        """Simulations made from the form, the API or the command line (not sweep points), newest first."""
        return self.filter(sweep__isnull=True).order_by("-created_at", "-id")


class Simulation(models.Model):
    """One simulator run: inputs and results.

    Results are JSON, in the engine's units: ``statistics`` has the keys of
    :data:`trading.engine.vocabulary.STATISTICS_KEYS` (ratios are fractions); ``trades`` is a list of dicts
    (``instrument``, ``entry_at``, ``entry_price``, ``exit_at``, ``exit_price``, ``quantity``, ``entry_fee``,
    ``exit_fee``, ``pnl``, ``pnl_ratio``, ``exit_reason``, and since issue 14 ``duration_days``, ``mae_ratio``,
    ``mfe_ratio``, ``cumulative_pnl``; times ISO 8601 UTC, amounts decimal strings in the quote currency);
    ``equity_curve`` is ``{"time": [seconds], "equity": [...], "buy_and_hold": [...], "drawdown_ratio": [...]}``
    at each candle's close (and since issue 14 ``"monthly_returns"``, over the full curve); a curve longer than
    :data:`simulator.services.simulations.MAX_CURVE_POINTS` (an hourly or minute run) is kept downsampled for
    display, with ``"candles"`` (the full curve's length) and ``"step"`` (every step-th candle is kept, and the
    last one and the deepest drawdown's); the statistics are always computed over the full curve. The curve
    document also keeps what the candle charts draw: ``"chart_indicators"`` (the criteria's indicators at the
    chart's bars, :func:`simulator.charts.chart_indicator_lines`) and, for a run whose candles are rolled up into
    longer chart bars, ``"chart_candles"``.
    ``timeframe`` is the candle length the run read (:class:`instruments.models.Timeframe`).
    """

    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="simulations"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    instruments = models.ManyToManyField(Instrument, related_name="simulations")
    start = models.DateField(help_text="First UTC day on which trades may happen.")
    end = models.DateField(help_text="Last UTC day of the run (inclusive).")
    timeframe = models.CharField(
        max_length=3,
        choices=Timeframe.choices,
        default=Timeframe.D1,
        help_text="The stored candles the run reads (1d, 1h or 1m); a boundary at every candle's open.",
    )
    starting_cash = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    criteria = models.JSONField(validators=[criteria_validate], help_text="Trade criteria, format version 1.")
    source_strategy = models.ForeignKey(
        Strategy, null=True, blank=True, on_delete=models.SET_NULL, related_name="simulations"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress_ratio = models.FloatField(default=0.0, help_text="0..1, for the progress bar of a queued run.")
    error = models.TextField(blank=True)
    statistics = models.JSONField(default=dict, blank=True)
    trades = models.JSONField(default=list, blank=True)
    equity_curve = models.JSONField(default=dict, blank=True)
    limits_report = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the criteria's risk limits did: refused entry signals and halts "
        "(simulator.services.risk_limits.limits_as_json); empty for a run saved before it was kept.",
    )
    duration_seconds = models.FloatField(null=True, blank=True, help_text="Engine and saving, seconds.")
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The last beat of the process running it; a running run without one for "
        "BARTER_HEARTBEAT_STALE_SECONDS lost its worker and is failed by the reaper.",
    )
    sweep = models.ForeignKey(
        "Sweep", null=True, blank=True, on_delete=models.CASCADE, related_name="simulations"
    )

    objects = SimulationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A run needs money to trade with, and a range that does not run backwards.
            models.CheckConstraint(
                condition=Q(starting_cash__gt=0), name="simulation_starting_cash_positive"
            ),
            models.CheckConstraint(
                condition=Q(end__gte=models.F("start")), name="simulation_end_after_start"
            ),
            models.CheckConstraint(
                condition=Q(progress_ratio__gte=0) & Q(progress_ratio__lte=1),
                name="simulation_progress_ratio",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"simulation {self.pk}"

    @property
    def is_finished(self) -> bool:
        """True once the run is done or failed."""
        return self.status in (RunStatus.DONE, RunStatus.FAILED)


#: The statuses in which a simulation or sweep is over: its page stops polling.
FINISHED_STATUSES = (RunStatus.DONE, RunStatus.FAILED)


class Sweep(models.Model):
    """A grid of criteria values, each run over the same instruments, dates and cash.

    ``axes`` is ``[{"path": "entry.all[0].left.period", "values": [5, 10, ...]}, ...]`` (one or two axes);
    every combination is one :class:`SweepPoint`. An axis path may name a parameter (``params.fast``: every field
    that refers to it moves). ``constraints`` (``["fast < slow"]``) skip the points that break them
    (:attr:`SweepPoint.skipped`). ``statistic`` is the figure the heatmap shows.
    """

    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="sweeps"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    instruments = models.ManyToManyField(Instrument, related_name="sweeps")
    start = models.DateField()
    end = models.DateField()
    starting_cash = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    criteria = models.JSONField(validators=[criteria_validate], help_text="The base criteria.")
    axes = models.JSONField()
    constraints = models.JSONField(
        default=list,
        blank=True,
        help_text='Constraints between parameters, e.g. ["fast < slow"]: grid points that break one are skipped.',
    )
    statistic = models.CharField(max_length=40, default=HEADLINE_STATISTIC)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    total = models.PositiveIntegerField(default=0, help_text="Number of grid points.")
    error = models.TextField(blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The last beat of a process running one of its chunks (see Simulation.heartbeat_at).",
    )
    robustness = models.JSONField(
        default=dict,
        blank=True,
        help_text="Is the best point luck? The deflated Sharpe ratio and the probability of backtest overfitting "
        "of the finished sweep (simulator.services.robustness); empty until it finishes.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(starting_cash__gt=0), name="sweep_starting_cash_positive"),
            models.CheckConstraint(condition=Q(end__gte=models.F("start")), name="sweep_end_after_start"),
        ]

    def __str__(self) -> str:
        return self.name or f"sweep {self.pk}"

    @property
    def is_finished(self) -> bool:
        """True once the sweep is done or failed."""
        return self.status in FINISHED_STATUSES


class SweepPoint(models.Model):
    """The statistics of one grid point of a sweep; ``values`` maps each axis path to its value here. A point
    that breaks one of the sweep's constraints is not run: ``skipped`` says which (``fast >= slow``), and it has
    no statistics."""

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="points")
    index = models.PositiveIntegerField(help_text="Position in the grid, row-major over the axes.")
    values = models.JSONField()
    statistics = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    skipped = models.CharField(
        max_length=200,
        blank=True,
        help_text='The constraint this point breaks, negated ("fast >= slow"): it was not run.',
    )
    returns_moments = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the sweep's robustness reads of this point's per-candle returns (count, per-candle Sharpe "
        "ratio, skewness, kurtosis, per-block moments: simulator.services.robustness); kept apart from the "
        "statistics, which the pages and the API read.",
    )
    simulation = models.OneToOneField(
        Simulation, null=True, blank=True, on_delete=models.SET_NULL, related_name="sweep_point"
    )

    class Meta:
        ordering = ["sweep", "index"]
        constraints = [
            # A chunk that runs twice (a retried task) writes nothing new.
            models.UniqueConstraint(fields=["sweep", "index"], name="sweep_point_unique_index"),
        ]

    def __str__(self) -> str:
        return f"{self.sweep} #{self.index}"


class WalkForward(models.Model):
    """A walk-forward analysis (issue 15): a sweep's grid chosen on each train window and run on the test window
    that follows (:mod:`trading.engine.walk_forward`, docs/walk_forward.md).

    The request: instruments, days ``start`` .. ``end``, cash, the base ``criteria``, ``axes`` and ``constraints``
    as a :class:`Sweep`'s; ``statistic`` and ``rule`` (``best`` or ``plateau`` with ``radius``) choose each
    fold's point; the windows are ``train_days`` (the first train window when ``anchored``), ``test_days`` and
    ``step_days``. ``result`` is the JSON of :func:`simulator.services.walk_forwards.result_document`: the folds
    (their days, chosen values, in-sample statistic and statistics, out-of-sample statistics, WFE), the stitched
    out-of-sample curve, the overall in-sample and out-of-sample statistics, the overall WFE and the parameters'
    stability.
    """

    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="walk_forwards",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    instruments = models.ManyToManyField(Instrument, related_name="walk_forwards")
    start = models.DateField(help_text="First UTC day of the first train window.")
    end = models.DateField(help_text="Last UTC day a test window may reach (inclusive).")
    starting_cash = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    criteria = models.JSONField(validators=[criteria_validate], help_text="The base criteria.")
    axes = models.JSONField(help_text="As Sweep.axes.")
    constraints = models.JSONField(default=list, blank=True, help_text="As Sweep.constraints.")
    statistic = models.CharField(max_length=40, default=HEADLINE_STATISTIC)
    rule = models.CharField(max_length=16, default="best", help_text="best or plateau.")
    radius = models.PositiveSmallIntegerField(default=1, help_text="The plateau's grid steps on each side.")
    anchored = models.BooleanField(default=False, help_text="Train windows start at start and grow.")
    train_days = models.PositiveIntegerField()
    test_days = models.PositiveIntegerField()
    step_days = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress_ratio = models.FloatField(default=0.0, help_text="Folds done / folds, 0..1.")
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The last beat of the process running it (see Simulation.heartbeat_at).",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(starting_cash__gt=0), name="walk_forward_starting_cash_positive"
            ),
            models.CheckConstraint(
                condition=Q(end__gte=models.F("start")), name="walk_forward_end_after_start"
            ),
            models.CheckConstraint(
                condition=Q(step_days__gte=models.F("test_days")), name="walk_forward_step_covers_test"
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"walk-forward {self.pk}"

    @property
    def is_finished(self) -> bool:
        """True once it is done or failed."""
        return self.status in FINISHED_STATUSES


class PortfolioSimulationQuerySet(models.QuerySet["PortfolioSimulation"]):
    """Filters over portfolio simulations."""

    def for_user(self, user: Any) -> PortfolioSimulationQuerySet:  # Any: a User or AnonymousUser
        """The portfolio runs ``user`` made (every one for a superuser)."""
        if getattr(user, "is_superuser", False):
            return self
        return self.filter(created_by=user)


class PortfolioSimulation(models.Model):
    """A simulator run of a portfolio (issue 16, docs/portfolios.md): saved strategies with weights trading one
    account's cash over the same days (:func:`trading.engine.portfolio.portfolio_backtest`).

    The request is kept as it was made: ``members`` is ``[{"strategy": id, "name", "weight" (a fraction of the
    account's equity, 0..1), "criteria", "instruments": [CoinGecko ids]}]`` in portfolio order, copied from the
    strategies when the run was made, so a later edit of a strategy does not change a saved run; ``limits`` the
    portfolio's own risk limits (docs/criteria.md "Risk limits"), over every member.

    Results, JSON in the engine's units (:func:`simulator.services.portfolios.portfolio_result_documents`):
    ``statistics`` the account's (:data:`trading.engine.vocabulary.STATISTICS_KEYS`, with ``coverage`` and
    ``ruined_at``); ``equity_curve`` as :attr:`Simulation.equity_curve` (``time``, ``equity``, ``buy_and_hold``,
    ``drawdown_ratio``); ``book_curves`` each member's sleeve at the same kept times (``{"names", "values"}``);
    ``attribution`` one row a member (``pnl``, ``return_on_budget_ratio``, ``exposure_ratio``,
    ``drawdown_contribution``, ``n_trades``...); ``correlation`` of the members' daily returns (``{"names",
    "matrix"}``, null where undefined); ``limits_report`` what the limits refused and the halts.
    """

    name = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="portfolio_simulations",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    portfolio = models.ForeignKey(
        Portfolio,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="simulations",
        help_text="The saved portfolio the run was made from, if any (its members and limits are copied).",
    )
    start = models.DateField(help_text="First UTC day on which trades may happen.")
    end = models.DateField(help_text="Last UTC day of the run (inclusive).")
    timeframe = models.CharField(
        max_length=3,
        choices=Timeframe.choices,
        default=Timeframe.D1,
        help_text="Daily candles only, for now.",
    )
    starting_cash = models.DecimalField(max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES)
    members = models.JSONField(
        help_text='The strategies, in portfolio order: [{"strategy": id, "name", "weight", "criteria", '
        '"instruments": [CoinGecko ids]}], copied when the run was made.'
    )
    limits = models.JSONField(
        default=dict,
        blank=True,
        validators=[limits_validate],
        help_text='The portfolio\'s own risk limits, over every member (docs/criteria.md "Risk limits").',
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    progress_ratio = models.FloatField(default=0.0, help_text="0..1, for the progress bar of a queued run.")
    error = models.TextField(blank=True)
    statistics = models.JSONField(default=dict, blank=True)
    equity_curve = models.JSONField(default=dict, blank=True)
    book_curves = models.JSONField(default=dict, blank=True)
    attribution = models.JSONField(default=list, blank=True)
    correlation = models.JSONField(default=dict, blank=True)
    limits_report = models.JSONField(default=dict, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True, help_text="Engine and saving, seconds.")
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The last beat of the process running it (see Simulation.heartbeat_at).",
    )

    objects = PortfolioSimulationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A run needs money to trade with, and a range that does not run backwards.
            models.CheckConstraint(
                condition=Q(starting_cash__gt=0), name="portfolio_simulation_starting_cash_positive"
            ),
            models.CheckConstraint(
                condition=Q(end__gte=models.F("start")), name="portfolio_simulation_end_after_start"
            ),
            models.CheckConstraint(
                condition=Q(progress_ratio__gte=0) & Q(progress_ratio__lte=1),
                name="portfolio_simulation_progress_ratio",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"portfolio run {self.pk}"

    @property
    def is_finished(self) -> bool:
        """True once the run is done or failed."""
        return self.status in FINISHED_STATUSES


#: The money type of starting cash, for forms and serializers.
STARTING_CASH_DEFAULT = Decimal("10000")
