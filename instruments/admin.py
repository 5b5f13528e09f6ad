"""Admin for instruments (with a "sync now" action) and their candles (read-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Max, Q, QuerySet
from django.http import HttpRequest

from barter_site.admin import BarterAdmin, ReadOnlyAdmin
from instruments.collect import sync_data
from instruments.models import Instrument, InstrumentOHLC, Timeframe


@admin.register(Instrument)
class InstrumentAdmin(BarterAdmin):
    """Instruments with their daily candle count and last candle."""

    list_display = [
        "symbol",
        "coingecko_id",
        "name",
        "quote_currency",
        "is_active",
        "candle_source",
        "exchange_id",
        "market_symbol",
        "candle_count",
        "last_candle",
    ]
    list_filter = ["is_active", "quote_currency", "candle_source", "exchange_id"]
    search_fields = ["coingecko_id", "symbol", "name", "market_symbol"]
    actions = ["sync_now"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Instrument]:
        daily = {"candles__timeframe": Timeframe.D1}
        annotated: QuerySet[Instrument] = (
            super()
            .get_queryset(request)
            .annotate(
                _candle_count=Count("candles", filter=Q(**daily)),
                _last_candle=Max("candles__open_time", filter=Q(**daily)),
            )
        )
        return annotated

    @admin.display(description="daily candles", ordering="_candle_count")
    def candle_count(self, obj: Any) -> int:
        return int(obj._candle_count)

    @admin.display(description="last daily candle", ordering="_last_candle")
    def last_candle(self, obj: Any) -> str:
        last: datetime | None = obj._last_candle
        return last.date().isoformat() if last else "-"

    # The collect step changes instruments' candles: instruments.change_instrument (the action is hidden without).
    @admin.action(description="Sync now (collect missing daily candles)", permissions=["change"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Instrument]) -> None:
        summary = sync_data(instruments=list(queryset.values_list("coingecko_id", flat=True)))
        for result in summary["results"]:
            text = f"{result['instrument']}: {result['candles_added']} added, {result['candles_updated']} updated"
            if result["error"]:
                self.message_user(request, f"{text}; error: {result['error']}", messages.ERROR)
            else:
                self.message_user(request, text, messages.SUCCESS)


@admin.register(InstrumentOHLC)
class InstrumentOHLCAdmin(ReadOnlyAdmin):
    """Candles, read-only: they change only through sync and import."""

    list_display = [
        "instrument",
        "timeframe",
        "open_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "source",
    ]
    list_filter = ["timeframe", "instrument", "source"]
    date_hierarchy = "open_time"
    list_select_related = ["instrument"]
    show_full_result_count = False
