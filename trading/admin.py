"""Admin for strategies: criteria edited as indented JSON with every problem shown under the field, account
figures in the list, and "Enable" / "Disable" actions."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from barter_site.admin import BarterAdmin
from barter_site.permissions import TRADE_LIVE, may_trade_live, trade_live_check
from positions.accounts import account_open_positions_count, strategies_with_accounts, strategy_cash
from trading.engine.limits import MAX_DEPTH, json_depth
from trading.models import Portfolio, PortfolioStrategy, Strategy
from trading.strategies import strategies_set_enabled

#: Keys in the order CRITERIA.md writes them; PostgreSQL's jsonb keeps its own order (shortest key first),
#: so the form puts them back for people. Keys not listed follow in stored order.
_KEY_ORDER = {
    key: rank
    for rank, key in enumerate(
        [
            "version", "side", "params", "entry", "exit", "stop_loss_ratio", "take_profit_ratio", "trailing_stop_ratio",
            "max_holding_days", "sizing", "fee_rate", "slippage_ratio", "all", "any", "not", "left", "op", "right",
            "value", "indicator", "period", "source", "stddev", "fast", "slow", "signal", "shift", "method", "param",
        ]
    )
}  # fmt: skip


def _in_reading_order(value: Any) -> Any:
    """Return ``value`` with every object's keys in :data:`_KEY_ORDER` (a copy; lists keep their order)."""
    if isinstance(value, dict):
        ordered = sorted(value, key=lambda key: _KEY_ORDER.get(key, len(_KEY_ORDER)))
        # The named parameters keep the order they were written in (their names are the user's, not ours).
        return {key: value[key] if key == "params" else _in_reading_order(value[key]) for key in ordered}
    if isinstance(value, list):
        return [_in_reading_order(item) for item in value]
    return value


class CriteriaJSONField(forms.JSONField):
    """A criteria document as indented JSON, keys in reading order, in a monospace text area.

    A syntax error names its line and column; the criteria themselves are checked by the model field's validator
    (``trading.models.criteria_validate``), which lists every problem with its path under the field.
    """

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(_in_reading_order(value), indent=2, ensure_ascii=False, cls=self.encoder)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            try:
                document = json.loads(value, cls=self.decoder)
            except json.JSONDecodeError as exc:
                raise ValidationError(
                    "invalid JSON at line %(line)s, column %(column)s: %(reason)s",
                    code="invalid",
                    params={"line": exc.lineno, "column": exc.colno, "reason": exc.msg},
                ) from exc
            except RecursionError:  # deeper than Python's decoder goes: far beyond the limit
                document = None
            # Checked here, before Django's JSONField and the validator walk it recursively (trading.engine.limits).
            if document is None or json_depth(document, stop_after=MAX_DEPTH) > MAX_DEPTH:
                raise ValidationError(
                    "nested more than %(depth)s levels deep (objects and lists); simplify the criteria",
                    code="invalid",
                    params={"depth": MAX_DEPTH},
                )
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        """The posted text as typed when it is too deep to decode (Django's own would raise RecursionError)."""
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


if TYPE_CHECKING:
    _StrategyFormBase = forms.ModelForm[Strategy]
else:  # generic only in django-stubs: not subscriptable at run time
    _StrategyFormBase = forms.ModelForm


class StrategyAdminForm(_StrategyFormBase):
    """The strategy form, with :class:`CriteriaJSONField` for ``criteria``."""

    criteria = CriteriaJSONField(
        widget=forms.Textarea(
            attrs={"rows": 28, "cols": 90, "spellcheck": "false", "style": "font-family: monospace"}
        ),
        help_text=(
            'Trade criteria, format version 1 (JSON): "entry" and "exit" conditions, risk exits '
            "(stop_loss_ratio, take_profit_ratio, trailing_stop_ratio as fractions: 0.08 means 8 %), sizing, "
            "fee_rate and slippage_ratio. Each problem is listed with its path."
        ),
    )

    class Meta:
        model = Strategy
        fields = [
            "name",
            "description",
            "criteria",
            "instruments",
            "is_enabled",
            "starting_cash",
            "execution_backend",
            "exchange_id",
            "trading_enabled",
        ]

    #: The user of the request (set by :meth:`StrategyAdmin.get_form`), for the ``trade_live`` check.
    user: Any = None

    def clean_execution_backend(self) -> str:
        """Switching to or from ``exchange`` (or creating an exchange strategy) needs ``trading.trade_live``."""
        value: str = self.cleaned_data["execution_backend"]
        old = self.instance.execution_backend if self.instance.pk else ""
        if self.user is not None and value != old and not may_trade_live(self.user, backends=[value, old]):
            raise ValidationError(
                "%(value)s: the 'exchange' backend trades real money; choosing it (or leaving it) needs the "
                "permission %(perm)s",
                code="trade_live",
                params={"value": value, "perm": TRADE_LIVE},
            )
        return value


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


