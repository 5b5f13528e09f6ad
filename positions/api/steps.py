"""REST API of the daily cycle's steps: the open and close endpoints."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from barter_site.api import STEP_ERROR_RESPONSES, StepView, SyncRequestSerializer
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from runs.api import RunSummarySerializer


class StepResultSerializer(serializers.Serializer[dict[str, object]]):
    """One line of an open or close step's summary."""

    strategy = serializers.CharField()
    instrument = serializers.CharField(allow_null=True)
    action = serializers.ChoiceField(choices=["opened", "closed", "none", "skipped"])
    reason = serializers.CharField()
    position_id = serializers.IntegerField(allow_null=True)
    price = serializers.CharField(allow_null=True)
    quantity = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class StepSummarySerializer(RunSummarySerializer):
    """The summary of an open or close run: the collect run's shape, with these results."""

    live = serializers.BooleanField(
        help_text="True for the live backends; False for a replay (manage.py replay), whose runs notify nobody."
    )
    results = StepResultSerializer(many=True)


class SyncNewTradesView(StepView):
    """``POST /api/sync_new_trades``: the open step."""

    service = staticmethod(sync_new_trades)

    @extend_schema(
        request=SyncRequestSerializer, responses={200: StepSummarySerializer, **STEP_ERROR_RESPONSES}
    )
    def post(self, request: Request) -> Response:
        """Open positions where enabled strategies' entry criteria held on the candle before ``as_of``.

        ``as_of`` must be today (UTC), the default; any other day is a 400 on ``as_of`` (past days are
        ``manage.py replay``'s). Instruments already handled today are reported ``skipped``."""
        return super().post(request)


class SyncClosePositionsView(StepView):
    """``POST /api/sync_close_positions``: the close step."""

    service = staticmethod(sync_close_positions)

    @extend_schema(
        request=SyncRequestSerializer, responses={200: StepSummarySerializer, **STEP_ERROR_RESPONSES}
    )
    def post(self, request: Request) -> Response:
        """Close positions whose exit rules fired through the candle before ``as_of``.

        ``as_of`` must be today (UTC), the default; risk exits of missed days are caught up at their levels."""
        return super().post(request)
