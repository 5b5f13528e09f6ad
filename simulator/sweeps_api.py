"""REST API of the simulator's sweeps: ``/api/sweeps/`` (create and start, list, read with progress and grid).

It mirrors ``/api/simulations/`` (:mod:`simulator.api`): any authenticated user, each sees their own sweeps (a
superuser every one), field errors as a JSON 400. The request goes through the same checks as the form:
:func:`simulator.services.requests.simulation_request_check`, then
:func:`simulator.services.sweeps.sweep_create` (axes, grid size, each point's criteria, statistic, timeframe).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from barter_site.permissions import DELETE_SWEEP
from instruments.models import Instrument, Timeframe
from simulator.api import SimulationRequestSerializer
from simulator.launch import sweep_start
from simulator.models import Sweep
from simulator.selectors import sweep_best_values, sweep_points, sweeps_listed
from simulator.services.deletion import sweep_delete
from simulator.services.requests import SimulationInputError
from simulator.services.sweeps import sweep_create
from simulator.sweep_presenters import points_ranked, statistic_value, sweep_grid_document
from trading.engine.limits import MAX_SWEEP_POINTS
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS_KEYS, statistics_described


class SweepRequestSerializer(SimulationRequestSerializer):
    """``POST /api/sweeps/``: the run every grid point shares (the fields and checks of ``POST
    /api/simulations/``), the axes to vary and the statistic to map. Ratios inside ``criteria`` and on ratio axes
    are fractions (0.02 = 2 %)."""

    timeframe = serializers.ChoiceField(
        choices=Timeframe.choices,
        default=Timeframe.D1,
        help_text="The stored candles to run over; a sweep runs over daily candles (1d) only.",
    )
    criteria = serializers.JSONField(help_text="The base criteria, format version 1 (CRITERIA.md).")
    axes = serializers.JSONField(
        help_text='One or two axes, each {"path": "entry.all[0].left.period", "start": 5, "stop": 50, '
        '"step": 5} (stop included when the steps reach it) or {"path": ..., "values": [5, 10, 20]}; the '
        "path names a number of the criteria (CriteriaError's path syntax), in the criteria's units (a "
        f"fraction for a _ratio). At most {MAX_SWEEP_POINTS:,} grid points.",
    )
    statistic = serializers.ChoiceField(
        choices=[(key, key) for key in STATISTICS_KEYS],
        default=HEADLINE_STATISTIC,
        help_text="The statistic the heatmap maps and the best point is chosen by (any can be read later).",
    )
    constraints = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        default=list,
        help_text='Constraints between the criteria\'s named parameters (docs/criteria.md), e.g. ["fast < slow"]: '
        "`<param> <op> <param or number>` with op one of < <= > >=. Grid points that break one are not run and "
        "are reported skipped.",
    )


class SweepSummarySerializer(serializers.ModelSerializer[Sweep]):
    """A sweep without its grid (the list): ``done`` of ``total`` grid points saved, and the best value of its
    statistic so far."""

    instruments: serializers.SlugRelatedField[Instrument] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="coingecko_id"
    )
    done = serializers.IntegerField(read_only=True, help_text="Grid points saved so far.")
    progress_ratio = serializers.SerializerMethodField(help_text="done / total, 0..1.")
    best_value = serializers.SerializerMethodField(
        help_text="The best value of `statistic` over the saved points (highest, or lowest where less is "
        "better; a fraction for a _ratio), null when none has one."
    )

    class Meta:
        model = Sweep
        fields = [
            "id",
            "name",
            "status",
            "error",
            "instruments",
            "start",
            "end",
            "starting_cash",
            "axes",
            "constraints",
            "statistic",
            "total",
            "done",
            "progress_ratio",
            "best_value",
            "created_at",
            "duration_seconds",
        ]
        read_only_fields = fields

    def get_progress_ratio(self, sweep: Sweep) -> float:
        done = getattr(sweep, "done", 0)
        return 1.0 if sweep.total == 0 else min(1.0, done / sweep.total)

    def get_best_value(self, sweep: Sweep) -> float | None:
        best: dict[int, float] = self.context.get("best") or {}
        return best.get(sweep.pk)


class SweepPointSerializer(serializers.Serializer[Any]):
    """One saved grid point (documentation of ``grid.points``)."""

    index = serializers.IntegerField(help_text="Position in the grid, row-major over the axes.")
    values = serializers.DictField(help_text="Each axis's value at this point, keyed by the axis's path.")
    value = serializers.FloatField(
        allow_null=True, help_text="The statistic asked for; null for an error, no trade, or undefined."
    )
    n_trades = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    skipped = serializers.CharField(
        help_text='The constraint the point broke ("fast >= slow"): not run; or "".'
    )
    simulation = serializers.IntegerField(
        allow_null=True,
        help_text="The point's full run (/api/simulations/<id>/); null until it is opened on the sweep's page.",
    )


class SweepGridSerializer(serializers.Serializer[Any]):
    """The grid of a sweep: every saved point's value of ``statistic``, and the best point."""

    statistic = serializers.CharField(help_text=statistics_described())
    done = serializers.IntegerField()
    progress_ratio = serializers.FloatField()
    points = SweepPointSerializer(many=True)
    best = SweepPointSerializer(allow_null=True)


