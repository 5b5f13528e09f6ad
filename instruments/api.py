"""REST API of the instruments app: the collect endpoint, instruments and their candles."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from barter_site.api import STEP_ERROR_RESPONSES, StepView, StrictSerializer, SyncRequestSerializer
from barter_site.permissions import CandlePermissions, ModelPermissions
from instruments.collect import sync_data
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from runs.api import RunSummarySerializer


class SyncResultSerializer(serializers.Serializer[dict[str, object]]):
    """One instrument's line in a sync summary."""

    instrument = serializers.CharField()
    candles_added = serializers.IntegerField()
    candles_updated = serializers.IntegerField()
    days_missing = serializers.IntegerField()
    error = serializers.CharField(allow_null=True)


class SyncSummarySerializer(RunSummarySerializer):
    """The summary of a collect run."""

    results = SyncResultSerializer(many=True)


class SyncDataView(StepView):
    """``POST /api/sync_data``: the collect step."""

    service = staticmethod(sync_data)

    @extend_schema(
        request=SyncRequestSerializer, responses={200: SyncSummarySerializer, **STEP_ERROR_RESPONSES}
    )
    def post(self, request: Request) -> Response:
        """Add the missing completed daily candles of the active (or named) instruments up to ``as_of``."""
        return super().post(request)


class InstrumentSerializer(serializers.ModelSerializer[Instrument]):
    """An instrument."""

    class Meta:
        model = Instrument
        fields = [
            "id",
            "coingecko_id",
            "symbol",
            "name",
            "quote_currency",
            "is_active",
            "created_at",
            "updated_at",
        ]


class CandleSerializer(serializers.ModelSerializer[InstrumentOHLC]):
    """A candle; prices are decimal strings in the quote currency."""

    class Meta:
        model = InstrumentOHLC
        fields = ["open_time", "timeframe", "open", "high", "low", "close", "volume", "source"]


class CandleQuerySerializer(StrictSerializer):
    """Query of the candles endpoint."""

    timeframe = serializers.ChoiceField(choices=Timeframe.choices, default=Timeframe.D1)
    start = serializers.DateField(required=False, help_text="First UTC day included.")
    end = serializers.DateField(required=False, help_text="Last UTC day included.")
    page = serializers.IntegerField(required=False, min_value=1)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if attrs.get("start") and attrs.get("end") and attrs["start"] > attrs["end"]:
            raise serializers.ValidationError({"end": [f"must be on or after start ({attrs['start']})"]})
        return attrs


class InstrumentViewSet(viewsets.ReadOnlyModelViewSet[Any]):  # Any: instruments, and candles in `candles`
    """``GET /api/instruments/``, ``/api/instruments/{id}/`` and ``/api/instruments/{id}/candles/``."""

    queryset = Instrument.objects.order_by("coingecko_id")
    serializer_class = InstrumentSerializer
    permission_classes = [ModelPermissions]  # instruments.view_instrument

    @extend_schema(
        parameters=[
            OpenApiParameter("timeframe", OpenApiTypes.STR, enum=[t.value for t in Timeframe]),
            OpenApiParameter("start", OpenApiTypes.DATE),
            OpenApiParameter("end", OpenApiTypes.DATE),
        ],
        responses={200: CandleSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], permission_classes=[CandlePermissions])
    def candles(self, request: Request, pk: str | None = None, format: str | None = None) -> Response:
        """The instrument's candles, oldest first, paginated; ``start``/``end`` are inclusive UTC days."""
        instrument = self.get_object()
        query = CandleQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        candles = InstrumentOHLC.objects.for_instrument(instrument, query.validated_data["timeframe"])
        if start := query.validated_data.get("start"):
            candles = candles.filter(open_time__gte=datetime.combine(start, time(0), tzinfo=UTC))
        if end := query.validated_data.get("end"):
            candles = candles.filter(
                open_time__lt=datetime.combine(end, time(0), tzinfo=UTC) + timedelta(days=1)
            )
        page = self.paginate_queryset(candles.order_by("open_time"))
        return self.get_paginated_response(CandleSerializer(page, many=True).data)
