"""What every execution backend is: :class:`ExecutionBackend` answers :meth:`~ExecutionBackend.quotes`, the first
price after a signal candle, as a :class:`Quote`.

Fills of paper backends (:mod:`positions.execution.paper`) are computed by the engine (:mod:`trading.engine.rules`:
slippage and the strategy's fee rate), so paper trading and the simulator fill identically. The exchange backend
(:class:`positions.execution.exchange.ExchangeBroker`, ccxt) places real orders; its fills are the exchange's.
:func:`positions.execution.backends.broker_for` picks the backend a strategy names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from instruments.models import Instrument


@dataclass(frozen=True)
class Quote:
    """The first price after the signal candle.

    Attributes:
        price: quote currency, > 0.
        at: aware UTC time the price is for (the fill time).
        source: where it came from (``coingecko:simple_price``, ``last_close``, ``replay:open``).
    """

    price: Decimal
    at: datetime
    source: str


class ExecutionBackend(ABC):
    """Where a strategy's orders go.

    Attributes:
        name: the backend's name in History (``paper``, ``replay``, ``exchange``).
        live: True when the backend fills at the price of now (CoinGecko's, an exchange's): the open and close
            steps then act only for today's boundary (``as_of`` today, UTC), since a past day's signals would
            fill at today's price. False for the replay, which fills at the stored open of ``as_of``.
    """

    name = "abstract"
    live = True

    @abstractmethod
    def quotes(self, instruments: list[Instrument], *, as_of: date) -> dict[int, Quote]:
        """Return the price each instrument would fill at now (by instrument id); missing ones cannot trade."""