class LogitBinSerializer(serializers.Serializer[Any]):
    """One bar of the histogram of the logits: the logits in (low, high]."""

    low = serializers.FloatField()
    high = serializers.FloatField()
    count = serializers.IntegerField()


class LogitHistogramSerializer(serializers.Serializer[Any]):
    """The histogram of the logits of CSCV."""

    bin_width = serializers.FloatField()
    bins = LogitBinSerializer(many=True)


class OverfittingSerializer(serializers.Serializer[Any]):
    """The probability of backtest overfitting by combinatorially symmetric cross-validation (documentation)."""

    probability = serializers.FloatField(
        help_text="PBO, 0..1: the share of splits whose in-sample best ranks at or below the median out of sample."
    )
    combinations = serializers.IntegerField(help_text="C(S, S/2) splits of the days (12,870 for S = 16).")
    blocks = serializers.IntegerField(help_text="S, contiguous blocks of the days.")
    logits = serializers.ListField(
        child=serializers.FloatField(),
        help_text="ln(w / (1 - w)) per split, w the relative rank out of sample.",
    )
    histogram = LogitHistogramSerializer()
    sentence = serializers.CharField()


class RobustnessSerializer(serializers.Serializer[Any]):
    """Is the best point luck? (documentation of ``robustness``; null until it is worked out, just after the sweep
    is done). Every Sharpe ratio is per daily candle, not annualised, except the ``_annualised`` ones (x
    sqrt(365))."""

    available = serializers.BooleanField(help_text="False with a `reason` when it could not be computed.")
    sentence = serializers.CharField(
        help_text="'Best of 1,000 trials: deflated Sharpe ratio 0.42, a 42 % chance that its true Sharpe ratio is "
        "above zero: likely luck.'"
    )
    reason = serializers.CharField(required=False, help_text="Why it is not available.")
    verdict = serializers.ChoiceField(
        choices=["likely real", "uncertain", "likely luck"],
        required=False,
        help_text="likely real: DSR >= 0.95; uncertain: 0.5 <= DSR < 0.95; likely luck: DSR < 0.5.",
    )
    statistic = serializers.CharField(required=False, help_text="The statistic the best point is chosen by.")
    trials = serializers.IntegerField(
        required=False, help_text="Grid points run (skipped and failed left out)."
    )
    chosen_index = serializers.IntegerField(required=False)
    chosen_values = serializers.DictField(required=False)
    chosen_sharpe_ratio = serializers.FloatField(required=False, help_text="Per candle, not annualised.")
    chosen_sharpe_ratio_annualised = serializers.FloatField(required=False)
    observations = serializers.IntegerField(required=False, help_text="Returns of the chosen point.")
    skewness = serializers.FloatField(required=False)
    kurtosis = serializers.FloatField(required=False, help_text="Not excess: 3 for normal returns.")
    trials_sharpe_variance = serializers.FloatField(required=False, help_text="Of per-candle Sharpe ratios.")
    expected_maximum_sharpe_ratio = serializers.FloatField(required=False, help_text="Per candle.")
    expected_maximum_sharpe_ratio_annualised = serializers.FloatField(required=False)
    deflated_sharpe_ratio = serializers.FloatField(
        required=False,
        help_text="The probability that the true Sharpe ratio of the best point is above zero.",
    )
    pbo = OverfittingSerializer(required=False, allow_null=True)


