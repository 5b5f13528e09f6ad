"""The one float candle reader (``candles_float``), read by both the live cycle and the simulator."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from instruments.models import Instrument, Timeframe
from instruments.selectors import candles_float
from tests.instruments.factories import CandleFactory, InstrumentFactory

pytestmark = pytest.mark.django_db

DAY0 = datetime(2024, 1, 1, tzinfo=UTC)


def _days(instrument: Instrument, n: int) -> None:
    """Candles of days 0..n-1 from DAY0: open 100 + i, high open + 6, low open - 5, close open + 1, volume 10."""
    for i in range(n):
        CandleFactory.create(
            instrument=instrument,
            open_time=DAY0 + timedelta(days=i),
            open=Decimal(100 + i),
            close=Decimal(101 + i),
            high=Decimal(106 + i),
            low=Decimal(95 + i),
        )


def test_candles_before_a_day_are_its_predecessors_as_float_columns() -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    _days(bitcoin, 5)
    _days(InstrumentFactory.create(coingecko_id="ethereum"), 5)  # another instrument's candles stay out

    columns = candles_float(bitcoin, before=DAY0 + timedelta(days=3))

    assert len(columns) == 3  # days 0, 1, 2: day 3 opens at ``before`` and is not complete then
    assert columns.open_time.dtype == np.int64
    assert columns.open_time.tolist() == [1_704_067_200 + 86_400 * i for i in range(3)]  # 2024-01-01 UTC
    assert columns.open.dtype == np.float64 and columns.open.flags.c_contiguous
    assert columns.open.tolist() == [100.0, 101.0, 102.0]
    assert columns.high.tolist() == [106.0, 107.0, 108.0]
    assert columns.low.tolist() == [95.0, 96.0, 97.0]
    assert columns.close.tolist() == [101.0, 102.0, 103.0]
    assert columns.volume.tolist() == [10.0, 10.0, 10.0]


def test_since_bounds_from_below_and_an_unknown_volume_is_nan() -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    _days(bitcoin, 5)
    CandleFactory.create(
        instrument=bitcoin, open_time=DAY0 + timedelta(days=2, hours=1), timeframe=Timeframe.H1
    )
    bitcoin.candles.filter(open_time=DAY0 + timedelta(days=3)).update(volume=None)

    columns = candles_float(bitcoin, since=DAY0 + timedelta(days=2), before=DAY0 + timedelta(days=4))

    assert columns.open_time.tolist() == [
        1_704_240_000,
        1_704_326_400,
    ]  # days 2 and 3; the hourly one left out
    assert columns.volume[0] == 10.0 and math.isnan(columns.volume[1])


def test_no_candles_are_empty_columns_of_the_right_types() -> None:
    columns = candles_float(InstrumentFactory.create(coingecko_id="bitcoin"), before=DAY0)

    assert len(columns) == 0
    assert (columns.open_time.dtype, columns.close.dtype, columns.close.shape) == (
        np.dtype(np.int64),
        np.dtype(np.float64),
        (0,),
    )
