"""The one way Barter talks to an exchange: :func:`exchange_client`, and :func:`exchange_error` for its failures.

ccxt builds, signs and sends the requests (its synchronous classes use ``requests``); this module configures
the ccxt objects and maps ccxt's exceptions to Barter's :class:`~barter_site.errors.ApplicationError` hierarchy.
Candles (``instruments.sources.exchange.daily``) and live order execution (``trading``) both use it.

Configuration (``barter_site/settings/base.py``): ``BARTER_EXCHANGE_TIMEOUT_SECONDS`` and ``BARTER_EXCHANGES``
(per exchange id: ``api_key``, ``secret``, ``password`` and ``sandbox``, from ``BARTER_EXCHANGE_<ID>_KEY``,
``_SECRET``, ``_PASSWORD``, ``_SANDBOX``). Every object has ccxt's own rate limiter on (``enableRateLimit``): it
spaces the calls *of one object* by the exchange's documented weight, so this module keeps one object per
exchange per process and hands the same one to every caller. Keys are given to ccxt only; they are never
logged, put in a message or stored (ccxt sends them in headers or signatures, and :func:`exchange_error`
masks them and drops query strings from ccxt's messages anyway).

Facts from ccxt 4.5 (``ccxt/base/exchange.py``, ``binance.py``, ``bybit.py``, ``bitget.py``): ``timeout`` is in
milliseconds; ``options["fetchMarkets"]["types"]`` picks the market types ``load_markets`` asks for (each type
is one more request); ``set_sandbox_mode(True)`` switches binance and bybit to their testnet URLs and bitget to
demo trading (header ``PAPTRADING: 1``); bitget's API key needs its passphrase as ``password``.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings

from barter_site.errors import ApplicationError
from instruments.markets import SUPPORTED_EXCHANGE_IDS, ExchangeConfigError, exchange_id_validate

if TYPE_CHECKING:
    import ccxt
else:
    from instruments.sources.exchange import ccxt  # loaded on first use

__all__ = [
    "ExchangeApiError",
    "ExchangeAuthError",
    "ExchangeBadResponseError",
    "ExchangeConfigError",
    "ExchangeRateLimitedError",
    "ExchangeRejectedError",
    "ExchangeSymbolError",
    "ExchangeUnavailableError",
    "exchange_client",
    "exchange_clients_reset",
    "exchange_error",
]

#: Per exchange id, the environment variables an authenticated client needs, by ``BARTER_EXCHANGES`` key.
_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "binance": ("api_key", "secret"),
    "bybit": ("api_key", "secret"),
    "bitget": ("api_key", "secret", "password"),
}
_VARIABLE_SUFFIX = {"api_key": "KEY", "secret": "SECRET", "password": "PASSWORD"}

_clients: dict[str, ccxt.Exchange] = {}
_clients_lock = threading.Lock()


class ExchangeApiError(ApplicationError):
    """An exchange could not do what was asked. ``retryable`` says whether the same call may work later.

    ``extra`` holds ``exchange_id``, ``ccxt_error`` (the ccxt exception's class name) and ``retryable``.
    """

    http_status = 502
    retryable = False


class ExchangeUnavailableError(ExchangeApiError):
    """No usable answer in time: network error, timeout, maintenance or a 5xx. Try again later."""

    retryable = True


class ExchangeRateLimitedError(ExchangeUnavailableError):
    """The exchange refused the call for its rate limit (429) or banned the address for a while (418)."""


class ExchangeBadResponseError(ExchangeUnavailableError):
    """The exchange answered something ccxt could not parse (often a proxy's page). Try again later."""


class ExchangeSymbolError(ExchangeApiError):
    """The exchange does not list the market symbol (ccxt ``BadSymbol``). Fix the instrument's symbol."""

    http_status = 400


class ExchangeAuthError(ExchangeApiError):
    """The exchange refused the API key (wrong key, secret or passphrase, missing permission, IP whitelist)."""


class ExchangeRejectedError(ExchangeApiError):
    """The exchange refused the request itself (any other ccxt ``ExchangeError``: bad request, order, funds)."""


def _variable(exchange_id: str, key: str) -> str:
    return f"BARTER_EXCHANGE_{exchange_id.upper()}_{_VARIABLE_SUFFIX[key]}"


def _config(exchange_id: str) -> dict[str, Any]:
    config: dict[str, Any] = settings.BARTER_EXCHANGES.get(exchange_id) or {}
    return config


def exchange_client(exchange_id: str, *, authenticated: bool = False) -> ccxt.Exchange:
    """Return this process's ccxt object for ``exchange_id``, configured from settings (made on first use).

    The object has ccxt's rate limiter on (``enableRateLimit=True``), a timeout of
    ``BARTER_EXCHANGE_TIMEOUT_SECONDS``, loads spot markets only, and uses the testnet (bitget: demo trading)
    when ``BARTER_EXCHANGE_<ID>_SANDBOX`` is true. It carries the configured API key, secret and passphrase
    whenever they are set; ccxt uses them only for private endpoints, so public calls (candles) are unchanged.
    Every caller gets the same object, so its rate limiter sees all the process's calls; it is thread-safe to
    obtain but, like every ccxt object, should be used by one thread at a time. After a settings change call
    :func:`exchange_clients_reset`.

    Args:
        exchange_id: ccxt id, one of ``binance``, ``bybit``, ``bitget``.
        authenticated: the caller needs private endpoints (orders, balances): refuse when keys are missing.

    Returns:
        The ``ccxt.Exchange`` (synchronous). Wrap its calls' exceptions with :func:`exchange_error`.

    Raises:
        ExchangeConfigError: ``exchange_id`` is not supported (the message lists the supported ones), or
            ``authenticated`` and a credential is not set (the message names the variable to set).
    """
    exchange_id_validate(exchange_id)
    if authenticated:
        config = _config(exchange_id)
        missing = [_variable(exchange_id, key) for key in _CREDENTIALS[exchange_id] if not config.get(key)]
        if missing:
            raise ExchangeConfigError(
                f"trading on {exchange_id} needs its API credentials: set {' and '.join(missing)} in the "
                "environment (.env), then restart",
                extra={"exchange_id": exchange_id, "missing": missing},
            )
    with _clients_lock:
        client = _clients.get(exchange_id)
        if client is None:
            client = _clients[exchange_id] = _client_build(exchange_id)
        return client


def _client_build(exchange_id: str) -> ccxt.Exchange:
    config = _config(exchange_id)
    options: dict[str, Any] = {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}
    if exchange_id == "binance":
        # Margin pairs and the coin list are extra signed calls at load_markets; spot trading needs neither.
        options |= {"fetchMargins": False, "fetchCurrencies": False}
    params: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(float(settings.BARTER_EXCHANGE_TIMEOUT_SECONDS) * 1000),  # ccxt counts milliseconds
        "options": options,
    }
    for key in ("api_key", "secret", "password"):
        if config.get(key):
            params["apiKey" if key == "api_key" else key] = config[key]
    client: ccxt.Exchange = getattr(ccxt, exchange_id)(params)
    if config.get("sandbox"):
        client.set_sandbox_mode(True)
    return client


def exchange_clients_reset() -> None:
    """Forget this process's exchange objects, so the next :func:`exchange_client` call reads settings again.

    For tests and after a settings change; the markets each object had loaded are forgotten with it.
    """
    with _clients_lock:
        _clients.clear()


def _secrets() -> list[str]:
    values = []
    for exchange_id in SUPPORTED_EXCHANGE_IDS:
        config = _config(exchange_id)
        values += [str(config[key]) for key in ("api_key", "secret", "password") if config.get(key)]
    return values


def _detail(exc: BaseException) -> str:
    """The first line of ccxt's message, shortened, without query strings and with any configured key masked."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"\?\S*", "?...", text)  # signed URLs carry timestamps and signatures in the query
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text[:300] + ("..." if len(text) > 300 else "")


@functools.cache
def _mapping() -> tuple[tuple[type[BaseException], type[ExchangeApiError], str], ...]:
    """ccxt exception classes, most specific first, with our class and the advice that follows the detail (built
    on first use, so that importing this module does not load ccxt)."""
    return (
        (
            ccxt.DDoSProtection,  # 418 (IP banned for a while) and some 429s
            ExchangeRateLimitedError,
            "the exchange throttled this address (418/429): wait a few minutes and run again; what was stored "
            "before is kept",
        ),
        (
            ccxt.RateLimitExceeded,
            ExchangeRateLimitedError,
            "the exchange's rate limit was exceeded (429): wait a minute and run again; what was stored before "
            "is kept",
        ),
        (
            ccxt.RequestTimeout,
            ExchangeUnavailableError,
            "the exchange did not answer within BARTER_EXCHANGE_TIMEOUT_SECONDS: run again later (or raise it)",
        ),
        (
            ccxt.ExchangeNotAvailable,
            ExchangeUnavailableError,
            "the exchange is unavailable or in maintenance: run again later",
        ),
        (ccxt.NetworkError, ExchangeUnavailableError, "the exchange could not be reached: run again later"),
        (
            ccxt.BadResponse,
            ExchangeBadResponseError,
            "the exchange's answer could not be read: run again later",
        ),
        (
            ccxt.BadSymbol,
            ExchangeSymbolError,
            "the exchange lists no spot market of that symbol: set the instrument's market_symbol to a ccxt "
            "unified spot symbol the exchange lists, e.g. 'BTC/USDT'",
        ),
        (
            ccxt.AuthenticationError,  # PermissionDenied, AccountSuspended and AccountNotEnabled derive from it
            ExchangeAuthError,
            "the exchange refused the API credentials: check BARTER_EXCHANGE_<ID>_KEY, _SECRET (and bitget's "
            "_PASSWORD), the key's permissions and IP whitelist, and _SANDBOX (testnet keys differ)",
        ),
        (ccxt.ExchangeError, ExchangeRejectedError, "the exchange refused the request; it is not retried"),
    )


def exchange_error(exc: BaseException, *, what: str, exchange_id: str = "") -> ApplicationError:
    """Return the Barter error for an exception raised by a ccxt call, with advice on what to do.

    Retryable (:class:`ExchangeUnavailableError` and its subclasses): ccxt ``NetworkError`` and its
    subclasses ``RequestTimeout``, ``DDoSProtection`` (HTTP 418), ``RateLimitExceeded`` (429),
    ``ExchangeNotAvailable`` (5xx, maintenance), and ``BadResponse``. Not retryable: ``BadSymbol``
    (:class:`ExchangeSymbolError`), ``AuthenticationError`` and ``PermissionDenied`` (:class:`ExchangeAuthError`),
    any other ``ExchangeError`` (:class:`ExchangeRejectedError`). An :class:`ApplicationError` is returned as it
    is; anything else becomes a non-retryable :class:`ExchangeApiError`.

    Args:
        exc: the exception caught around the ccxt call.
        what: what was being done, for the message, e.g. ``"fetching 1d candles of BTC/USDT"``.
        exchange_id: the exchange's ccxt id, for the message and ``extra``.

    Returns:
        The error to raise (``raise exchange_error(exc, what=...) from exc``). Its message never holds a key.
    """
    if isinstance(exc, ApplicationError):
        return exc
    where = f"{exchange_id} " if exchange_id else "the exchange "
    error_class, advice = next(
        ((error, advice) for ccxt_class, error, advice in _mapping() if isinstance(exc, ccxt_class)),
        (ExchangeApiError, "unexpected error; it is not retried"),
    )
    return error_class(
        f"{where}failed {what} ({type(exc).__name__}: {_detail(exc)}); {advice}",
        extra={
            "exchange_id": exchange_id,
            "ccxt_error": type(exc).__name__,
            "retryable": error_class.retryable,
        },
    )