class SweepSerializer(SweepSummarySerializer):
    """A sweep with its criteria and its grid (``?statistic=`` chooses the statistic of the grid's values)."""

    grid = serializers.SerializerMethodField()
    robustness = serializers.SerializerMethodField()

    class Meta(SweepSummarySerializer.Meta):
        fields = [*SweepSummarySerializer.Meta.fields, "criteria", "grid", "robustness"]
        read_only_fields = fields

    @extend_schema_field(RobustnessSerializer(allow_null=True))
    def get_robustness(self, sweep: Sweep) -> dict[str, Any] | None:
        return dict(sweep.robustness) if sweep.robustness else None

    @extend_schema_field(SweepGridSerializer)
    def get_grid(self, sweep: Sweep) -> dict[str, Any]:
        key = self.context.get("statistic") or sweep.statistic
        points = self.context.get("points")
        return sweep_grid_document(sweep, sweep_points(sweep) if points is None else points, key)


STATISTIC_PARAMETER = OpenApiParameter(
    "statistic",
    OpenApiTypes.STR,
    enum=list(STATISTICS_KEYS),
    description="The statistic of the grid's values and best point; the sweep's own by default.",
)


class SweepViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet[Sweep]):
    """``/api/sweeps/``: start a sweep (POST), list and read one's own sweeps with their progress and grid,
    delete one (DELETE)."""

    queryset = Sweep.objects.none()  # typed for the schema; get_queryset gives the user's sweeps

    def get_queryset(self) -> QuerySet[Sweep]:
        return sweeps_listed(self.request.user)

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action == "list":
            return SweepSummarySerializer
        return SweepSerializer

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if self.action == "retrieve":
            asked = self.request.query_params.get("statistic")
            if asked is not None and asked not in STATISTICS_KEYS:
                raise ValidationError(
                    {"statistic": [f"must be one of {', '.join(STATISTICS_KEYS)}; was {asked!r}"]}
                )
            context["statistic"] = asked
        return context

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The user's sweeps, newest first, paginated, with their progress and best value so far."""
        page = self.paginate_queryset(self.get_queryset())
        assert page is not None  # noqa: S101 - the API always paginates (DEFAULT_PAGINATION_CLASS)
        serializer = SweepSummarySerializer(page, many=True, context={"best": sweep_best_values(page)})
        return self.get_paginated_response(serializer.data)

    @extend_schema(parameters=[STATISTIC_PARAMETER])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """One sweep: status, progress (``done`` of ``total``), and its grid: each saved point's value of the
        statistic and its run, and the best point."""
        sweep = self.get_object()
        # The points are read once, after the sweep: its count, grid and best agree even while chunks save more.
        key = self.get_serializer_context().get("statistic") or sweep.statistic
        points = sweep_points(sweep, keys=[sweep.statistic, key, "n_trades"])  # only what the grid shows
        sweep.done = len(points)  # type: ignore[attr-defined]  # the annotation of sweeps_listed, read again
        ranked = points_ranked(points, sweep.statistic)
        best = {sweep.pk: statistic_value(ranked[0], sweep.statistic)} if ranked else {}
        context = {**self.get_serializer_context(), "points": points, "best": best}
        return Response(SweepSerializer(sweep, context=context).data)

    @extend_schema(responses={204: None, 409: OpenApiTypes.OBJECT})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Delete the sweep, its grid points and the runs opened from them (:func:`simulator.services.deletion.
        sweep_delete`). Needs ``simulator.delete_sweep`` (403 without), then the sweep must be one's own (404; a
        superuser: any); a sweep still pending or running is refused with 409. 204 with no body when deleted."""
        if not request.user.has_perm(DELETE_SWEEP):
            raise PermissionDenied(f"deleting a sweep needs the permission {DELETE_SWEEP}")
        sweep_delete(sweep=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=SweepRequestSerializer, responses={201: SweepSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Check the sweep and start it; 201 at once with status ``pending`` (poll ``GET /api/sweeps/<id>/``
        for its progress). The grid runs on the simulator's Celery queue, or without a broker in a background
        thread of the server, never in this request."""
        body = SweepRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            sweep = sweep_create(
                request=body.validated_data["request"],
                axes=body.validated_data["axes"],
                statistic=body.validated_data["statistic"],
                created_by=request.user,
                name=body.validated_data["name"],
                constraints=body.validated_data["constraints"],
            )
        except SimulationInputError as exc:
            raise ValidationError(exc.errors) from exc
        sweep_start(sweep=sweep)
        sweep = self.get_queryset().get(pk=sweep.pk)
        return Response(
            SweepSerializer(sweep, context={"best": {}, "statistic": None}).data,
            status=status.HTTP_201_CREATED,
        )
