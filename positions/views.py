"""Pages of the positions app: the dashboard."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from barter_site.permissions import may_view
from positions.selectors import dashboard_read

#: What the dashboard shows: strategies, their positions, and the last runs. It writes nothing.
DASHBOARD_MODELS = ("trading.Strategy", "positions.Position", "runs.History")


@require_safe
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """``GET /``: strategies' equity and return, open positions' unrealized P&L, the last runs of each step.

    Anonymous visitors are sent to the admin login (``LOGIN_URL``), which brings them back here; a logged-in
    user who may not read each of :data:`DASHBOARD_MODELS` (``view_`` or ``change_``, as the API's reads of the
    same rows) gets 403.
    """
    if not all(may_view(request.user, model) for model in DASHBOARD_MODELS):
        raise PermissionDenied(
            "the dashboard needs view (or change) permission on strategies, positions and history"
        )
    return render(request, "positions/dashboard.html", {"dashboard": dashboard_read()})
