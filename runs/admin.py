"""Admin for ``History``: read-only, as the record is append-only."""

from __future__ import annotations

from django.contrib import admin

from barter_site.admin import ReadOnlyAdmin
from runs.models import History


@admin.register(History)
class HistoryAdmin(ReadOnlyAdmin):
    """Every run and event, newest first; filter by step, kind and status, search by run id or message."""

    list_display = ["created_at", "step", "kind", "status", "instrument", "message", "run_id"]
    list_filter = ["step", "kind", "status"]
    search_fields = ["=run_id", "message"]
    date_hierarchy = "created_at"
    list_select_related = ["instrument"]
    readonly_fields = ["run_id", "step", "kind", "status", "created_at", "instrument", "message", "payload"]
