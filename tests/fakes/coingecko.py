"""A fake CoinGecko on 127.0.0.1 that replays recorded real responses and injects faults.

Tests script replies per path (``/api/v3/coins/bitcoin/ohlc``); each request takes the next scripted reply, and
the last one repeats. Every request is kept (path, query, headers) so tests can check what was sent. Using a
real socket means the client's real ``urllib3.Retry`` runs, including its ``Retry-After`` handling.

Besides status codes and bodies, a reply can fail the way networks do: close without answering
(``drop_connection``), reset the connection (``reset``: an RST, ``ECONNRESET`` on the client), answer only after
``delay_seconds`` (longer than the client's timeout: a read timeout), or send the headers and the first
``cut_after_bytes`` bytes of a body announced whole, then close (a body cut in the middle). Waits use an event
that :meth:`FakeCoinGecko.__exit__` sets, never ``time.sleep`` (tests stub it), so no thread outlives the fake.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import yaml

RECORDINGS = Path(__file__).resolve().parent.parent / "fixtures" / "coingecko"


@dataclass
class Reply:
    """One scripted HTTP reply."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    drop_connection: bool = False
    reset: bool = False
    delay_seconds: float = 0.0
    cut_after_bytes: int | None = None


def json_reply(data: Any, status: int = 200, **headers: str) -> Reply:
    """A JSON reply."""
    return Reply(status, json.dumps(data).encode(), {"Content-Type": "application/json", **headers})


def recorded(cassette: str, index: int = 0) -> Reply:
    """Return interaction ``index`` of a recorded VCR cassette in ``tests/fixtures/coingecko/`` as a reply."""
    data = yaml.safe_load((RECORDINGS / cassette).read_text())
    response = data["http_interactions"][index]["response"]
    body = response["body"]["string"]
    content_type = response["headers"].get("Content-Type", ["application/json"])[0]
    return Reply(
        response["status"]["code"],
        body.encode() if isinstance(body, str) else body,
        {"Content-Type": content_type},
    )


@dataclass
class Seen:
    """A request the fake received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeCoinGecko:
    """The server. Use as a context manager; ``base_url`` is what ``COINGECKO_BASE_URL`` should be."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with fake._lock:
                    fake.seen.append(Seen(parts.path, parse_qs(parts.query), dict(self.headers.items())))
                    queue = fake.routes.get(parts.path)
                    reply = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else None
                if reply is None:
                    reply = json_reply({"error": "coin not found"}, status=404)
                if reply.delay_seconds and fake._released.wait(reply.delay_seconds):
                    return  # the fake is closing: give up on this reply
                if reply.drop_connection:
                    self.connection.close()
                    return
                if reply.reset:
                    # SO_LINGER on with a zero timeout: close() sends an RST instead of a FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.cut_after_bytes is None:
                        self.wfile.write(reply.body)
                    else:
                        self.wfile.write(reply.body[: reply.cut_after_bytes])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    return  # the client gave up first (its timeout): nobody is listening any more

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v3"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def add(self, path: str, *replies: Reply) -> None:
        """Script the replies of ``path`` (below ``/api/v3``), in order; the last one repeats."""
        self.routes["/api/v3" + path] = list(replies)

    def requests_to(self, path: str) -> list[Seen]:
        """The requests received for ``path`` (below ``/api/v3``)."""
        return [s for s in self.seen if s.path == "/api/v3" + path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
