"""Execution backends: where the first price after a signal candle comes from, and who fills the order.

Every backend answers :meth:`ExecutionBackend.quotes`; fills of paper backends are computed by the engine
(:mod:`trading.engine.rules`: slippage and the strategy's fee rate), so paper trading and the simulator fill
identically. The exchange backend (:class:`trading.execution.ExchangeBroker`, ccxt) places real orders; its
fills are the exchange's.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.sources.coingecko import coingecko_client_from_settings
from instruments.sources.coingecko.schemas import simple_prices

logger = logging.getLogger(__name__)


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


class PaperBroker(ExecutionBackend):
    """Paper trading at the live price: CoinGecko ``/simple/price``, or the newest candle's close when
    CoinGecko cannot answer."""

    name = "paper"

    def __init__(self) -> None:
        self._known: dict[int, Quote] = {}

    def quotes(self, instruments: list[Instrument], *, as_of: date) -> dict[int, Quote]:
        """Prices now; each instrument is asked for once per broker (one broker serves one run)."""
        missing = [i for i in instruments if i.pk not in self._known]
        if missing:
            self._known.update(self._fetch(missing))
        return {i.pk: self._known[i.pk] for i in instruments if i.pk in self._known}

    def _fetch(self, instruments: list[Instrument]) -> dict[int, Quote]:
        now = timezone.now()
        found: dict[int, Quote] = {}
        by_currency: dict[str, list[Instrument]] = {}
        for instrument in instruments:
            by_currency.setdefault(instrument.quote_currency, []).append(instrument)
        for currency, group in by_currency.items():
            ids = [i.coingecko_id for i in group]
            try:
                client = coingecko_client_from_settings()
                payload = client.api.get_price(ids=",".join(ids), vs_currencies=currency)
                prices = simple_prices(payload, coin_ids=ids, vs_currency=currency)
            except ApplicationError as exc:
                logger.warning("paper quotes: CoinGecko failed (%s); using the newest closes", exc.message)
                prices = {}
            for instrument in group:
                if instrument.coingecko_id in prices:
                    found[instrument.pk] = Quote(
                        prices[instrument.coingecko_id], now, "coingecko:simple_price"
                    )
        for instrument in instruments:
            if instrument.pk not in found:
                last = (
                    InstrumentOHLC.objects.filter(instrument=instrument, timeframe=Timeframe.D1)
                    .order_by("-open_time")
                    .values_list("close", flat=True)
                    .first()
                )
                if last is not None:
                    found[instrument.pk] = Quote(last, now, "last_close")
        return found


class ReplayBroker(ExecutionBackend):
    """Paper trading replayed over stored history: the first price after the signal candle is the open of the
    candle of ``as_of``, at its open time."""

    name = "replay"
    live = False

    def quotes(self, instruments: list[Instrument], *, as_of: date) -> dict[int, Quote]:
        opening = datetime.combine(as_of, time(0), tzinfo=UTC)
        rows = InstrumentOHLC.objects.filter(
            instrument__in=instruments, timeframe=Timeframe.D1, open_time=opening
        ).values_list("instrument_id", "open")
        return {instrument_id: Quote(price, opening, "replay:open") for instrument_id, price in rows}


def broker_for(backend: str, *, exchange_id: str = "") -> ExecutionBackend:
    """Return the execution backend named by a strategy's ``execution_backend``.

    Args:
        backend: ``paper``, ``replay`` or ``exchange``.
        exchange_id: for ``exchange``: the strategy's exchange account (ccxt id).
    """
    if backend == "exchange":
        from trading.execution import ExchangeBroker  # here: trading.execution imports this module

        return ExchangeBroker(exchange_id)
    backends: dict[str, type[ExecutionBackend]] = {"paper": PaperBroker, "replay": ReplayBroker}
    return backends[backend]()
