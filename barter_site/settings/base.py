"""Settings shared by every environment. Every variable is listed, with its default, in ``.env.example``."""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import ParseException, crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer's own .env (never committed) is read when present; real environment variables win.
env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-local-development-key-change-me")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # API tokens, hashed at rest (django-rest-knox); replaces rest_framework.authtoken (barter_site migrates
    # its keys, see barter_site/migrations/0001_knox_tokens_from_drf.py).
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_guid",
    "instruments",
    "positions",
    "trading",
    "simulator",
    # The project package as an app: the token admin and the migration of the old DRF tokens to knox.
    "barter_site",
]

MIDDLEWARE = [
    # The request id first (it only reads a header), then /healthz, answered before SecurityMiddleware's HTTPS
    # redirect and before anything checks ALLOWED_HOSTS: fly's checks use plain HTTP and the machine's address.
    "django_guid.middleware.guid_middleware",
    "barter_site.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from gunicorn, compressed and cached forever when their names carry a hash.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "barter_site.urls"
WSGI_APPLICATION = "barter_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/barter; unset or empty means the embedded SQLite file
# (production settings refuse to start without it).
DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    )
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Wait for a concurrent writer instead of failing at once with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise indexes STATIC_ROOT once at start, which the image's collectstatic fills. Where it was never filled
# (tests, a fresh checkout) it looks files up per request instead of warning "No directory at" on every start.
WHITENOISE_AUTOREFRESH = not STATIC_ROOT.is_dir()

# The request id of every request (django-guid): fly's proxy sends one in Fly-Request-Id (not a UUID, so it is
# taken as it is); without it one is generated. It is returned in the same response header, and production's
# JSON logs carry it as `request_id` (django-guid's log filter, settings/production.py).
DJANGO_GUID = {"GUID_HEADER_NAME": "Fly-Request-Id", "VALIDATE_GUID": False}

LOGIN_URL = "admin:login"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # knox's token authentication (barter_site/authentication.py), "Authorization: Token <key>".
        "barter_site.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # The least any endpoint needs; each view names its own rule from barter_site.permissions (model permissions,
    # run_steps, trade_live).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 500,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # barter_site.throttling counts failed authentications, then barter_site.errors renders every error.
    "EXCEPTION_HANDLER": "barter_site.throttling.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "COERCE_DECIMAL_TO_STRING": True,
    # Requests per user (token or session) and per anonymous client address; a 429 carries Retry-After. The
    # counts live in Django's cache (CACHES below: Redis when REDIS_URL is set, so every gunicorn worker shares
    # them). Rates are "<n>/<sec|min|hour|day>".
    # DRF's UserRateThrottle and AnonRateThrottle, letting requests through while Redis is down.
    "DEFAULT_THROTTLE_CLASSES": [
        "barter_site.throttling.UserRateThrottle",
        "barter_site.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("BARTER_API_THROTTLE_USER", default="600/min"),
        "anon": env.str("BARTER_API_THROTTLE_ANON", default="30/min"),
    },
    # How many proxies in front of Django append to X-Forwarded-For: 0 takes the client address from the
    # socket (REMOTE_ADDR) and ignores the header, which a client could otherwise forge to dodge the throttle.
    "NUM_PROXIES": env.int("BARTER_NUM_PROXIES", default=0),
}

