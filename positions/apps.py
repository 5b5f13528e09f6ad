from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started


def _reap_runs_when_due(**kwargs: Any) -> None:
    """Embedded mode (no broker, so no beat): reap lost runs on the first request and then now and then."""
    from barter_site.heartbeat import reap_on_request_when_due
    from positions.history import runs_reap

    reap_on_request_when_due("runs", runs_reap)


class PositionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "positions"

    def ready(self) -> None:
        request_started.connect(_reap_runs_when_due, dispatch_uid="positions.reap_runs_when_due")
