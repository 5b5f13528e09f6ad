"""``import_ohlc`` and ``load_shipped_history``: real files into the database, idempotent, refusals, roll-ups."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from itertools import pairwise
from pathlib import Path
from typing import TypedDict

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Q

from instruments.candles import Candle
from instruments.models import Instrument, InstrumentOHLC
from instruments.sources.files.imports import ohlc_import, ohlc_rollup
from instruments.sources.files.reader import read_ohlc_file
from instruments.sources.files.shipped import shipped_history_load
from runs.models import History, HistoryKind, RunStatus, Step
from tests.conftest import FIXTURES

pytestmark = pytest.mark.usefixtures("db")

OHLC = FIXTURES / "ohlc"
HISTORY = Path(settings.BASE_DIR) / "data" / "history"
WIDE = HISTORY / "bitstamp_(BTC,ETH,LTC)USD_d.csv"
FEATHER = HISTORY / "BTC_USDT-1h.feather"
DAILY_2020 = OHLC / "binance_btcusdt_day_2020.csv"


class _ImportOptions(TypedDict, total=False):
    """Options of ``ohlc_import`` that the parametrized cases vary."""

    column_prefix: str
    timeframe: str
    to_timeframe: str


def _command(name: str, *args: object) -> str:
    out = StringIO()
    call_command(name, *(str(arg) for arg in args), stdout=out)
    return out.getvalue()


def _import(*args: object) -> str:
    return _command("import_ohlc", *args)


def _candles(coingecko_id: str = "bitcoin", timeframe: str = "1d") -> list[InstrumentOHLC]:
    return list(InstrumentOHLC.objects.filter(instrument__coingecko_id=coingecko_id, timeframe=timeframe))


def _last_run() -> list[History]:
    finished = History.objects.runs_finished().filter(step=Step.IMPORT).first()
    assert finished is not None
    return list(History.objects.for_run(finished.run_id))


def _high_below_low(tmp_path: Path) -> Path:
    """binance_btcusdt_day_2020.csv with line 13 (2020-01-12) given high 7960 and low 8197 (swapped)."""
    lines = DAILY_2020.read_text().splitlines()
    cells = lines[12].split(",")
    assert cells[:4] == ["2020-01-12 00:00:00", "8020.01000000", "8197.00000000", "7960.00000000"]
    cells[2], cells[3] = cells[3], cells[2]
    lines[12] = ",".join(cells)
    path = tmp_path / DAILY_2020.name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_creates_the_instrument_and_stores_the_candles() -> None:
    out = _import(DAILY_2020, "--instrument", "bitcoin", "--symbol", "BTC", "--name", "Bitcoin")

    instrument = Instrument.objects.get(coingecko_id="bitcoin")
    assert (instrument.symbol, instrument.name, instrument.quote_currency) == ("BTC", "Bitcoin", "usd")
    candles = _candles()
    assert len(candles) == 366
    first = candles[0]
    assert first.open_time == datetime(2020, 1, 1, tzinfo=UTC)
    # 2020-01-01 00:00:00,7195.24000000,7255.00000000,7175.15000000,7200.85000000,16792.38816500
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        Decimal("7195.24"),
        Decimal("7255"),
        Decimal("7175.15"),
        Decimal("7200.85"),
        Decimal("16792.388165"),
    )
    assert first.source == "file:binance_btcusdt_day_2020.csv"
    assert (
        "binance_btcusdt_day_2020.csv (csv, 1d, 2020-01-01 00:00 .. 2020-12-31 00:00 UTC): 366 rows read, "
        "366 candles added, 0 updated, 0 unchanged, 0 invalid rows skipped"
    ) in out

    run = _last_run()
    assert [row.kind for row in run] == [
        HistoryKind.RUN_STARTED,
        HistoryKind.CANDLES_IMPORTED,
        HistoryKind.RUN_FINISHED,
    ]
    assert run[1].instrument == instrument
    assert {k: run[1].payload[k] for k in ("rows_read", "added", "updated", "unchanged", "skipped")} == {
        "rows_read": 366,
        "added": 366,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
    }
    assert run[-1].status == RunStatus.OK


@pytest.mark.parametrize(
    ("path", "options", "count"),
    [
        (DAILY_2020, {}, 366),
        (OHLC / "bitstamp_btcusd_day_2015.csv", {}, 365),
        (OHLC / "Coinbase_BTCUSD_d.csv", {}, 1770),
        (OHLC / "bitfinex-1d-btc-usd.csv", {}, 1665),
        (WIDE, {"column_prefix": "BTC"}, 1865),
        (OHLC / "BTCUSDT-1m-2025-01-01.csv", {"timeframe": "1m"}, 1440),
        (OHLC / "BTCUSDT-1m-2024-01-01.csv", {"timeframe": "1m", "to_timeframe": "1d"}, 1),
    ],
)
def test_a_second_import_adds_and_updates_nothing(path: Path, options: _ImportOptions, count: int) -> None:
    [first] = ohlc_import(paths=[path], coingecko_id="bitcoin", **options)
    [second] = ohlc_import(paths=[path], coingecko_id="bitcoin", **options)

    assert (first.added, first.updated, first.unchanged) == (count, 0, 0)
    assert (second.added, second.updated, second.unchanged) == (0, 0, count)
    assert InstrumentOHLC.objects.count() == count


def test_a_file_with_high_below_low_is_refused_whole(tmp_path: Path) -> None:
    path = _high_below_low(tmp_path)

    with pytest.raises(CommandError) as refused:
        _import(path, "--instrument", "bitcoin")

    message = str(refused.value)
    assert "binance_btcusdt_day_2020.csv: 1 invalid row; nothing of this file was written" in message
    assert (
        "binance_btcusdt_day_2020.csv line 13: invalid candle at 2020-01-12T00:00:00+00:00: "
        "high 7960.00000000 is below low 8197.00000000"
    ) in message
    assert "--skip-invalid" in message
    assert InstrumentOHLC.objects.count() == 0
    run = _last_run()
    assert [row.kind for row in run] == [HistoryKind.RUN_STARTED, HistoryKind.ERROR, HistoryKind.RUN_FINISHED]
    assert "line 13" in run[1].message
    assert run[-1].status == RunStatus.FAILED


def test_skip_invalid_writes_the_good_rows(tmp_path: Path) -> None:
    path = _high_below_low(tmp_path)

    out = _import(path, "--instrument", "bitcoin", "--skip-invalid")

    times = {candle.open_time for candle in _candles()}
    assert len(times) == 365
    assert datetime(2020, 1, 12, tzinfo=UTC) not in times
    assert "366 rows read, 365 candles added, 0 updated, 0 unchanged, 1 invalid rows skipped" in out
    assert "skipped: binance_btcusdt_day_2020.csv line 13: invalid candle at 2020-01-12" in out
    assert _last_run()[1].payload["skipped"] == 1


def _minutes_by_hand(path: Path) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
    """Roll a Binance minute file up by hand: first open, max high, min low, last close, summed volume."""
    with path.open(newline="") as text:
        rows = list(csv.reader(text))
    return (
        Decimal(rows[0][1]),
        max(Decimal(row[2]) for row in rows),
        min(Decimal(row[3]) for row in rows),
        Decimal(rows[-1][4]),
        sum((Decimal(row[5]) for row in rows), Decimal(0)),
    )


@pytest.mark.parametrize(
    ("name", "day", "expected"),
    [
        (
            "BTCUSDT-1m-2024-01-01.csv",  # milliseconds
            datetime(2024, 1, 1, tzinfo=UTC),
            (
                Decimal("42283.58"),
                Decimal("44184.10"),
                Decimal("42180.77"),
                Decimal("44179.55"),
                Decimal("27174.29903"),
            ),
        ),
        (
            "BTCUSDT-1m-2025-01-01.csv",  # microseconds
            datetime(2025, 1, 1, tzinfo=UTC),
            (
                Decimal("93576.00"),
                Decimal("95151.15"),
                Decimal("92888.00"),
                Decimal("94591.79"),
                Decimal("10373.32613"),
            ),
        ),
    ],
)
def test_a_minute_day_rolls_up_into_one_daily_candle(
    name: str, day: datetime, expected: tuple[Decimal, ...]
) -> None:
    path = OHLC / name
    assert _minutes_by_hand(path) == expected

    out = _import(path, "--instrument", "bitcoin", "--timeframe", "1m", "--to-timeframe", "1d")

    [candle] = _candles()
    assert candle.open_time == day
    assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == expected
    assert candle.source == f"file:{name} rolled up 1m->1d"
    assert _candles(timeframe="1m") == []
    assert "1,440 rows read, 1 candles added" in out
    assert "0 periods dropped as incomplete" in out


def test_several_minute_files_roll_up_into_their_days() -> None:
    results = ohlc_import(
        paths=[OHLC / "BTCUSDT-1m-2024-01-01.csv", OHLC / "BTCUSDT-1m-2024-01-02.csv"],
        coingecko_id="bitcoin",
        timeframe="1m",
        to_timeframe="1d",
    )

    assert [(r.rows_read, r.added, r.incomplete) for r in results] == [(1440, 1, 0), (1440, 1, 0)]
    candles = _candles()
    assert [c.open_time.date().isoformat() for c in candles] == ["2024-01-01", "2024-01-02"]
    # The 2nd of January opens where the 1st closed: 44179.55 (the last minute of 01-01, the first of 01-02).
    assert candles[1].open == Decimal("44179.55")


def _minute_candles() -> list[Candle]:
    return read_ohlc_file(OHLC / "BTCUSDT-1m-2024-01-01.csv", timeframe="1m").candles


@pytest.mark.parametrize(
    ("removed", "kept"),
    [
        (slice(600, 960), True),  # 6 hours missing inside the day (10:00-16:00): an outage, kept
        (slice(600, 961), False),  # 6 hours 1 minute: dropped
        (slice(0, 360), True),  # the day starts at 06:00 (a listing): kept
        (slice(1439, 1440), False),  # the data stops at 23:59: the last day is cut short, dropped
    ],
)
def test_rollup_coverage_rule(removed: slice, kept: bool) -> None:
    minutes = _minute_candles()
    del minutes[removed]

    rollup = ohlc_rollup(minutes, timeframe="1m", to_timeframe="1d")

    assert len(rollup.candles) == (1 if kept else 0)
    assert rollup.incomplete == ([] if kept else [datetime(2024, 1, 1, tzinfo=UTC)])


def test_a_day_cut_short_at_the_end_is_dropped_but_earlier_days_stay() -> None:
    minutes = read_ohlc_file(OHLC / "BTCUSDT-1m-2024-01-02.csv", timeframe="1m").candles
    rollup = ohlc_rollup([*_minute_candles(), *minutes[:720]], timeframe="1m", to_timeframe="1d")

    assert [c.open_time.day for c in rollup.candles] == [1]
    assert rollup.incomplete == [datetime(2024, 1, 2, tzinfo=UTC)]


def test_the_binance_hourly_file_rolls_up_into_days() -> None:
    out = _import(FEATHER, "--instrument", "bitcoin", "--timeframe", "1h", "--to-timeframe", "1d")

    candles = _candles()
    days = [c.open_time.date().isoformat() for c in candles]
    # 2017-08-17 .. 2024-04-20 is 2,439 days; 7 have an outage longer than 6 hours; 2024-04-21 is cut short.
    assert (days[0], days[-1], len(days)) == ("2017-08-17", "2024-04-20", 2432)
    dropped = {
        "2018-02-08",
        "2018-02-09",
        "2018-06-26",
        "2018-07-04",
        "2018-11-14",
        "2019-05-15",
        "2019-08-15",
    }
    assert not dropped & set(days)
    assert {"2017-09-06", "2019-03-12", "2020-02-19"} <= set(days)  # outages of 6, 6 and 5 hours
    # Binance's own first daily BTCUSDT candle: opens at the listing (04:00) at 4261.48.
    first = candles[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        Decimal("4261.48"),
        Decimal("4485.39"),
        Decimal("4200.74"),
        Decimal("4285.08"),
        Decimal("795.150377"),
    )
    assert {c.source for c in candles} == {"file:BTC_USDT-1h.feather rolled up 1h->1d"}
    assert "58,419 rows read, 2,432 candles added" in out
    assert "8 periods dropped as incomplete" in out


def test_load_shipped_history_on_an_empty_database() -> None:
    out = _command("load_shipped_history")

    counts = dict(
        Instrument.objects.annotate(n=Count("candles", filter=Q(candles__timeframe="1d")))
        .values_list("coingecko_id", "n")
        .order_by("coingecko_id")
    )
    # bitcoin: 3,432 days to 2024-04-20, then the 255 days 2024-04-21 .. 2024-12-31 rolled up from minutes.
    assert counts == {"bitcoin": 3687, "ethereum": 788, "litecoin": 925}
    # Bitcoin's Binance hours are stored as they are too (the simulator runs on them), and only bitcoin's: the
    # feather's 58,419, then 2024-04-21 15:00 .. 2024-12-31 23:00 (6,120 hours of the 2024 file, 15 of them the
    # feather's own hours of 2024-04-21, which the second file leaves unchanged).
    hours = _candles(timeframe="1h")
    assert len(hours) == 58_419 + 6_120 - 15 == InstrumentOHLC.objects.filter(timeframe="1h").count()
    assert (hours[0].open_time, hours[-1].open_time) == (
        datetime(2017, 8, 17, 4, tzinfo=UTC),
        datetime(2024, 12, 31, 23, tzinfo=UTC),
    )
    assert {c.source for c in hours} == {
        "file:BTC_USDT-1h.feather",
        "file:BTCUSDT-1h-2024-04-21_2024-12-31.csv",
    }
    bitcoin = _candles()
    # One continuous daily history: 2014-11-28 .. 2024-12-31 is 3,687 days, none missing.
    assert bitcoin[0].open_time == datetime(2014, 11, 28, tzinfo=UTC)
    assert bitcoin[-1].open_time == datetime(2024, 12, 31, tzinfo=UTC)
    assert all(b.open_time - a.open_time == timedelta(days=1) for a, b in pairwise(bitcoin))
    sources = dict(
        InstrumentOHLC.objects.filter(instrument__coingecko_id="bitcoin", timeframe="1d")
        .values_list("source")
        .annotate(n=Count("id"))
        .values_list("source", "n")
    )
    # 1,865 Bitstamp days, of which 865 are replaced by Binance's (2,432 = 865 + 12 Bitstamp lacks + 1,555 after).
    assert sources == {
        "file:bitstamp_(BTC,ETH,LTC)USD_d.csv": 1000,
        "file:BTC_USDT-1h.feather rolled up 1h->1d": 2432,
        "file:BTCUSDT-1h-2024-04-21_2024-12-31.csv rolled up 1h->1d": 255,
    }
    by_day = {c.open_time.date().isoformat(): c.source for c in bitcoin}
    assert by_day["2017-08-16"].startswith("file:bitstamp")
    assert by_day["2017-08-17"].startswith("file:BTC_USDT")
    assert by_day["2018-02-08"].startswith("file:bitstamp")  # Binance was down 34 hours
    assert Instrument.objects.get(coingecko_id="ethereum").symbol == "ETH"
    assert Instrument.objects.get(coingecko_id="litecoin").name == "Litecoin"
    assert "1,865 rows read, 1,865 candles added" in out
    assert "58,419 rows read, 1,567 candles added, 865 updated, 0 unchanged" in out
    assert "58,419 rows read, 58,419 candles added, 0 updated, 0 unchanged" in out
    assert "1,865 rows read, 788 candles added" in out
    assert "1,865 rows read, 925 candles added" in out
    assert "6,120 rows read, 255 candles added, 0 updated, 0 unchanged" in out
    assert "6,120 rows read, 6,105 candles added, 0 updated, 15 unchanged" in out
    assert History.objects.runs_finished().filter(step=Step.IMPORT, status=RunStatus.OK).count() == 7


def test_load_shipped_history_twice_adds_nothing() -> None:
    _command("load_shipped_history")

    again = _command("load_shipped_history")
    forced = shipped_history_load(force=True)

    assert "The database already holds 69,924 candles; skipped the shipped history" in again
    assert InstrumentOHLC.objects.count() == 5400 + 58_419 + 6_105  # the days and bitcoin's hours
    assert [result.added for result in forced.results] == [0, 0, 0, 0, 0, 0, 0]
    # --force imports in the same order, so the 865 bitcoin days both exchanges have are written back to
    # Bitstamp's values, then to Binance's again: the end state is the one before.
    assert [(result.updated, result.unchanged) for result in forced.results] == [
        (865, 1000),
        (865, 1567),
        (0, 58_419),
        (0, 255),
        (0, 6_120),
        (0, 788),
        (0, 925),
    ]
    assert {c.source for c in _candles() if c.open_time >= datetime(2017, 8, 17, tzinfo=UTC)} == {
        "file:BTC_USDT-1h.feather rolled up 1h->1d",
        "file:BTCUSDT-1h-2024-04-21_2024-12-31.csv rolled up 1h->1d",
        "file:bitstamp_(BTC,ETH,LTC)USD_d.csv",  # the 7 outage days
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/nope.csv", "--instrument", "bitcoin"], "file not found: .*nope.csv"),
        (
            [DAILY_2020, "--instrument", "bitcoin", "--format", "xls"],
            "format must be auto or one of csv, binance",
        ),
        ([WIDE, "--instrument", "bitcoin"], "pass --column-prefix with one of: BTC, ETH, LTC"),
        (
            [WIDE, "--instrument", "bitcoin", "--column-prefix", "XRP"],
            "the prefixes found are: BTC, ETH, LTC",
        ),
        (
            [DAILY_2020, "--instrument", "bitcoin", "--timeframe", "5m"],
            "timeframe must be one of 1m, 1h, 1d; was '5m'",
        ),
        ([DAILY_2020, "--instrument", "bitcoin", "--to-timeframe", "1h"], "to_timeframe must be a multiple"),
        (
            [OHLC / "BTCUSDT-1m-2024-01-01.csv", "--instrument", "bitcoin"],
            "mostly 1m long .* but the timeframe given is 1d; pass --timeframe 1m",
        ),
        ([DAILY_2020], "the following arguments are required: --instrument"),
    ],
)
def test_bad_input_is_a_clear_command_error(tmp_path: Path, args: list[object], message: str) -> None:
    args = [str(arg).format(tmp=tmp_path) for arg in args]

    with pytest.raises(CommandError, match=message):
        _import(*args)

    assert InstrumentOHLC.objects.count() == 0


def test_a_refused_file_does_not_stop_the_others() -> None:
    with pytest.raises(CommandError, match="pass --column-prefix"):
        _import(WIDE, DAILY_2020, "--instrument", "bitcoin")

    assert len(_candles()) == 366
    run = _last_run()
    assert [row.kind for row in run] == [
        HistoryKind.RUN_STARTED,
        HistoryKind.ERROR,
        HistoryKind.CANDLES_IMPORTED,
        HistoryKind.RUN_FINISHED,
    ]
    assert run[-1].status == RunStatus.PARTIAL
    assert [r["added"] for r in run[-1].payload["results"]] == [0, 366]


def test_an_unexpected_failure_is_recorded_and_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("instruments.sources.files.imports.candles_upsert", broken)

    with pytest.raises(RuntimeError, match="disk full"):
        ohlc_import(paths=[DAILY_2020], coingecko_id="bitcoin")

    run = _last_run()
    assert [row.kind for row in run] == [HistoryKind.RUN_STARTED, HistoryKind.ERROR, HistoryKind.RUN_FINISHED]
    assert "disk full" in run[1].message
    assert run[-1].status == RunStatus.FAILED


@pytest.mark.postgres
def test_postgres_stores_the_file_values_exactly() -> None:
    ohlc_import(paths=[OHLC / "BTCUSDT-1m-2024-01-01.csv"], coingecko_id="bitcoin", timeframe="1m")

    last = _candles(timeframe="1m")[-1]
    # 1704153540000,44156.10000000,44179.55000000,44156.09000000,44179.55000000,34.62772000,...
    assert last.open_time == datetime(2024, 1, 1, 23, 59, tzinfo=UTC)
    assert (str(last.open), str(last.volume)) == ("44156.100000000000000000", "34.627720000000000000")
