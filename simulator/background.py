"""Simulator work off the web request without a broker (the embedded mode: no ``REDIS_URL``).

With a broker, queued simulations and sweeps are Celery tasks on the simulator's own queue
(``BARTER_CELERY_SIMULATOR_QUEUE``). Without one, Celery would run them eagerly inside the request that started
them (a 10,000-point sweep kept one request busy for minutes), so they go to a small pool of background threads
of the server process instead: the request answers at once with the progress page, which polls as it does for
a Celery task. The pool is bounded (``BARTER_SIMULATOR_BACKGROUND_THREADS``), so many launches queue up rather
than start as many threads; ``0`` runs the work in the caller (the test settings).

Work that dies with the server process, running or still waiting in the pool, is failed by the reaper
(:func:`simulator.reaper.simulations_reap`) on the next start-up's first request: its heartbeat stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from barter_site.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def embedded() -> bool:
    """True when there is no broker: Celery runs tasks in-process (``CELERY_TASK_ALWAYS_EAGER``).

    Read from the project's Celery app (never Celery's per-thread fallback app), so a request thread answers
    the same as the main thread.
    """
    from barter_site.celery_app import app

    return bool(app.conf.task_always_eager)


def background_submit(
    work: Callable[[], object], *, what: str, beat: Callable[[], object]
) -> Future[None] | None:
    """Run ``work`` in a background thread of this process (or at once in the caller when the pool size is 0).

    ``work`` must record its own outcome (a failed status with the error); what escapes it is logged. The
    thread's database connection is closed when the work ends. From now until the work ends, ``beat`` is called
    every ``BARTER_HEARTBEAT_SECONDS`` (and once at once): work waiting in the pool lives only in this process's
    memory, so when the process dies its beats stop and the reaper fails it, even before it started.

    Args:
        work: the job, e.g. ``lambda: sweep_run_in_process(sweep_id=3)``.
        what: the job for the log (``"sweep 3"``).
        beat: marks the job's row alive (sets its ``heartbeat_at`` to now).

    Returns:
        The job's future, or None when it ran in the caller.
    """
    beat()
    beats = Heartbeat(beat, name=what).start()
    size = settings.BARTER_SIMULATOR_BACKGROUND_THREADS
    if size <= 0:
        _run(work, what, beats, close_connection=False)
        return None
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="barter-simulator")
        executor = _executor
    return executor.submit(_run, work, what, beats, close_connection=True)


def _run(work: Callable[[], object], what: str, beats: Heartbeat, *, close_connection: bool) -> None:
    try:
        work()
    except Exception:
        logger.exception("%s failed in the background", what)
    finally:
        beats.stop()
        if close_connection:
            connection.close()
