"""ccxt OHLCV rows become candles, with the decimals the exchange sent; the fake's days are Binance's."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from instruments.sources.exchange.schemas import ExchangePayloadError, ohlcv_candles
from tests.fakes.exchanges import DayKline, binance_days_2024


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ([1704067200000, 1.0, 2.0, 0.5], "expected [ms, open, high, low, close, volume]"),
        ([1704067200000.0, 1.0, 2.0, 0.5, 1.5, 3.0], "open time must be an int of ms"),
        ([1704067200000, None, 2.0, 0.5, 1.5, 3.0], "open must be a number"),
        ([1704067200000, float("nan"), 2.0, 0.5, 1.5, 3.0], "open must be finite"),
        ([1704067200000, 1.0, 0.4, 0.5, 1.5, 3.0], "high 0.4 is below low 0.5"),
        ([1704067200000, 1.0, 2.0, 0.5, 1.5, -3.0], "volume must be >= 0"),
    ],
)
def test_malformed_ohlcv_rows_are_refused(row: list[float | None], problem: str) -> None:
    with pytest.raises(ExchangePayloadError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        ohlcv_candles([[1704153600000, 1.0, 2.0, 0.5, 1.5, 3.0], row], what="binance fetch_ohlcv BTC/USDT 1d")


def test_floats_become_the_decimals_the_exchange_sent() -> None:
    real = binance_days_2024()[0]
    (candle,) = ohlcv_candles([[real.open_time_ms, *(float(v) for v in real.prices())]])

    assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == real.prices()
    assert str(candle.volume) == "27174.29903"  # Decimal(27174.29903) would be 27174.2990300000015...
    assert candle.open_time == datetime(2024, 1, 1, tzinfo=UTC)


def test_the_fake_rolls_days_up_like_binance() -> None:
    days = binance_days_2024()
    assert len(days) == 366
    assert days[-1].day == datetime(2024, 12, 31, tzinfo=UTC)
    assert all(isinstance(d, DayKline) and Decimal(d.low) <= Decimal(d.open) <= Decimal(d.high) for d in days)
