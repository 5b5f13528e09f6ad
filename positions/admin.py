"""Admin of the positions app: positions, with the "Close
now" action (:func:`positions.cycle.manual.position_close_manual`) and their exchange orders; the orders
(read-only: the cycle writes them); the daily audits (read-only: ``audit_day`` writes them)."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from barter_site.admin import ReadOnlyAdmin
from barter_site.errors import ApplicationError
from barter_site.permissions import trade_live_check
from positions.cycle.manual import position_close_manual
from positions.cycle.replay import strategy_short_name
from positions.models import LimitState, Order, Position, StrategyAudit
from trading.models import Strategy

if (
    TYPE_CHECKING
):  # the stubs make the inline generic (child and parent model); Django's class is not subscriptable
    _OrderInline = admin.TabularInline[Order, Position]
else:
    _OrderInline = admin.TabularInline


class PositionOrderInline(_OrderInline):
    """The exchange orders of a position (entry, stops, exit), read-only."""

    model = Order
    fk_name = "position"
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "purpose",
        "side",
        "type",
        "quantity",
        "price",
        "status",
        "filled_quantity",
        "average_price",
        "fee",
        "fee_currency",
        "other_fees",
        "client_order_id",
    )
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    """Positions, read-only (the cycle writes them), with a "Close now" action for open ones."""

    # Side and protection are filters, not columns: the list fits a 1,400 px screen.
    list_display = [
        "id",
        "strategy_name",
        "instrument",
        "status",
        "quantity",
        "entry_at",
        "entry_price",
        "exit_at",
        "exit_price",
        "exit_reason",
        "pnl",
        "pnl_pct",
    ]
    list_filter = ["status", "side", "protection", "strategy", "instrument", "exit_reason"]
    list_select_related = ["strategy", "instrument"]
    date_hierarchy = "entry_at"
    actions = ["close_now"]
    inlines = [PositionOrderInline]

    @admin.display(description="strategy", ordering="strategy__name")
    def strategy_name(self, obj: Position) -> str:
        return strategy_short_name(obj.strategy.name)

    @admin.display(description="pnl %", ordering="pnl_ratio")
    def pnl_pct(self, obj: Position) -> str:
        return "-" if obj.pnl_ratio is None else f"{obj.pnl_ratio * 100:.2f} %"

    def has_close_permission(self, request: HttpRequest) -> bool:
        """Closing a position changes it: only users who may change positions (superusers) may."""
        return request.user.has_perm("positions.change_position")

    @admin.action(description="Close now (at the current price; exit reason manual)", permissions=["close"])
    def close_now(self, request: HttpRequest, queryset: QuerySet[Position]) -> None:
        live = queryset.filter(strategy__execution_backend=Strategy.ExecutionBackend.EXCHANGE)
        if live.exists():  # real money: trade_live too, or nothing is closed (403)
            ids = ", ".join(str(pk) for pk in live.order_by("id").values_list("pk", flat=True))
            trade_live_check(
                request.user, backends=[Strategy.ExecutionBackend.EXCHANGE], what=f"closing position(s) {ids}"
            )
        for position in queryset.select_related("strategy", "instrument").order_by("id"):
            label = f"position {position.pk} ({position.strategy.name}, {position.instrument.symbol})"
            try:
                closed = position_close_manual(position=position)
            except ApplicationError as exc:
                self.message_user(request, f"{label}: not closed: {exc.message}", messages.ERROR)
                continue
            self.message_user(
                request,
                f"{label}: closed at {closed.exit_price:.2f}, pnl {closed.pnl:.2f} "
                f"({(closed.pnl_ratio or Decimal(0)) * 100:.2f} %)",
                messages.SUCCESS,
            )


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    """Orders, read-only (the cycle writes them): exchange orders with their state, fills and the exchange's raw
    answer, and paper positions' resting stop-loss and take-profit orders (exchange id `paper` or `replay`)."""

    # The exchange and the client order id are a filter and a search, not columns: the list fits 1,400 px.
    list_display = [
        "created_at",
        "strategy_name",
        "instrument",
        "purpose",
        "side",
        "type",
        "quantity",
        "price",
        "status",
        "filled_quantity",
        "average_price",
        "fee",
    ]
    list_filter = ["status", "purpose", "type", "exchange_id", "strategy"]
    list_select_related = ["strategy", "instrument"]
    search_fields = ["=client_order_id", "=exchange_order_id"]
    date_hierarchy = "created_at"

    @admin.display(description="strategy", ordering="strategy__name")
    def strategy_name(self, obj: Order) -> str:
        return strategy_short_name(obj.strategy.name)


@admin.register(LimitState)
class LimitStateAdmin(ReadOnlyAdmin):
    """Each strategy's risk-limit state (docs/criteria.md "Risk limits"), written by the open step; read-only,
    but deleting a row resets the strategy's limits (a drawdown halt ends, the peak is measured afresh), which
    needs ``positions.delete_limitstate``, and for a strategy on an exchange ``trading.trade_live`` too."""

    list_display = [
        "strategy",
        "as_of",
        "peak_equity",
        "last_equity",
        "day_start_equity",
        "halt_day",
        "drawdown_halt_since",
    ]
    list_select_related = ["strategy"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("positions.delete_limitstate")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[LimitState]) -> None:
        self._live_check(request, queryset)
        super().delete_queryset(request, queryset)

    def delete_model(self, request: HttpRequest, obj: LimitState) -> None:
        self._live_check(request, LimitState.objects.filter(pk=obj.pk))
        super().delete_model(request, obj)

    @staticmethod
    def _live_check(request: HttpRequest, queryset: QuerySet[LimitState]) -> None:
        if queryset.filter(strategy__execution_backend=Strategy.ExecutionBackend.EXCHANGE).exists():
            trade_live_check(
                request.user,
                backends=[Strategy.ExecutionBackend.EXCHANGE],
                what="resetting the risk limits of an exchange strategy",
            )


@admin.register(StrategyAudit)
class StrategyAuditAdmin(ReadOnlyAdmin):
    """The daily audit of each live strategy against the backtest (docs/audit.md), read-only: written by
    :func:`positions.audit.audit_day`."""

    list_display = [
        "strategy",
        "as_of",
        "signal_mismatches",
        "open_mismatches",
        "slippage_bps",
        "fee_drift",
        "cash_drift",
    ]
    list_filter = ["as_of"]
    list_select_related = ["strategy"]
    search_fields = ["strategy__name"]
    date_hierarchy = "as_of"
