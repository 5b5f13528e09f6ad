"""REST API of the simulator: ``/api/simulations/`` (create, list, read, delete) and each run's CSV files."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from barter_site.api import StrictSerializer
from barter_site.permissions import DELETE_SIMULATION
from instruments.models import Instrument, Timeframe
from simulator.launch import simulation_start
from simulator.models import STARTING_CASH_DEFAULT, Simulation
from simulator.services.deletion import simulation_delete
from simulator.services.monte_carlo import (
    DEFAULT_DRAWDOWN_LIMIT_RATIO,
    MAX_SEED,
    monte_carlo_as_json,
    simulation_monte_carlo,
)
from simulator.services.requests import SimulationInputError, simulation_request_check
from simulator.services.simulations import simulation_equity_csv, simulation_trades_csv
from trading.engine.monte_carlo import DEFAULT_PATHS, MAX_PATHS, METHODS
from trading.engine.vocabulary import statistics_described


class SimulationRequestSerializer(StrictSerializer):
    """``POST /api/simulations/``: what to simulate. Ratios inside ``criteria`` are fractions (0.02 = 2 %)."""

    instruments = serializers.ListField(
        child=serializers.CharField(max_length=100), allow_empty=False, help_text="CoinGecko ids."
    )
    start = serializers.DateField(help_text="First UTC day on which trades may happen.")
    end = serializers.DateField(help_text="Last UTC day (inclusive); what is open at its close is closed.")
    timeframe = serializers.ChoiceField(
        choices=Timeframe.choices,
        default=Timeframe.D1,
        help_text="The stored candles to run over (1d, 1h or 1m), stored for every instrument: a boundary at "
        "every candle's open from start 00:00 UTC to the open of the last candle on the end date.",
    )
    starting_cash = serializers.DecimalField(
        max_digits=38, decimal_places=18, default=STARTING_CASH_DEFAULT, help_text="Quote currency."
    )
    criteria = serializers.JSONField(help_text="Trade criteria, format version 1 (CRITERIA.md).")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            attrs["request"] = simulation_request_check(
                instruments=attrs["instruments"],
                start=attrs["start"],
                end=attrs["end"],
                timeframe=attrs["timeframe"],
                starting_cash=attrs["starting_cash"],
                criteria=attrs["criteria"],
            )
        except SimulationInputError as exc:
            raise serializers.ValidationError(exc.errors) from exc
        return attrs


class SimulationSummarySerializer(serializers.ModelSerializer[Simulation]):
    """A simulation without its trades and curves (the list)."""

    instruments: serializers.SlugRelatedField[Instrument] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="coingecko_id"
    )
    statistics = serializers.JSONField(
        read_only=True,
        help_text="The run's statistics by key (ratios are fractions; null where undefined): "
        + statistics_described(),
    )

    class Meta:
        model = Simulation
        fields = [
            "id",
            "name",
            "status",
            "progress_ratio",
            "error",
            "instruments",
            "start",
            "end",
            "timeframe",
            "starting_cash",
            "statistics",
            "created_at",
            "duration_seconds",
        ]
        read_only_fields = fields


class SimulationSerializer(SimulationSummarySerializer):
    """A simulation with its criteria, trades and equity curve (see :class:`simulator.models.Simulation`)."""

    coverage = serializers.JSONField(
        source="statistics.coverage",
        read_only=True,
        default=None,
        help_text="The days the run used (null for a run saved before it was kept): "
        '{"requested": {"start", "end"}, "used": {"start", "end"}, "instruments": [{"instrument", "symbol", '
        '"first", "last", "gaps": [{"start", "end", "days"}]}], "note"}, ISO dates. A range past the data of '
        "every instrument is run over the days that have data; gaps are runs of days without a candle.",
    )

    ambiguous = serializers.JSONField(
        source="statistics.ambiguous",
        read_only=True,
        default=None,
        help_text="The daily candles whose stop and take-profit were both inside, and how each was resolved (null "
        'for a run saved before they were kept): [{"day", "instrument", "symbol", "stop_price", '
        '"take_profit_price", "resolution"}], resolution one of stop_loss, trailing_stop, take_profit (decided by '
        "stored 1h or 1m candles) or pessimistic (the stop, CRITERIA.md's rule, when none could tell). "
        'See docs/criteria.md "Finer candles inside a daily candle".',
    )

    limits = serializers.JSONField(
        source="limits_report",
        read_only=True,
        help_text='What the criteria\'s risk limits did (docs/criteria.md "Risk limits"): {"refused": {limit: '
        'count}, "refusals_total", "refusals": [{"at", "symbol", "instrument", "limit"}] (the first '
        '1,000), "halts": [{"at", "limit", "began", "equity", "reference_equity"}]}; {} for a run saved '
        "before it was kept.",
    )
    ruined_at = serializers.CharField(
        source="statistics.ruined_at",
        read_only=True,
        default=None,
        allow_null=True,
        help_text="When the account was ruined, ISO 8601 UTC (the close of the candle in which its equity reached "
        "0; no trade after it), or null: not ruined, or a run saved before it was kept. A ruined run has total "
        "return -1, max drawdown 1, CAGR -1; Sharpe and Sortino over the returns up to the ruin.",
    )

    monthly_returns = serializers.JSONField(
        source="equity_curve.monthly_returns",
        read_only=True,
        default=None,
        help_text="The equity curve's return in each calendar month (UTC) and year, fractions (null for a run saved "
        'before they were kept): [{"year": 2024, "months": [12 values, January first, null outside the run], '
        '"year_ratio"}]. See docs/criteria.md "The report\'s figures".',
    )

    trades = serializers.JSONField(
        read_only=True,
        help_text="The trades in entry order: instrument, symbol, entry_at, entry_price, exit_at, exit_price, "
        "quantity, entry_fee, exit_fee, pnl (quote currency, decimal strings), pnl_ratio, exit_reason, and "
        "duration_days, mae_ratio, mfe_ratio (maximum adverse and favourable excursion, fractions of the entry "
        "price), cumulative_pnl (closed trades' pnl summed in exit order up to this one's exit); those four are "
        'absent in a run saved before they were kept. See docs/criteria.md "The report\'s figures".',
    )

    class Meta(SimulationSummarySerializer.Meta):
        fields = [
            *SimulationSummarySerializer.Meta.fields,
            "criteria",
            "trades",
            "equity_curve",
            "coverage",
            "ambiguous",
            "ruined_at",
            "limits",
            "monthly_returns",
        ]
        read_only_fields = fields


class MonteCarloQuerySerializer(StrictSerializer):
    """``GET /api/simulations/{id}/monte_carlo/``: how to draw the paths (query parameters)."""

    method = serializers.ChoiceField(
        choices=METHODS,
        default="reshuffle",
        help_text="reshuffle: each path a random order of the run's closed trades (the final equity is the run's; "
        "the drawdowns vary); bootstrap: each path draws as many trades with replacement (the final equity varies).",
    )
    paths = serializers.IntegerField(min_value=1, max_value=MAX_PATHS, default=DEFAULT_PATHS)
    seed = serializers.IntegerField(
        min_value=0,
        max_value=MAX_SEED,
        default=0,
        help_text="numpy's default_rng seed: same seed, same paths.",
    )
    drawdown_limit_ratio = serializers.FloatField(
        default=DEFAULT_DRAWDOWN_LIMIT_RATIO,
        help_text="The drawdown whose probability is given, a fraction in (0, 1): 0.3 = 30 %.",
    )

    def validate_drawdown_limit_ratio(self, value: float) -> float:
        if not 0 < value < 1:
            raise serializers.ValidationError(f"must be a fraction in (0, 1), e.g. 0.3 for 30 %; was {value}")
        return value


class MonteCarloActualSerializer(serializers.Serializer[Any]):
    """The run's own realised path."""

    final_equity = serializers.FloatField(
        help_text="Starting cash plus the closed trades' P&L, quote currency."
    )
    max_drawdown_ratio = serializers.FloatField()
    longest_drawdown_trades = serializers.IntegerField()


