"""Throttling: the API (per user, and per address for requests that fail authentication) and the admin login
(per username and address). Rates are set low here on purpose; time is frozen and moved by hand."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import pytest
import redis
import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.test import Client
from limits.storage import Storage, storage_from_string
from pytest_django import Settings
from rest_framework import throttling
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from barter_site.settings.base import BASE_DIR
from barter_site.throttling import NAMESPACE, AnonRateThrottle, UserRateThrottle, throttle_storage
from tests.security.conftest import PASSWORD, Seeded

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def low_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    """3 requests a minute per user, 2 per anonymous address (DRF reads the rates once, at import)."""
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "2/min"})


def test_the_configured_rates_and_classes() -> None:
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == [
        "barter_site.throttling.UserRateThrottle",
        "barter_site.throttling.AnonRateThrottle",
    ]
    assert issubclass(UserRateThrottle, throttling.UserRateThrottle)
    assert issubclass(AnonRateThrottle, throttling.AnonRateThrottle)
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == 0  # the socket's address, not a forgeable header


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, ("django.core.cache.backends.locmem.LocMemCache", "600/min", "30/min")),
        (
            {"REDIS_URL": "redis://127.0.0.1:6379/3", "BARTER_API_THROTTLE_USER": "5/sec"},
            ("django.core.cache.backends.redis.RedisCache", "5/sec", "30/min"),
        ),
    ],
)
def test_base_settings_read_the_rates_and_the_cache_from_the_environment(
    environment: dict[str, str], expected: tuple[str, str, str]
) -> None:
    # A fresh interpreter, so that base.py reads this environment (REDIS_URL set -> the shared Redis cache).
    code = (
        "from barter_site.settings import base as s; r = s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'];"
        "print(s.CACHES['default']['BACKEND'], r['user'], r['anon'])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "BARTER_API_THROTTLE"))}
    env.update({"DJANGO_SETTINGS_MODULE": "barter_site.settings.base", **environment})
    out = subprocess.run(  # noqa: S603 - the test's own interpreter and code
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=True
    )
    assert tuple(out.stdout.split()) == expected


def test_a_user_past_the_rate_gets_429_with_retry_after_then_is_let_in_again(
    seeded: Seeded, low_rates: None
) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Token {seeded.token}")
    with time_machine.travel(T0, tick=False) as clock:
        assert [client.get("/api/instruments/").status_code for _ in range(3)] == [200, 200, 200]
        refused = client.get("/api/instruments/")
        assert refused.status_code == 429
        assert refused["Retry-After"] == "60"  # the oldest of the 3 leaves the 60 s window in 60 s
        assert "throttled" in refused.json()["detail"]
        # Every endpoint shares the user's count, the writes too.
        assert client.post("/api/sync_data", {}, content_type="application/json").status_code == 429
        clock.shift(timedelta(seconds=30))
        assert client.get("/api/instruments/")["Retry-After"] == "30"
        clock.shift(timedelta(seconds=31))
        assert client.get("/api/instruments/").status_code == 200


def test_users_are_counted_apart(seeded: Seeded, low_rates: None, django_user_model: type[User]) -> None:
    from tests.accounts import VIEW_ALL, api_token, user_with

    bob = api_token(user_with("bob", *VIEW_ALL))
    alice, bob_client = (Client(HTTP_AUTHORIZATION=f"Token {t}") for t in (seeded.token, bob))
    with time_machine.travel(T0, tick=False):
        assert [alice.get("/api/instruments/").status_code for _ in range(4)] == [200, 200, 200, 429]
        assert bob_client.get("/api/instruments/").status_code == 200


def test_failed_authentication_is_throttled_per_address(seeded: Seeded, low_rates: None) -> None:
    guesser = Client(HTTP_AUTHORIZATION="Token " + "0" * 40, REMOTE_ADDR="203.0.113.7")
    anonymous = Client(REMOTE_ADDR="203.0.113.7")
    elsewhere = Client(REMOTE_ADDR="198.51.100.2")
    with time_machine.travel(T0, tick=False) as clock:
        assert guesser.get("/api/instruments/").status_code == 401
        assert anonymous.get("/api/history/").status_code == 401
        refused = guesser.get("/api/instruments/")
        assert refused.status_code == 429 and refused["Retry-After"] == "60"
        # A forged X-Forwarded-For does not make a new address (NUM_PROXIES = 0).
        assert anonymous.get("/api/", HTTP_X_FORWARDED_FOR="192.0.2.99").status_code == 429
        assert elsewhere.get("/api/instruments/").status_code == 401
        # The valid token is not affected by its address's failures.
        token = Client(HTTP_AUTHORIZATION=f"Token {seeded.token}", REMOTE_ADDR="203.0.113.7")
        assert token.get("/api/instruments/").status_code == 200
        clock.shift(timedelta(seconds=61))
        assert guesser.get("/api/instruments/").status_code == 401


class _User:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


#: The view the throttles are given: DRF's user throttle never reads it, the stubs ask for an ``APIView``.
NO_VIEW = cast(APIView, None)


def _user_request(pk: int) -> Request:
    request = APIRequestFactory().get("/api/instruments/")
    request.user = _User(pk)  # type: ignore[assignment]  # a stand-in: the throttle reads pk and is_authenticated
    return request


@pytest.fixture
def redis_throttles(settings: Settings) -> Iterator[int]:
    """The throttles count in the test Redis; yields a user id no other run uses, whose counts are removed."""
    settings.BARTER_THROTTLE_STORAGE_URI = settings.REDIS_URL
    throttle_storage.cache_clear()
    user_pk = uuid.uuid4().int % 10**12
    yield user_pk
    redis.Redis.from_url(settings.REDIS_URL).delete(
        *redis.Redis.from_url(settings.REDIS_URL).keys(f"LIMITS:{NAMESPACE}/*throttle_user_{user_pk}")
        or ["-"]
    )
    throttle_storage.cache_clear()


@pytest.mark.redis
def test_the_redis_count_is_shared_between_workers(
    redis_throttles: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each request gets a fresh Redis client, as each gunicorn worker (or machine) has its own.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/min"})
    allowed = []
    for _ in range(5):
        throttle_storage.cache_clear()
        allowed.append(UserRateThrottle().allow_request(_user_request(redis_throttles), NO_VIEW))
    assert allowed == [True, True, True, False, False]


@pytest.mark.redis
def test_concurrent_requests_past_the_rate_pass_exactly_the_limit(
    redis_throttles: int, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1,500 requests of one user from 24 threads (each with its own Redis client, like 24 workers) against
    # 600/min: exactly 600 pass. DRF's read-append-write list let 1,204 through (settings.CACHES on Redis too,
    # so the old counting ran on the same Redis).
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL}
    }
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "600/min"})
    request = _user_request(redis_throttles)
    start = threading.Barrier(24)
    clients = threading.local()

    def thread_storage(uri: str) -> Storage:
        if not hasattr(clients, "storage"):
            clients.storage = storage_from_string(uri, wrap_exceptions=True)
        storage: Storage = clients.storage  # threading.local's attributes are Any
        return storage

    monkeypatch.setattr("barter_site.throttling.throttle_storage", thread_storage)

    def worker(n_requests: int) -> int:
        start.wait()
        return sum(UserRateThrottle().allow_request(request, NO_VIEW) for _ in range(n_requests))

    try:
        with ThreadPoolExecutor(max_workers=24) as pool:
            passed = sum(pool.map(worker, [63] * 12 + [62] * 12))
    finally:
        caches["default"].delete(f"throttle_user_{redis_throttles}")
    assert passed == 600


def test_a_cache_that_cannot_be_reached_lets_requests_through(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Redis down (a closed local port): the API keeps answering; the throttle says why it is not counting.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "1/min", "anon": "1/min"})
    settings.BARTER_THROTTLE_STORAGE_URI = "redis://127.0.0.1:1/0"
    throttle_storage.cache_clear()
    try:
        allowed = [UserRateThrottle().allow_request(_user_request(7), NO_VIEW) for _ in range(3)]
    finally:
        throttle_storage.cache_clear()
    assert allowed == [True, True, True]
    assert "API throttle skipped: the cache (Redis) cannot be reached (ConnectionError)" in caplog.text


def _login(client: Client, password: str, username: str = "alice") -> _MonkeyPatchedWSGIResponse:
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def test_five_failed_logins_lock_that_username_and_address_for_15_minutes(seeded: Seeded) -> None:
    client = Client(REMOTE_ADDR="203.0.113.7")
    with time_machine.travel(T0, tick=False) as clock:
        statuses = [_login(client, f"wrong-{n}").status_code for n in range(5)]
        assert statuses == [200, 200, 200, 200, 429]  # the 5th failure is answered with the wait
        blocked = _login(client, PASSWORD)  # even the right password is not checked now
        assert blocked.status_code == 429
        assert blocked["Retry-After"] == "900"
        assert b"Too many failed logins" in blocked.content and b"Wait 15 minutes" in blocked.content
        assert "_auth_user_id" not in client.session
        # Another username from this address, and this username from another address, may still log in.
        assert _login(client, "nope", username="bob").status_code == 200
        assert _login(Client(REMOTE_ADDR="198.51.100.2"), PASSWORD).status_code == 302
        clock.shift(timedelta(minutes=14))
        again = _login(client, PASSWORD)
        assert (
            again.status_code == 429
            and again["Retry-After"] == "60"
            and b"Wait 1 minute and try again" in again.content
        )
        clock.shift(timedelta(seconds=61))
        assert _login(client, PASSWORD).status_code == 302
        assert client.session["_auth_user_id"] == str(seeded.user.pk)


def test_a_successful_login_forgets_the_failures(seeded: Seeded) -> None:
    client = Client(REMOTE_ADDR="203.0.113.7")
    with time_machine.travel(T0, tick=False):
        assert [_login(client, "wrong").status_code for _ in range(4)] == [200] * 4
        assert _login(client, PASSWORD).status_code == 302
        client.logout()
        assert [_login(client, "wrong").status_code for _ in range(4)] == [200] * 4  # counted from 0 again


def test_the_username_is_matched_without_case(seeded: Seeded) -> None:
    client = Client(REMOTE_ADDR="203.0.113.7")
    with time_machine.travel(T0, tick=False):
        for name in ("alice", "ALICE", "Alice", "aLiCe", "alicE"):
            _login(client, "wrong", username=name)
        assert _login(client, PASSWORD).status_code == 429


def test_the_login_page_itself_is_never_refused(seeded: Seeded) -> None:
    client = Client(REMOTE_ADDR="203.0.113.7")
    with time_machine.travel(T0, tick=False):
        for _ in range(5):
            _login(client, "wrong")
        assert client.get("/admin/login/").status_code == 200


# -- proxy trust (BARTER_NUM_PROXIES), both ways, for the API's anonymous throttle and the login lockout ----------


@pytest.fixture
def behind_one_proxy(settings: Settings) -> None:
    """BARTER_NUM_PROXIES=1: the address our proxy appended to X-Forwarded-For is the client's."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


