"""The candle history the project ships in ``data/history/``, imported by ``load_shipped_history``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from instruments.models import InstrumentOHLC
from instruments.sources.files.imports import FileImportResult, ohlc_import


@dataclass(frozen=True, slots=True)
class ShippedFile:
    """One import of the history the project ships in ``data/history/``.

    Attributes:
        coingecko_id, symbol, name: the instrument (created when missing; quote currency ``usd``).
        filename: the file in ``data/history/``.
        column_prefix: the instrument's prefix in a wide table.
        timeframe: the file's timeframe.
        to_timeframe: roll up into this timeframe, or ``None``.
    """

    coingecko_id: str
    symbol: str
    name: str
    filename: str
    column_prefix: str | None = None
    timeframe: str = "1d"
    to_timeframe: str | None = None


#: Binance BTCUSDT hourly klines of 2024-04-21 .. 2024-12-31, rolled up from one-minute klines.
BINANCE_2024_HOURS = "BTCUSDT-1h-2024-04-21_2024-12-31.csv"

#: What ``load_shipped_history`` imports, in order. Bitcoin comes from Bitstamp (2014-11-28 .. 2020-01-17),
#: then from Binance BTC/USDT hourly rolled up to days, which replaces the overlapping Bitstamp days from
#: 2017-08-17 on (``source`` tells which rows came from where); days Binance lacks keep Bitstamp's candle. The
#: Binance hours are stored as ``1h`` candles too, so the simulator can run bitcoin on hourly candles. The hourly
#: file stops at 2024-04-21 14:00; Binance hours rolled up from one-minute klines continue it from 2024-04-21
#: 00:00 to 2024-12-31 23:00 (``make_btcusdt_1h_2024.py`` beside them; the 15 hours both hold are the same
#: candles), rolled up to days and stored as hours in the same way.
SHIPPED_FILES: tuple[ShippedFile, ...] = (
    ShippedFile("bitcoin", "BTC", "Bitcoin", "bitstamp_(BTC,ETH,LTC)USD_d.csv", column_prefix="BTC"),
    ShippedFile("bitcoin", "BTC", "Bitcoin", "BTC_USDT-1h.feather", timeframe="1h", to_timeframe="1d"),
    ShippedFile("bitcoin", "BTC", "Bitcoin", "BTC_USDT-1h.feather", timeframe="1h"),
    ShippedFile("bitcoin", "BTC", "Bitcoin", BINANCE_2024_HOURS, timeframe="1h", to_timeframe="1d"),
    ShippedFile("bitcoin", "BTC", "Bitcoin", BINANCE_2024_HOURS, timeframe="1h"),
    ShippedFile("ethereum", "ETH", "Ethereum", "bitstamp_(BTC,ETH,LTC)USD_d.csv", column_prefix="ETH"),
    ShippedFile("litecoin", "LTC", "Litecoin", "bitstamp_(BTC,ETH,LTC)USD_d.csv", column_prefix="LTC"),
)


def shipped_history_dir() -> Path:
    """Return ``data/history/`` in the repository root, where the shipped candle files live."""
    return Path(settings.BASE_DIR) / "data" / "history"


@dataclass(frozen=True, slots=True)
class ShippedHistoryLoad:
    """What :func:`shipped_history_load` did.

    Attributes:
        skipped: True when candles existed and nothing was imported.
        candles_before: candles in the database before (all instruments and timeframes).
        results: one result per :data:`SHIPPED_FILES` entry, in order; empty when skipped.
    """

    skipped: bool
    candles_before: int
    results: list[FileImportResult]


def shipped_history_load(*, force: bool = False, directory: Path | None = None) -> ShippedHistoryLoad:
    """Import the shipped history (daily bitcoin, ethereum, litecoin; hourly bitcoin) when the database has no
    candles.

    Args:
        force: import even when candles exist (the upsert leaves identical candles alone and reports them
            unchanged; candles that differ are overwritten with the shipped values).
        directory: where the files are; defaults to :func:`shipped_history_dir`.

    Returns:
        :class:`ShippedHistoryLoad`; refused files, if any, carry ``error`` in their result.

    Raises:
        OHLCImportError: a shipped file is missing.
    """
    folder = directory or shipped_history_dir()
    candles_before = InstrumentOHLC.objects.count()
    if candles_before and not force:
        return ShippedHistoryLoad(skipped=True, candles_before=candles_before, results=[])
    results: list[FileImportResult] = []
    parsed_files: dict[tuple[str, str, str | None, str], Any] = {}  # the hourly file is read once
    for shipped in SHIPPED_FILES:
        results += ohlc_import(
            paths=[folder / shipped.filename],
            coingecko_id=shipped.coingecko_id,
            symbol=shipped.symbol,
            name=shipped.name,
            quote_currency="usd",
            timeframe=shipped.timeframe,
            column_prefix=shipped.column_prefix,
            to_timeframe=shipped.to_timeframe,
            parsed_files=parsed_files,
        )
    return ShippedHistoryLoad(skipped=False, candles_before=candles_before, results=results)
