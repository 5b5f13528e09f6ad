"""Reads for the trading cycle: candles as engine arrays, and the conversions between engine and stored values."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from instruments.models import Instrument, Timeframe
from instruments.precision import decimal_quantize
from instruments.selectors import candles_float
from trading.engine.limits import criteria_operand_fields
from trading.engine.types import CandleArrays

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_seconds(moment: datetime) -> int:
    """Seconds since 1970-01-01 UTC of an aware datetime."""
    return int((moment - EPOCH).total_seconds())


def from_seconds(seconds: int) -> datetime:
    """The aware UTC datetime of ``seconds`` since epoch."""
    return EPOCH + timedelta(seconds=int(seconds))


def to_decimal(value: float) -> Decimal:
    """Convert an engine float to a stored ``Decimal``: its shortest round-trip text, rounded to the stored
    precision (the one conversion on the way out of the engine)."""
    return decimal_quantize(Decimal(repr(float(value))))


def candles_before(
    instrument: Instrument, before: datetime, *, since: datetime | None = None, timeframe: str = Timeframe.D1
) -> CandleArrays:
    """Return every candle of ``timeframe`` (daily by default) of ``instrument`` that opened in ``[since,
    before)``, as engine arrays.

    Only completed candles as of ``before`` (a day boundary) are returned, so the live cycle cannot look ahead.
    Read by :func:`instruments.selectors.candles_float`, the reader the simulator uses too; volumes unknown to
    the source are NaN.
    """
    columns = candles_float(instrument, since=since, before=before, timeframe=timeframe)
    return CandleArrays(
        symbol=instrument.symbol,
        open_time_seconds=columns.open_time,
        open=columns.open,
        high=columns.high,
        low=columns.low,
        close=columns.close,
        volume=columns.volume,
    )


def finer_candles(
    instrument: Instrument, since: datetime, before: datetime, timeframe: str = Timeframe.D1
) -> CandleArrays | None:
    """The candles finer than ``timeframe`` that ``instrument`` has stored, opening in ``[since, before)``, for the
    bar magnifier (docs/criteria.md): on each day the finest stored, the one-minute candles where that day has
    some, else (under daily candles) its hourly ones; oldest first. None when there are none (a one-minute
    timeframe has none finer).

    Args:
        instrument: whose candles.
        since, before: aware UTC datetimes, day boundaries.
        timeframe: the candles the finer ones lie inside (``1d`` live; the simulator's run timeframe).

    Returns:
        Engine arrays (prices quote currency, times seconds since epoch), or None.
    """
    if timeframe == Timeframe.M1:
        return None
    minutes = candles_before(instrument, before, since=since, timeframe=Timeframe.M1)
    hours = (
        candles_before(instrument, before, since=since, timeframe=Timeframe.H1)
        if timeframe == Timeframe.D1
        else None
    )
    if hours is None or len(hours) == 0:
        return minutes if len(minutes) else None
    if len(minutes) == 0:
        return hours
    day = 86_400
    minute_days = np.unique(minutes.open_time_seconds // day)
    keep = ~np.isin(hours.open_time_seconds // day, minute_days)
    both = {
        name: np.concatenate((getattr(minutes, name), getattr(hours, name)[keep]))
        for name in ("open_time_seconds", "open", "high", "low", "close", "volume")
    }
    order = np.argsort(both["open_time_seconds"], kind="stable")
    return CandleArrays(symbol=instrument.symbol, **{name: values[order] for name, values in both.items()})


def criteria_instruments_unknown(document: dict[str, Any]) -> list[tuple[str, str]]:
    """The operands of a valid criteria document that name an instrument no :class:`Instrument` has as its
    ``coingecko_id`` (one query), each as ``(path, message)``: ``("entry.all[0].left.instrument", "unknown
    instrument 'bitcoinn': no instrument has this CoinGecko id; add it first")``."""
    named = [
        (path, value)
        for path, value in criteria_operand_fields(document, "instrument")
        if isinstance(value, str)
    ]
    if not named:
        return []
    known = set(
        Instrument.objects.filter(coingecko_id__in={v for _, v in named}).values_list(
            "coingecko_id", flat=True
        )
    )
    return [
        (path, f"unknown instrument {value!r}: no instrument has this CoinGecko id; add it first")
        for path, value in named
        if value not in known
    ]


def reference_candles(
    coingecko_ids: Iterable[str], before: datetime, *, timeframe: str = Timeframe.D1
) -> dict[str, CandleArrays]:
    """The candles of the other instruments criteria operands name (:func:`trading.engine.criteria.
    criteria_instruments`), as :func:`candles_before` reads them: CoinGecko id -> every candle of ``timeframe``
    that opened before ``before``. An id no instrument has is left out (the engine then refuses the criteria:
    :func:`trading.engine.conditions.signals_compute`)."""
    ids = sorted(set(coingecko_ids))
    if not ids:
        return {}
    return {
        instrument.coingecko_id: candles_before(instrument, before, timeframe=timeframe)
        for instrument in Instrument.objects.filter(coingecko_id__in=ids).order_by("coingecko_id")
    }
