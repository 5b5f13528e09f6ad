"""CoinGecko's failures as Barter errors: every one says whether a later try may work (``retryable``).

The client (:mod:`~instruments.sources.coingecko.client`) raises them; the rate limiter
(:mod:`~instruments.sources.coingecko.ratelimit`) raises :class:`CoinGeckoRateLimitWaitError`. Both import this
module, so neither imports the other for its errors.
"""

from __future__ import annotations

from barter_site.errors import ApplicationError


class CoinGeckoError(ApplicationError):
    """CoinGecko could not give what was asked. ``status`` is the HTTP status, or None without a response."""

    http_status = 502
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message, extra={"status": status, "url": url})
        self.status = status


class CoinGeckoRateLimitedError(CoinGeckoError):
    """429 after every retry: the plan's calls per minute are used up. Try again in a minute."""

    retryable = True


class CoinGeckoRateLimitWaitError(CoinGeckoRateLimitedError):
    """Our own budget (:mod:`~instruments.sources.coingecko.ratelimit`) had no free call slot within the wait
    bound, so no request was sent. Try again later."""


class CoinGeckoServerError(CoinGeckoError):
    """5xx after every retry: CoinGecko (or a proxy in front of it) is failing. Try again later."""

    retryable = True


class CoinGeckoUnavailableError(CoinGeckoError):
    """No response at all: connection refused or reset, DNS failure, or a timeout. Try again later."""

    retryable = True


class CoinGeckoBodyCutError(CoinGeckoUnavailableError):
    """The status and headers came, then the connection closed before the whole body. Try again later."""


class CoinGeckoRequestError(CoinGeckoError):
    """4xx other than 429: the request is wrong (unknown coin, bad parameter, key refused). Do not retry."""


class CoinGeckoBadResponseError(CoinGeckoError):
    """A 2xx whose body is not the JSON we expect (HTML, plain text, truncated JSON). Try again later."""

    retryable = True
