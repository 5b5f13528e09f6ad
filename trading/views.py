"""Pages of the trading app: the dashboard."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from trading.selectors_dashboard import dashboard_read


@require_safe
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """``GET /``: strategies' equity and return, open positions' unrealized P&L, the last runs of each step.

    Anonymous visitors are sent to the admin login (``LOGIN_URL``), which brings them back here.
    """
    return render(request, "dashboard.html", {"dashboard": dashboard_read()})
