"""What the API endpoints of every app share: :class:`StrictSerializer` (unknown keys are a 400), and the step
endpoints' :class:`StepView` with its request body and error answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from barter_site.permissions import RunSteps


class StrictSerializer(serializers.Serializer[Any]):
    """A serializer that refuses unknown keys, so a typo ("instrument") is a 400, not silently ignored."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if isinstance(self.initial_data, dict):
            unknown = sorted(set(self.initial_data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        key: [f"unknown field; expected one of {', '.join(sorted(self.fields))}"]
                        for key in unknown
                    }
                )
        return attrs


class SyncRequestSerializer(StrictSerializer):
    """Optional body of the sync endpoints: ``{"as_of": "YYYY-MM-DD", "instruments": ["bitcoin"]}``."""

    as_of = serializers.DateField(
        required=False, help_text="UTC date; days before it are processed. Default: today (UTC)."
    )
    instruments = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        allow_empty=False,
        help_text="CoinGecko coin ids. Default: every active instrument.",
    )


class RunInProgressSerializer(serializers.Serializer[Any]):
    """409: another run of this step for this day (and scope) holds the run lock; ``Retry-After`` says when to
    ask again. ``run_id`` is null in the instant before that run wrote its ``run_started`` row."""

    error = serializers.CharField(help_text="RunInProgressError")
    message = serializers.CharField()
    step = serializers.CharField()
    as_of = serializers.DateField()
    lock = serializers.CharField(help_text="The run lock's key, e.g. open:2024-12-03:all.")
    run_id = serializers.UUIDField(allow_null=True)


class ServiceUnavailableSerializer(serializers.Serializer[Any]):
    """503: the database is unreachable or dropped the connection; what was committed is kept (``Retry-After``)."""

    error = serializers.CharField(help_text="DatabaseUnavailable")
    message = serializers.CharField()


#: The answers every cycle step endpoint may give besides its summary.
STEP_ERROR_RESPONSES = {409: RunInProgressSerializer, 503: ServiceUnavailableSerializer}


class StepView(APIView):
    """A cycle step endpoint: parse the optional body ``{"as_of", "instruments"}``, call ``service``, answer
    its summary. Subclasses set ``service`` and document ``post`` for the schema."""

    service: Callable[..., dict[str, Any]]
    # The three daily steps: trading.run_steps (the cycle token's only permission), 403 without it.
    permission_classes = [RunSteps]

    def post(self, request: Request) -> Response:
        body = SyncRequestSerializer(data=request.data if request.data else {})
        body.is_valid(raise_exception=True)
        summary = type(self).service(
            as_of=body.validated_data.get("as_of"), instruments=body.validated_data.get("instruments")
        )
        return Response(summary)
