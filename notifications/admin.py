"""Admin of notifications: the channels (from ``BARTER_NOTIFY_URLS``; their filters, on or off, and "Send a test
message") and the deliveries (read-only). No URL is shown anywhere: a channel is named by its label."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from barter_site.admin import BarterAdmin, ReadOnlyAdmin
from notifications.events import UNFILTERED_EVENTS, NotificationEvent
from notifications.models import Channel, Delivery
from notifications.services import channels_sync, test_message_send

if TYPE_CHECKING:
    _ModelForm = forms.ModelForm[Channel]
else:
    _ModelForm = forms.ModelForm

#: The events a channel's filter selects, as (value, label) for the checkboxes.
FILTERABLE_CHOICES = [
    (str(event.value), str(event.label)) for event in NotificationEvent if event not in UNFILTERED_EVENTS
]


class ChannelForm(_ModelForm):
    """A channel's filter (one checkbox per event) and its switch."""

    events = forms.MultipleChoiceField(
        choices=FILTERABLE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The events this channel gets. The missed-run alarm goes to every enabled channel whatever "
        "is ticked.",
    )

    class Meta:
        model = Channel
        fields = ["enabled", "events"]

    def clean_events(self) -> list[str]:
        """The ticked events, in declaration order."""
        ticked = set(self.cleaned_data.get("events") or [])
        return [value for value, _ in FILTERABLE_CHOICES if value in ticked]


@admin.register(Channel)
class ChannelAdmin(BarterAdmin):
    """Channels: one per URL of ``BARTER_NOTIFY_URLS`` (made by :func:`notifications.services.channels_sync`
    when the list is shown); no add; delete only of a channel whose URL left the setting; "Send a test message"
    needs ``notifications.send_test_message`` and ``notifications.change_channel``."""

    form = ChannelForm
    list_display = [
        "position",
        "label",
        "configured",
        "enabled",
        "events_text",
        "last_sent_at",
        "last_error_text",
        "last_error_at",
    ]
    list_display_links = ["position", "label"]
    list_filter = ["configured", "enabled"]
    fields = [
        "position",
        "label",
        "configured",
        "enabled",
        "events",
        "last_sent_at",
        "last_error",
        "last_error_at",
    ]
    readonly_fields = ["position", "label", "configured", "last_sent_at", "last_error", "last_error_at"]
    actions = ["send_test_message"]

    @admin.display(description="events")
    def events_text(self, obj: Channel) -> str:
        events = obj.events or []
        if set(events) >= {value for value, _ in FILTERABLE_CHOICES}:
            return "all"
        return ", ".join(events) or "none (the missed-run alarm only)"

    @admin.display(description="last error")
    def last_error_text(self, obj: Channel) -> str:
        return obj.last_error[:200] or "-"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The list, after bringing the channels up to date with ``BARTER_NOTIFY_URLS``."""
        channels_sync()
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # channels come from the environment

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or not obj.configured)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        kept = queryset.filter(configured=True).count()
        if kept:
            self.message_user(
                request,
                f"{kept} channel(s) not deleted: their URL is still in BARTER_NOTIFY_URLS.",
                messages.WARNING,
            )
        super().delete_queryset(request, queryset.filter(configured=False))

    def has_send_test_permission(self, request: HttpRequest) -> bool:
        """Sending a test message needs ``notifications.send_test_message`` and ``notifications.change_channel``."""
        return request.user.has_perms(["notifications.send_test_message", "notifications.change_channel"])

    @admin.action(description="Send a test message", permissions=["send_test"])
    def send_test_message(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        for channel in queryset.order_by("position", "id"):
            name = f"channel {channel.position} ({channel.label})"
            if not channel.configured:
                self.message_user(
                    request, f"{name}: not sent: its URL is no longer in BARTER_NOTIFY_URLS.", messages.ERROR
                )
                continue
            ok, error = test_message_send(channel)
            if ok:
                self.message_user(request, f"{name}: test message sent.", messages.SUCCESS)
            else:
                self.message_user(request, f"{name}: test message failed: {error}", messages.ERROR)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """Deliveries, read-only: each message on its way to one channel (its attempts are History rows of step
    ``notify`` whose run id is the delivery's id)."""

    list_display = ["created_at", "event", "channel", "status", "attempts", "last_error_text", "sent_at"]
    list_filter = ["status", "event"]
    list_select_related = ["channel"]
    search_fields = ["=key"]
    date_hierarchy = "created_at"

    @admin.display(description="last error")
    def last_error_text(self, obj: Delivery) -> str:
        return obj.last_error[:200] or "-"
