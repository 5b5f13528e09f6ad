"""REST API of strategies: list, read, create and change them (never delete: positions and history refer to
them; disable one instead)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets

from barter_site.permissions import ModelPermissions, TradeLiveObjects, trade_live_check
from instruments.models import Instrument
from instruments.precision import (
    AMOUNT_DECIMAL_PLACES,
    AMOUNT_MAX_DIGITS,
)
from positions.accounts import account_open_positions_count, strategies_with_accounts, strategy_cash
from trading.models import Strategy, criteria_validate, strategy_backend_change_check

#: Renders read-only money like the model's money fields (a decimal string at the stored precision).
_MONEY = serializers.DecimalField(
    max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, read_only=True
)


class _InstrumentIdField(serializers.SlugRelatedField[Instrument]):
    """An instrument by CoinGecko id; text PostgreSQL cannot hold (a NUL character) is refused before the query."""

    def to_internal_value(self, data: Any) -> Instrument:
        if isinstance(data, str) and "\x00" in data:
            raise serializers.ValidationError(
                f"unknown instrument {data!r}: a CoinGecko id has no NUL character"
            )
        instrument: Instrument = super().to_internal_value(data)
        return instrument


class StrategySerializer(serializers.ModelSerializer[Strategy]):
    """A strategy. ``criteria`` is a criteria document (format version 1); ``instruments`` are CoinGecko ids;
    ``cash`` (quote currency, decimal string) and ``open_positions`` (count) are read-only."""

    criteria = serializers.JSONField(
        help_text="Trade criteria, format version 1; each problem is reported with its path.",
        validators=[criteria_validate],  # the model's own validator: one message per problem, with its path
    )
    instruments = _InstrumentIdField(
        many=True,
        slug_field="coingecko_id",
        queryset=Instrument.objects.all(),
        required=False,
        error_messages={
            "does_not_exist": "unknown instrument {value!r}: use the CoinGecko id of a stored instrument "
            "(GET /api/instruments/)"
        },
    )
    cash = serializers.SerializerMethodField(help_text="Free cash of the paper account, quote currency.")
    open_positions = serializers.SerializerMethodField(help_text="How many positions are open.")

    class Meta:
        model = Strategy
        fields = [
            "id",
            "name",
            "description",
            "criteria",
            "instruments",
            "is_enabled",
            "starting_cash",
            "execution_backend",
            "created_at",
            "updated_at",
            "cash",
            "open_positions",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate_starting_cash(self, value: Decimal) -> Decimal:
        """Refuse a starting cash of zero or less (the account needs money to trade with)."""
        if value <= 0:
            raise serializers.ValidationError(f"must be > 0, was {value.normalize():f}")
        return value

    def validate_execution_backend(self, value: str) -> str:
        """Refuse a switch to or from ``exchange`` without ``trading.trade_live`` (403), ``exchange`` for a
        strategy without an exchange account (set it up in the admin), and any switch while positions are open."""
        request = self.context.get("request")
        old = getattr(self.instance, "execution_backend", None)
        if request is not None and value != old:
            what = (
                f"switching strategy {self.instance.name!r} to {value!r}"
                if self.instance
                else "creating a strategy"
            )
            trade_live_check(request.user, backends=[value, old or ""], what=what)
        if self.instance is not None:
            strategy_backend_change_check(strategy=self.instance, execution_backend=value)
        exchange_id = getattr(self.instance, "exchange_id", "")
        if value == Strategy.ExecutionBackend.EXCHANGE and not exchange_id:
            raise serializers.ValidationError(
                "'exchange' needs the strategy's exchange_id (its exchange account): set it in the admin; was unset"
            )
        return value

    @extend_schema_field(_MONEY)
    def get_cash(self, obj: Strategy) -> str:
        return str(_MONEY.to_representation(strategy_cash(obj)))

    @extend_schema_field(serializers.IntegerField())
    def get_open_positions(self, obj: Strategy) -> int:
        return account_open_positions_count(obj)


class StrategyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[Strategy],
):
    """``GET``/``POST /api/strategies/`` and ``GET``/``PATCH /api/strategies/{id}/``, by name, paginated."""

    serializer_class = StrategySerializer
    # view/add/change_strategy, and trading.trade_live on top for writes to an exchange strategy (or a switch to
    # the exchange: StrategySerializer.validate_execution_backend).
    permission_classes = [ModelPermissions, TradeLiveObjects]
    # PATCH only: a PUT would have to restate every field, and DELETE is refused (disable a strategy instead).
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[Strategy]:
        return strategies_with_accounts().order_by("name")
