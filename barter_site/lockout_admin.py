"""django-axes' records of failed logins and lockouts in the admin, read-only: they are evidence, written only
by axes. A lockout ends by itself after ``BARTER_LOGIN_FAILURES_WINDOW_SECONDS``; to lift one sooner, run
``manage.py axes_reset_username USERNAME`` (or ``axes_reset_ip ADDRESS``)."""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin

from barter_site.admin import ReadOnlyAdmin


class _ReadOnly(ReadOnlyAdmin):
    """Rows are shown, never added, changed or deleted; no bulk actions."""

    actions = None


class ReadOnlyAccessAttemptAdmin(_ReadOnly, AccessAttemptAdmin):  # type: ignore[misc]  # axes ships no type information
    """Failed logins counted per username and address (``failures_since_start``), read-only."""


class ReadOnlyAccessLogAdmin(_ReadOnly, AccessLogAdmin):  # type: ignore[misc]  # axes ships no type information
    """Logins and logouts axes logged (none while ``AXES_DISABLE_ACCESS_LOG``), read-only."""


class ReadOnlyAccessFailureLogAdmin(_ReadOnly, AccessFailureLogAdmin):  # type: ignore[misc]  # axes ships no type information
    """Every failed login with its address and whether it was locked out, read-only."""


for model, model_admin in (
    (AccessAttempt, ReadOnlyAccessAttemptAdmin),
    (AccessLog, ReadOnlyAccessLogAdmin),
    (AccessFailureLog, ReadOnlyAccessFailureLogAdmin),
):
    if not admin.site.is_registered(model):
        admin.site.register(model, model_admin)
