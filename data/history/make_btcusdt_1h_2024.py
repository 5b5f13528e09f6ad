"""Build ``BTCUSDT-1h-2024-04-21_2024-12-31.csv``: Binance BTCUSDT hourly klines rolled up from one-minute ones.

The shipped hourly file (``BTC_USDT-1h.feather``) stops at 2024-04-21 14:00 UTC. This file continues it to the
end of 2024 from Binance spot BTCUSDT one-minute klines (``../shared/data/minute/binance_btcusdt_1m_2024/``, one
file a day, no gaps; Jan-Kluger/backtest_and_deploy @ f26eda3c, ``data/``, MIT License). It starts at
2024-04-21 00:00, so that day is whole in this file (the feather's first 15 hours of it are the same candles:
``tests/instruments/test_shipped_2024.py`` checks them) and ``load_shipped_history`` can roll it up to days.

Each hour is written in Binance's own kline layout (no header, 12 columns, epoch milliseconds), as Binance's
``/api/v3/klines?interval=1h`` would give it: open_time, the first minute's open, the highest high, the lowest
low, the last minute's close, the sums of volume, quote volume, trades, taker buy base and taker buy quote
volumes, close_time = open_time + 1 hour - 1 ms, and ``0`` (Binance's unused field). Sums are exact
(``Decimal``), written without trailing zeros. An hour is written only when all 60 of its minutes are there.

Usage, from the repository root:

    python data/history/make_btcusdt_1h_2024.py ../shared/data/minute/binance_btcusdt_1m_2024
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
FIRST_DAY = date(2024, 4, 21)
LAST_DAY = date(2024, 12, 31)
OUTPUT = Path(__file__).with_name("BTCUSDT-1h-2024-04-21_2024-12-31.csv")


def _text(value: Decimal) -> str:
    """Write ``value`` without trailing zeros and never in exponent notation (``64940.58``, ``0``)."""
    return format(value.normalize(), "f")


def klines_rollup(minutes: Iterable[Sequence[str]], *, period_ms: int) -> list[list[str]]:
    """Roll Binance one-minute kline rows up into klines of ``period_ms``, Binance's layout kept.

    Args:
        minutes: rows of 12 text cells (open_time in epoch ms, open, high, low, close, volume, close_time,
            quote_volume, trades, taker_buy_base, taker_buy_quote, ignore), in time order.
        period_ms: the coarse length in milliseconds (3,600,000 for hours, 86,400,000 for days); periods start
            at multiples of it from the epoch (00:00 UTC for hours and days).

    Returns:
        One row of 12 text cells per period that has all its minutes, in time order.

    Raises:
        ValueError: a row is out of time order or repeated.
    """
    buckets: dict[int, list[Sequence[str]]] = {}
    last = -1
    for row in minutes:
        opened = int(row[0])
        if opened <= last:
            raise ValueError(f"minute {opened} is not after {last}")
        last = opened
        buckets.setdefault(opened - opened % period_ms, []).append(row)
    rows: list[list[str]] = []
    for start, group in buckets.items():
        if len(group) != period_ms // MINUTE_MS:
            continue
        rows.append(
            [
                str(start),
                _text(Decimal(group[0][1])),
                _text(max(Decimal(r[2]) for r in group)),
                _text(min(Decimal(r[3]) for r in group)),
                _text(Decimal(group[-1][4])),
                _text(sum((Decimal(r[5]) for r in group), Decimal(0))),
                str(start + period_ms - 1),
                _text(sum((Decimal(r[7]) for r in group), Decimal(0))),
                str(sum(int(r[8]) for r in group)),
                _text(sum((Decimal(r[9]) for r in group), Decimal(0))),
                _text(sum((Decimal(r[10]) for r in group), Decimal(0))),
                "0",
            ]
        )
    return rows


def minutes_read(folder: Path, first: date, last: date) -> list[list[str]]:
    """Read the one-minute klines of days ``first`` .. ``last`` (inclusive) from ``BTCUSDT-1m-<day>.csv``."""
    rows: list[list[str]] = []
    day = first
    while day <= last:
        with (folder / f"BTCUSDT-1m-{day.isoformat()}.csv").open(newline="") as handle:
            rows += list(csv.reader(handle))
        day += timedelta(days=1)
    return rows


def main(folder: Path) -> None:
    """Write :data:`OUTPUT` from the minutes in ``folder``."""
    hours = klines_rollup(minutes_read(folder, FIRST_DAY, LAST_DAY), period_ms=HOUR_MS)
    with OUTPUT.open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(hours)
    print(f"wrote {len(hours)} hourly klines to {OUTPUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
