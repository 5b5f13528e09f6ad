"""The shipped history's 2024 bitcoin hours (``data/history/BTCUSDT-1h-2024-04-21_2024-12-31.csv``), rolled up from
Binance one-minute klines by ``data/history/make_btcusdt_1h_2024.py``.

- The file is what the script makes of the shared minutes (when they are there), and holds every hour.
- The script's roll-up is checked against an independent one (pandas ``resample``) and against Binance's own
  hourly candles (the shipped ``BTC_USDT-1h.feather``) over 2024-01-01 .. 2024-04-21 14:00, where both exist:
  hour by hour, and as days.
- Loaded, the hours continue the feather without a gap or a changed candle, and bitcoin's days reach 2024-12-31.
"""

from __future__ import annotations

import csv
import importlib.util
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import pandas as pd  # type: ignore[import-untyped]  # no stubs in the lock
import pytest

from instruments.models import InstrumentOHLC

HISTORY = Path(__file__).resolve().parents[2] / "data" / "history"
HOURS_2024 = HISTORY / "BTCUSDT-1h-2024-04-21_2024-12-31.csv"
MINUTES_2024 = Path("/work/shared/data/minute/binance_btcusdt_1m_2024")
needs_minutes = pytest.mark.skipif(
    not MINUTES_2024.is_dir(), reason=f"the shared one-minute klines are not at {MINUTES_2024}"
)
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
OHLCV = ["open", "high", "low", "close", "volume"]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_btcusdt_1h_2024", HISTORY / "make_btcusdt_1h_2024.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shipped_rows() -> list[list[str]]:
    with HOURS_2024.open(newline="") as handle:
        return list(csv.reader(handle))


def _frame(rows: list[list[str]]) -> pd.DataFrame:
    """Kline rows as a float frame indexed by open time (UTC)."""
    frame = pd.DataFrame([row[:6] for row in rows], columns=["open_time", *OHLCV])
    frame.index = (
        pd.DatetimeIndex(pd.to_datetime(frame.pop("open_time").astype("int64"), unit="ms", utc=True))
        .as_unit("ns")
        .rename(None)
    )
    return frame.astype(float)


def _resample(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    """pandas' own roll-up: first open, highest high, lowest low, last close, summed volume."""
    spec = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    return frame.resample(rule).agg(spec).dropna()


def _feather() -> pd.DataFrame:
    frame = pd.read_feather(HISTORY / "BTC_USDT-1h.feather")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date"), utc=True)).as_unit("ns").rename(None)
    return frame[OHLCV].astype(float)


def test_the_file_holds_every_hour_of_2024_04_21_to_2024_12_31_in_binance_layout() -> None:
    rows = _shipped_rows()
    opened = [int(row[0]) for row in rows]

    first, last = datetime(2024, 4, 21, tzinfo=UTC), datetime(2024, 12, 31, 23, tzinfo=UTC)
    assert len(rows) == 255 * 24 == 6120
    assert (opened[0], opened[-1]) == (int(first.timestamp() * 1000), int(last.timestamp() * 1000))
    assert all(b - a == HOUR_MS for a, b in pairwise(opened))
    for row in rows:
        assert len(row) == 12 and int(row[6]) == int(row[0]) + HOUR_MS - 1 and row[11] == "0"
        low, high = Decimal(row[3]), Decimal(row[2])
        assert low <= min(Decimal(row[1]), Decimal(row[4])) <= max(Decimal(row[1]), Decimal(row[4])) <= high


@needs_minutes
def test_the_file_is_what_the_script_makes_of_the_shared_minutes() -> None:
    script = _script()
    minutes = script.minutes_read(MINUTES_2024, date(2024, 4, 21), date(2024, 12, 31))

    assert script.klines_rollup(minutes, period_ms=HOUR_MS) == _shipped_rows()


@needs_minutes
def test_the_roll_up_equals_pandas_and_binances_own_hours_and_days_where_both_exist() -> None:
    script = _script()
    minutes = script.minutes_read(MINUTES_2024, date(2024, 1, 1), date(2024, 4, 21))
    hours = _frame(script.klines_rollup(minutes, period_ms=HOUR_MS))
    days = _frame(script.klines_rollup(minutes, period_ms=DAY_MS))

    # An independent roll-up of the same minutes.
    by_pandas = _frame(minutes)
    pd.testing.assert_frame_equal(hours, _resample(by_pandas, "1h"), check_freq=False, rtol=1e-12)
    pd.testing.assert_frame_equal(days, _resample(by_pandas, "1D"), check_freq=False, rtol=1e-12)

    # Binance's own hourly candles of 2024-01-01 00:00 .. 2024-04-21 14:00 (the feather stops there).
    binance = _feather().loc["2024-01-01":]
    assert len(binance) == 111 * 24 + 15
    pd.testing.assert_frame_equal(hours.loc[binance.index], binance, check_freq=False, rtol=1e-9)
    # ... and as days, 2024-01-01 .. 2024-04-20 (2024-04-21 is cut short in the feather).
    binance_days = _resample(binance, "1D").iloc[:-1]
    assert len(binance_days) == 111
    pd.testing.assert_frame_equal(days.loc[binance_days.index], binance_days, check_freq=False, rtol=1e-9)


@pytest.mark.django_db
def test_loaded_the_hours_continue_the_feather_and_bitcoins_days_reach_2024_12_31(
    shipped_history: None,
) -> None:
    bitcoin = InstrumentOHLC.objects.filter(instrument__coingecko_id="bitcoin")
    days = list(bitcoin.filter(timeframe="1d").order_by("open_time"))
    hours = list(
        bitcoin.filter(timeframe="1h", open_time__gte=datetime(2024, 4, 20, tzinfo=UTC)).order_by("open_time")
    )

    assert days[-1].open_time == datetime(2024, 12, 31, tzinfo=UTC)
    assert all(
        b.open_time - a.open_time == timedelta(days=1) for a, b in pairwise(days)
    )  # no gap, no overlap
    assert len(hours) == 24 + 255 * 24
    assert all(b.open_time - a.open_time == timedelta(hours=1) for a, b in pairwise(hours))
    # The 15 hours both files hold stay the feather's (the second file found them equal); the rest are new.
    sources = [h.source for h in hours if h.open_time.date() == date(2024, 4, 21)]
    assert sources == ["file:BTC_USDT-1h.feather"] * 15 + ["file:BTCUSDT-1h-2024-04-21_2024-12-31.csv"] * 9
    # 2024-04-21 as a day is the roll-up of its 24 stored hours.
    day = next(d for d in days if d.open_time.date() == date(2024, 4, 21))
    of_day = [h for h in hours if h.open_time.date() == date(2024, 4, 21)]
    assert day.source == "file:BTCUSDT-1h-2024-04-21_2024-12-31.csv rolled up 1h->1d"
    assert (day.open, day.high, day.low, day.close) == (
        of_day[0].open,
        max(h.high for h in of_day),
        min(h.low for h in of_day),
        of_day[-1].close,
    )
    assert day.volume == sum((h.volume or Decimal(0) for h in of_day), Decimal(0))
