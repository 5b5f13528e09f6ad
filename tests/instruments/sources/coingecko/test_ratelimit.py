"""CoinGecko's shared calls-per-minute budget: clients in several threads or processes never exceed it together.

The fake CoinGecko runs in this process and stamps every request on arrival, so the check is made where
CoinGecko would make it: in no window of the limiter's length do more requests arrive than the limit allows.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Required, TypedDict

import pytest
from pytest_django import Settings

from instruments.sources.coingecko import coingecko_client_from_settings
from instruments.sources.coingecko.client import CoinGeckoClient, CoinGeckoConfig
from instruments.sources.coingecko.errors import CoinGeckoRateLimitedError, CoinGeckoRateLimitWaitError
from instruments.sources.coingecko.ratelimit import CoinGeckoRateLimiter
from tests.fakes.coingecko import FakeCoinGecko, Seen, json_reply

REPO = Path(__file__).resolve().parents[4]
PRICE = {"bitcoin": {"usd": 97000}}
# Requests travel a few milliseconds after their slot is taken, and not all equally fast: two calls a full
# window apart may arrive a little closer. Windows this much shorter than the limiter's are checked.
ARRIVAL_SLACK_SECONDS = 0.25


class _Limit(TypedDict, total=False):
    """Arguments of ``CoinGeckoRateLimiter`` that the refusal cases vary."""

    calls: Required[int]
    window_seconds: int
    max_wait_seconds: float


class _Stamped(list[Seen]):
    """The fake's list of requests, also stamping each one's arrival (monotonic seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    def append(self, item: Seen) -> None:
        self.at.append(time.monotonic())
        super().append(item)


class _StampedCoinGecko(FakeCoinGecko):
    """The fake, its list of requests a ``_Stamped`` (set by the fixture)."""

    seen: _Stamped


@pytest.fixture
def fake() -> Iterator[_StampedCoinGecko]:
    """A fake CoinGecko answering ``/simple/price``; ``fake.seen.at`` holds the arrival times."""
    with _StampedCoinGecko() as server:
        server.seen = _Stamped()
        server.add("/simple/price", json_reply(PRICE))
        yield server


def most_in_any_window(arrivals: list[float], window_seconds: float) -> int:
    """The largest number of arrivals inside any half-open window ``[t, t + window_seconds)``."""
    ordered = sorted(arrivals)
    return max(
        (sum(1 for t in ordered[i:] if t < start + window_seconds) for i, start in enumerate(ordered)),
        default=0,
    )


def client_for(fake: FakeCoinGecko, limiter: CoinGeckoRateLimiter | None) -> CoinGeckoClient:
    return CoinGeckoClient(CoinGeckoConfig(base_url=fake.base_url, max_retries=2), limiter=limiter)


def test_the_window_count_sees_a_burst() -> None:
    # The helper must be able to fail: 4 arrivals within 0.3 s are 4 in a 1 s window, 2 in a 0.2 s one.
    assert most_in_any_window([0.0, 0.1, 0.2, 0.3, 5.0], 1.0) == 4
    assert most_in_any_window([0.0, 0.1, 0.2, 0.3, 5.0], 0.15) == 2


def test_threads_with_their_own_clients_share_one_memory_limit(fake: _StampedCoinGecko) -> None:
    limiter = CoinGeckoRateLimiter(calls=3, window_seconds=1, storage_uri="memory://", key=uuid.uuid4().hex)
    calls_each, workers = 4, 2
    barrier = threading.Barrier(workers)
    failures: list[BaseException] = []

    def work() -> None:
        client = client_for(fake, limiter)
        barrier.wait()
        try:
            for _ in range(calls_each):
                client.api.get_price(ids="bitcoin", vs_currencies="usd")
        except BaseException as exc:
            failures.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not failures
    assert len(fake.seen.at) == 8
    assert most_in_any_window(fake.seen.at, 1 - ARRIVAL_SLACK_SECONDS) <= 3
    # 8 calls at 3 a second: the 7th cannot leave before 2 s (without the limiter all 8 take milliseconds).
    assert time.monotonic() - started >= 2 - ARRIVAL_SLACK_SECONDS


_PROCESS_CALLS = """
import sys, time
from instruments.sources.coingecko.client import CoinGeckoClient, CoinGeckoConfig
from instruments.sources.coingecko.ratelimit import CoinGeckoRateLimiter

base_url, redis_url, key, window_seconds, calls, start_at = sys.argv[1:7]
limiter = CoinGeckoRateLimiter(
    calls=3, window_seconds=int(window_seconds), storage_uri=redis_url, key=key, max_wait_seconds=30
)
client = CoinGeckoClient(CoinGeckoConfig(base_url=base_url, max_retries=0), limiter=limiter)
time.sleep(max(0.0, float(start_at) - time.time()))
for _ in range(int(calls)):
    client.api.get_price(ids="bitcoin", vs_currencies="usd")
"""


@pytest.mark.redis
def test_worker_processes_share_one_limit_through_redis(fake: _StampedCoinGecko, settings: Settings) -> None:
    key = f"test-{uuid.uuid4().hex}"
    calls_each, window_seconds = 4, 2
    start_at = time.time() + 3  # both processes have imported and begin together
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", _PROCESS_CALLS, fake.base_url, settings.REDIS_URL, key]
    command += [str(window_seconds), str(calls_each), str(start_at)]
    processes = [
        subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)  # noqa: S603 (our script)
        for _ in range(2)
    ]
    try:
        outcomes = [p.communicate(timeout=60) for p in processes]
    finally:
        for process in processes:
            process.kill()
        CoinGeckoRateLimiter(
            calls=3, window_seconds=window_seconds, storage_uri=settings.REDIS_URL, key=key
        ).reset()

    assert [p.returncode for p in processes] == [0, 0], [err for _, err in outcomes]
    assert len(fake.seen.at) == 8
    assert most_in_any_window(fake.seen.at, window_seconds - ARRIVAL_SLACK_SECONDS) <= 3
    # 3 per 2 s: the 7th and 8th calls wait for the third window.
    assert max(fake.seen.at) - min(fake.seen.at) >= 2 * window_seconds - ARRIVAL_SLACK_SECONDS


