"""Pages of the trading app: the dashboard."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from trading.selectors_dashboard import dashboard_read

#: What the dashboard shows: strategies, their positions, and the last runs (History). It writes nothing.
DASHBOARD_PERMISSIONS = ("trading.view_strategy", "positions.view_position", "positions.view_history")


@require_safe
@login_required
@permission_required(DASHBOARD_PERMISSIONS, raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    """``GET /``: strategies' equity and return, open positions' unrealized P&L, the last runs of each step.

    Anonymous visitors are sent to the admin login (``LOGIN_URL``), which brings them back here; a logged-in
    user without :data:`DASHBOARD_PERMISSIONS` (the API's reads of the same rows) gets 403.
    """
    return render(request, "dashboard.html", {"dashboard": dashboard_read()})
