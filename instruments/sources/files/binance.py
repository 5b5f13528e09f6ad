"""Binance's kline CSV: no header, 12 columns (open_time, open, high, low, close, volume, close_time,
quote_volume, trades, taker_buy_base, taker_buy_quote, ignore). open_time and close_time are epoch milliseconds
(13 digits) or, from 2025, microseconds (16 digits); the unit is read from each value.
"""

from __future__ import annotations

from pathlib import Path

from instruments.candles import TIMEFRAMES
from instruments.sources.files.common import (
    EPOCH,
    EPOCH_UNITS,
    Collector,
    RowError,
    csv_rows,
    decimal_cell,
    timeframe_name,
)

COLUMNS = 12
TIME_DIGITS = (13, 16)


def read_binance(path: Path, collector: Collector, column_prefix: str | None) -> None:
    """Read a Binance kline file's rows into ``collector``; each row's close_time must match the timeframe."""
    step = TIMEFRAMES[collector.timeframe]
    for line, cells in csv_rows(path):
        collector.rows_read += 1
        try:
            if len(cells) != COLUMNS:
                raise RowError(f"{len(cells)} columns; a Binance kline row has {COLUMNS}")
            open_text, close_text = cells[0].strip(), cells[6].strip()
            if not (open_text.isdigit() and len(open_text) in TIME_DIGITS):
                raise RowError(
                    f"open_time {open_text!r} is not epoch milliseconds (13 digits) "
                    f"or microseconds (16 digits)"
                )
            if not close_text.isdigit() or len(close_text) != len(open_text):
                raise RowError(f"close_time {close_text!r} is not in the unit of open_time {open_text}")
            unit = EPOCH_UNITS[len(open_text)]
            open_time = EPOCH + int(open_text) * unit
            length = (int(close_text) - int(open_text) + 1) * unit
            collector.stated_lengths[length] += 1
            if length != step:
                raise RowError(
                    f"close_time {close_text} ends a {timeframe_name(length)} candle, not a "
                    f"{collector.timeframe} one; pass --timeframe {timeframe_name(length)}"
                )
            collector.add(
                line,
                open_time,
                decimal_cell(cells[1], "open"),
                decimal_cell(cells[2], "high"),
                decimal_cell(cells[3], "low"),
                decimal_cell(cells[4], "close"),
                decimal_cell(cells[5], "volume"),
            )
        except RowError as exc:
            collector.error(line, str(exc))
