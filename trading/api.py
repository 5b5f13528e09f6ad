"""REST API of the trading cycle: the open and close endpoints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from instruments.api import SyncRequestSerializer
from positions.models import RunStatus
from trading.services import sync_close_positions, sync_new_trades


class StepResultSerializer(serializers.Serializer):
    """One line of an open or close step's summary."""

    strategy = serializers.CharField()
    instrument = serializers.CharField(allow_null=True)
    action = serializers.ChoiceField(choices=["opened", "closed", "none", "skipped"])
    reason = serializers.CharField()
    position_id = serializers.IntegerField(allow_null=True)
    price = serializers.CharField(allow_null=True)
    quantity = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class StepSummarySerializer(serializers.Serializer):
    """The summary of an open or close run (the same shape as ``/api/sync_data``'s, with these results)."""

    run_id = serializers.UUIDField()
    step = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    as_of = serializers.DateField()
    results = StepResultSerializer(many=True)
    errors = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]  # a field here


class _StepView(APIView):
    service: Callable[..., dict[str, Any]]

    def post(self, request: Request) -> Response:
        body = SyncRequestSerializer(data=request.data if request.data else {})
        body.is_valid(raise_exception=True)
        summary = type(self).service(
            as_of=body.validated_data.get("as_of"), instruments=body.validated_data.get("instruments")
        )
        return Response(summary)


class SyncNewTradesView(_StepView):
    """``POST /api/sync_new_trades``: the open step."""

    service = staticmethod(sync_new_trades)

    @extend_schema(request=SyncRequestSerializer, responses={200: StepSummarySerializer})
    def post(self, request: Request) -> Response:
        """Open positions where enabled strategies' entry criteria held on the candle before ``as_of``."""
        return super().post(request)


class SyncClosePositionsView(_StepView):
    """``POST /api/sync_close_positions``: the close step."""

    service = staticmethod(sync_close_positions)

    @extend_schema(request=SyncRequestSerializer, responses={200: StepSummarySerializer})
    def post(self, request: Request) -> Response:
        """Close positions whose exit rules fired through the candle before ``as_of``."""
        return super().post(request)
