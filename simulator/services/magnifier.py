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

import numpy as np

from instruments.models import Instrument, Timeframe
from instruments.selectors import candles_float
from simulator.services.requests import day_start
from trading.engine.backtest import BacktestResult
from trading.engine.types import SECONDS_PER_DAY, CandleArrays
from trading.selectors import from_seconds, to_decimal


def _stored(instrument: Instrument, timeframe: str, start: date, end: date) -> CandleArrays:
    """The ``timeframe`` candles of ``instrument`` opening on the days ``start .. end``, as engine arrays."""
    columns = candles_float(
        instrument,
        since=day_start(start),
        before=day_start(end) + timedelta(days=1),
        timeframe=timeframe,
    )
    return CandleArrays(
        symbol=instrument.symbol,
        open_time_seconds=columns.open_time,
        open=columns.open,
        high=columns.high,
        low=columns.low,
        close=columns.close,
        volume=columns.volume,
    )


def finer_candles_load(
    instruments: Sequence[Instrument], start: date, end: date, timeframe: str = Timeframe.D1
) -> dict[str, CandleArrays]:
    """The candles finer than the run's ``timeframe`` of each instrument for the days ``start .. end``, by symbol
    (instruments without any are left out): on each day the finest stored, the one-minute candles where that day
    has some, else (daily runs only) its hourly candles; oldest first. A one-minute run has none finer.

    The run's risk exits are decided on the daily candles of those days (the last one included), so no other
    day's finer candles are read. A year of one-minute candles is some 525,600 rows per instrument.
    """
    finer: dict[str, CandleArrays] = {}
    if timeframe == Timeframe.M1:
        return finer
    for instrument in instruments:
        minutes = _stored(instrument, Timeframe.M1, start, end)
        hours = _stored(instrument, Timeframe.H1, start, end) if timeframe == Timeframe.D1 else None
        if hours is not None and len(hours) and len(minutes):
            minute_days = np.unique(minutes.open_time_seconds // SECONDS_PER_DAY)
            keep = ~np.isin(hours.open_time_seconds // SECONDS_PER_DAY, minute_days)
            both = {
                name: np.concatenate((getattr(minutes, name), getattr(hours, name)[keep]))
                for name in ("open_time_seconds", "open", "high", "low", "close", "volume")
            }
            order = np.argsort(both["open_time_seconds"], kind="stable")
            finer[instrument.symbol] = CandleArrays(
                symbol=instrument.symbol, **{name: values[order] for name, values in both.items()}
            )
        elif len(minutes):
            finer[instrument.symbol] = minutes
        elif hours is not None and len(hours):
            finer[instrument.symbol] = hours
    return finer


def ambiguous_as_json(result: BacktestResult, names: dict[str, str]) -> list[dict[str, Any]]:
    """The ambiguous candles of ``result`` as JSON rows (``names``: symbol -> coingecko id): ``day`` (ISO date),
    ``instrument``, ``symbol``, ``stop_price`` and ``take_profit_price`` (decimal strings, quote currency) and
    ``resolution`` (``stop_loss``, ``trailing_stop``, ``take_profit`` or ``pessimistic``)."""
    return [
        {
            "day": from_seconds(candle.open_time_seconds).date().isoformat(),
            "instrument": names.get(candle.symbol, candle.symbol),
            "symbol": candle.symbol,
            "stop_price": format(to_decimal(candle.stop_price).normalize(), "f"),
            "take_profit_price": format(to_decimal(candle.take_profit_price).normalize(), "f"),
            "resolution": candle.resolution,
        }
        for candle in result.ambiguous
    ]
