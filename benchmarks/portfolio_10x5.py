"""How long a portfolio backtest of 10 strategies x 5 instruments x 5 years of daily candles takes (issue 16: < 1 s).

    .venv/bin/python benchmarks/portfolio_10x5.py [--repeat 5]

Times :func:`trading.engine.portfolio.portfolio_backtest` alone (signals, the one kernel over 50 slots, curves,
attribution, correlation, statistics), warm, in this process: the median of ``--repeat`` calls after one warm-up
call. No database: the candles are read from the shipped files (``data/history``).

The data. The shipped history has two real daily series that span five years: Bitstamp BTC/USD daily
(2014-11-28 .. 2020-01-17) and Binance BTC/USDT hourly (2017-08-17 .. 2024-04-21), rolled up here to UTC days
(first open, highest high, lowest low, last close, summed volume; a day is kept only with all 24 hours). Bitstamp's
ETH and LTC cover 788 and 925 days only, so five instruments of five years are made from the two, each of 1,826
days on the calendar 2015-01-01 .. 2019-12-31:

- ``BTCA``: Bitstamp BTC, 2015-01-01 .. 2019-12-31, as it is (its 12 missing days of March 2019 stay missing);
- ``BTCB``: Binance BTC days 2019-04-20 .. 2024-04-19, moved back onto 2015-01-01 .. 2019-12-31 (dates shifted by
  a whole number of days, prices as they are);
- ``BTCC``: Binance BTC days 2017-08-18 .. 2022-08-17, moved likewise;
- ``BTCD``: ``BTCA`` reversed in time (the last day first; each candle's open and close swapped, high and low
  kept), so its trends run the other way;
- ``BTCE``: ``BTCB`` reversed in time likewise.

The strategies: ten SMA crosses (fast 5..50, slow 3 to 4 times as long), half of them with RSI filters, each
with a stop-loss, take-profit on some, sizing 20 % of its budget per entry, all five instruments, weight 0.1
each; the portfolio's own limits: at most 20 open positions, a 25 % drawdown halt resuming after 30 days.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trading.engine.criteria import Limits, criteria_parse  # noqa: E402
from trading.engine.portfolio import PortfolioBook, portfolio_backtest  # noqa: E402
from trading.engine.types import SECONDS_PER_DAY, CandleArrays  # noqa: E402

HISTORY = ROOT / "data" / "history"
BITSTAMP = HISTORY / "bitstamp_(BTC,ETH,LTC)USD_d.csv"
BINANCE_HOURS = HISTORY / "BTC_USDT-1h.feather"
FIRST_DAY, LAST_DAY = date(2015, 1, 1), date(2019, 12, 31)
FIELDS = ("open", "high", "low", "close", "volume")


def _seconds(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp())


def bitstamp_btc() -> dict[str, np.ndarray]:
    """Bitstamp's BTC days (rows without BTC left out), columns ``time`` (int64 seconds) and the OHLCV floats."""
    times, rows = [], []
    with BITSTAMP.open(newline="") as handle:
        for record in csv.DictReader(handle):
            cells = [record[f"BTC:{field}"] for field in FIELDS]
            if "" not in cells:
                times.append(_seconds(date.fromisoformat(record[""])))
                rows.append([float(cell) for cell in cells])
    values = np.array(rows)
    return {"time": np.array(times, dtype=np.int64), **{f: values[:, k].copy() for k, f in enumerate(FIELDS)}}


def binance_btc_days() -> dict[str, np.ndarray]:
    """Binance's BTC hours rolled up to UTC days; only the days with all 24 hours."""
    import pyarrow as pa
    from pyarrow import feather

    table = feather.read_table(BINANCE_HOURS)
    seconds = table.column("date").cast(pa.int64()).to_numpy() // 1_000_000_000
    day = seconds - seconds % SECONDS_PER_DAY
    heads = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    tails = np.r_[heads[1:], day.shape[0]] - 1
    full = (tails - heads + 1) == 24
    columns = {f: table.column(f).to_numpy().astype(np.float64) for f in FIELDS}
    out = {
        "time": day[heads],
        "open": columns["open"][heads],
        "high": np.maximum.reduceat(columns["high"], heads),
        "low": np.minimum.reduceat(columns["low"], heads),
        "close": columns["close"][tails],
        "volume": np.add.reduceat(columns["volume"], heads),
    }
    return {k: v[full] for k, v in out.items()}


