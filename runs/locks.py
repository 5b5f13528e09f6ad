"""Run locks: at most one run of a step for one day and scope at a time, across processes and machines.

A run of the collect, open or close step holds :func:`run_lock` from before its ``run_started`` row to after its
``run_finished`` row. The key is ``"<step>:<as_of>:<scope>"``: scope ``all`` for a run over every active
instrument or enabled strategy, else what the run names (``bitcoin,ethereum``; ``strategies=3``), so the Celery
fan-out's one-instrument collect tasks do not wait for each other.

On PostgreSQL the lock is a session-level advisory lock (``pg_try_advisory_lock``) on the run's connection; on
SQLite (the embedded single-machine default) it is an ``fcntl.flock`` on a file in the system temp directory.
Either way the operating system or PostgreSQL releases it when the process dies, so a crash never leaves a day
locked. The lock never waits: a second run meets :class:`RunInProgressError` (HTTP 409) at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import IO

from django.db import Error as DatabaseDriverError
from django.db import connection

from barter_site.errors import ApplicationError
from runs.models import History, HistoryKind, Step

logger = logging.getLogger(__name__)

#: What a client should wait before asking again after a 409 ``RunInProgressError``, seconds.
RETRY_AFTER_SECONDS = 10


class RunInProgressError(ApplicationError):
    """Another run of the same step, day and scope holds the run lock.

    ``extra`` is ``{"step", "as_of", "lock", "run_id"}``; ``run_id`` is the run in progress, or None when the
    holder has taken the lock but not yet written its ``run_started`` row.
    """

    http_status = 409
    retryable = True
    retry_after_seconds = RETRY_AFTER_SECONDS


def run_lock_key(*, step: Step | str, as_of: date, scope: str = "all") -> str:
    """Return the lock key of a run, e.g. ``"open:2024-12-03:all"``; it is stored in ``run_started`` too.

    Args:
        step: the step (``collect``, ``open``, ``close``).
        as_of: the run's day (UTC).
        scope: ``all``, or what the run is limited to (see :func:`run_scope`).
    """
    return f"{step}:{as_of.isoformat()}:{scope}"


def run_scope(*, instruments: list[str] | None = None, strategy_ids: list[int] | None = None) -> str:
    """Return the scope part of a lock key: ``all``, or the sorted names the run is limited to.

    Args:
        instruments: the CoinGecko ids a run names, or None for every instrument.
        strategy_ids: the strategy ids a run names (replay), or None for every enabled strategy.
    """
    parts = []
    if instruments is not None:
        parts.append(",".join(sorted(set(instruments))))
    if strategy_ids is not None:
        parts.append("strategies=" + ",".join(str(s) for s in sorted(set(strategy_ids))))
    return ";".join(parts) or "all"


def runs_unfinished(*, key: str) -> list[History]:
    """Return the ``run_started`` rows of runs with lock ``key`` that have no ``run_finished`` row, newest first."""
    started = History.objects.filter(kind=HistoryKind.RUN_STARTED, payload__lock=key)
    finished = History.objects.filter(kind=HistoryKind.RUN_FINISHED, run_id__in=started.values("run_id"))
    return list(started.exclude(run_id__in=finished.values("run_id")).order_by("-created_at", "-id"))


@contextmanager
def run_lock(*, step: Step | str, as_of: date, scope: str = "all") -> Iterator[str]:
    """Hold the run lock of (``step``, ``as_of``, ``scope``) for the ``with`` block; yield its key.

    Args:
        step: the step being run.
        as_of: the run's day (UTC).
        scope: ``all`` or the run's limits (:func:`run_scope`).

    Yields:
        The lock key (:func:`run_lock_key`), to be stored in the run's ``run_started`` payload as ``lock``.

    Raises:
        RunInProgressError: another process or thread holds the lock now (nothing waits).
    """
    key = run_lock_key(step=step, as_of=as_of, scope=scope)
    release = _acquire_postgres(key) if connection.vendor == "postgresql" else _acquire_file(key)
    if release is None:
        raise _in_progress(step=str(step), as_of=as_of, key=key)
    try:
        yield key
    finally:
        release()


@contextmanager
def run_lock_try(key: str) -> Iterator[bool]:
    """Try the run lock ``key`` (as stored in ``run_started``) without waiting; yield whether it was taken.

    Taken, it is held for the ``with`` block: no run of that key can start meanwhile. Not taken, a live run holds
    it. The reaper uses it to tell a dead run (its lock free) from a live one whose beats are late.
    """
    release = _acquire_postgres(key) if connection.vendor == "postgresql" else _acquire_file(key)
    try:
        yield release is not None
    finally:
        if release is not None:
            release()


def _in_progress(*, step: str, as_of: date, key: str) -> RunInProgressError:
    try:
        running = runs_unfinished(key=key)
    except DatabaseDriverError:  # the message still helps without the id
        logger.warning("could not look up the run holding %s", key, exc_info=True)
        running = []
    run_id = str(running[0].run_id) if running else None
    which = f"run {run_id}" if run_id else "a run (its History rows are not written yet)"
    return RunInProgressError(
        f"another {step} run for {as_of.isoformat()} is in progress ({which}, lock {key!r}): wait for it to "
        f"finish (its summary will be in History) or retry in {RETRY_AFTER_SECONDS} s",
        extra={"step": step, "as_of": as_of.isoformat(), "lock": key, "run_id": run_id},
    )


def _key_bigint(key: str) -> int:
    """A stable signed 64-bit number for ``key`` (PostgreSQL's advisory lock key is a ``bigint``)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)


def _acquire_postgres(key: str) -> Callable[[], None] | None:
    number = _key_bigint(key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [number])
        (taken,) = cursor.fetchone()
    if not taken:
        return None

    def release() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [number])
        except DatabaseDriverError:
            # The connection is gone, and with it the session and its lock: nothing is left to release.
            logger.warning("could not release run lock %s: the connection is gone", key, exc_info=True)

    return release


def lock_file_path(key: str) -> Path:
    """Return the lock file of ``key`` on SQLite: named by a hash of the database file and the key.

    An in-memory database belongs to one process, so its lock files are that process's own (its pid is hashed).
    """
    name = str(connection.settings_dict["NAME"])
    in_memory = name == ":memory:" or "mode=memory" in name
    name = f"{name}#pid{os.getpid()}" if in_memory else str(Path(name).resolve())
    digest = hashlib.sha256(f"{name}\0{key}".encode())
    return Path(tempfile.gettempdir()) / f"barter-run-{digest.hexdigest()[:24]}.lock"


def _acquire_file(key: str) -> Callable[[], None] | None:
    path = lock_file_path(key)
    handle: IO[str] = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None

    def release() -> None:
        # The file stays: removing it would let a third process lock a new file while a second holds the old.
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    return release
