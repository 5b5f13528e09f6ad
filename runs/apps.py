"""The runs app: the journal every step writes (``History``), run locks, and the reaper of lost runs."""

from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started


def _reap_runs_when_due(**kwargs: Any) -> None:
    """Embedded mode (no broker, so no beat): reap lost runs on the first request and then now and then."""
    from barter_site.heartbeat import reap_on_request_when_due
    from runs.reaper import runs_reap

    reap_on_request_when_due("runs", runs_reap)


class RunsConfig(AppConfig):
    """``runs``: the bottom app (it imports only ``barter_site``)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "runs"

    def ready(self) -> None:
        """Reap lost runs on requests when no Celery beat does
        (:func:`barter_site.heartbeat.reap_on_request_when_due`)."""
        request_started.connect(_reap_runs_when_due, dispatch_uid="runs.reap_runs_when_due")