class MonteCarloFanSerializer(serializers.Serializer[Any]):
    """The fan chart: percentiles of the equity after each trade number."""

    percentiles = serializers.ListField(child=serializers.IntegerField(), help_text="[5, 25, 50, 75, 95].")
    trade_numbers = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="0 (the start) to n_trades; at most 501 of them, evenly spaced, for a long run.",
    )
    equity = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="One list per percentile: the equity after each of trade_numbers, quote currency.",
    )
    actual_equity = serializers.ListField(
        child=serializers.FloatField(),
        help_text="The run's realised path: the starting cash, then the equity after each closed trade in exit "
        "order (n_trades + 1 values).",
    )


class MonteCarloSerializer(serializers.Serializer[Any]):
    """A Monte Carlo of a run's closed trades (docs/criteria.md "Monte Carlo of the trades"). Returns on the account:
    each trade's P&L over the starting cash plus the P&L of the trades closed before it. Percentiles are numpy's
    linear ones over the paths."""

    simulation = serializers.IntegerField()
    method = serializers.ChoiceField(choices=METHODS)
    paths = serializers.IntegerField()
    seed = serializers.IntegerField()
    n_trades = serializers.IntegerField(help_text="The run's closed trades, each path's length.")
    starting_equity = serializers.FloatField(help_text="The run's starting cash, quote currency.")
    drawdown_limit_ratio = serializers.FloatField()
    percentiles = serializers.ListField(child=serializers.IntegerField(), help_text="[5, 50, 95].")
    final_equity_percentiles = serializers.ListField(
        child=serializers.FloatField(), help_text="Quote currency, at the percentiles."
    )
    max_drawdown_ratio_percentiles = serializers.ListField(
        child=serializers.FloatField(), help_text="Fractions of the running peak, at the percentiles."
    )
    longest_drawdown_trades_percentiles = serializers.ListField(
        child=serializers.FloatField(),
        help_text="Longest run of trades after which the equity was below its peak, in trades, at the percentiles.",
    )
    drawdown_beyond_limit_probability = serializers.FloatField(
        help_text="Share of paths whose maximum drawdown is above drawdown_limit_ratio."
    )
    drawdown_beyond_limit_interval = serializers.ListField(
        child=serializers.FloatField(),
        help_text="[low, high]: the exact (Clopper-Pearson) 95 % interval of that share over this many paths.",
    )
    actual = MonteCarloActualSerializer()
    fan = MonteCarloFanSerializer()


