"""Production settings (fly.io): secrets have no defaults, HTTPS behind fly's proxy, JSON logs with a request id.

Required: ``DJANGO_SECRET_KEY``, ``DATABASE_URL``, ``DJANGO_ALLOWED_HOSTS``; a missing one stops the start with
an ``ImproperlyConfigured`` that names it. ``manage.py check --deploy`` reports nothing with these settings
(``tests/ops/test_production_settings.py``). Every variable is listed in ``.env.example``.
"""

import logging

from django.core.exceptions import ImproperlyConfigured

from barter_site.log_format import JSON_FORMATTER
from barter_site.settings.base import *  # noqa: F403
from barter_site.settings.base import DATABASES, LOGGING, REST_FRAMEWORK
from barter_site.settings.environment import env


def required_env(name: str, *, how_to_set: str = "") -> str:
    """Return the value of environment variable ``name``; refuse to start without it.

    Args:
        name: the variable, e.g. ``"DJANGO_SECRET_KEY"``.
        how_to_set: the command that sets it; default ``fly secrets set NAME=...``.

    Returns:
        The value, stripped of surrounding blanks.

    Raises:
        ImproperlyConfigured: the variable is unset or blank; the message names it and says how to set it.
    """
    value: str = env.str(name, default="").strip()
    if not value:
        how_to_set = how_to_set or f"`fly secrets set {name}=...`"
        raise ImproperlyConfigured(f"{name} is not set: production needs it; set it with {how_to_set}")
    return value


def comma_separated(value: str) -> list[str]:
    """Split ``"a.example, b.example"`` into ``["a.example", "b.example"]``: blanks stripped, empty items dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = False
SECRET_KEY = required_env("DJANGO_SECRET_KEY")
# Comma-separated, e.g. "barter.fly.dev". fly's own health checks may use the machine's private address as Host;
# /healthz is answered before host validation (barter_site.health), so that address need not be listed.
ALLOWED_HOSTS = comma_separated(required_env("DJANGO_ALLOWED_HOSTS"))
# Full origins with scheme, e.g. "https://barter.fly.dev"; needed for form posts from any other origin.
CSRF_TRUSTED_ORIGINS = comma_separated(env.str("DJANGO_CSRF_TRUSTED_ORIGINS", default=""))

# base.py has parsed DATABASE_URL already; production only refuses to fall back on base's SQLite file.
required_env(
    "DATABASE_URL", how_to_set="`fly postgres attach <postgres-app>` (or `fly secrets set DATABASE_URL=...`)"
)
# Keep connections open between requests (seconds; 0 closes them after each request), checked before reuse.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE_SECONDS", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# fly's proxy appends the client's address to X-Forwarded-For: the API and login throttles count that address.
REST_FRAMEWORK = {**REST_FRAMEWORK, "NUM_PROXIES": env.int("BARTER_NUM_PROXIES", default=1)}

# HTTPS: fly's proxy ends TLS and sets X-Forwarded-Proto on every request it forwards to the machine.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# One year by default. includeSubDomains covers every subdomain of a custom domain too: see docs/deploy.md.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True

# collectstatic (at image build) writes hashed, compressed copies; WhiteNoise serves them with far-future caching.
WHITENOISE_AUTOREFRESH = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# One JSON object per line on stdout (fly collects stdout), each with the request id (null outside a request).
LOGGING = {
    **LOGGING,
    "filters": {
        "request_id": {"()": "django_guid.log_filters.CorrelationId", "correlation_id_field": "request_id"},
    },
    "formatters": {
        "json": JSON_FORMATTER,
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["request_id"],
        },
        "null": {"class": "logging.NullHandler"},  # Apprise's logger's (base.py): its records go nowhere
    },
    "root": {"handlers": ["stdout"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
}
# Python's warnings become log records of "py.warnings" (JSON too) instead of plain text on stderr.
logging.captureWarnings(True)
# Celery workers and beat keep the logging above (JSON) instead of replacing the root logger's handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
