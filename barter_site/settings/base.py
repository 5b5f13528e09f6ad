"""Settings shared by every environment. Every variable is listed, with its default, in ``.env.example``."""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from barter_site.settings import environment

BASE_DIR = environment.BASE_DIR
env = environment.env

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
    # Failed-login lockout (barter_site/login_lockout.py); its settings are the AXES_* block below.
    "axes",
    "runs",
    "instruments",
    "positions",
    "trading",
    "simulator",
    "notifications",
    # The project package as an app: the token admin and the migration of the old DRF tokens to knox.
    "barter_site",
]

MIDDLEWARE = [
    # The request id first (it only reads a header), then /healthz, answered before SecurityMiddleware's HTTPS
    # redirect and before anything checks ALLOWED_HOSTS: fly's checks use plain HTTP and the machine's address.
    "django_guid.middleware.guid_middleware",
    "barter_site.health.HealthCheckMiddleware",
    # API errors stay JSON with DEBUG on too (Django's technical 404/500 pages are HTML): barter_site.errors.
    "barter_site.errors.ApiErrorsAsJsonMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from gunicorn, compressed and cached forever when their names carry a hash.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The Content-Security-Policy header of every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429 page (barter_site.login_lockout).
    "axes.middleware.AxesMiddleware",
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
# The project's own static files beside the apps' (static/barter/: the layout of templates/base.html).
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise indexes STATIC_ROOT once at start, which the image's collectstatic fills. Where it was never filled
# (tests, a fresh checkout) it looks files up per request instead of warning "No directory at" on every start.
WHITENOISE_AUTOREFRESH = not STATIC_ROOT.is_dir()

# Content-Security-Policy (django-csp 4): scripts, styles, fonts, images and connections from this site only, no
# inline script anywhere (every page's JavaScript is a static file, Swagger UI included: barter_site/api_docs.py),
# no plugins, no framing, forms post here only. Style: <style> elements and stylesheets from this site only (and
# lightweight-charts' one constant <style>, by hash); inline
# style *attributes* are allowed (style-src-attr): the sweep heat map colours its cells with them, the admin's
# widgets and Swagger UI write some, and an attribute can neither run script nor load anything (img-src and
# font-src stay 'self'). data: images are Swagger UI's and the admin's icons.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # + the one <style> element lightweight-charts 5 writes (its attribution logo), allowed by its hash:
        # tools/vendor/update.sh pins the version; tests/browser/test_csp.py fails if an update changes it.
        "style-src": ["'self'", "'sha256-3pRED1tOXas1FXFoPb9TGCjmYe9XQsmO9OV23khV2nY='"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# The request id of every request (django-guid): fly's proxy sends one in Fly-Request-Id (not a UUID, so it is
# taken as it is); without it one is generated. It is returned in the same response header, and production's
# JSON logs carry it as `request_id` (django-guid's log filter, settings/production.py).
DJANGO_GUID = {"GUID_HEADER_NAME": "Fly-Request-Id", "VALIDATE_GUID": False}

LOGIN_URL = "admin:login"
# Where a login lands when its ?next= is missing or unsafe (another host, //evil, javascript:): the dashboard,
# never Django's default /accounts/profile/ (a 404 here).
LOGIN_REDIRECT_URL = "dashboard"

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

# Bounded requests (docs/reliability.md, "Bounded cost"). Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE
# (form fields and request.body; the API's JSON parser, barter_site.parsers, applies it too) with 413, JSON under
# /api/ (barter_site.errors). 2.5 MiB, Django's default, stated here: the largest criteria document accepted is
# 64 KiB (trading.engine.limits), so a body this large is refused whole or by the criteria's own limits, with
# field errors. The JSON parser also refuses bodies nested deeper than 200 levels.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1_000
REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"] = [
    "barter_site.parsers.JSONParser",
    "barter_site.parsers.FormParser",
    "barter_site.parsers.MultiPartParser",
]
# Where the API throttles count (barter_site.throttling, the `limits` library's atomic moving window): Redis
# when REDIS_URL is set, so every gunicorn worker and machine shares one count; else this process's memory.
BARTER_THROTTLE_STORAGE_URI = env.str("REDIS_URL", default="") or "memory://"
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

# Failed-login lockout by django-axes (barter_site/login_lockout.py): the admin login (the only login page)
# refuses a username and client address after BARTER_LOGIN_FAILURES_MAX failed logins, for
# BARTER_LOGIN_FAILURES_WINDOW_SECONDS from the failure that locked them (429, "wait N minutes").
BARTER_LOGIN_FAILURES_MAX = env.int("BARTER_LOGIN_FAILURES_MAX", default=5)
BARTER_LOGIN_FAILURES_WINDOW_SECONDS = env.int("BARTER_LOGIN_FAILURES_WINDOW_SECONDS", default=900)
AUTHENTICATION_BACKENDS = [
    "barter_site.login_lockout.LoginLockoutBackend",  # axes' check first: a locked-out login goes no further
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = BARTER_LOGIN_FAILURES_MAX
AXES_COOLOFF_TIME = timedelta(seconds=BARTER_LOGIN_FAILURES_WINDOW_SECONDS)
# One username from one address: other usernames and addresses are not locked out with them.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Trying again while locked out does not push the end of the lockout further.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# The database handler: counts shared by every process and machine on SQLite and PostgreSQL alike, and whether
# Redis is up or not (the cache handler would count per process without REDIS_URL).
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# The client address of the API throttles (BARTER_NUM_PROXIES): one proxy-trust setting for both.
AXES_CLIENT_IP_CALLABLE = "barter_site.login_lockout.client_address"
AXES_USERNAME_CALLABLE = "barter_site.login_lockout.username_key"
AXES_LOCKOUT_CALLABLE = "barter_site.login_lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# axes' own admin pages allow deleting and editing; barter_site/lockout_admin.py lists the rows read-only.
AXES_ENABLE_ADMIN = False
# Failed logins are logged by axes; successful ones are not kept in a table.
AXES_DISABLE_ACCESS_LOG = True
# Axes logs every start-up and every (empty) clean-up at INFO; failures and lockouts stay in its tables (admin).
AXES_VERBOSE = False

SPECTACULAR_SETTINGS = {
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "runs.models.RunStatus",
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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "null": {"class": "logging.NullHandler"},
    },
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    # urllib3 logs every retry with the full URL; keys never travel in URLs, but keep it quiet anyway.
    # django_guid logs at INFO on every request whether the header came or not.
    # ccxt logs every request's headers (API keys among them) and response at DEBUG: never let those through.
    "loggers": {
        "urllib3": {"level": "WARNING"},
        "django_guid": {"level": "WARNING"},
        "ccxt": {"level": "WARNING"},
        # Apprise logs the URLs it posts to (tokens in their paths) at DEBUG, and its warnings name hosts and
        # recipients: none of it reaches the logs. notifications.apprise_send collects the reasons of each send
        # (DEBUG: the socket exception says why) and redacts them; the services log and record that.
        "apprise": {"level": "DEBUG", "propagate": False, "handlers": ["null"]},
    },
}


# Barter's own settings: Celery and its queues, heartbeats, the daily schedule, CoinGecko, exchanges, the
# simulator (barter_site/settings/barter.py).
from barter_site.settings.barter import *  # noqa: E402, F403
