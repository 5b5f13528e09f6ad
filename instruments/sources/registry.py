"""The candle source of each instrument: ``Instrument.candle_source`` -> its :class:`~.base.CandleSource`.

The collect step (:func:`instruments.collect.sync_data`) and ``backfill`` look the source up here instead of
testing ``candle_source``. Adding a source is its package under ``instruments/sources/`` (a ``source`` module
holding one ``CandleSource``) plus one line below; a new ``candle_source`` value also needs its choice on
:class:`~instruments.models.Instrument` (and that model's migration).
"""

from __future__ import annotations

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from instruments.sources.base import CandleSource
from instruments.sources.coingecko.source import COINGECKO_SOURCE
from instruments.sources.exchange.source import EXCHANGE_SOURCE

#: Every source by its ``candle_source`` value, in the order messages list them.
CANDLE_SOURCES: dict[str, CandleSource] = {
    Instrument.CandleSource.EXCHANGE.value: EXCHANGE_SOURCE,
    Instrument.CandleSource.COINGECKO.value: COINGECKO_SOURCE,
}


def candle_source_for(instrument: Instrument) -> CandleSource:
    """Return the source of ``instrument``'s daily candles (its ``candle_source``).

    Raises:
        ApplicationError: (field ``candle_source``) no source is registered under the instrument's value.
    """
    try:
        return CANDLE_SOURCES[instrument.candle_source]
    except KeyError:
        raise ApplicationError(
            f"instrument {instrument.coingecko_id!r} has candle source {instrument.candle_source!r}; "
            f"the known ones are {', '.join(CANDLE_SOURCES)}",
            extra={"field": "candle_source"},
        ) from None
