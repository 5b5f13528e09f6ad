"""No secret of a channel's URL (its password, its token) shows anywhere: History, the delivery and the channel,
the logs, the admin's pages, the dashboard, Django's error page of settings."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.views.debug import ExceptionReporter
from pytest_django import Settings

from notifications.events import Message, NotificationEvent
from notifications.models import Channel, Delivery
from notifications.services import notify
from runs.models import History, Step
from tests.fakes.notify_servers import Webhook
from tests.notifications.conftest import PASSWORD, TOKEN, settle, webhook_url
from tests.reliability.test_redis_down import closed_port

pytestmark = pytest.mark.django_db(transaction=True)

SECRETS = (PASSWORD, TOKEN)


def _clean(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (
            f"{where} shows {secret!r}: {text[max(0, text.find(secret) - 200) :][:400]}"
        )


def test_a_failing_channel_leaves_no_secret_anywhere(
    fast: Settings, webhook: tuple[Webhook, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state, port = webhook
    state.hang_seconds = 2.0  # the first channel times out; the second is refused (nothing listens)
    refused = f"json://trader:{PASSWORD}@127.0.0.1:{closed_port()}/hooks/{TOKEN}?token={TOKEN}"
    fast.BARTER_NOTIFY_URLS = (webhook_url(port), refused)
    notify(
        [Message(event=NotificationEvent.STEP_FAILED, key="step_failed:1", title="close failed", body="...")]
    )
    settle()

    deliveries = list(Delivery.objects.order_by("channel__position"))
    assert [d.status for d in deliveries] == [Delivery.Status.FAILED, Delivery.Status.FAILED]
    assert "Read timed out" in deliveries[0].last_error
    # Apprise's reason names the URL's path (the token): redacted
    assert (
        "Connection refused" in deliveries[1].last_error and "with url: /***/***" in deliveries[1].last_error
    )
    rows = list(History.objects.filter(step=Step.NOTIFY))
    assert len(rows) == 6  # 3 attempts on each channel
    _clean("History", json.dumps([(r.message, r.payload) for r in rows]))
    _clean("deliveries", json.dumps([(d.last_error, d.title, d.body) for d in deliveries]))
    _clean("channels", json.dumps(list(Channel.objects.values("key", "label", "last_error"))))
    ours = [
        r for r in caplog.records if not r.name.startswith("apprise")
    ]  # Apprise's own go nowhere (LOGGING)
    assert any("failed" in r.getMessage() for r in ours)
    _clean("logs", "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in ours))

    client = Client()
    client.force_login(User.objects.create_superuser("root", password="unused-password-123"))
    channel = Channel.objects.order_by("position").first()
    assert channel is not None
    for url in (
        "/",
        "/admin/notifications/channel/",
        f"/admin/notifications/channel/{channel.pk}/change/",
        "/admin/notifications/delivery/",
        f"/admin/notifications/delivery/{deliveries[0].pk}/change/",
        "/admin/runs/history/",
        f"/admin/runs/history/{rows[0].pk}/change/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        _clean(url, response.content.decode())
    dashboard = client.get("/").content.decode()
    assert dashboard.count("notification channel ") == 2  # both channels failed for good: two error lines


def test_settings_dumps_show_no_url(settings: Settings) -> None:
    from barter_site.settings.barter import _notify_urls

    settings.BARTER_NOTIFY_URLS = _notify_urls(f"json://u:{PASSWORD}@h.example/{TOKEN}, ntfy://x%2Cy ,")
    assert len(settings.BARTER_NOTIFY_URLS) == 2 and settings.BARTER_NOTIFY_URLS[1] == "ntfy://x%2Cy"
    assert repr(settings.BARTER_NOTIFY_URLS) == "<2 notification URL(s), hidden>"
    try:
        raise RuntimeError("a crash with DEBUG on")
    except RuntimeError:
        page = ExceptionReporter(None, *sys.exc_info()).get_traceback_html()
    assert "BARTER_NOTIFY_URLS" in page
    _clean("Django's error page", page)
