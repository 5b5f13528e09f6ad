"""REST API of the runs app: ``GET /api/history/`` (the append-only ``History``) and the run summary every step
endpoint returns."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from barter_site.api import StrictSerializer
from barter_site.permissions import ModelPermissions
from runs.models import History, RunStatus, Step


class RunSummarySerializer(serializers.Serializer[Any]):
    """The summary every step endpoint returns, and ``History`` keeps in the run's ``run_finished`` row.

    Subclasses declare ``results`` (what one line of this step says).
    """

    run_id = serializers.UUIDField()
    step = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    as_of = serializers.DateField()
    errors = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]  # a field here


class HistorySerializer(serializers.ModelSerializer[History]):
    """One history row; ``instrument`` is null for rows about a whole run."""

    # SlugRelatedField[Instrument] in the instruments app: Any here, as runs imports no app above it.
    instrument: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="coingecko_id", read_only=True, allow_null=True
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
class HistoryViewSet(viewsets.ReadOnlyModelViewSet[History]):
    """``GET /api/history/?run_id=&step=``: newest first, paginated."""

    serializer_class = HistorySerializer
    queryset = History.objects.all()  # names the model for ModelPermissions; rows come from get_queryset()
    permission_classes = [ModelPermissions]  # runs.view_history

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