# API tokens (django-rest-knox): only a SHA-512 digest is stored; the key is shown once, when it is made
# (manage.py create_cycle_token, ensure_admin, the admin's "add token"); deleting a token in the admin revokes
# it, and an expired one is refused (and deleted). Sent as "Authorization: Token <key>", as DRF's tokens were.
# BARTER_API_TOKEN_EXPIRY_DAYS: lifetime of new tokens for people (0: never expire). The daily cycle's token has
# its own default, BARTER_CYCLE_TOKEN_EXPIRY_DAYS (create_cycle_token --expiry-days overrides it; 0: never).
BARTER_API_TOKEN_EXPIRY_DAYS = env.int("BARTER_API_TOKEN_EXPIRY_DAYS", default=30)
BARTER_CYCLE_TOKEN_EXPIRY_DAYS = env.int("BARTER_CYCLE_TOKEN_EXPIRY_DAYS", default=365)
for _name, _days in (
    ("BARTER_API_TOKEN_EXPIRY_DAYS", BARTER_API_TOKEN_EXPIRY_DAYS),
    ("BARTER_CYCLE_TOKEN_EXPIRY_DAYS", BARTER_CYCLE_TOKEN_EXPIRY_DAYS),
):
    if _days < 0:
        raise ImproperlyConfigured(
            f"{_name} must be a whole number of days >= 0 (0: never expire); was {_days}"
        )
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_TTL": timedelta(days=BARTER_API_TOKEN_EXPIRY_DAYS) if BARTER_API_TOKEN_EXPIRY_DAYS > 0 else None,
    "AUTO_REFRESH": False,
}

# Django's cache: the API throttle's and the login throttle's counters. With REDIS_URL they are shared by every
# process (gunicorn workers, machines); without it each process counts on its own.
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("REDIS_URL", default=""),
            "KEY_PREFIX": "barter",
            # Seconds: a Redis that does not answer must not hold up requests (the throttles then let them by).
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
        if env.str("REDIS_URL", default="")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "barter"}
    )
}

# The admin login (the only login page) refuses a username and client address after this many failed logins
# within the window, until the window has passed (barter_site.login_throttle).
BARTER_LOGIN_FAILURES_MAX = env.int("BARTER_LOGIN_FAILURES_MAX", default=5)
BARTER_LOGIN_FAILURES_WINDOW_SECONDS = env.int("BARTER_LOGIN_FAILURES_WINDOW_SECONDS", default=900)

SPECTACULAR_SETTINGS = {
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "positions.models.RunStatus",
        "PositionStatusEnum": "positions.models.Position.Status",
        "SimulationStatusEnum": "simulator.models.RunStatus",
    },
    "TITLE": "Barter API",
    "DESCRIPTION": "Daily crypto trading cycle: candles, history, and the sync endpoints.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/schema/ needs a token or a session like the rest of the API; /api/docs/ sends anonymous visitors to
    # the login page (barter_site/urls.py). The schema still lists every operation (SERVE_PUBLIC).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI's files come from drf-spectacular-sidecar, so /api/docs/ works without the internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery: REDIS_URL unset means every task runs in-process (eagerly), so the embedded default needs no broker.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
# One task at a time per worker process: the collect fan-out's tasks are long (HTTP) and should spread out.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis down must not hang a web request that enqueues (a queued simulation, a sweep): sending gives up after
# three tries within a few seconds, for the broker and for the result store alike (Celery's defaults retry the
# result store's connection 20 times a second apart), and the caller reports the queue as unavailable.
CELERY_BROKER_CONNECTION_TIMEOUT = 2.0
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2.0}
_SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
CELERY_TASK_PUBLISH_RETRY_POLICY = _SEND_RETRY_POLICY
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2.0
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"retry_policy": _SEND_RETRY_POLICY}
# The queue workers consume and tasks go to; give deployments that share one Redis different names.
CELERY_TASK_DEFAULT_QUEUE = env.str("BARTER_CELERY_QUEUE", default="celery")


def _cron_schedule(name: str, default: str) -> crontab:
    """Return the 5-field cron expression of environment variable ``name`` as a Celery crontab (UTC)."""
    value = env.str(name, default=default)
    fields = value.split()
    try:
        if len(fields) != 5:
            raise ValueError(f"found {len(fields)} field(s)")
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
        )
    except (ValueError, ParseException) as exc:
        raise ImproperlyConfigured(
            f"{name} must be a cron expression of 5 fields 'minute hour day-of-month month day-of-week' in UTC, "
            f"e.g. {default!r}; was {value!r} ({str(exc).rstrip('.')})"
        ) from exc


# Celery beat (`make beat`), the self-hosted alternative to the GitHub Action: the daily cycle after 00:35 UTC,
# when CoinGecko has the completed day. trading.daily_cycle chains collect (one task per instrument), open, close.
CELERY_BEAT_SCHEDULE = {
    "daily-cycle": {
        "task": "trading.daily_cycle",
        "schedule": _cron_schedule("BARTER_DAILY_CYCLE_CRON", "40 0 * * *"),
    },
}

