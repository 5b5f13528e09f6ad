"""The embedded mode's sender (no broker: ``CELERY_TASK_ALWAYS_EAGER``): a few daemon threads of the server process
that make the attempts of deliveries, each at its time, so that no caller (a step, a request) ever waits on a
channel.

A job is an attempt function: it makes one attempt and returns the seconds to wait before the next one, or None
when the delivery is done (sent, failed for good, or gone). Each attempt runs with the thread's own database
connection, closed after it. The threads die with the process: a delivery left pending then is sent again by the
flush (:func:`notifications.services.deliveries_flush`) of a later request.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable

from django.db import connection

logger = logging.getLogger(__name__)

#: One attempt of a delivery: returns the seconds until the next attempt, or None when there is none.
Attempt = Callable[[Hashable], "float | None"]


class BackgroundSender:
    """Runs attempts in ``threads`` daemon threads, each job at its due time (a heap ordered by it).

    A job already waiting or running is not added twice (:meth:`submit` answers False), so a flush that finds a
    delivery this sender already holds does not attempt it twice at once.

    Args:
        attempt: the attempt function.
        threads: how many threads (>= 1), started on the first :meth:`submit`.
    """

    def __init__(self, attempt: Attempt, *, threads: int) -> None:
        self._attempt = attempt
        self._threads_wanted = max(1, threads)
        self._threads: list[threading.Thread] = []
        self._heap: list[tuple[float, int, Hashable]] = []
        self._order = itertools.count()
        self._held: set[Hashable] = set()
        self._changed = threading.Condition()

    def submit(self, job: Hashable, *, delay_seconds: float = 0.0) -> bool:
        """Attempt ``job`` in ``delay_seconds`` (then again as its attempts say). False when already held."""
        with self._changed:
            if job in self._held:
                return False
            self._held.add(job)
            heapq.heappush(self._heap, (time.monotonic() + delay_seconds, next(self._order), job))
            self._threads_start()
            self._changed.notify()
        return True

    def idle_wait(self, timeout_seconds: float) -> bool:
        """Wait until no job is waiting or running (at most ``timeout_seconds``); True when idle."""
        deadline = time.monotonic() + timeout_seconds
        with self._changed:
            while self._held:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def holds(self, job: Hashable) -> bool:
        """Whether ``job`` is waiting or running here."""
        with self._changed:
            return job in self._held

    def _threads_start(self) -> None:
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        while len(self._threads) < self._threads_wanted:
            thread = threading.Thread(
                target=self._run, name=f"notifications sender {len(self._threads) + 1}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _next(self) -> Hashable:
        """Wait for the earliest due job and take it off the heap."""
        with self._changed:
            while True:
                if self._heap:
                    due, _, job = self._heap[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        return job
                    self._changed.wait(wait)
                else:
                    self._changed.wait()

    def _run(self) -> None:
        while True:
            job = self._next()
            delay: float | None = None
            try:
                delay = self._attempt(job)
            except Exception:  # the database gone for a moment: the flush sends it later
                logger.warning(
                    "a notification attempt failed unexpectedly; the flush retries it", exc_info=True
                )
            finally:
                connection.close()
            with self._changed:
                if delay is None:
                    self._held.discard(job)
                else:
                    heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), job))
                self._changed.notify_all()