def csv_response(text: str, filename: str) -> HttpResponse:
    """A CSV download."""
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class SimulationViewSet(
    mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet[Simulation]
):
    """``/api/simulations/``: run a simulation (POST), list and read the saved ones, download their CSVs, delete
    one (DELETE)."""

    queryset = Simulation.objects.none()  # typed for the schema; get_queryset gives the user's runs

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return Simulation.objects.for_user(self.request.user).listed().prefetch_related("instruments")

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action == "list":
            return SimulationSummarySerializer
        return SimulationSerializer

    @extend_schema(request=SimulationRequestSerializer, responses={201: SimulationSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Run the criteria over the stored candles of ``timeframe`` (default ``1d``); 201 with statistics, trades
        and equity curve (status ``done``), or with status ``pending`` for a run large enough to go to a worker
        (poll the run)."""
        body = SimulationRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        simulation = simulation_start(
            request=body.validated_data["request"], created_by=request.user, name=body.validated_data["name"]
        )
        simulation.refresh_from_db()
        return Response(SimulationSerializer(simulation).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 409: OpenApiTypes.OBJECT})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete the run. Needs ``simulator.delete_simulation`` (403 without), then the run must be one's own
        (404; a superuser: any); a run still pending or running is refused with 409 (retry once it has
        finished). 204 with no body when deleted."""
        if not request.user.has_perm(DELETE_SIMULATION):
            raise PermissionDenied(f"deleting a run needs the permission {DELETE_SIMULATION}")
        simulation_delete(simulation=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[MonteCarloQuerySerializer],
        responses={200: MonteCarloSerializer, 400: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["get"], url_path="monte_carlo", url_name="monte-carlo")
    def monte_carlo(self, request: Request, pk: str | None = None) -> Response:
        """A Monte Carlo of the run's closed trades: reshuffled or bootstrapped paths (seeded), the 5th, 50th and
        95th percentiles of final equity, maximum and longest drawdown, the probability of a drawdown beyond
        ``drawdown_limit_ratio``, and the fan chart's percentiles after each trade. 400 with field errors for a bad
        parameter; 409 for a run with fewer than 2 closed trades. Seen by whoever can read the run."""
        query = MonteCarloQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        simulation = self.get_object()
        result = simulation_monte_carlo(simulation=simulation, **query.validated_data)
        return Response(MonteCarloSerializer(monte_carlo_as_json(simulation, result)).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def trades_csv(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The run's trades as CSV."""
        simulation = self.get_object()
        return csv_response(simulation_trades_csv(simulation), f"simulation-{simulation.pk}-trades.csv")

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def equity_csv(self, request: Request, pk: str | None = None) -> HttpResponse:
        """The run's equity curve, buy and hold and drawdown as CSV."""
        simulation = self.get_object()
        return csv_response(simulation_equity_csv(simulation), f"simulation-{simulation.pk}-equity.csv")
