"""REST API of portfolio runs: ``/api/portfolio_simulations/`` (run one, list, read one with its results).

As ``/api/simulations/`` (:mod:`simulator.api`): any authenticated user, each sees their own (a superuser every
one; another's is a 404), field errors as a JSON 400. The request is checked by
:func:`simulator.services.portfolios.portfolio_request_check` and run by
:func:`simulator.launch.portfolio_simulation_start` (in the request when small, else queued). docs/portfolios.md.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.mixins import CreateModelMixin
from rest_framework.request import Request
from rest_framework.response import Response

from barter_site.api import StrictSerializer
from instruments.models import Timeframe
from simulator.launch import portfolio_simulation_start
from simulator.models import PortfolioSimulation
from simulator.selectors import portfolio_simulations_for, portfolio_simulations_listed
from simulator.services.portfolios import portfolio_request_check
from simulator.services.requests import SimulationInputError
from trading.engine.vocabulary import statistics_described


class PortfolioSimulationRequestSerializer(StrictSerializer):
    """``POST /api/portfolio_simulations/``: the strategies with their weights (or a saved portfolio), the days,
    the starting cash and the portfolio's own limits."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    strategies = serializers.JSONField(
        required=False,
        default=None,
        help_text='In portfolio order (entries at one boundary are made in this order): [{"strategy": id, '
        '"weight": 0.5}, ...]; weights add up to at most 1. Give this or `portfolio`.',
    )
    portfolio = serializers.JSONField(
        required=False,
        default=None,
        help_text="A saved portfolio's id: its members in its order, and its starting cash and limits where they "
        "are not given.",
    )
    start = serializers.DateField(help_text="First UTC day on which trades may happen.")
    end = serializers.DateField(help_text="Last UTC day (inclusive); what is open at its close is closed.")
    timeframe = serializers.ChoiceField(
        choices=Timeframe.choices, default=Timeframe.D1, help_text="1d only, for now."
    )
    starting_cash = serializers.DecimalField(
        max_digits=38,
        decimal_places=18,
        required=False,
        default=None,
        help_text="Quote currency; default the portfolio's, else 10000.",
    )
    limits = serializers.JSONField(
        required=False,
        default=None,
        help_text='The portfolio\'s own risk limits over every strategy (docs/criteria.md "Risk limits"), e.g. '
        '{"max_open_positions": 5}; default the portfolio\'s, else none.',
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            attrs["request"] = portfolio_request_check(
                strategies=attrs["strategies"],
                portfolio=attrs["portfolio"],
                start=attrs["start"],
                end=attrs["end"],
                timeframe=attrs["timeframe"],
                starting_cash=attrs["starting_cash"],
                limits=attrs["limits"],
            )
        except SimulationInputError as exc:
            raise serializers.ValidationError(exc.errors) from exc
        return attrs


class PortfolioSimulationSummarySerializer(serializers.ModelSerializer[PortfolioSimulation]):
    """A portfolio run without its curves, attribution and correlation (the list)."""

    members = serializers.JSONField(
        read_only=True,
        help_text='The strategies as they were when the run was made, in portfolio order: [{"strategy": id, '
        '"name", "weight", "criteria", "instruments": [CoinGecko ids]}].',
    )
    statistics = serializers.JSONField(
        read_only=True,
        help_text="The account's statistics by key (ratios are fractions; null where undefined), with coverage "
        "and ruined_at: " + statistics_described(),
    )

    class Meta:
        model = PortfolioSimulation
        fields = [
            "id",
            "name",
            "status",
            "progress_ratio",
            "error",
            "portfolio",
            "members",
            "start",
            "end",
            "timeframe",
            "starting_cash",
            "limits",
            "statistics",
            "created_at",
            "duration_seconds",
        ]
        read_only_fields = fields


class PortfolioSimulationSerializer(PortfolioSimulationSummarySerializer):
    """A portfolio run with its results (see :class:`simulator.models.PortfolioSimulation`)."""

    equity_curve = serializers.JSONField(
        read_only=True,
        help_text='The account at each candle\'s close: {"time": [seconds of each open], "equity", '
        '"buy_and_hold", "drawdown_ratio", "monthly_returns"}, quote currency.',
    )
    book_curves = serializers.JSONField(
        read_only=True,
        help_text="Each strategy's sleeve (its budget at the start plus its trades' P&L) at the same times: "
        '{"names", "values": [[...] per strategy]}.',
    )
    attribution = serializers.JSONField(
        read_only=True,
        help_text='One row a strategy: {"strategy", "name", "weight", "budget", "pnl", "return_on_budget_ratio", '
        '"exposure_ratio", "drawdown_contribution", "n_trades"}; amounts decimal strings (quote currency), ratios '
        "fractions. The drawdown contributions add up to the account's change from the peak to the trough of its "
        "deepest drawdown.",
    )
    correlation = serializers.JSONField(
        read_only=True,
        help_text='Pearson correlation of the strategies\' daily sleeve returns: {"names", "matrix"} (null where '
        "a strategy's returns do not vary).",
    )
    limits_report = serializers.JSONField(
        read_only=True,
        help_text='What the limits did: {"refused": {strategy: {limit: count}}, "refusals_total", "refusals": '
        '[{"at", "book", "symbol", "instrument", "limit"}] (the first 1,000), "halts": [{"at", "book" (null: the '
        'portfolio\'s own limits), "limit", "began", "equity", "reference_equity"}]}.',
    )

    class Meta(PortfolioSimulationSummarySerializer.Meta):
        fields = [
            *PortfolioSimulationSummarySerializer.Meta.fields,
            "equity_curve",
            "book_curves",
            "attribution",
            "correlation",
            "limits_report",
        ]
        read_only_fields = fields


class PortfolioSimulationViewSet(CreateModelMixin, viewsets.ReadOnlyModelViewSet[PortfolioSimulation]):
    """``/api/portfolio_simulations/``: run a portfolio (POST), list and read one's own runs."""

    queryset = PortfolioSimulation.objects.none()  # typed for the schema; get_queryset gives the user's runs

    def get_queryset(self) -> QuerySet[PortfolioSimulation]:
        if self.action == "list":
            return portfolio_simulations_listed(self.request.user)
        return portfolio_simulations_for(self.request.user)

    def get_serializer_class(self):  # type: ignore[no-untyped-def]
        if self.action == "list":
            return PortfolioSimulationSummarySerializer
        return PortfolioSimulationSerializer

    @extend_schema(
        request=PortfolioSimulationRequestSerializer, responses={201: PortfolioSimulationSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Run the strategies with their weights on one account's cash over the stored daily candles; 201 with the
        account's statistics and curve, each strategy's attribution and the correlation of their daily returns
        (status ``done``), or with status ``pending`` for a run large enough to go to a worker (poll the run).
        400 with field errors (``strategies[1].weight: ...`` under ``strategies``, ``limits.<limit>: ...`` under
        ``limits``)."""
        body = PortfolioSimulationRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record = portfolio_simulation_start(
            request=body.validated_data["request"], created_by=request.user, name=body.validated_data["name"]
        )
        record.refresh_from_db()
        return Response(PortfolioSimulationSerializer(record).data, status=status.HTTP_201_CREATED)
