"""Run a Python program with its clock set to a past moment: the subprocess twin of ``time_machine.travel``.

The live open and close steps act only for today (UTC), so a test that drives them in another process (gunicorn,
a Celery worker, ``manage.py``) over recorded 2024 data needs that process's "today" to be the recorded day::

    python -m tests.fakes.clock 2024-12-02T00:40:00+00:00 -m gunicorn barter_site.wsgi ...
    python -m tests.fakes.clock 2024-12-02T00:40:00+00:00 manage.py sync_new_trades

The clock starts at the given moment and runs on (``tick=True``); forked children (gunicorn's and Celery's
workers) inherit it. Only tests use this module; nothing in the application reads a fake time.
"""

from __future__ import annotations

import runpy
import sys
from datetime import datetime

import time_machine


def clock_command(now: datetime | str, *command: str) -> list[str]:
    """Return the argv that runs ``command`` (``-m module args...`` or ``script args...``) with its clock at ``now``.

    Args:
        now: an aware datetime, or its ISO 8601 text.
        command: what ``python`` would be given after the interpreter.
    """
    moment = now.isoformat() if isinstance(now, datetime) else now
    return [sys.executable, "-m", "tests.fakes.clock", moment, *command]


def main(argv: list[str]) -> None:
    """Travel to ``argv[0]`` and run the rest as ``python`` would (``-m module ...`` or ``script ...``)."""
    if len(argv) < 2:
        raise SystemExit("usage: python -m tests.fakes.clock ISO_DATETIME (-m MODULE | SCRIPT) [ARGS...]")
    moment = datetime.fromisoformat(argv[0])
    if moment.tzinfo is None:
        raise SystemExit(
            f"the moment must carry its UTC offset, e.g. 2024-12-02T00:40:00+00:00; was {argv[0]}"
        )
    time_machine.travel(moment, tick=True).start()
    if argv[1] == "-m":
        sys.argv = [argv[2], *argv[3:]]
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv[1:]
        runpy.run_path(argv[1], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