def window(days: dict[str, np.ndarray], first: date, symbol: str) -> CandleArrays:
    """The 1,826 days from ``first`` (the calendar's length), moved onto ``FIRST_DAY`` .. ``LAST_DAY``."""
    span = (LAST_DAY - FIRST_DAY).days + 1
    lo = _seconds(first)
    keep = (days["time"] >= lo) & (days["time"] < lo + span * SECONDS_PER_DAY)
    shift = _seconds(FIRST_DAY) - lo
    return CandleArrays(
        symbol=symbol,
        open_time_seconds=np.ascontiguousarray(days["time"][keep] + shift),
        **{f: np.ascontiguousarray(days[f][keep]) for f in FIELDS},
    )


def reversed_in_time(candles: CandleArrays, symbol: str) -> CandleArrays:
    """The candles backwards: the first day gets the last day's candle, its open and close swapped."""
    first, last = int(candles.open_time_seconds[0]), int(candles.open_time_seconds[-1])
    return CandleArrays(
        symbol=symbol,
        open_time_seconds=np.ascontiguousarray((first + last - candles.open_time_seconds)[::-1]),
        open=np.ascontiguousarray(candles.close[::-1]),
        high=np.ascontiguousarray(candles.high[::-1]),
        low=np.ascontiguousarray(candles.low[::-1]),
        close=np.ascontiguousarray(candles.open[::-1]),
        volume=np.ascontiguousarray(candles.volume[::-1]),
    )


def instruments() -> list[CandleArrays]:
    """The five instruments of the module's docstring."""
    bitstamp, binance = bitstamp_btc(), binance_btc_days()
    a = window(bitstamp, FIRST_DAY, "BTCA")
    b = window(binance, date(2019, 4, 20), "BTCB")
    c = window(binance, date(2017, 8, 18), "BTCC")
    return [a, b, c, reversed_in_time(a, "BTCD"), reversed_in_time(b, "BTCE")]


def criteria(n: int) -> dict[str, Any]:
    """The ``n``-th strategy's criteria (n = 0..9)."""
    fast, slow = 5 + 5 * n, (5 + 5 * n) * (3 + n % 2)
    entry: list[dict[str, Any]] = [
        {
            "left": {"indicator": "sma", "period": fast},
            "op": "crosses_above",
            "right": {"indicator": "sma", "period": slow},
        }
    ]
    if n % 2:
        entry.append({"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 70}})
    document: dict[str, Any] = {
        "version": 1,
        "side": "long",
        "entry": {"all": entry},
        "exit": {
            "any": [
                {
                    "left": {"indicator": "sma", "period": fast},
                    "op": "crosses_below",
                    "right": {"indicator": "sma", "period": slow},
                }
            ]
        },
        "stop_loss_ratio": 0.05 + 0.01 * (n % 5),
        "sizing": {"method": "equity_fraction", "value": 0.2},
        "fee_rate": 0.001,
        "slippage_ratio": 0.0005,
    }
    if n % 3 == 0:
        document["take_profit_ratio"] = 0.2
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    candles = instruments()
    books = [
        PortfolioBook(name=f"sma-{n}", criteria=criteria_parse(criteria(n)), instruments=candles, weight=0.1)
        for n in range(10)
    ]
    arguments: dict[str, Any] = {
        "books": books,
        "start_time_seconds": _seconds(FIRST_DAY),
        "end_time_seconds": _seconds(LAST_DAY),
        "starting_cash": 100_000.0,
        "limits": Limits(max_open_positions=20, max_drawdown_halt_ratio=0.25, drawdown_resume_days=30),
        "candle_seconds": SECONDS_PER_DAY,
        "close_at_end": True,
    }
    began = time.perf_counter()
    result = portfolio_backtest(**arguments)  # warm-up: the compiled code loaded (or compiled)
    warm_up = time.perf_counter() - began
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = portfolio_backtest(**arguments)
        seconds.append(time.perf_counter() - began)
    print(f"cores: {os.cpu_count()}   load average (1 min): {os.getloadavg()[0]:.1f}")
    print(
        "instruments: "
        + ", ".join(f"{c.symbol} {len(c):,} days" for c in candles)
        + f"; boundaries: {result.times.shape[0]:,}; trades: {result.statistics['n_trades']:,}; "
        f"refused entries: {len(result.refusals):,}; halts: {len(result.halts)}"
    )
    print(f"| measure | seconds | goal |\n|---|---|---|\n| first call (warm-up) | {warm_up:.3f} | |")
    print(
        f"| portfolio_backtest, 10 strategies x 5 instruments x 5 years, median of {repeat} | "
        f"{statistics.median(seconds):.3f} | < 1 |"
    )
    print(f"(best {min(seconds):.3f} s, worst {max(seconds):.3f} s)")


if __name__ == "__main__":
    main()
