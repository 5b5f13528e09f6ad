"""REST API of walk-forward analyses: ``/api/walk_forwards/`` (check and start, list, read one with its result).

As ``/api/sweeps/`` (:mod:`simulator.sweeps_api`): any authenticated user, each sees their own (a superuser
every one), field errors as a JSON 400. The request goes through the sweep's request checks, then
:func:`simulator.services.walk_forwards.walk_forward_create` (windows, rule, the data the windows need).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from instruments.models import Instrument
from simulator.launch import walk_forward_start
from simulator.models import WalkForward
from simulator.selectors import walk_forwards_for, walk_forwards_listed
from simulator.services.requests import SimulationInputError
from simulator.services.walk_forwards import walk_forward_create
from simulator.sweeps_api import SweepRequestSerializer
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS_KEYS, statistics_described
from trading.engine.walk_forward import MAX_RADIUS, RULES


class WalkForwardRequestSerializer(SweepRequestSerializer):
    """``POST /api/walk_forwards/``: a sweep's request (instruments, days, cash, criteria, axes, constraints,
    statistic) and the windows and rule of the walk-forward."""

    train_days = serializers.IntegerField(
        min_value=1, help_text="Days of each train window (the first one when anchored)."
    )
    test_days = serializers.IntegerField(min_value=1, help_text="Days of each test window.")
    step_days = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        default=None,
        help_text="Days between the starts of two test windows, >= test_days; default test_days.",
    )
    anchored = serializers.BooleanField(
        default=False, help_text="Train windows start at `start` and grow (true), or roll (false)."
    )
    rule = serializers.ChoiceField(
        choices=[(r, r) for r in RULES],
        default="best",
        help_text="How each fold's point is chosen on its train window: best (the best value of `statistic`) or "
        "plateau (the best mean over the point's neighbourhood of `radius` grid steps on each axis).",
    )
    radius = serializers.IntegerField(
        min_value=0, max_value=MAX_RADIUS, default=1, help_text="The plateau's grid steps on each side."
    )
    statistic = serializers.ChoiceField(
        choices=[(key, key) for key in STATISTICS_KEYS],
        default=HEADLINE_STATISTIC,
        help_text="The statistic each fold's point is chosen by: " + statistics_described(),
    )


class WalkForwardSummarySerializer(serializers.ModelSerializer[WalkForward]):
    """A walk-forward without its criteria and result (the list)."""

    instruments: serializers.SlugRelatedField[Instrument] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="coingecko_id"
    )

    class Meta:
        model = WalkForward
        fields = [
            "id",
            "name",
            "status",
            "progress_ratio",
            "error",
            "instruments",
            "start",
            "end",
            "starting_cash",
            "axes",
            "constraints",
            "statistic",
            "rule",
            "radius",
            "anchored",
            "train_days",
            "test_days",
            "step_days",
            "created_at",
            "duration_seconds",
        ]
        read_only_fields = fields


class WalkForwardSerializer(WalkForwardSummarySerializer):
    """A walk-forward with its criteria and result (docs/walk_forward.md): ``result.folds`` (each fold's days,
    chosen values, in-sample statistic and statistics, out-of-sample statistics, WFE), ``result.curve`` (the
    stitched out-of-sample account: time, equity, buy_and_hold, drawdown_ratio), ``result.statistics``
    (``out_of_sample`` and ``in_sample``), ``result.efficiency``, ``result.stability``, ``result.deflated_sharpe``
    (null for now). Empty until it is done."""

    result = serializers.JSONField(read_only=True)

    class Meta(WalkForwardSummarySerializer.Meta):
        fields = [*WalkForwardSummarySerializer.Meta.fields, "criteria", "result"]
        read_only_fields = fields


class WalkForwardViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[WalkForward]):
    """``/api/walk_forwards/``: start a walk-forward (POST), list and read one's own."""

    queryset = WalkForward.objects.none()  # typed for the schema; get_queryset gives the user's

    def get_queryset(self) -> QuerySet[WalkForward]:
        if self.action == "list":
            return walk_forwards_listed(self.request.user)
        return walk_forwards_for(self.request.user)

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action == "list":
            return WalkForwardSummarySerializer
        return WalkForwardSerializer

    @extend_schema(request=WalkForwardRequestSerializer, responses={201: WalkForwardSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Check the walk-forward and start it; 201 at once with status ``pending`` (poll ``GET
        /api/walk_forwards/<id>/``). It runs on the simulator's Celery queue, or without a broker in a background
        thread of the server, never in this request. 400 with field errors: bad windows (or windows longer than
        the days with data), bad axes or constraints, an unknown rule or statistic."""
        body = WalkForwardRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            record = walk_forward_create(
                request=data["request"],
                axes=data["axes"],
                constraints=data["constraints"],
                statistic=data["statistic"],
                rule=data["rule"],
                radius=data["radius"],
                anchored=data["anchored"],
                train_days=data["train_days"],
                test_days=data["test_days"],
                step_days=data["step_days"],
                created_by=request.user,
                name=data["name"],
            )
        except SimulationInputError as exc:
            raise ValidationError(exc.errors) from exc
        walk_forward_start(walk_forward=record)
        record.refresh_from_db()
        return Response(WalkForwardSerializer(record).data, status=status.HTTP_201_CREATED)
