"""HTTP to CoinGecko, and nothing else: pycoingecko builds the requests, this module sends them.

One ``requests`` session per client, with a timeout on every call and a ``urllib3.Retry`` that retries 429 and
5xx with exponential backoff and honours ``Retry-After`` (capped). The API key travels in the plan's header
(``x-cg-demo-api-key`` or ``x-cg-pro-api-key``), never in the URL, so it cannot reach a log line or ``History``.
Every failure becomes a :class:`~instruments.sources.coingecko.errors.CoinGeckoError` subclass whose
``retryable`` says whether a later try may work.
JSON numbers are parsed straight to ``Decimal`` (no float ever holds a price).

Facts from CoinGecko's API documentation (v3) and the recorded responses in ``tests/fixtures/coingecko/``:
Demo keys use https://api.coingecko.com/api/v3, paid keys https://pro-api.coingecko.com/api/v3; a 429 carries
``retry-after`` in seconds; error bodies come as ``{"error": "..."}``, ``{"status": 500, "error": "..."}`` or
``{"status": {"error_code": 429, "error_message": "..."}}``, and proxies may answer with plain text or HTML.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests
from pycoingecko import CoinGeckoAPI
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from barter_site.errors import ApplicationError
from instruments.sources.coingecko.errors import (
    CoinGeckoBadResponseError,
    CoinGeckoBodyCutError,
    CoinGeckoRateLimitedError,
    CoinGeckoRequestError,
    CoinGeckoServerError,
    CoinGeckoUnavailableError,
)
from instruments.sources.coingecko.ratelimit import CoinGeckoRateLimiter

logger = logging.getLogger(__name__)

DEMO_BASE_URL = "https://api.coingecko.com/api/v3"
PRO_BASE_URL = "https://pro-api.coingecko.com/api/v3"
KEY_HEADERS = {"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"}
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CappedRetry(Retry):
    """``urllib3.Retry`` whose wait for ``Retry-After`` is capped at ``retry_after_max_seconds``.

    A proxy answering ``Retry-After: 3600`` must not hang a daily run for an hour; past the cap we wait the cap,
    and after the last retry the 429 becomes :class:`CoinGeckoRateLimitedError`. With a ``limiter``, every retry
    also takes a call slot after its wait, so retries count against the shared budget like first tries.
    """

    def __init__(
        self,
        *args: Any,
        retry_after_max_seconds: float = 60.0,
        limiter: CoinGeckoRateLimiter | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_max_seconds = retry_after_max_seconds
        self.limiter = limiter

    def new(self, **kw: Any) -> CappedRetry:
        kw.setdefault("retry_after_max_seconds", self.retry_after_max_seconds)
        kw.setdefault("limiter", self.limiter)
        return super().new(**kw)

    def sleep(self, response: Any = None) -> None:
        """Wait before the next try (backoff or ``Retry-After``), then take a call slot for it.

        Raises:
            CoinGeckoRateLimitWaitError: no slot freed in time; the retry is not sent.
        """
        super().sleep(response)
        if self.limiter is not None:
            self.limiter.acquire()

    def get_retry_after(self, response: Any) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(seconds, self.retry_after_max_seconds)


@dataclass(frozen=True)
class CoinGeckoConfig:
    """How to reach CoinGecko.

    Attributes:
        api_key: the plan's key; empty for the keyless public API.
        plan: ``"demo"`` or ``"pro"``; picks the default host and the key's header.
        base_url: overrides the host (proxies, tests); empty means the plan's host.
        timeout_seconds: connect and read timeout of every call.
        max_retries: retries after the first try for 429, 5xx, connection errors and timeouts.
        backoff_factor: seconds; the n-th retry waits ``backoff_factor * 2 ** (n - 1)`` unless Retry-After says.
        retry_after_max_seconds: the longest wait a ``Retry-After`` header can impose.
    """

    api_key: str = ""
    plan: str = "demo"
    base_url: str = ""
    timeout_seconds: float = 20.0
    max_retries: int = 4
    backoff_factor: float = 1.0
    retry_after_max_seconds: float = 65.0

    def __post_init__(self) -> None:
        if self.plan not in KEY_HEADERS:
            raise ApplicationError(
                f"COINGECKO_API_PLAN must be one of {', '.join(KEY_HEADERS)}; was {self.plan!r}",
                extra={"setting": "COINGECKO_API_PLAN"},
            )

    @property
    def root_url(self) -> str:
        """The API root with a trailing slash, as pycoingecko expects."""
        default = PRO_BASE_URL if self.plan == "pro" else DEMO_BASE_URL
        return (self.base_url or default).rstrip("/") + "/"


class _PyCoinGecko(CoinGeckoAPI):  # type: ignore[misc, unused-ignore]  # pycoingecko: untyped (Any) under --strict
    """pycoingecko with its one private request method replaced, so its URL building is reused and our
    session, error mapping and Decimal parsing are used (pycoingecko sends keys as query parameters and
    parses numbers as floats, both of which we must avoid)."""

    def __init__(self, client: CoinGeckoClient) -> None:
        super().__init__(retries=0)
        self._client = client
        self.api_base_url = client.config.root_url

    def _CoinGeckoAPI__request(self, url: str, params: dict[str, Any]) -> Any:
        return self._client.get_json(url, params)


class CoinGeckoClient:
    """A CoinGecko v3 client: pycoingecko's endpoints over a hardened session.

    Use the endpoint methods of :attr:`api` (pycoingecko's names, e.g.
    ``client.api.get_coin_ohlc_by_id(id="bitcoin", vs_currency="usd", days=2)``); they return JSON with
    ``Decimal`` numbers or raise :class:`CoinGeckoError`.

    Args:
        config: how to reach CoinGecko.
        limiter: the shared calls-per-minute budget; every HTTP call, retries included, takes a slot from it
            first. None sends calls unlimited (CoinGecko's 429s and ``Retry-After`` are then the only brake).
    """

    def __init__(self, config: CoinGeckoConfig, limiter: CoinGeckoRateLimiter | None = None) -> None:
        self.config = config
        self.limiter = limiter
        self.session = requests.Session()
        self.session.headers.update({"accept": "application/json", "user-agent": "barter/0.1"})
        if config.api_key:
            self.session.headers[KEY_HEADERS[config.plan]] = config.api_key
        retry = CappedRetry(
            total=config.max_retries,
            # No answer at all (offline, DNS) rarely heals within seconds: two retries, then report it.
            connect=min(config.max_retries, 2),
            read=min(config.max_retries, 2),
            status=config.max_retries,
            backoff_factor=config.backoff_factor,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}),
            respect_retry_after_header=True,
            raise_on_status=False,  # after the last retry, hand back the response so its body can be mapped
            retry_after_max_seconds=config.retry_after_max_seconds,
            limiter=limiter,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.api = _PyCoinGecko(self)

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET ``url`` and return its JSON body with numbers as ``Decimal``.

        Status and connection failures are retried by the session's :class:`CappedRetry`. A 2xx whose body is
        cut off or is not JSON (a proxy's HTML page, a truncated body) is sent again here, at most
        ``min(max_retries, 2)`` more times, after ``backoff_factor * 2 ** n`` seconds (n = 0, 1); each try
        takes a call slot from the limiter.

        Raises:
            CoinGeckoRateLimitedError, CoinGeckoServerError: 429 or 5xx after every retry.
            CoinGeckoUnavailableError: no response (connection refused or reset, timeout) after every retry, or
                a body cut off on every try.
            CoinGeckoRequestError: any other 4xx.
            CoinGeckoBadResponseError: a 2xx whose body is not JSON on every try.
            CoinGeckoRateLimitWaitError: the limiter had no call slot within its wait bound (nothing sent).
        """
        endpoint = url.removeprefix(self.config.root_url.rstrip("/"))
        body_retries = min(self.config.max_retries, 2)
        for attempt in range(body_retries + 1):
            try:
                return self._get_once(url, params, endpoint, tries=attempt + 1)
            except (CoinGeckoBadResponseError, CoinGeckoBodyCutError) as exc:
                if attempt == body_retries:
                    raise
                logger.warning("CoinGecko %s: %s; trying again", endpoint, exc.message)
                time.sleep(self.config.backoff_factor * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover  # the loop returns or raises

    def _get_once(self, url: str, params: dict[str, Any] | None, endpoint: str, *, tries: int) -> Any:
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            response = self.session.get(url, params=params, timeout=self.config.timeout_seconds)
        except requests.exceptions.RetryError as exc:
            raise CoinGeckoServerError(
                f"CoinGecko {endpoint}: still failing after {self.config.max_retries} retries ({exc})",
                url=endpoint,
            ) from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as exc:
            # The status and headers came, then the connection closed before the whole body (requests reads
            # it after urllib3's retries are over, so those do not cover it).
            raise CoinGeckoBodyCutError(
                f"CoinGecko {endpoint}: the response body was cut off on {tries} tr{'y' if tries == 1 else 'ies'} "
                f"({_no_response_reason(exc)}); try later",
                url=endpoint,
            ) from exc
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise CoinGeckoUnavailableError(
                f"CoinGecko {endpoint}: no response after {min(self.config.max_retries, 2)} retries "
                f"({_no_response_reason(exc, timeout_seconds=self.config.timeout_seconds)}); "
                "check the network or try later",
                url=endpoint,
            ) from exc
        return _parse(response, endpoint, secret=self.config.api_key)


def _no_response_reason(exc: BaseException, *, timeout_seconds: float | None = None) -> str:
    """Name what went wrong under a requests error: a timeout, a reset, a refusal, a close, a cut body.

    requests wraps urllib3's ``MaxRetryError`` (whose ``reason`` is the last failure) in a bare
    ``ConnectionError``, and a read timeout after every retry arrives that way too; the type alone says nothing.
    """
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        seen.append(current)
        todo += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        for linked in (getattr(current, "reason", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)
    names = {type(e).__name__ for e in seen}
    text = " ".join(str(e) for e in seen)
    after = f" after {timeout_seconds:g} s" if timeout_seconds is not None else ""
    if names & {"ReadTimeoutError", "ReadTimeout", "TimeoutError", "timeout"} or "timed out" in text:
        kind = "connect" if names & {"ConnectTimeoutError", "ConnectTimeout"} else "read"
        return f"{kind} timed out{after}"
    if "IncompleteRead" in text:
        match = re.search(r"IncompleteRead\((\d+) bytes read, (\d+) more expected\)", text)
        if match:
            read, more = int(match.group(1)), int(match.group(2))
            return f"connection closed after {read} of {read + more} bytes"
        return "connection closed before the whole body"
    if "ConnectionResetError" in names or "reset by peer" in text:
        return "connection reset by the server"
    if "ConnectionRefusedError" in names or "refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in names:
        return "connection closed without a response"
    if names & {"NameResolutionError", "gaierror"}:
        return "host name not resolved"
    return type(exc).__name__


def _parse(response: requests.Response, endpoint: str, *, secret: str = "") -> Any:
    status = response.status_code
    text = response.content.decode("utf-8", errors="replace")
    if secret:
        # An error body may echo the key back ("Invalid API Key: CG-..."); messages built from it reach logs,
        # History and API responses, so the key is cut out first.
        text = text.replace(secret, "[redacted]")
    if 200 <= status < 300:
        try:
            return json.loads(text, parse_float=Decimal, parse_int=Decimal)
        except json.JSONDecodeError as exc:
            raise CoinGeckoBadResponseError(
                f"CoinGecko {endpoint}: HTTP {status} with a body that is not JSON ({exc.msg} at char {exc.pos}): "
                f"{_snippet(text)!r}",
                status=status,
                url=endpoint,
            ) from exc
    reason = error_message(text)
    if status == 429:
        raise CoinGeckoRateLimitedError(
            f"CoinGecko {endpoint}: rate limited (HTTP 429) after every retry: {reason}",
            status=status,
            url=endpoint,
        )
    if status >= 500:
        raise CoinGeckoServerError(
            f"CoinGecko {endpoint}: HTTP {status}: {reason}", status=status, url=endpoint
        )
    raise CoinGeckoRequestError(f"CoinGecko {endpoint}: HTTP {status}: {reason}", status=status, url=endpoint)


def error_message(body: str) -> str:
    """Return the human message inside one of CoinGecko's error bodies, whatever its shape.

    Handles ``{"error": "..."}``, ``{"status": 500, "error": "..."}``, ``{"status": {"error_code": 429,
    "error_message": "..."}}``, ``{"error": {"status": {...}}}``, and plain text or HTML (reduced to a snippet).
    """
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return _snippet(body)
    return _message_in(data) or _snippet(body)


def _message_in(data: Any) -> str:
    if isinstance(data, str):
        return data
    if not isinstance(data, dict):
        return ""
    for key in ("error_message", "error", "message", "status"):
        if key in data:
            found = _message_in(data[key])
            if found:
                return found
    return ""


def _snippet(text: str, limit: int = 160) -> str:
    plain = re.sub(r"<[^>]+>", " ", text)
    plain = " ".join(plain.split())
    return plain[:limit] + ("..." if len(plain) > limit else "")
