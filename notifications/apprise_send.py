"""Apprise, and only Apprise: send one message to one URL with a timeout, say why a send failed without any
secret of the URL in it, and name a URL for people without a secret in it (:func:`url_label`).

Facts of Apprise 2.3 this relies on (read in its source, pinned in requirements.lock):

- ``Apprise.instantiate(url)`` makes a plugin (``NotifyBase``) or None for an URL it cannot parse;
  ``plugin.notify(body=, title=)`` sends in the calling thread and returns a bool (``Apprise.notify`` would send
  from a thread pool of its own).
- Every plugin's timeouts are ``socket_connect_timeout`` and ``socket_read_timeout`` (the URL arguments ``cto`` and
  ``rto``): the HTTP plugins pass both to requests, the email plugin passes ``socket_connect_timeout`` to
  ``smtplib.SMTP`` (the socket's timeout for the whole session).
- A failure is told only through the ``apprise`` logger: at WARNING what failed ('A Connection error occurred
  sending JSON notification to 127.0.0.1.'), at DEBUG why ('Socket Exception: ... Read timed out.'), and other
  DEBUG lines carry the full URL posted to, tokens and all. The settings send that logger's records nowhere
  (``LOGGING``); :func:`send` collects the warnings and the socket exception of its own thread and redacts them.
- ``url(privacy=True)`` masks passwords and some tokens, but not every secret: a ``json://`` webhook's path (often
  its token) and an ``ntfy://`` topic are shown whole. Hence :func:`url_label` shows the scheme and host only.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise

APPRISE_LOGGER = "apprise"
#: What stands for a secret cut out of a reason.
REDACTED = "***"
#: The reason given when Apprise says nothing of why (it logs nothing for some refusals).
UNKNOWN_REASON = "the service refused the message or could not be reached"
_HOST = re.compile(r"^(?:[a-z0-9-]+\.)+[a-z0-9-]+$|^localhost$|^\[[0-9a-f:]+\]$", re.IGNORECASE)


@dataclass(frozen=True)
class SendResult:
    """What one send did.

    Attributes:
        ok: the service accepted the message.
        error: why not (redacted: no part of the URL but its scheme and host), "" when ``ok``.
    """

    ok: bool
    error: str = ""


class _ThreadCapture(logging.Handler):
    """Collects the ``apprise`` logger's records emitted by one thread (sends in other threads are not mixed in,
    unlike ``apprise.LogCapture``, which also changes the logger's level for every thread)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        text = record.getMessage()
        # Warnings say what failed; one DEBUG line says why ("Socket Exception: ... Read timed out.").
        if record.levelno >= logging.WARNING or text.startswith("Socket Exception"):
            self.lines.append(text)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _host_port(url: str) -> tuple[str, str]:
    """The URL's host when it looks like a host name or an IP address (not a token in a host's place, as in
    ``tgram://<bot token>/`` or ``ntfy://<topic>``), and its port; "" for what is not shown."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "", ""
    try:
        port = str(parts.port or "")
    except ValueError:  # "bot:token" in the host's place: no port
        port = ""
    if not _HOST.match(host) or len(host) > 100:
        return "", ""
    return host, port


def url_label(url: str) -> str:
    """Name an Apprise URL for people, with no secret: its service, scheme and host (and port), e.g.
    ``"JSON json://hooks.example.com"``, ``"Telegram tgram://"`` (a bot token stands where a host would).

    Args:
        url: an Apprise URL.

    Returns:
        At most 200 characters; ``"invalid URL <scheme>://"`` when Apprise cannot parse it.
    """
    scheme = _scheme(url)
    host, port = _host_port(url)
    where = f"{scheme}://{host}{':' + port if host and port else ''}"
    try:
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
    except Exception:  # a plugin that raises on a malformed URL
        plugin = None
    if plugin is None:
        return f"invalid URL {where}"[:200]
    service = str(getattr(plugin, "service_name", "") or "").strip()
    return f"{service} {where}".strip()[:200]


def url_secrets(url: str) -> list[str]:
    """Every part of an URL that may be secret, longest first: the URL, its user and password, a host that is no
    host name, each path segment, the query and each query value, each also percent-decoded. The scheme, a host
    name and the port are not among them (they name the channel in :func:`url_label`)."""
    found = {url, unquote(url)}
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None:
        netloc = parts.netloc
        found.add(netloc)
        userinfo, _, hostport = netloc.rpartition("@")
        found.update(userinfo.split(":"))
        host, _ = _host_port(url)
        if not host:
            found.update(hostport.split(":"))
        found.update(parts.path.split("/"))
        found.add(parts.query)
        found.update(value for _, value in parse_qsl(parts.query, keep_blank_values=True))
        found.update(value for value in parts.query.split("&"))
    decoded = {unquote(text) for text in found}
    keep = {text for text in found | decoded if len(text) >= 2 and text.lower() not in _HARMLESS}
    return sorted(keep, key=len, reverse=True)


#: Parts too common to be secrets, whose redaction would only garble a reason.
_HARMLESS = frozenset({"http", "https", "json", "jsons", "post", "get", "yes", "no", "true", "false"})


def text_redact(text: str, url: str) -> str:
    """Return ``text`` with every part of ``url`` that may be secret (:func:`url_secrets`) replaced by
    :data:`REDACTED`."""
    host, _ = _host_port(url)
    if not host:
        for secret in url_secrets(url):
            text = text.replace(secret, REDACTED)
        return text
    # The host names the channel (url_label): kept whole, even where a secret is a part of it (a path segment
    # "hooks" in "hooks.example.com"). Parts holding the host (the URL, user@host) go by their own parts.
    secrets = [secret for secret in url_secrets(url) if host not in secret]
    pieces = []
    for piece in text.split(host):
        for secret in secrets:
            piece = piece.replace(secret, REDACTED)
        pieces.append(piece)
    return host.join(pieces)


def _asset() -> apprise.AppriseAsset:
    # Apprise's persistent store (caches of some plugins) stays in memory: nothing of a channel is written to disk.
    return apprise.AppriseAsset(storage_mode="memory")


def send(url: str, *, title: str, body: str, timeout_seconds: float) -> SendResult:
    """Send one message to one Apprise URL, in this thread, giving up after ``timeout_seconds`` to connect and as
    many to read (the URL's own ``cto``/``rto`` arguments win when it has them). Never raises.

    Args:
        url: an Apprise URL (secret: it is never logged; reasons are redacted with :func:`text_redact`).
        title: one line.
        body: plain text.
        timeout_seconds: > 0.

    Returns:
        Whether the service accepted it, and why not.
    """
    capture = _ThreadCapture()
    logger = logging.getLogger(APPRISE_LOGGER)
    logger.addHandler(capture)
    try:
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
        if plugin is None:
            return SendResult(False, "Apprise cannot use this URL (unknown scheme or missing parts)")
        query = urlsplit(url).query if "?" in url else ""
        arguments = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
        if "cto" not in arguments:
            plugin.socket_connect_timeout = timeout_seconds
        if "rto" not in arguments:
            plugin.socket_read_timeout = timeout_seconds
        ok = bool(plugin.notify(body=body, title=title))
    except Exception as exc:  # a plugin's own bug must not escape: the caller records the failure
        ok = False
        capture.lines.append(f"{type(exc).__name__}: {exc}")
    finally:
        logger.removeHandler(capture)
    if ok:
        return SendResult(True)
    reason = "; ".join(line.strip() for line in capture.lines if line.strip()) or UNKNOWN_REASON
    return SendResult(False, text_redact(reason, url)[:1000])
