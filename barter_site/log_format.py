"""The one JSON log line format of production: Django (``settings/production.py``) and gunicorn
(``gunicorn.conf.py``) both use it, so every line on stdout has the same keys (``level``, ``logger``, ``message``,
``time``, and the fields a filter adds)."""

from typing import Any

#: A ``logging.config.dictConfig`` formatter: python-json-logger's JSON formatter with our key names.
JSON_FORMATTER: dict[str, Any] = {
    "()": "pythonjsonlogger.json.JsonFormatter",
    "fmt": "%(levelname)s %(name)s %(message)s",
    "rename_fields": {"levelname": "level", "name": "logger"},
    "timestamp": "time",
}
