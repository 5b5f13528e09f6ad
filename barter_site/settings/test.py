"""Settings for pytest: the same as base, with fast password hashing and CoinGecko pointed nowhere real."""

from barter_site.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests replay recorded responses against this host; a test that forgets to mock it fails (network blocked).
COINGECKO_BASE_URL = "https://api.coingecko.test/api/v3"
COINGECKO_API_KEY = "test-demo-key-not-real"
COINGECKO_API_PLAN = "demo"
COINGECKO_RETRY_AFTER_MAX_SECONDS = 2.0
COINGECKO_TIMEOUT_SECONDS = 5.0
# The suite makes far more than 30 calls a minute to fakes; tests of the limiter turn it on themselves.
COINGECKO_RATE_LIMIT_PER_MINUTE = 0
CELERY_TASK_ALWAYS_EAGER = True
# One cache per test process, emptied before every test (tests/conftest.py): the throttles' counters never leak
# from one test into another, and clearing it can never touch the Redis the Celery tests use as their broker.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "barter-test"}}
# High enough for the suite's bursts (schemathesis, concurrent gunicorn calls); throttle tests lower them.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "anon": "100000/min"},
}
BARTER_LOGIN_FAILURES_MAX = 5
# Simulator work that would go to a background thread without a broker runs in the caller, so a test sees it done
# (tests/simulator/test_background.py runs a real server with the threads).
BARTER_SIMULATOR_BACKGROUND_THREADS = 0
# The reaper that runs on a request without a broker would add queries to tests that count them.
BARTER_REAPER_ON_REQUEST = False
# The API throttles count in this process's memory, emptied before every test (tests/conftest.py), like CACHES;
# the Redis tests of the throttles point them at Redis themselves.
BARTER_THROTTLE_STORAGE_URI = "memory://"
# The day's report after a live close step (audit and digest) would start a background thread in every test that
# runs a close step; the tests of the report turn it on themselves.
BARTER_DAILY_REPORT = False
