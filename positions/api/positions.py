"""REST API of the positions app: positions (read-only), each with its ``History``."""

from __future__ import annotations

from django.apps import apps
from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from barter_site.api import StrictSerializer
from barter_site.permissions import ModelPermissions
from instruments.models import Instrument
from positions.models import Position
from runs.api import HistorySerializer
from runs.models import History


class PositionSerializer(serializers.ModelSerializer[Position]):
    """A position. Money fields are decimal strings in the quote currency; ``pnl_ratio`` is a fraction (0.05 is
    +5 %); exit fields, ``pnl`` and ``pnl_ratio`` are null while the position is open."""

    strategy_name = serializers.CharField(source="strategy.name", read_only=True)
    instrument: serializers.SlugRelatedField[Instrument] = serializers.SlugRelatedField(
        slug_field="coingecko_id", read_only=True
    )

    class Meta:
        model = Position
        fields = [
            "id",
            "strategy",
            "strategy_name",
            "instrument",
            "side",
            "status",
            "quantity",
            "entry_price",
            "entry_at",
            "entry_fee",
            "exit_price",
            "exit_at",
            "exit_fee",
            "exit_reason",
            "stop_loss_price",
            "take_profit_price",
            "trailing_stop_price",
            "exits_checked_through",
            "pnl",
            "pnl_ratio",
            "created_at",
            "updated_at",
        ]


class PositionDetailSerializer(PositionSerializer):
    """A position with its ``history``: every history row about it, oldest first."""

    history = HistorySerializer(many=True, read_only=True, source="history_oldest_first")

    class Meta(PositionSerializer.Meta):
        fields = [*PositionSerializer.Meta.fields, "history"]


class PositionQuerySerializer(StrictSerializer):
    """Filters of ``GET /api/positions/``; ``strategy`` and ``instrument`` are resolved to ids (400 if unknown)."""

    status = serializers.ChoiceField(choices=Position.Status.choices, required=False)
    strategy = serializers.CharField(required=False, max_length=100, help_text="A strategy's id or name.")
    instrument = serializers.CharField(required=False, max_length=100, help_text="A CoinGecko id.")
    page = serializers.IntegerField(required=False, min_value=1)

    def validate_strategy(self, value: str) -> int:
        # Looked up through the app registry: positions sits below trading and does not import it.
        strategies = apps.get_model("trading", "Strategy")._default_manager
        found = None
        if value.isascii() and value.isdigit() and len(value) < 19:
            found = strategies.filter(pk=int(value)).values_list("pk", flat=True).first()
        if found is None:
            found = strategies.filter(name=value).values_list("pk", flat=True).first()
        if found is None:
            raise serializers.ValidationError(f"unknown strategy {value!r}: give a strategy's id or its name")
        return int(found)

    def validate_instrument(self, value: str) -> int:
        found = Instrument.objects.filter(coingecko_id=value).values_list("pk", flat=True).first()
        if found is None:
            raise serializers.ValidationError(
                f"unknown instrument {value!r}: give a stored instrument's CoinGecko id (GET /api/instruments/)"
            )
        return found


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=[s.value for s in Position.Status]),
            OpenApiParameter("strategy", OpenApiTypes.STR, description="A strategy's id or name."),
            OpenApiParameter("instrument", OpenApiTypes.STR, description="A CoinGecko id."),
        ]
    )
)
class PositionViewSet(viewsets.ReadOnlyModelViewSet[Position]):
    """``GET /api/positions/?status=&strategy=&instrument=``: newest entry first, paginated; and
    ``GET /api/positions/{id}/`` with the position's history."""

    queryset = Position.objects.all()  # names the model for ModelPermissions; rows come from get_queryset()
    permission_classes = [ModelPermissions]  # positions.view_position

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Position]]:
        return PositionDetailSerializer if self.action == "retrieve" else PositionSerializer

    def get_queryset(self) -> QuerySet[Position]:
        rows = Position.objects.select_related("strategy", "instrument").order_by("-entry_at", "-id")
        if self.action != "list":
            return rows.prefetch_related(
                Prefetch(
                    "history",
                    queryset=History.objects.select_related("instrument").order_by("created_at", "id"),
                    to_attr="history_oldest_first",
                )
            )
        query = PositionQuerySerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        if status := query.validated_data.get("status"):
            rows = rows.filter(status=status)
        if (strategy_id := query.validated_data.get("strategy")) is not None:
            rows = rows.filter(strategy_id=strategy_id)
        if (instrument_id := query.validated_data.get("instrument")) is not None:
            rows = rows.filter(instrument_id=instrument_id)
        return rows