# CoinGecko: the plan picks the host and the header the key travels in (never a query parameter).
COINGECKO_API_KEY = env.str("COINGECKO_API_KEY", default="")
COINGECKO_API_PLAN = env.str("COINGECKO_API_PLAN", default="demo")
COINGECKO_BASE_URL = env.str("COINGECKO_BASE_URL", default="")
COINGECKO_TIMEOUT_SECONDS = env.float("COINGECKO_TIMEOUT_SECONDS", default=20.0)
COINGECKO_MAX_RETRIES = env.int("COINGECKO_MAX_RETRIES", default=4)
COINGECKO_RETRY_AFTER_MAX_SECONDS = env.float("COINGECKO_RETRY_AFTER_MAX_SECONDS", default=65.0)
# Calls per minute shared by every process (through Redis when REDIS_URL is set); 30 is the Demo plan's limit.
# 0 turns the limiter off. A call waits at most COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS for a free slot.
COINGECKO_RATE_LIMIT_PER_MINUTE = env.int("COINGECKO_RATE_LIMIT_PER_MINUTE", default=30)
COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS = env.float("COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS", default=120.0)
BARTER_QUOTE_CURRENCY = env.str("BARTER_QUOTE_CURRENCY", default="usd").lower()
# How far back the collect step fills missing days; the Demo plan reaches back 365 days.
BARTER_BACKFILL_DAYS = env.int("BARTER_BACKFILL_DAYS", default=365)

# Exchanges through ccxt (instruments.sources.exchange.client.exchange_client): candles, and orders where a
# strategy trades for real. Keys have no defaults and are only needed by authenticated clients; they are never
# logged or stored. BARTER_EXCHANGE_<ID>_SANDBOX=true uses the exchange's testnet (bitget: demo trading).
# The ids of instruments.sources.exchange.validation.SUPPORTED_EXCHANGE_IDS (settings import no app code).
_EXCHANGE_IDS = ("binance", "bybit", "bitget")
BARTER_EXCHANGE_TIMEOUT_SECONDS = env.float("BARTER_EXCHANGE_TIMEOUT_SECONDS", default=10.0)
BARTER_EXCHANGES = {
    exchange_id: {
        "api_key": env.str(f"BARTER_EXCHANGE_{exchange_id.upper()}_KEY", default=""),
        "secret": env.str(f"BARTER_EXCHANGE_{exchange_id.upper()}_SECRET", default=""),
        "password": env.str(f"BARTER_EXCHANGE_{exchange_id.upper()}_PASSWORD", default=""),
        "sandbox": env.bool(f"BARTER_EXCHANGE_{exchange_id.upper()}_SANDBOX", default=False),
    }
    for exchange_id in _EXCHANGE_IDS
}
# Kill switch of exchange strategies (trading.services): false opens nothing new; exits, stops and reconciliation
# still run. Each strategy has its own switch too (Strategy.trading_enabled).
BARTER_TRADING_ENABLED = env.bool("BARTER_TRADING_ENABLED", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # urllib3 logs every retry with the full URL; keys never travel in URLs, but keep it quiet anyway.
    # django_guid logs at INFO on every request whether the header came or not.
    # ccxt logs every request's headers (API keys among them) and response at DEBUG: never let those through.
    "loggers": {
        "urllib3": {"level": "WARNING"},
        "django_guid": {"level": "WARNING"},
        "ccxt": {"level": "WARNING"},
    },
}

# Simulator: runs that read more daily candles than this go to a Celery task with a progress bar (in-process
# without a broker); sweeps are split into about four chunks per worker.
BARTER_SIMULATOR_INLINE_CANDLES = env.int("BARTER_SIMULATOR_INLINE_CANDLES", default=200_000)
BARTER_SIMULATOR_SWEEP_WORKERS = env.int("BARTER_SIMULATOR_SWEEP_WORKERS", default=2)
