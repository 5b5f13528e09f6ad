"""The trading app's configuration: at a server's start, the engine's compiled code can be loaded ahead of use."""

import threading

from django.apps import AppConfig
from django.conf import settings


def engine_warm_in_background() -> threading.Thread:
    """Start a daemon thread that calls every compiled function of the engine once (``trading.engine.warmup``).

    With Numba's on-disk cache warm this loads the machine code (about half a second); with an empty cache it
    compiles (several seconds), in the background either way: requests are served meanwhile, and one that needs
    the engine first waits for Numba's compiler lock instead of compiling again.

    Returns:
        The started thread.
    """

    def warm() -> None:
        from trading.engine.warmup import warm as engine_warm

        engine_warm()

    thread = threading.Thread(target=warm, name="engine-warm-up", daemon=True)
    thread.start()
    return thread


class TradingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "trading"

    def ready(self) -> None:
        """Warm the engine in the background when ``BARTER_ENGINE_WARM_AT_START`` is on (``make run``)."""
        if settings.BARTER_ENGINE_WARM_AT_START:
            engine_warm_in_background()
