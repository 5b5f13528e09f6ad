"""gunicorn settings, read from the working directory (``/app`` in the image) when gunicorn starts.

The command line in ``fly.toml`` and the Dockerfile (bind, workers, ``--access-logfile -``) wins over these.
Everything gunicorn itself logs goes to stdout as one JSON object per line, like the app's own logs
(``barter_site/settings/production.py``); the access line of a request carries its request id.
"""

import logging
from collections.abc import Mapping

from barter_site.log_format import JSON_FORMATTER

# Threads per worker (gunicorn's gthread worker): a long sync call (CoinGecko, its rate limit) must not hold up
# /healthz or the dashboard, and it does not count against `timeout`, which restarts a worker process whose
# main loop has not reported for that many seconds.
threads = 4
timeout = 120
graceful_timeout = 30
# Bounded cost (docs/reliability.md): a worker is replaced after about 1,000 requests (the jitter spreads the
# restarts of the workers so they never restart together), so memory a request leaves behind (numpy's and
# TA-Lib's arenas after a large simulation, fragmentation) cannot build up over days. A restart costs about 1 s
# of one worker; the other keeps serving. /healthz stays fast under simulator load because simulations inside
# a request hold at most BARTER_SIMULATOR_INLINE_CONCURRENCY (2) of the 4 threads of a worker: the others serve
# /healthz and the pages, and a third simulation is answered 503 with Retry-After at once.
max_requests = 1000
max_requests_jitter = 100
# No gunicornc control socket: nothing uses it, and the image's app user has no home directory to put it in.
control_socket_disable = True
# The access line's message; AccessLogFields adds the same facts as separate JSON fields.
access_log_format = "%(m)s %(U)s %(s)s %(L)ss"


class AccessLogFields(logging.Filter):
    """Copy the facts of gunicorn's access line into fields of the log record.

    gunicorn logs an access line with its "atoms" (documented under ``access_log_format``) as the record's
    arguments; this filter turns them into ``method``, ``path``, ``status``, ``duration_seconds``,
    ``client_ip`` (fly's ``Fly-Client-IP`` header) and ``request_id`` (the ``Fly-Request-Id`` response header
    that django-guid sets).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the fields when the record is an access line; keep every record."""
        atoms = record.args
        if isinstance(atoms, Mapping):
            record.method = atoms.get("m")
            record.path = atoms.get("U")
            status = str(atoms.get("s", ""))
            record.status = int(status) if status.isdigit() else status
            record.duration_seconds = float(str(atoms["L"])) if "L" in atoms else None
            record.client_ip = atoms.get("{fly-client-ip}i")
            record.request_id = atoms.get("{fly-request-id}o")
        return True


logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"access_fields": {"()": AccessLogFields}},
    "formatters": {
        "json": JSON_FORMATTER,
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"},
        "access": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["access_fields"],
        },
    },
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
    },
}
