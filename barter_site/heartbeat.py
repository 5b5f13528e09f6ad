"""Heartbeats: a background thread that says "still working" every few seconds while a run, simulation or sweep
runs, so that the reaper can tell a run whose worker died (no beat for ``BARTER_HEARTBEAT_STALE_SECONDS``) from
one that is merely slow.

The thread dies with its process, which is the point: SIGKILL, an out-of-memory kill or a lost machine stop the
beats, and the reaper finishes the work's record as ``interrupted`` or ``failed`` with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


class Heartbeat:
    """Call ``beat`` every ``interval_seconds`` in a daemon thread from ``start()`` (or ``with``) to ``stop()``.

    ``beat`` runs in the thread with the thread's own database connection, closed when the thread ends. A beat
    that raises (the database busy or gone for a moment) is logged and the next one is tried: a missed beat is
    harmless as long as the next ones come before the stale limit.

    Args:
        beat: records the beat, e.g. ``lambda: Simulation.objects.filter(pk=1).update(heartbeat_at=now())``.
        name: what beats, for the thread's name and the log (``"simulation 12"``).
        interval_seconds: seconds between beats; None reads ``BARTER_HEARTBEAT_SECONDS``; 0 or less starts no
            thread (only the caller's own beats count then).
    """

    def __init__(
        self, beat: Callable[[], object], *, name: str, interval_seconds: float | None = None
    ) -> None:
        self._beat = beat
        self.name = name
        self.interval_seconds = (
            settings.BARTER_HEARTBEAT_SECONDS if interval_seconds is None else interval_seconds
        )
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        """Start beating (once); return self."""
        if self._thread is None and self.interval_seconds > 0:
            self._thread = threading.Thread(target=self._run, name=f"heartbeat {self.name}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and wait (briefly) for the thread to end. Safe to call more than once."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            while not self._stopped.wait(self.interval_seconds):
                try:
                    self._beat()
                except Exception:
                    logger.warning("heartbeat of %s failed; trying again", self.name, exc_info=True)
        finally:
            connection.close()


_due_lock = threading.Lock()
_last_run: dict[str, float] = {}


def reap_on_request_when_due(name: str, reap: Callable[[], object]) -> None:
    """Run ``reap`` in this process at most once every ``BARTER_REAPER_INTERVAL_SECONDS``, when no broker runs
    the reapers on Celery beat (the embedded mode: ``CELERY_TASK_ALWAYS_EAGER``). Connected to Django's
    ``request_started``, so the first request after start-up reaps what a killed server left running. A reaper
    that fails is logged and never fails the request.

    Args:
        name: the reaper, to keep one schedule per reaper (``"runs"``, ``"simulations"``).
        reap: the reaper; it only updates rows whose heartbeat is stale, so running it is cheap and safe.
    """
    from barter_site.celery_app import app

    if not (settings.BARTER_REAPER_ON_REQUEST and app.conf.task_always_eager):
        return
    now = time.monotonic()
    with _due_lock:
        last = _last_run.get(name)
        if last is not None and now - last < settings.BARTER_REAPER_INTERVAL_SECONDS:
            return
        _last_run[name] = now
    try:
        reap()
    except Exception:
        logger.warning("the %s reaper failed; it runs again later", name, exc_info=True)