def _rotating(n: int) -> str:
    return f"192.0.2.{n % 250 + 1}"


def test_gunicorn_reached_directly_a_rotating_forwarded_for_does_not_escape_the_anonymous_throttle(
    seeded: Seeded, low_rates: None
) -> None:
    # NUM_PROXIES = 0: the socket's address counts; each request forges another X-Forwarded-For.
    client = Client(REMOTE_ADDR="203.0.113.7")
    with time_machine.travel(T0, tick=False):
        statuses = [
            client.get("/api/instruments/", HTTP_X_FORWARDED_FOR=_rotating(n)).status_code for n in range(5)
        ]
        assert statuses == [401, 401, 429, 429, 429]
        assert Client(REMOTE_ADDR="198.51.100.2").get("/api/instruments/").status_code == 401


def test_gunicorn_reached_directly_a_rotating_forwarded_for_does_not_escape_the_login_lockout(
    seeded: Seeded,
) -> None:
    client = Client(REMOTE_ADDR="203.0.113.7")
    with time_machine.travel(T0, tick=False):
        statuses = [
            client.post(
                "/admin/login/", {"username": "alice", "password": "wrong"}, HTTP_X_FORWARDED_FOR=_rotating(n)
            ).status_code
            for n in range(5)
        ]
        assert statuses == [200, 200, 200, 200, 429]
        blocked = client.post(
            "/admin/login/", {"username": "alice", "password": PASSWORD}, HTTP_X_FORWARDED_FOR=_rotating(99)
        )
        assert blocked.status_code == 429 and "_auth_user_id" not in client.session