def test_a_full_window_past_the_wait_bound_raises_a_retryable_error_and_sends_nothing(
    fake: _StampedCoinGecko,
) -> None:
    limiter = CoinGeckoRateLimiter(calls=1, window_seconds=60, key=uuid.uuid4().hex, max_wait_seconds=0.5)
    client = client_for(fake, limiter)
    client.api.get_price(ids="bitcoin", vs_currencies="usd")

    started = time.monotonic()
    with pytest.raises(CoinGeckoRateLimitWaitError) as raised:
        client.api.get_price(ids="bitcoin", vs_currencies="usd")

    # The next slot frees in ~60 s, past the 0.5 s bound: no point waiting at all.
    assert time.monotonic() - started < 0.5
    assert isinstance(raised.value, CoinGeckoRateLimitedError) and raised.value.retryable is True
    assert "all 1 calls of the last 60 s are taken" in raised.value.message
    assert "COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS" in raised.value.message
    assert len(fake.seen) == 1


def test_a_call_waits_for_the_slot_that_frees_within_the_bound(fake: _StampedCoinGecko) -> None:
    limiter = CoinGeckoRateLimiter(calls=1, window_seconds=1, key=uuid.uuid4().hex, max_wait_seconds=5)
    client = client_for(fake, limiter)
    client.api.get_price(ids="bitcoin", vs_currencies="usd")
    client.api.get_price(ids="bitcoin", vs_currencies="usd")
    first, second = fake.seen.at
    assert second - first >= 1 - ARRIVAL_SLACK_SECONDS


def test_retries_take_slots_too(fake: _StampedCoinGecko, retry_sleeps: list[float]) -> None:
    # 429 with Retry-After: 0, then 200: urllib3 retries at once, but the retry must wait for a slot (1 a second).
    fake.add(
        "/simple/price", json_reply({"error": "busy"}, status=429, **{"Retry-After": "0"}), json_reply(PRICE)
    )
    limiter = CoinGeckoRateLimiter(calls=1, window_seconds=1, key=uuid.uuid4().hex, max_wait_seconds=5)

    assert client_for(fake, limiter).api.get_price(ids="bitcoin", vs_currencies="usd") == {
        "bitcoin": {"usd": 97000}
    }

    first, retry = fake.seen.at
    assert retry - first >= 1 - ARRIVAL_SLACK_SECONDS


def test_without_its_storage_the_limiter_lets_calls_through_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Nothing listens on port 1: the storage fails at once, and CoinGecko's own 429s remain the brake.
    limiter = CoinGeckoRateLimiter(calls=1, window_seconds=60, storage_uri="redis://127.0.0.1:1/0")
    with caplog.at_level(logging.WARNING, logger="instruments.sources.coingecko.ratelimit"):
        assert limiter.acquire() < 5
        assert limiter.acquire() < 5
    assert "CoinGecko rate limit storage unavailable" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"calls": 0}, "calls=0"),
        ({"calls": 3, "window_seconds": 0}, "window_seconds=0"),
        ({"calls": 3, "max_wait_seconds": -1}, "max_wait_seconds=-1"),
    ],
)
def test_a_limit_that_allows_nothing_is_refused(kwargs: _Limit, shown: str) -> None:
    with pytest.raises(ValueError, match=shown):
        CoinGeckoRateLimiter(**kwargs)


def test_clients_from_settings_share_the_processes_limiter(settings: Settings) -> None:
    settings.REDIS_URL = ""
    settings.COINGECKO_RATE_LIMIT_PER_MINUTE = 30
    settings.COINGECKO_RATE_LIMIT_MAX_WAIT_SECONDS = 90.0
    one, other = coingecko_client_from_settings(), coingecko_client_from_settings()
    assert one.limiter is not None and one.limiter is other.limiter
    assert (one.limiter.calls, one.limiter.window_seconds, one.limiter.max_wait_seconds) == (30, 60, 90.0)
    assert one.limiter.storage_uri == "memory://" and one.limiter.key == "demo"

    settings.COINGECKO_RATE_LIMIT_PER_MINUTE = 0
    assert coingecko_client_from_settings().limiter is None


@pytest.mark.redis
def test_with_redis_the_settings_limiter_counts_in_redis(settings: Settings) -> None:
    settings.COINGECKO_RATE_LIMIT_PER_MINUTE = 500
    limiter = coingecko_client_from_settings().limiter
    assert limiter is not None and limiter.storage_uri == settings.REDIS_URL
