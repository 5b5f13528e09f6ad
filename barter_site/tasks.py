"""What the Celery tasks of every app share: the options of the idempotent step tasks, and the retry of a task
refused the run lock (:func:`retry_when_locked`)."""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task

from barter_site.errors import ApplicationError

logger = logging.getLogger(__name__)

#: How many times a step task refused the run lock (``RunInProgressError``) asks again before giving up.
RUN_LOCK_MAX_RETRIES = 12
#: The first retry's wait and the longest one, seconds (the wait doubles each retry, with jitter).
RUN_LOCK_RETRY_BASE_SECONDS = 1.0
RUN_LOCK_RETRY_MAX_SECONDS = 60.0
#: Options of the idempotent step tasks: acknowledged when finished, and put back in the queue when the worker
#: process running them dies, so another process runs them again (settings: CELERY_TASK_ACKS_LATE,
#: BARTER_CELERY_VISIBILITY_TIMEOUT_SECONDS).
REDELIVERED_WHEN_LOST: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True}


def run_lock_countdown_seconds(retries: int) -> float:
    """Return how long a task refused the run lock waits before retry ``retries + 1``, seconds.

    ``base * 2 ** retries`` capped at :data:`RUN_LOCK_RETRY_MAX_SECONDS`, times a random factor in [0.5, 1]
    so that the losers of one race do not all come back at the same moment.

    Args:
        retries: the retries made so far (Celery's ``request.retries``, from 0).
    """
    ceiling: float = min(RUN_LOCK_RETRY_BASE_SECONDS * 2**retries, RUN_LOCK_RETRY_MAX_SECONDS)
    return ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography


def retry_when_locked(task: Task[..., Any], exc: ApplicationError) -> Exception:
    """Return the ``Retry`` to raise for a task refused the run lock (the run in progress does the work).

    When it runs again the run in progress has finished, so it finds nothing left to do (candles stored,
    strategies ``skipped``) and the chain goes on. After :data:`RUN_LOCK_MAX_RETRIES` the error itself is
    raised.

    Args:
        task: the bound task.
        exc: the refusal (a ``runs.locks.RunInProgressError``).
    """
    countdown = run_lock_countdown_seconds(task.request.retries)
    logger.info("%s: %s; retrying in %.1f s", task.name, exc.message, countdown)
    return task.retry(exc=exc, countdown=countdown, max_retries=RUN_LOCK_MAX_RETRIES)
