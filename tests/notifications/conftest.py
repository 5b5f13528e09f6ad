"""Fixtures of the notification tests: the local servers, and settings that retry fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_django import Settings

from notifications.services import background_sender
from tests.fakes.notify_servers import SmtpInbox, Webhook, smtp_server, webhook_server

#: In every webhook URL of the tests: it must never show anywhere.
PASSWORD = "Pa55-w0rd-SECRET"
TOKEN = "tok3n-SECRET-9f8e7d"


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Retries 0.05 s apart (then 0.1, 0.2...), 3 attempts, a 0.5 s timeout."""
    settings.BARTER_NOTIFY_RETRY_BASE_SECONDS = 0.05
    settings.BARTER_NOTIFY_MAX_ATTEMPTS = 3
    settings.BARTER_NOTIFY_TIMEOUT_SECONDS = 0.5
    return settings


@pytest.fixture
def webhook() -> Iterator[tuple[Webhook, int]]:
    with webhook_server() as served:
        yield served


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpInbox, int]]:
    with smtp_server() as served:
        yield served


def webhook_url(port: int, path: str = "barter") -> str:
    """An Apprise JSON webhook URL to the local server, with a password and a token in its path."""
    return f"json://trader:{PASSWORD}@127.0.0.1:{port}/hooks/{path}/{TOKEN}"


def settle(timeout_seconds: float = 15.0) -> None:
    """Wait until the background sender has made every attempt (it runs in its own threads)."""
    assert background_sender().idle_wait(timeout_seconds), "the background sender is still busy"