def test_behind_one_proxy_the_appended_address_is_counted_and_clients_apart(
    seeded: Seeded, low_rates: None, behind_one_proxy: None
) -> None:
    # The proxy (10.0.0.1) appends the real client's address; what the client sent before it is not believed.
    proxy = Client(REMOTE_ADDR="10.0.0.1")
    with time_machine.travel(T0, tick=False):
        first = [
            proxy.get("/api/instruments/", HTTP_X_FORWARDED_FOR=f"{_rotating(n)}, 203.0.113.7").status_code
            for n in range(3)
        ]
        assert first == [401, 401, 429]
        # Another real client through the same proxy has its own count.
        assert proxy.get("/api/instruments/", HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 401
        assert proxy.get("/api/instruments/", HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 401
        assert proxy.get("/api/instruments/", HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 429


def test_behind_one_proxy_the_login_lockout_counts_the_appended_address(
    seeded: Seeded, behind_one_proxy: None
) -> None:
    proxy = Client(REMOTE_ADDR="10.0.0.1")

    def login(password: str, forwarded_for: str) -> int:
        data = {"username": "alice", "password": password}
        return proxy.post("/admin/login/", data, HTTP_X_FORWARDED_FOR=forwarded_for).status_code

    with time_machine.travel(T0, tick=False):
        assert [login("wrong", f"{_rotating(n)}, 203.0.113.7") for n in range(5)] == [200] * 4 + [429]
        assert login(PASSWORD, "203.0.113.7") == 429
        # The same username from another real client behind the proxy is not locked out.
        assert login(PASSWORD, "198.51.100.2") == 302
