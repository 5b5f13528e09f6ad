"""Fixtures shared by every test.

The network is blocked for every test by pytest-socket (``--disable-socket`` in ``pyproject.toml``; only
loopback, where PostgreSQL and Redis listen, is allowed). HTTP to CoinGecko is replayed with ``responses``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.db import connection
from pytest_django import DjangoDbBlocker, Settings

if TYPE_CHECKING:
    from tests.fakes.coingecko import FakeCoinGecko

FIXTURES = Path(__file__).parent / "fixtures"
_postgres_passed: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``postgres`` tests unless the test database is PostgreSQL, ``redis`` tests unless REDIS_URL is set."""
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    skip_postgres = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://...")
    skip_redis = pytest.mark.skip(reason="needs Redis: set REDIS_URL=redis://...")
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(skip_postgres)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        _postgres_passed.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``BARTER_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), fail the run when no PostgreSQL test passed."""
    if os.environ.get("BARTER_REQUIRE_POSTGRES") == "1" and not _postgres_passed and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(
            "\nBARTER_REQUIRE_POSTGRES=1 but no @pytest.mark.postgres test passed: is DATABASE_URL PostgreSQL?"
        )
    elif _postgres_passed:
        print(f"\n{len(_postgres_passed)} PostgreSQL-backed tests passed")


@pytest.fixture(autouse=True)
def _throttle_counts_cleared() -> None:
    """Empty Django's cache (test settings: local memory) before every test: the API and login throttles'
    counts of one test never refuse another's requests."""
    from django.core.cache import cache

    from barter_site.throttling import throttle_storage_reset

    cache.clear()
    throttle_storage_reset()


@pytest.fixture
def on_postgres() -> bool:
    """True when the tests run on PostgreSQL."""
    return connection.vendor == "postgresql"


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record, instead of sleeping, every wait urllib3's ``Retry`` makes (backoff and ``Retry-After``)."""
    slept: list[float] = []
    # urllib3.util.retry imports ``time`` without re-exporting it: the dotted path reaches the same module.
    monkeypatch.setattr("urllib3.util.retry.time.sleep", slept.append)
    return slept


@pytest.fixture
def fake_coingecko(settings: Settings, retry_sleeps: list[float]) -> Iterator[FakeCoinGecko]:
    """A local fake CoinGecko (``tests/fakes/coingecko.py``) that the settings point at."""
    from tests.fakes.coingecko import FakeCoinGecko

    with FakeCoinGecko() as fake:
        settings.COINGECKO_BASE_URL = fake.base_url
        yield fake


@pytest.fixture(scope="module")
def shipped_history(django_db_setup: None, django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    """The shipped real daily history (``load_shipped_history``: BTC, ETH, LTC), loaded once for a module and
    flushed after it."""
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("load_shipped_history", verbosity=0)
    yield
    with django_db_blocker.unblock():
        call_command("flush", "--noinput", verbosity=0)
