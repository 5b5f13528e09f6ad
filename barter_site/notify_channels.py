"""The keys of the notification channels configured now (``BARTER_NOTIFY_URLS``), shared by the notifications app,
which names each channel by its key, and the dashboard (positions), which shows the failures of configured
channels only and imports no notifications code."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings


def notify_channel_key(url: str) -> str:
    """Return the key of the channel of ``url``: HMAC-SHA256 of it keyed with ``SECRET_KEY``, 64 hex digits (the
    URL cannot be read back from it, nor guessed without the secret key)."""
    return hmac.new(settings.SECRET_KEY.encode(), url.encode(), hashlib.sha256).hexdigest()


def notify_channel_keys() -> set[str]:
    """Return the keys of the URLs of ``BARTER_NOTIFY_URLS`` (:func:`notify_channel_key`)."""
    return {notify_channel_key(url) for url in settings.BARTER_NOTIFY_URLS}
