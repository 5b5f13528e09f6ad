"""Rows of candle files: times, refused rows by line, duplicates, timeframe checks (``files.common``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings

from instruments.sources.files.common import OHLCFileError, parse_time
from instruments.sources.files.reader import read_ohlc_file
from tests.conftest import FIXTURES

OHLC = FIXTURES / "ohlc"
HISTORY = Path(settings.BASE_DIR) / "data" / "history"
WIDE = HISTORY / "bitstamp_(BTC,ETH,LTC)USD_d.csv"
FEATHER = HISTORY / "BTC_USDT-1h.feather"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-10-17", datetime(2019, 10, 17, tzinfo=UTC)),
        ("2019-07-04 00:00", datetime(2019, 7, 4, tzinfo=UTC)),
        ("2020-01-01 23:59:00", datetime(2020, 1, 1, 23, 59, tzinfo=UTC)),
        ("2019-10-17 09-AM", datetime(2019, 10, 17, 9, tzinfo=UTC)),
        ("2019-10-17 12-AM", datetime(2019, 10, 17, 0, tzinfo=UTC)),  # midnight
        ("2019-10-16 12-PM", datetime(2019, 10, 16, 12, tzinfo=UTC)),  # noon
        ("2019-10-16 11-pm", datetime(2019, 10, 16, 23, tzinfo=UTC)),
        ("1704067200000", datetime(2024, 1, 1, tzinfo=UTC)),  # milliseconds
        ("1735689600000000", datetime(2025, 1, 1, tzinfo=UTC)),  # microseconds
        ("1704067200", datetime(2024, 1, 1, tzinfo=UTC)),  # seconds
        ("2020-01-01T02:00:00+02:00", datetime(2020, 1, 1, tzinfo=UTC)),  # offset converted to UTC
        ("2020-01-01T00:00:00Z", datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time_returns_aware_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)

    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text", ["2019-13-45", "17/10/2019", "2019-10-17 13-PM", "2019-10-17 00-AM", "170406720", ""]
)
def test_parse_time_refuses_what_is_not_a_time(text: str) -> None:
    with pytest.raises(ValueError, match="time"):
        parse_time(text)


def _edited(tmp_path: Path, source: Path, edits: dict[int, str], *, name: str | None = None) -> Path:
    """Copy ``source`` to ``tmp_path`` with the 1-based lines in ``edits`` replaced."""
    lines = source.read_text().splitlines()
    for line, text in edits.items():
        lines[line - 1] = text
    path = tmp_path / (name or source.name)
    path.write_text("\n".join(lines) + "\n")
    return path


def _high_below_low(tmp_path: Path) -> Path:
    """binance_btcusdt_day_2020.csv with line 13 (2020-01-12) given high 7960 and low 8197 (swapped)."""
    source = OHLC / "binance_btcusdt_day_2020.csv"
    real = source.read_text().splitlines()[12]
    assert (
        real == "2020-01-12 00:00:00,8020.01000000,8197.00000000,7960.00000000,8184.98000000,38131.49433600"
    )
    cells = real.split(",")
    cells[2], cells[3] = cells[3], cells[2]
    return _edited(tmp_path, source, {13: ",".join(cells)})


def test_high_below_low_is_refused_with_its_line(tmp_path: Path) -> None:
    parsed = read_ohlc_file(_high_below_low(tmp_path))

    assert parsed.errors == [
        (13, "invalid candle at 2020-01-12T00:00:00+00:00: high 7960.00000000 is below low 8197.00000000")
    ]
    assert len(parsed.candles) == 365
    assert parsed.rows_read == 366
    assert datetime(2020, 1, 12, tzinfo=UTC) not in {c.open_time for c in parsed.candles}
    assert parsed.error_messages() == [
        "binance_btcusdt_day_2020.csv line 13: invalid candle at 2020-01-12T00:00:00+00:00: "
        "high 7960.00000000 is below low 8197.00000000"
    ]


def test_every_bad_row_is_collected_by_line(tmp_path: Path) -> None:
    source = OHLC / "bitstamp_btcusd_day_2015.csv"
    original = source.read_text().splitlines()
    path = _edited(
        tmp_path,
        source,
        {
            3: "2015-01-02 00:00:00,313.82,317.01,311.96,abc,3468.28137523",  # close not a number
            5: "2015-13-04 00:00:00,281.15,287.23,257.61,264.2,55629.10109255",  # month 13
            7: "2015-01-06 00:00:00,274.61,287.55,272.7",  # too few columns
            10: original[9].replace("2015-01-09", "2015-01-08"),  # 2015-01-08 again, other values
            11: "2015-01-10 00:00:00,289.5,-1,270,274.83,11958.52318604",  # a negative high
        },
    )

    parsed = read_ohlc_file(path)

    lines = [line for line, _ in parsed.errors]
    assert lines == [3, 5, 7, 9, 10, 11]
    messages = dict(parsed.errors)
    assert messages[3] == "close is not a number: 'abc'"
    assert "'2015-13-04 00:00:00' is not a date or time" in messages[5]
    assert messages[7] == "4 columns, the header needs at least 6"
    assert messages[9] == "open_time 2015-01-08T00:00:00+00:00 is also on line 10 with other values"
    assert messages[10] == "open_time 2015-01-08T00:00:00+00:00 is also on line 9 with other values"
    assert "high must be a finite price > 0, was -1" in messages[11]
    # 365 rows, 6 refused (both rows of the conflicting day); 2015-01-09's row became the second 01-08.
    assert len(parsed.candles) == 365 - 6


def test_a_repeated_identical_row_is_dropped_not_refused(tmp_path: Path) -> None:
    source = OHLC / "binance_btcusdt_day_2020.csv"
    path = tmp_path / source.name
    path.write_text(source.read_text() + source.read_text().splitlines()[1] + "\n")

    parsed = read_ohlc_file(path)

    assert (parsed.rows_read, len(parsed.candles), parsed.duplicates, parsed.errors) == (367, 366, 1, [])


def test_error_messages_show_twenty_then_count(tmp_path: Path) -> None:
    lines = (OHLC / "BTCUSDT-1m-2024-01-01.csv").read_text().splitlines()
    # 25 rows lose their last column: 25 errors, 20 shown.
    path = tmp_path / "BTCUSDT-1m-2024-01-01.csv"
    path.write_text("\n".join([line.rsplit(",", 1)[0] for line in lines[:25]] + lines[25:]) + "\n")

    parsed = read_ohlc_file(path, timeframe="1m")

    assert len(parsed.errors) == 25
    assert parsed.errors[0] == (1, "11 columns; a Binance kline row has 12")
    shown = parsed.error_messages()
    assert len(shown) == 21
    assert shown[0] == "BTCUSDT-1m-2024-01-01.csv line 1: 11 columns; a Binance kline row has 12"
    assert shown[-1] == "... and 5 more"


@pytest.mark.parametrize(
    ("path", "timeframe", "message"),
    [
        (
            OHLC / "BTCUSDT-1m-2024-01-01.csv",
            "1d",
            "mostly 1m long .* pass --timeframe 1m \\(and --to-timeframe 1d",
        ),
        (OHLC / "BTCUSDT-1m-2025-01-01.csv", "1h", "mostly 1m long .* pass --timeframe 1m"),
        (OHLC / "bitstamp_btcusd_min_2020_01_01.csv", "1d", "mostly 1m apart, but the timeframe given is 1d"),
        (
            OHLC / "binance_btcusdt_day_2020.csv",
            "1h",
            "mostly 1d apart, but the timeframe given is 1h; pass --timeframe 1d$",
        ),
        (FEATHER, "1d", "mostly 1h apart"),
    ],
)
def test_a_file_of_another_timeframe_is_refused(path: Path, timeframe: str, message: str) -> None:
    with pytest.raises(OHLCFileError, match=message):
        read_ohlc_file(path, timeframe=timeframe)


def test_a_time_off_the_timeframe_is_a_row_error(tmp_path: Path) -> None:
    path = _edited(
        tmp_path,
        OHLC / "binance_btcusdt_day_2020.csv",
        {3: "2020-01-02 12:00:00,7200.77000000,7212.50000000,6924.74000000,6965.71000000,31951.48393200"},
    )

    parsed = read_ohlc_file(path)

    assert parsed.errors == [
        (
            3,
            "open_time 2020-01-02T12:00:00+00:00 is not the start of a 1d candle (1d candles start every 1d "
            "from 00:00 UTC)",
        )
    ]


def test_a_binance_row_whose_close_time_is_not_the_timeframe(tmp_path: Path) -> None:
    source = OHLC / "BTCUSDT-1m-2024-01-01.csv"
    cells = source.read_text().splitlines()[1].split(",")
    cells[6] = str(int(cells[0]) + 3_599_999)  # an hour long
    path = _edited(tmp_path, source, {2: ",".join(cells)})

    parsed = read_ohlc_file(path, timeframe="1m")

    assert parsed.errors == [
        (2, "close_time 1704070859999 ends a 1h candle, not a 1m one; pass --timeframe 1h")
    ]


def test_a_wide_row_with_some_cells_empty_is_refused(tmp_path: Path) -> None:
    lines = WIDE.read_text().splitlines()
    cells = lines[-1].split(",")
    cells[9] = ""  # ETH:close
    path = _edited(tmp_path, WIDE, {len(lines): ",".join(cells)}, name="wide.csv")

    parsed = read_ohlc_file(path, column_prefix="ETH")

    assert parsed.errors == [(1866, "close is empty")]
    assert read_ohlc_file(path, column_prefix="BTC").errors == []