@admin.register(Strategy)
class StrategyAdmin(BarterAdmin):
    """Strategies with their cash and open positions (read in a constant number of queries)."""

    form = StrategyAdminForm
    list_display = [
        "name",
        "is_enabled",
        "instrument_list",
        "starting_cash_display",
        "cash",
        "open_positions",
        "updated_at",
    ]
    list_filter = ["is_enabled", "execution_backend", "trading_enabled"]
    search_fields = ["name", "description"]
    filter_horizontal = ["instruments"]
    readonly_fields = ["cash", "open_positions", "created_at", "updated_at"]
    actions = ["enable", "disable"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Strategy]:
        return strategies_with_accounts(super().get_queryset(request))

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user})

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """``change_strategy``, and ``trade_live`` too for an exchange strategy (without it: read-only)."""
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_trade_live(request.user, backends=[obj.execution_backend]))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """``delete_strategy``, and ``trade_live`` too for an exchange strategy."""
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or may_trade_live(request.user, backends=[obj.execution_backend]))

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """Django's list of what a delete takes, with ``trade_live`` named as missing when an exchange strategy
        is among ``objs`` (the bulk "delete selected" checks only ``delete_strategy`` otherwise)."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        if not may_trade_live(request.user, backends=[s.execution_backend for s in objs]):
            perms_needed = {*perms_needed, f"exchange strategies ({TRADE_LIVE})"}
        return deleted, model_count, perms_needed, protected

    def save_model(self, request: HttpRequest, obj: Strategy, form: Any, change: bool) -> None:
        """Save, refusing (403) what the form let through without ``trade_live`` (defence in depth)."""
        stored = form.initial.get("execution_backend", "") if change else ""
        trade_live_check(
            request.user, backends=[obj.execution_backend, stored], what=f"saving strategy {obj.name!r}"
        )
        super().save_model(request, obj, form, change)

    @admin.display(description="instruments")
    def instrument_list(self, obj: Strategy) -> str:
        return ", ".join(i.symbol for i in obj.instruments.all()) or "-"

    @admin.display(description="starting cash", ordering="starting_cash")
    def starting_cash_display(self, obj: Strategy) -> str:
        return _money(obj.starting_cash)

    @admin.display(description="cash")
    def cash(self, obj: Strategy) -> str:
        return "-" if obj.pk is None else _money(strategy_cash(obj))

    @admin.display(description="open positions", ordering="open_positions_count")
    def open_positions(self, obj: Strategy) -> int:
        return 0 if obj.pk is None else account_open_positions_count(obj)

    @admin.action(description="Enable (the daily cycle trades them)", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Strategy]) -> None:
        _trade_live_check_all(request, queryset, "enabling")
        changed = strategies_set_enabled(strategies=queryset, is_enabled=True)
        self.message_user(
            request, f"{changed} strateg{'y' if changed == 1 else 'ies'} enabled.", messages.SUCCESS
        )

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Strategy]) -> None:
        _trade_live_check_all(request, queryset, "disabling")
        changed = strategies_set_enabled(strategies=queryset, is_enabled=False)
        self.message_user(
            request, f"{changed} strateg{'y' if changed == 1 else 'ies'} disabled.", messages.SUCCESS
        )


def _trade_live_check_all(request: HttpRequest, strategies: QuerySet[Strategy], doing: str) -> None:
    """Refuse (403) an action on ``strategies`` that include an exchange strategy, without ``trade_live``."""
    exchange = strategies.filter(execution_backend=Strategy.ExecutionBackend.EXCHANGE)
    live = sorted(exchange.values_list("name", flat=True))
    if live:
        trade_live_check(
            request.user,
            backends=[Strategy.ExecutionBackend.EXCHANGE],
            what=f"{doing} {', '.join(map(repr, live))}",
        )


class PortfolioMembersFormSet(forms.BaseInlineFormSet):  # type: ignore[type-arg]
    """The members of a portfolio: their weights add up to at most 1 (a weight is a share of its equity)."""

    def clean(self) -> None:
        """Weights add up to at most 1; a strategy joins or leaves only without open positions of another
        account (its open positions' cash is that account's: close them first)."""
        super().clean()
        total = Decimal(0)
        portfolio = self.instance
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            strategy = data.get("strategy")
            if not data or strategy is None:
                continue
            held = strategy.positions.filter(status="open")
            if data.get("DELETE"):
                if portfolio.pk is not None and held.filter(portfolio=portfolio).exists():
                    raise ValidationError(
                        f"{strategy.name} holds open positions bought with this portfolio's cash: close them "
                        "before it leaves"
                    )
                continue
            others = held if portfolio.pk is None else held.exclude(portfolio=portfolio)
            if others.exists():
                form.add_error(
                    "strategy",
                    f"{strategy.name} holds open positions of its own account: close them before it joins "
                    "(a portfolio's members spend its cash)",
                )
            if data.get("weight") is not None:
                total += data["weight"]
        if total > 1:
            raise ValidationError(f"the members' weights add up to {total.normalize():f}; at most 1")


if TYPE_CHECKING:  # the stubs make the inline generic (child and parent model)
    _MemberInline = admin.TabularInline[PortfolioStrategy, Portfolio]
else:
    _MemberInline = admin.TabularInline


class PortfolioMemberInline(_MemberInline):
    """A portfolio's strategies and their weights (docs/portfolios.md)."""

    model = PortfolioStrategy
    formset = PortfolioMembersFormSet
    extra = 3
    fields = ("strategy", "weight", "order")


