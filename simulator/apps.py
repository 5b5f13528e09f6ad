from typing import Any

from django.apps import AppConfig
from django.core.signals import request_started


def _reap_simulations_when_due(**kwargs: Any) -> None:
    """Embedded mode (no broker, so no beat): fail lost simulations and sweeps on the first request and then
    now and then (:func:`barter_site.heartbeat.reap_on_request_when_due`)."""
    from barter_site.heartbeat import reap_on_request_when_due
    from simulator.reaper import simulations_reap

    reap_on_request_when_due("simulations", simulations_reap)


class SimulatorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "simulator"

    def ready(self) -> None:
        request_started.connect(_reap_simulations_when_due, dispatch_uid="simulator.reap_when_due")
