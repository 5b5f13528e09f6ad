"""The bar magnifier (docs/criteria.md "Finer candles inside a daily candle"): finer candles decide which of a
stop and a take-profit both inside a daily candle was crossed first.

- BTCUSDT 2024 with its one-minute candles (skipped when /work/shared/data/minute/binance_btcusdt_1m_2024 is
  absent): a strategy entering every day with a 2 % stop-loss and a 2 % take-profit; the ambiguous days and
  their resolutions are computed again here in plain Python over the minutes, and checked against the engine's;
  hourly candles rolled up from the same minutes give the minutes' resolution wherever an hour decides.
- Synthetic: the trailing reference rises with the finer highs inside an ambiguous candle; without finer
  candles the result is the pessimistic daily one, reported as such.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import Criteria, criteria_parse
from trading.engine.types import CandleArrays

DAY = 86_400
HOUR = 3_600
MINUTES_2024 = Path("/work/shared/data/minute/binance_btcusdt_1m_2024")
ALWAYS: dict[str, object] = {"all": [{"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}]}


def every_day(**changes: object) -> Criteria:
    """Enter at every open while flat (the entry condition always holds); no exit signal."""
    document: dict[str, object] = {"version": 1, "side": "long", "entry": ALWAYS, "fee_rate": 0.0}
    return criteria_parse({**document, **changes})


def arrays(
    symbol: str, times: Sequence[int], rows: Sequence[tuple[float, float, float, float]]
) -> CandleArrays:
    """Candles from open times (seconds) and (open, high, low, close) rows."""
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return CandleArrays(
        symbol=symbol,
        open_time_seconds=np.array(times, dtype=np.int64),
        open=table[:, 0].copy(),
        high=table[:, 1].copy(),
        low=table[:, 2].copy(),
        close=table[:, 3].copy(),
        volume=np.full(table.shape[0], np.nan),
    )


def rolled_up(candles: CandleArrays, seconds: int) -> CandleArrays:
    """Candles of ``seconds`` made from finer ones: first open, highest high, lowest low, last close."""
    period = candles.open_time_seconds // seconds * seconds
    starts = np.flatnonzero(np.r_[True, period[1:] != period[:-1]])
    ends = np.r_[starts[1:], len(candles)] - 1
    return CandleArrays(
        symbol=candles.symbol,
        open_time_seconds=period[starts],
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends],
        volume=np.add.reduceat(candles.volume, starts),
    )


@cache
def minutes_2024() -> CandleArrays:
    """BTCUSDT's one-minute candles of 2024 from Binance's kline CSVs (open time in ms or µs)."""
    times: list[int] = []
    rows: list[tuple[float, float, float, float]] = []
    volume: list[float] = []
    for path in sorted(MINUTES_2024.glob("*.csv")):
        with path.open(newline="") as handle:
            for record in csv.reader(handle):
                if not record or not record[0].isdigit():
                    continue  # a header line
                raw = int(record[0])
                times.append(raw // 1_000_000 if raw > 10**14 else raw // 1_000)
                rows.append((float(record[1]), float(record[2]), float(record[3]), float(record[4])))
                volume.append(float(record[5]))
    candles = arrays("BTCUSDT", times, rows)
    return CandleArrays(
        candles.symbol,
        candles.open_time_seconds,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        np.array(volume),
    )


@dataclass(frozen=True)
class Expected:
    """An ambiguous day worked out here: its open time, the two levels and what the minutes say."""

    day: int
    stop: float
    take_profit: float
    resolution: str


def first_crossing(finer: CandleArrays, start: int, end: int, stop: float, take_profit: float) -> str:
    """Which level the finer candles ``start .. end - 1`` cross first, in plain Python: ``stop_loss``,
    ``take_profit``, or ``pessimistic`` when the first finer candle that reaches a level reaches both (its open
    through neither) or none does."""
    for f in range(start, end):
        o, h, lo = float(finer.open[f]), float(finer.high[f]), float(finer.low[f])
        if o <= stop:
            return "stop_loss"
        if o >= take_profit:
            return "take_profit"
        hits_stop, hits_take = lo <= stop, h >= take_profit
        if hits_stop and hits_take:
            return "pessimistic"
        if hits_stop:
            return "stop_loss"
        if hits_take:
            return "take_profit"
    return "pessimistic"


def expected_days(
    daily: CandleArrays, finer: CandleArrays, first: int, last: int, ratio: float
) -> list[Expected]:
    """The ambiguous days of "enter at every open while flat, stop and take-profit at ``ratio``" over the daily
    candles ``first .. last``, worked out one day at a time in plain Python (no slippage: the entry price is
    the day's open), each resolved by :func:`first_crossing` over the finer candles of that day."""
    found: list[Expected] = []
    stop = take_profit = math.nan
    flat = True
    for d in range(first, last + 1):
        o, h, lo = float(daily.open[d]), float(daily.high[d]), float(daily.low[d])
        if flat:  # the entry fills at this open (the condition held on the day before)
            stop, take_profit, flat = o * (1.0 - ratio), o * (1.0 + ratio), False
        if o <= stop or o >= take_profit:
            flat = True
        elif lo <= stop and h >= take_profit:
            day = int(daily.open_time_seconds[d])
            start = int(np.searchsorted(finer.open_time_seconds, day))
            end = int(np.searchsorted(finer.open_time_seconds, day + DAY))
            found.append(
                Expected(day, stop, take_profit, first_crossing(finer, start, end, stop, take_profit))
            )
            flat = True
        elif lo <= stop or h >= take_profit:
            flat = True
    return found


needs_minutes = pytest.mark.skipif(
    not MINUTES_2024.is_dir(), reason=f"BTCUSDT 2024 one-minute candles not found at {MINUTES_2024}"
)


def run_2024(finer: CandleArrays | None) -> tuple[list[tuple[int, float, float, str]], BacktestResult]:
    """The engine over BTCUSDT 2024's daily candles (entries from the open of 2 January, risk exits of
    31 December settled), with ``finer`` as magnifier; its ambiguous candles as tuples, and the result."""
    daily = rolled_up(minutes_2024(), DAY)
    result = backtest(
        criteria=every_day(stop_loss_ratio=0.02, take_profit_ratio=0.02),
        instruments=[daily],
        start_time_seconds=int(daily.open_time_seconds[1]),
        end_time_seconds=int(daily.open_time_seconds[-1]),
        starting_cash=10_000.0,
        close_at_end=True,
        finer=None if finer is None else {"BTCUSDT": finer},
    )
    found = [(a.open_time_seconds, a.stop_price, a.take_profit_price, a.resolution) for a in result.ambiguous]
    return found, result


@needs_minutes
def test_btcusdt_2024_minutes_resolve_the_ambiguous_days_as_the_minute_path_does() -> None:
    minutes = minutes_2024()
    daily = rolled_up(minutes, DAY)
    assert len(daily) == 366
    expected = expected_days(daily, minutes, 1, len(daily) - 1, 0.02)
    found, result = run_2024(minutes)

    assert [(e.day, e.resolution) for e in expected] == [(f[0], f[3]) for f in found]
    for e, f in zip(expected, found, strict=True):
        assert f[1] == pytest.approx(e.stop, rel=1e-12) and f[2] == pytest.approx(e.take_profit, rel=1e-12)
    resolutions = [e.resolution for e in expected]
    print(
        f"{len(expected)} ambiguous days: "
        + ", ".join(f"{r} {resolutions.count(r)}" for r in ("stop_loss", "take_profit", "pessimistic"))
    )
    for e in expected:
        print(
            np.datetime64(e.day, "s").astype("datetime64[D]"),
            round(e.stop, 2),
            round(e.take_profit, 2),
            e.resolution,
        )
    assert resolutions.count("take_profit") >= 1  # days the pessimistic rule gets wrong
    assert resolutions.count("stop_loss") >= 1
    statistics = result.statistics
    assert statistics["ambiguous_candles"] == len(expected)
    assert statistics["ambiguous_resolved"] == sum(r != "pessimistic" for r in resolutions)
    # the trade closed on an ambiguous day took the level the minutes crossed first, at that level
    trades = {t.exit_time_seconds: t for t in result.trades if t.exit_reason in ("stop_loss", "take_profit")}
    for e in expected:
        trade = trades[e.day]
        taken = "stop_loss" if e.resolution == "pessimistic" else e.resolution
        assert trade.exit_reason == taken
        assert trade.exit_price == pytest.approx(e.stop if taken == "stop_loss" else e.take_profit, rel=1e-12)


@needs_minutes
def test_btcusdt_2024_without_finer_candles_every_ambiguous_day_takes_the_stop() -> None:
    with_minutes, _ = run_2024(minutes_2024())
    found, result = run_2024(None)
    assert [f[0] for f in found] == [f[0] for f in with_minutes]
    assert {f[3] for f in found} == {"pessimistic"}
    statistics = result.statistics
    assert statistics["ambiguous_candles"] == len(found) > 0
    assert statistics["ambiguous_resolved"] == 0


@needs_minutes
def test_btcusdt_2024_hours_resolve_as_minutes_wherever_an_hour_decides() -> None:
    minutes = minutes_2024()
    hours = rolled_up(minutes, HOUR)
    by_minute, _ = run_2024(minutes)
    by_hour, _ = run_2024(hours)
    decided_by_an_hour = 0
    compared = 0
    # The two runs have the same trades up to the first day where an hour holding both levels takes the stop
    # and the minutes the take-profit (the trades after it differ): compare the ambiguous days up to there.
    for m, h in zip(by_minute, by_hour, strict=False):
        assert m[:3] == h[:3]
        day = m[0]
        start = int(np.searchsorted(hours.open_time_seconds, day))
        end = int(np.searchsorted(hours.open_time_seconds, day + DAY))
        hour_says = first_crossing(hours, start, end, m[1], m[2])
        assert h[3] == hour_says
        compared += 1
        if hour_says != "pessimistic":
            decided_by_an_hour += 1
            assert h[3] == m[3]  # an hour that decides agrees with its minutes
        elif m[3] == "take_profit":
            break
    assert decided_by_an_hour >= 1
    print(f"hours: {compared} ambiguous days compared, {decided_by_an_hour} decided by an hour")


# --- synthetic ------------------------------------------------------------------------------------------------


def test_trailing_reference_rises_with_the_finer_highs_inside_an_ambiguous_candle() -> None:
    # Entry at the open of day 1 at 100: stop-loss 90, take-profit 105, trailing 2 % (98 from the entry price).
    # Day 1 holds both 98 and 105. Its hours: 100 -> 103 (reference 103, trailing 100.94), then down to 100.5:
    # the trailing stop at 100.94, before the hour that reaches 106.
    daily = arrays("BTC", [0, DAY, 2 * DAY], [(100, 101, 99, 100), (100, 106, 89, 95), (95, 96, 94, 95)])
    hours = arrays(
        "BTC",
        [DAY, DAY + HOUR, DAY + 2 * HOUR, DAY + 3 * HOUR],
        [(100, 103, 99.5, 102), (102, 102.5, 100.5, 101), (101, 106, 101, 105), (105, 105, 89, 95)],
    )
    criteria = every_day(stop_loss_ratio=0.1, take_profit_ratio=0.05, trailing_stop_ratio=0.02)

    def run(finer: CandleArrays | None) -> BacktestResult:
        return backtest(
            criteria=criteria,
            instruments=[daily],
            start_time_seconds=DAY,
            end_time_seconds=DAY,
            starting_cash=1000.0,
            close_at_end=True,
            finer=None if finer is None else {"BTC": finer},
        )

    magnified = run(hours)
    [ambiguous] = magnified.ambiguous
    assert (ambiguous.open_time_seconds, ambiguous.stop_price, ambiguous.take_profit_price) == (
        DAY,
        98.0,
        105.0,
    )
    assert ambiguous.resolution == "trailing_stop"
    [trade] = magnified.trades
    assert trade.exit_reason == "trailing_stop"
    assert trade.exit_price == pytest.approx(0.98 * 103)
    assert trade.trailing_stop_price == pytest.approx(0.98 * 103)

    # Without the rising reference (the daily level 98 all day) the third hour would reach 105 first; and with
    # no finer candles at all the daily rule takes the stop at 98.
    daily_only = run(None)
    [pessimistic] = daily_only.ambiguous
    assert pessimistic.resolution == "pessimistic"
    [trade] = daily_only.trades
    assert trade.exit_reason == "trailing_stop"
    assert trade.exit_price == pytest.approx(98.0)


def test_an_hour_that_decides_gives_the_minutes_resolution_and_one_that_holds_both_stays_pessimistic() -> (
    None
):
    # Entry at 100 at the open of day 1; stop 98, take-profit 102. Day 1: the minutes of hour 0 rise to 102.5,
    # those of hour 1 fall to 97: hour 0 decides (take-profit), as its minutes do.
    daily = arrays("BTC", [0, DAY], [(100, 101, 99, 100), (100, 102.5, 97, 99)])
    minute_rows = (
        [(100.0, 100.5, 99.5, 100.0)] * 30 + [(100.0, 102.5, 100.0, 101.0)] + [(101.0, 101.0, 97.0, 99.0)]
    )
    minute_times = [DAY + 60 * m for m in range(31)] + [DAY + HOUR]
    minutes = arrays("BTC", minute_times, minute_rows)
    hours = rolled_up(minutes, HOUR)
    criteria = every_day(stop_loss_ratio=0.02, take_profit_ratio=0.02)

    def resolution(finer: CandleArrays) -> str:
        result = backtest(
            criteria=criteria,
            instruments=[daily],
            start_time_seconds=DAY,
            end_time_seconds=DAY,
            starting_cash=1000.0,
            close_at_end=True,
            finer={"BTC": finer},
        )
        [ambiguous] = result.ambiguous
        return ambiguous.resolution

    assert resolution(minutes) == resolution(hours) == "take_profit"
    # One hour holding the whole day: it cannot tell, so the stop is taken and the candle counts unresolved.
    assert resolution(rolled_up(minutes, DAY)) == "pessimistic"
