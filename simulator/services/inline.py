"""Simulations run inside a web request: a few slots a process, and the memory given back afterwards."""

from __future__ import annotations

import ctypes
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from barter_site.errors import ApplicationError


class SimulatorBusyError(ApplicationError):
    """Every inline simulation slot of this process is taken (``BARTER_SIMULATOR_INLINE_CONCURRENCY``): nothing
    was run or saved; try again in a few seconds."""

    http_status = 503
    retryable = True
    retry_after_seconds = 5


_slots_guard = threading.Lock()


_slots: dict[int, threading.BoundedSemaphore] = {}


#: After an inline simulation that read more daily candles than this, a full garbage collection runs before the
#: heap is returned: the engine's arrays of a large run sit in reference cycles until one (measured by
#: benchmarks/abuse.py: 405-409 MB peak per worker without it, 355-367 MB with it). It costs 0.1-0.3 s, small
#: beside such a run's seconds and too much for the small runs' 25 ms.
COLLECT_AFTER_CANDLES = 20_000


@contextmanager
def inline_slot(*, candles: int = 0) -> Iterator[None]:
    """Hold one of the ``BARTER_SIMULATOR_INLINE_CONCURRENCY`` slots of this process while a simulation runs
    inside a web request, or refuse at once; afterwards give the freed memory back.

    A gunicorn worker has a few threads (``gunicorn.conf.py``); were all of them simulating, ``/healthz`` and
    every page would wait behind the simulations (fly's check gives up after 5 s), and each simulation adds its
    memory to the worker's. The slots keep threads free and the worker's peak memory bounded; a request beyond
    them gets a 503 with ``Retry-After`` instead of a wait.

    Args:
        candles: how many daily candles the simulation reads (above :data:`COLLECT_AFTER_CANDLES`, a full
            garbage collection follows it).

    Raises:
        SimulatorBusyError: no slot is free.
    """
    size = max(1, int(settings.BARTER_SIMULATOR_INLINE_CONCURRENCY))
    with _slots_guard:
        slots = _slots.setdefault(size, threading.BoundedSemaphore(size))
    if not slots.acquire(blocking=False):
        raise SimulatorBusyError(
            f"the simulator is running {size} simulation(s) in this process already, its limit "
            "(BARTER_SIMULATOR_INLINE_CONCURRENCY); nothing was run: try again in a few seconds",
            extra={"retryable": True},
        )
    try:
        yield
    finally:
        slots.release()
        _memory_return(collect=candles > COLLECT_AFTER_CANDLES)


def _memory_return(*, collect: bool) -> None:
    """Give the heap a simulation freed back to the operating system (glibc's ``malloc_trim``), so a worker's
    resident memory falls back between simulations instead of staying at its peak (threads' malloc arenas keep
    it otherwise); does nothing where the C library has no ``malloc_trim``.

    Args:
        collect: run a full garbage collection first (see :data:`COLLECT_AFTER_CANDLES`).
    """
    if collect:
        gc.collect()
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
