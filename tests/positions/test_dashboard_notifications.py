"""The dashboard says when a notification channel is broken ("a broken channel is an error on the dashboard, not a
lost day"), read from History's ``notify`` rows, without any secret of the channel's URL."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import Settings

from notifications.events import Message, NotificationEvent
from notifications.services import channels_sync, delivery_attempt, notify
from notifications.services import test_message_send as send_test  # not test_*: pytest would collect it
from positions.selectors import notification_failures
from tests.fakes.notify_servers import webhook_server
from tests.reliability.test_redis_down import closed_port

# Not transactional: the deliveries made by notify() are never dispatched (no commit); the test attempts them.
pytestmark = pytest.mark.django_db

PASSWORD = "dash-Pa55-SECRET"
TOKEN = "dash-tok3n-SECRET"


@pytest.fixture
def boss(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("boss", password="unused-password-123"))
    return client


def _error_lines(page: str) -> list[str]:
    start = page.find('id="notification-failures"')
    if start < 0:
        return []
    block = page[start : page.find("</ul>", start)]
    return [line.split(">", 1)[1].split("</li>")[0] for line in block.split("<li")[1:]]


def test_a_failed_channel_is_an_error_line_until_a_message_gets_through(
    settings: Settings, boss: Client
) -> None:
    settings.BARTER_NOTIFY_TIMEOUT_SECONDS = 0.5
    port = closed_port()
    settings.BARTER_NOTIFY_URLS = (f"json://trader:{PASSWORD}@127.0.0.1:{port}/hooks/{TOKEN}",)
    (channel,) = channels_sync()
    assert _error_lines(boss.get("/").content.decode()) == []

    ok, error = send_test(channel)  # one attempt, final

    assert not ok and "Connection refused" in error
    page = boss.get("/").content.decode()
    (line,) = _error_lines(page)
    assert line.startswith(
        f"notification channel JSON json://127.0.0.1:{port} failed: A Connection error occurred"
    )
    assert line.endswith(" UTC)")
    assert PASSWORD not in page and TOKEN not in page

    with webhook_server() as (state, new_port):  # the URL fixed: the old channel is no longer configured
        settings.BARTER_NOTIFY_URLS = (f"json://trader:{PASSWORD}@127.0.0.1:{new_port}/hooks/{TOKEN}",)
        assert _error_lines(boss.get("/").content.decode()) == []
        (fixed,) = channels_sync()
        assert send_test(fixed) == (True, "")
    assert _error_lines(boss.get("/").content.decode()) == []
    assert len(state.received) == 1


def test_repeated_failures_show_before_the_last_attempt_and_one_success_clears_them(
    settings: Settings,
) -> None:
    settings.BARTER_NOTIFY_MAX_ATTEMPTS = 10
    settings.BARTER_NOTIFY_TIMEOUT_SECONDS = 0.5
    with webhook_server() as (state, port):
        state.statuses = [500, 500, 500]
        settings.BARTER_NOTIFY_URLS = (f"json://127.0.0.1:{port}/hooks/{TOKEN}",)
        (delivery,) = notify([Message(event=NotificationEvent.HALT, key="halt:1", title="t", body="b")])

        assert delivery_attempt(delivery.pk) is False
        assert delivery_attempt(delivery.pk) is False
        assert notification_failures() == []  # two failed attempts, neither the last: not yet
        assert delivery_attempt(delivery.pk) is False
        (failure,) = notification_failures()
        assert (failure.channel, failure.event) == (f"JSON json://127.0.0.1:{port}", "halt")
        assert "error=500" in failure.error and TOKEN not in failure.error

        assert delivery_attempt(delivery.pk) is True
        assert notification_failures() == []


def test_a_channel_that_comes_back_clears_its_error(settings: Settings, boss: Client) -> None:
    settings.BARTER_NOTIFY_TIMEOUT_SECONDS = 0.5
    with webhook_server() as (state, port):
        settings.BARTER_NOTIFY_URLS = (f"json://127.0.0.1:{port}/hooks/{TOKEN}",)
        (channel,) = channels_sync()
        state.statuses = [502]
        assert send_test(channel)[0] is False
        (line,) = _error_lines(boss.get("/").content.decode())
        assert "error=502" in line
        assert send_test(channel) == (True, "")
        assert _error_lines(boss.get("/").content.decode()) == []
