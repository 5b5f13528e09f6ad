"""A fake CoinGecko on 127.0.0.1 that replays recorded real responses and injects faults.

Tests script replies per path (``/api/v3/coins/bitcoin/ohlc``); each request takes the next scripted reply, and
the last one repeats. Every request is kept (path, query, headers) so tests can check what was sent. Using a
real socket means the client's real ``urllib3.Retry`` runs, including its ``Retry-After`` handling.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
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
                if reply.drop_connection:
                    self.connection.close()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

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

    def __enter__(self) -> FakeCoinGecko:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
