"""The bar magnifier's part of a simulation (docs/criteria.md "Finer candles inside a daily candle"): the finer
candles stored for the days of a run, and the run's ambiguous candles as the JSON a :class:`Simulation` keeps.

- :func:`finer_candles_load`: per instrument, the finest stored candles of each day of the run (``1m`` where a
  day has one-minute candles, else ``1h``), for :func:`trading.engine.backtest.backtest`'s ``finer``;
- :func:`ambiguous_as_json`: :attr:`trading.engine.backtest.BacktestResult.ambiguous` as JSON rows, kept in
  ``statistics["ambiguous"]`` beside ``statistics["coverage"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from instruments.models import Instrument, Timeframe
from simulator.services.requests import day_start
from trading.engine.backtest import BacktestResult
from trading.engine.types import AmbiguousCandle, CandleArrays
from trading.selectors import finer_candles, from_seconds, to_decimal


def finer_candles_load(
    instruments: Sequence[Instrument], start: date, end: date, timeframe: str = Timeframe.D1
) -> dict[str, CandleArrays]:
    """The candles finer than the run's ``timeframe`` of each instrument for the days ``start .. end``, by symbol
    (instruments without any are left out; :func:`trading.selectors.finer_candles`, which the live close step
    reads too).

    The run's risk exits are decided on the candles of those days (the last one included), so no other day's
    finer candles are read. A year of one-minute candles is some 525,600 rows per instrument.
    """
    finer: dict[str, CandleArrays] = {}
    for instrument in instruments:
        found = finer_candles(instrument, day_start(start), day_start(end) + timedelta(days=1), timeframe)
        if found is not None:
            finer[instrument.symbol] = found
    return finer


def ambiguous_as_json(result: BacktestResult, names: dict[str, str]) -> list[dict[str, Any]]:
    """The ambiguous candles of ``result`` as JSON rows (:func:`ambiguous_rows`)."""
    return ambiguous_rows(result.ambiguous, names)


def ambiguous_rows(candles: Sequence[AmbiguousCandle], names: dict[str, str]) -> list[dict[str, Any]]:
    """Ambiguous candles as JSON rows (``names``: symbol -> coingecko id): ``day`` (ISO date), ``instrument``,
    ``symbol``, ``stop_price`` and ``take_profit_price`` (decimal strings, quote currency) and ``resolution``
    (``stop_loss``, ``trailing_stop``, ``take_profit`` or ``pessimistic``)."""
    return [
        {
            "day": from_seconds(candle.open_time_seconds).date().isoformat(),
            "instrument": names.get(candle.symbol, candle.symbol),
            "symbol": candle.symbol,
            "stop_price": format(to_decimal(candle.stop_price).normalize(), "f"),
            "take_profit_price": format(to_decimal(candle.take_profit_price).normalize(), "f"),
            "resolution": candle.resolution,
        }
        for candle in candles
    ]
