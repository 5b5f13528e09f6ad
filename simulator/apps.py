import threading
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import request_started


def _reap_simulations_when_due(**kwargs: Any) -> None:
    """Embedded mode (no broker, so no beat): fail lost simulations and sweeps on the first request and then
    now and then (:func:`barter_site.heartbeat.reap_on_request_when_due`)."""
    from barter_site.heartbeat import reap_on_request_when_due
    from simulator.reaper import simulations_reap

    reap_on_request_when_due("simulations", simulations_reap)


def engine_warm_in_background() -> threading.Thread:
    """Start a daemon thread that imports what a simulation runs and calls every compiled function of the engine
    once (``trading.engine.warmup``), so that the server's first simulation pays none of it.

    With Numba's on-disk cache warm this loads the machine code (about half a second); with an empty cache it
    compiles (several seconds), in the background either way: requests are served meanwhile, and one that needs
    the engine first waits for Numba's compiler lock instead of compiling again.

    Returns:
        The started thread.
    """

    def warm() -> None:
        import simulator.presenters
        import simulator.services.simulations  # noqa: F401 (imported for its cost, now rather than at a request)
        from trading.engine.warmup import warm as engine_warm

        engine_warm()

    thread = threading.Thread(target=warm, name="engine-warm-up", daemon=True)
    thread.start()
    return thread


class SimulatorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "simulator"

    def ready(self) -> None:
        """Reap on requests (embedded mode); warm the engine in the background when ``BARTER_ENGINE_WARM_AT_START``
        is on (``make run``)."""
        request_started.connect(_reap_simulations_when_due, dispatch_uid="simulator.reap_when_due")
        if settings.BARTER_ENGINE_WARM_AT_START:
            engine_warm_in_background()
