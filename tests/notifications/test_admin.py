"""The channels' admin: the list made from BARTER_NOTIFY_URLS, the filters as checkboxes, "Send a test message"
(to a real local server; refused without its permission), no add, delete only of a channel no longer configured;
and that no page shows a URL's secret."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import Settings

from notifications.models import Channel, Delivery
from notifications.services import channels_sync
from runs.models import History, HistoryKind
from tests.accounts import user_with
from tests.fakes.notify_servers import Webhook
from tests.notifications.conftest import PASSWORD, TOKEN, webhook_url

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/notifications/channel/"


@pytest.fixture
def root() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="unused-password-123"))
    return client


def _messages(response: object) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages._queued_messages]  # type: ignore[attr-defined]


def test_the_list_is_made_from_the_setting_and_shows_no_url(
    fast: Settings, webhook: tuple[Webhook, int], root: Client
) -> None:
    _, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port), "tgram://123456789:AAH-bot-SECRET/12345")

    page = root.get(CHANGELIST).content.decode()

    assert Channel.objects.count() == 2
    assert f"JSON json://127.0.0.1:{port}" in page and "Telegram tgram://" in page
    assert "BARTER_NOTIFY_URLS" in page  # the note: channels come from the environment
    for secret in (PASSWORD, TOKEN, "AAH-bot-SECRET", "123456789"):
        assert secret not in page
    assert root.get(f"{CHANGELIST}add/").status_code == 403


def test_the_filter_is_edited_with_checkboxes(fast: Settings, root: Client) -> None:
    fast.BARTER_NOTIFY_URLS = ("json://127.0.0.1:9/x",)
    (channel,) = channels_sync()
    url = f"{CHANGELIST}{channel.pk}/change/"
    form = root.get(url).content.decode()
    assert 'type="checkbox" name="events" value="digest"' in form

    response = root.post(url, {"enabled": "on", "events": ["digest", "halt"]})

    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.enabled, channel.events) == (True, ["halt", "digest"])  # in the events' order
    root.post(url, {"events": []})
    channel.refresh_from_db()
    assert (channel.enabled, channel.events) == (False, [])


def test_only_a_channel_no_longer_configured_can_be_deleted(fast: Settings, root: Client) -> None:
    fast.BARTER_NOTIFY_URLS = ("json://127.0.0.1:9/x", "json://127.0.0.1:9/y")
    kept, dropped = channels_sync()
    fast.BARTER_NOTIFY_URLS = ("json://127.0.0.1:9/x",)
    channels_sync()

    assert root.get(f"{CHANGELIST}{kept.pk}/delete/").status_code == 403
    assert root.post(f"{CHANGELIST}{dropped.pk}/delete/", {"post": "yes"}).status_code == 302
    assert list(Channel.objects.values_list("pk", flat=True)) == [kept.pk]


def test_send_a_test_message_reaches_the_local_server(
    fast: Settings, webhook: tuple[Webhook, int], root: Client
) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    (channel,) = channels_sync()
    Channel.objects.filter(pk=channel.pk).update(enabled=False, events=[])  # a test ignores both

    response = root.post(CHANGELIST, {"action": "send_test_message", "_selected_action": [channel.pk]})

    assert response.status_code == 302
    assert _messages(response) == [f"channel 1 (JSON json://127.0.0.1:{port}): test message sent."]
    assert [body["title"] for _, body, _ in state.received] == ["Barter: test message"]
    delivery = Delivery.objects.get()
    assert delivery.key.startswith("test:") and delivery.status == Delivery.Status.SENT
    assert History.objects.filter(run_id=delivery.pk, kind=HistoryKind.NOTIFICATION_SENT).count() == 1


def test_a_failed_test_message_shows_the_reason_without_a_secret(
    fast: Settings, webhook: tuple[Webhook, int], root: Client
) -> None:
    state, port = webhook
    state.statuses = [401]
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    (channel,) = channels_sync()

    response = root.post(
        CHANGELIST, {"action": "send_test_message", "_selected_action": [channel.pk]}, follow=True
    )

    page = response.content.decode()
    assert "test message failed: Failed to send JSON POST notification" in page
    assert "error=401" in page
    channel.refresh_from_db()
    assert "error=401" in channel.last_error
    for url in (
        CHANGELIST,
        f"{CHANGELIST}{channel.pk}/change/",
        "/admin/notifications/delivery/",
        f"/admin/notifications/delivery/{Delivery.objects.get().pk}/change/",
        "/admin/runs/history/",
        f"/admin/runs/history/{History.objects.get().pk}/change/",
    ):
        shown = root.get(url)
        assert shown.status_code == 200, url
        text = shown.content.decode()
        assert PASSWORD not in text and TOKEN not in text, url
    assert PASSWORD not in page and TOKEN not in page


def test_a_test_message_needs_its_permission(fast: Settings, webhook: tuple[Webhook, int]) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    (channel,) = channels_sync()
    allowed = user_with(
        "tester", "notifications.send_test_message", "notifications.change_channel", is_staff=True
    )
    editor = user_with("editor", "notifications.change_channel", is_staff=True)
    post = {"action": "send_test_message", "_selected_action": [channel.pk]}

    refused = Client()
    refused.force_login(editor)
    response = refused.post(CHANGELIST, post)
    # Django offers no action to this user: the change list comes back (200), nothing ran.
    assert response.status_code == 200 and "test message" not in " ".join(_messages(response))
    assert "send_test_message" not in refused.get(CHANGELIST).content.decode()
    assert state.requests == 0

    client = Client()
    client.force_login(allowed)
    response = client.post(CHANGELIST, post)
    assert _messages(response) == [f"channel 1 (JSON json://127.0.0.1:{port}): test message sent."]
    assert state.requests == 1
