"""Admin for ``History``: read-only, as the record is append-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from positions.models import History


@admin.register(History)
class HistoryAdmin(admin.ModelAdmin):
    """Every run and event, newest first; filter by step, kind and status, search by run id or message."""

    list_display = ["created_at", "step", "kind", "status", "instrument", "message", "run_id"]
    list_filter = ["step", "kind", "status"]
    search_fields = ["=run_id", "message"]
    date_hierarchy = "created_at"
    list_select_related = ["instrument"]
    readonly_fields = ["run_id", "step", "kind", "status", "created_at", "instrument", "message", "payload"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