@admin.register(Portfolio)
class PortfolioAdmin(BarterAdmin):
    """Portfolios: strategies with weights on one account's cash, and the portfolio's own risk limits. A member
    on an exchange makes the portfolio trade real money: changing it needs ``trading.trade_live`` too."""

    list_display = ["name", "is_enabled", "members_display", "starting_cash", "updated_at"]
    list_filter = ["is_enabled"]
    search_fields = ["name", "description"]
    inlines = [PortfolioMemberInline]
    readonly_fields = ["deploy_link"]

    @admin.display(description="deploy winners")
    def deploy_link(self, obj: Portfolio) -> str:
        """A link to the simulator's "Deploy winners" page of this portfolio (weights proposed from runs)."""
        if obj.pk is None:
            return "-"
        return format_html(
            '<a href="{}" id="deploy-winners-link">Propose weights from runs</a> (the simulator\'s "Deploy '
            'winners": 1 for winners and 0 for losers by a statistic, proportional, or inverse volatility)',
            reverse("simulator:portfolio_deploy", args=[obj.pk]),
        )

    @admin.display(description="members")
    def members_display(self, obj: Portfolio) -> str:
        return (
            ", ".join(f"{m.strategy.name} {m.weight:.0%}" for m in obj.members.select_related("strategy"))
            or "-"
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Save the members, refusing (403) an exchange member without ``trade_live`` (real money)."""
        backends = [
            f.cleaned_data["strategy"].execution_backend
            for formset in formsets
            for f in formset.forms
            if getattr(f, "cleaned_data", None) and f.cleaned_data.get("strategy") is not None
        ]
        backends += [m.strategy.execution_backend for m in form.instance.members.select_related("strategy")]
        trade_live_check(request.user, backends=backends, what=f"changing portfolio {form.instance.name!r}")
        super().save_related(request, form, formsets, change)
