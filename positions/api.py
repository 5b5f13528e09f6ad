"""REST API of the positions app: the append-only ``History``."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from instruments.api import StrictSerializer
from instruments.models import Instrument
from positions.models import History, Step


class HistorySerializer(serializers.ModelSerializer):
    """One history row."""

    instrument: serializers.SlugRelatedField[Instrument] = serializers.SlugRelatedField(
        slug_field="coingecko_id", read_only=True
    )

    class Meta:
        model = History
        fields = ["id", "run_id", "step", "kind", "status", "created_at", "instrument", "message", "payload"]


class HistoryQuerySerializer(StrictSerializer):
    """Filters of ``GET /api/history/``."""

    run_id = serializers.UUIDField(required=False)
    step = serializers.ChoiceField(choices=Step.choices, required=False)
    page = serializers.IntegerField(required=False, min_value=1)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("run_id", OpenApiTypes.UUID),
            OpenApiParameter("step", OpenApiTypes.STR, enum=[s.value for s in Step]),
        ]
    )
)
class HistoryViewSet(viewsets.ReadOnlyModelViewSet):
    """``GET /api/history/?run_id=&step=``: newest first, paginated."""

    serializer_class = HistorySerializer

    def get_queryset(self) -> QuerySet[History]:
        rows = History.objects.select_related("instrument").order_by("-created_at", "-id")
        if self.action != "list":
            return rows
        query = HistoryQuerySerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        if run_id := query.validated_data.get("run_id"):
            rows = rows.filter(run_id=run_id)
        if step := query.validated_data.get("step"):
            rows = rows.filter(step=step)
        return rows
