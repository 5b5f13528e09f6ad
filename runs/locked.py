"""A run of the collect, open or close step under its run lock.

:func:`run_locked` takes the step's run lock (:mod:`runs.locks`), writes ``run_started`` with the lock key in its
payload (``"lock"``), and closes every earlier run of that key that never finished: such a run cannot be alive
(it would hold the lock), so it was interrupted (killed, or its database connection dropped), and it gets a
``run_finished`` row of status ``interrupted`` saying what it kept (:func:`runs.reaper.runs_interrupted_finish`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from django.db import InterfaceError, OperationalError

from barter_site.errors import database_unavailable
from runs.locks import run_lock
from runs.models import Step
from runs.reaper import KeptDescriber, candles_kept, runs_interrupted_finish
from runs.recorder import RunRecorder, run_start


@contextmanager
def run_locked(
    *,
    step: Step,
    as_of: date,
    scope: str,
    params: dict[str, Any],
    kept: KeptDescriber = candles_kept,
) -> Iterator[RunRecorder]:
    """Run a step under its run lock: lock, ``run_started``, close interrupted runs, then the ``with`` body.

    The ``run_started`` row is written before the interrupted runs are closed, so that a run refused the lock
    meanwhile names this run (the newest unfinished one) as the run in progress, not an interrupted one.

    Args:
        step: the step being run.
        as_of: the run's day (UTC).
        scope: ``all`` or what the run is limited to (:func:`runs.locks.run_scope`).
        params: the run's inputs, stored in ``run_started`` with ``"lock"`` added.
        kept: describes what an interrupted earlier run kept (:func:`runs.reaper.runs_interrupted_finish`).

    Yields:
        The run's recorder; the body must end it with :meth:`RunRecorder.finish`.

    Raises:
        RunInProgressError: another run holds the lock (nothing is recorded).
        DatabaseUnavailableError: the database is unreachable or dropped the connection; what committed
            before is kept, and the next run marks this one ``interrupted`` and completes the work.
    """
    recorder: RunRecorder | None = None
    try:
        with run_lock(step=step, as_of=as_of, scope=scope) as key:
            recorder = run_start(step=step, params={**params, "lock": key})
            runs_interrupted_finish(key=key, found_by=recorder, kept=kept)
            yield recorder
    except (OperationalError, InterfaceError) as exc:
        raise database_unavailable(exc, during=f"the {step} run for {as_of.isoformat()}") from exc
    finally:
        if recorder is not None:
            recorder.heartbeat_stop()  # finished, or left for the next run and the reaper
