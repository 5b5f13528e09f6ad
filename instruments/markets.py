"""Exchange ids and market symbols, checked without importing ccxt (models and forms use these).

Facts from ccxt's manual ("Market structure", "Exchanges"): an exchange id is ccxt's lowercase class name
(``binance``, ``bybit``, ``bitget``); a spot market's unified symbol is ``BASE/QUOTE`` in upper case
(``BTC/USDT``); derivatives add ``:SETTLE`` (``BTC/USDT:USDT``), which Barter does not trade.
"""

from __future__ import annotations

import re

from barter_site.errors import ApplicationError

#: The exchanges Barter supports (candles and orders), by ccxt id.
SUPPORTED_EXCHANGE_IDS: tuple[str, ...] = ("binance", "bybit", "bitget")

#: A spot market's ccxt unified symbol: BASE/QUOTE, upper-case letters and digits, e.g. ``BTC/USDT``.
MARKET_SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")


class ExchangeConfigError(ApplicationError):
    """An exchange id, market symbol or exchange setting is wrong; the message says how to fix it."""


def exchange_id_validate(exchange_id: str) -> str:
    """Return ``exchange_id`` if Barter supports it.

    Args:
        exchange_id: ccxt exchange id, e.g. ``"binance"``.

    Raises:
        ExchangeConfigError: (field ``exchange_id``) not one of :data:`SUPPORTED_EXCHANGE_IDS`.
    """
    if exchange_id not in SUPPORTED_EXCHANGE_IDS:
        raise ExchangeConfigError(
            f"exchange_id must be one of the supported ccxt exchange ids {', '.join(SUPPORTED_EXCHANGE_IDS)}; "
            f"was {exchange_id!r}",
            extra={"field": "exchange_id"},
        )
    return exchange_id


def market_symbol_validate(market_symbol: str) -> str:
    """Return ``market_symbol`` if it has the shape of a ccxt spot symbol (``BASE/QUOTE``).

    Whether the exchange lists the market is known only once its markets are loaded (a ``BadSymbol`` then).

    Args:
        market_symbol: ccxt unified symbol, e.g. ``"BTC/USDT"``.

    Raises:
        ExchangeConfigError: (field ``market_symbol``) not ``BASE/QUOTE`` in upper case.
    """
    if not MARKET_SYMBOL_PATTERN.match(market_symbol):
        raise ExchangeConfigError(
            "market_symbol must be a ccxt spot symbol BASE/QUOTE in upper case, e.g. 'BTC/USDT' (no exchange "
            f"market id like 'BTCUSDT', no ':SETTLE' suffix of derivatives); was {market_symbol!r}",
            extra={"field": "market_symbol"},
        )
    return market_symbol
