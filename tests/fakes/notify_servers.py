"""Local servers that notifications are sent to in the tests: an SMTP server (aiosmtpd) and an HTTP server that
takes Apprise ``json://`` webhooks, answering as told (accept, refuse with a status, or hang past a timeout)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.servers import free_port


@dataclass
class SmtpInbox:
    """What the SMTP server received: one envelope per message."""

    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpInbox, int]]:
    """An SMTP server on a free 127.0.0.1 port (plain SMTP, no TLS, no login): ``(inbox, port)``."""
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@dataclass
class Webhook:
    """The HTTP server's state: what it received, and how it answers the next requests.

    Attributes:
        received: ``(path, JSON body, headers)`` of each request answered.
        statuses: statuses to answer, first first (then 200); e.g. ``[500, 500]`` refuses twice.
        hang_seconds: sleep this long before answering (past the client's read timeout: it times out).
    """

    received: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    hang_seconds: float = 0.0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(state: Webhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with state.lock:
                state.requests += 1
                hang = state.hang_seconds
                status = state.statuses.pop(0) if state.statuses else 200
            if hang:
                # Not time.sleep: tests that fake CoinGecko patch it for urllib3 (tests/conftest.py retry_sleeps).
                threading.Event().wait(hang)
                return  # the client gave up; answer nothing
            if status == 200:
                with state.lock:
                    state.received.append((self.path, json.loads(raw or b"{}"), dict(self.headers.items())))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def webhook_server() -> Iterator[tuple[Webhook, int]]:
    """An HTTP server on a free 127.0.0.1 port in a thread: ``(state, port)``."""
    state = Webhook()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="webhook server", daemon=True)
    thread.start()
    try:
        yield state, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
