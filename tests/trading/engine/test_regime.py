"""Operands over another instrument's candles and over weekly candles (issue 16, docs/criteria.md "Another
instrument and weekly candles"): weekly candles and their completeness worked by hand, the forward fill of
another instrument's missing day, no look-ahead, a backtest whose entries follow BTC's SMA, parsing errors with
their paths, look-back checks in weeks, and a sweep over a cross-instrument period equal to its single runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from tests.oracle.test_engine_against_oracle import bitstamp, criteria_doc
from trading.engine import conditions
from trading.engine.backtest import backtest
from trading.engine.conditions import indicator_series, signals_compute
from trading.engine.criteria import CriteriaError, criteria_instruments, criteria_parse
from trading.engine.limits import criteria_lookbacks, periods_check
from trading.engine.sweep import sweep_statistics
from trading.engine.timeframes import weekly_candles
from trading.engine.types import SECONDS_PER_DAY, CandleArrays
from trading.engine.words import operand_text

DAY = SECONDS_PER_DAY


def at(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def candles(symbol: str, days: list[str], close: list[float], **columns: list[float]) -> CandleArrays:
    """Candles on the ``days`` (ISO dates); open, high, low default to close - 0.5, close + 2, close - 3."""
    c = np.asarray(close, dtype=np.float64)
    return CandleArrays(
        symbol,
        np.asarray([at(d) for d in days], dtype=np.int64),
        np.asarray(columns.get("open", c - 0.5), dtype=np.float64),
        np.asarray(columns.get("high", c + 2), dtype=np.float64),
        np.asarray(columns.get("low", c - 3), dtype=np.float64),
        c,
        np.asarray(columns.get("volume", np.ones_like(c)), dtype=np.float64),
    )


def operand(**fields: Any) -> Any:
    """The parsed left operand of a one-comparison entry ``left > 0``."""
    document = criteria_doc(entry={"left": fields, "op": ">", "right": {"value": 0}})
    return criteria_parse(document).entry.left  # type: ignore[union-attr]


# 2024-01-01 is a Monday. The series starts on Wednesday 3 January (mid-week) and lacks Thursday 11 January; the
# close of day d of January is 100 + d. Highs are close + 2 but 130 on the 9th; lows close - 3 but 90 on the 16th.
JANUARY = [f"2024-01-{d:02d}" for d in range(3, 24) if d != 11]
DAYS = [int(d[-2:]) for d in JANUARY]


def january(symbol: str = "ALT") -> CandleArrays:
    close = [100.0 + d for d in DAYS]
    high = [130.0 if d == 9 else 100.0 + d + 2 for d in DAYS]
    low = [90.0 if d == 16 else 100.0 + d - 3 for d in DAYS]
    volume = [10.0 if d == 12 else 1.0 for d in DAYS]
    return candles(symbol, JANUARY, close, high=high, low=low, volume=volume)


def test_weekly_candles_from_the_days_present() -> None:
    weeks = weekly_candles(january())
    # Weeks from Monday: 1 Jan (Wed 3 .. Sun 7 present), 8 Jan (no Thursday 11), 15 Jan (all), 22 Jan (Mon, Tue).
    assert weeks.open_time_seconds.tolist() == [
        at("2024-01-01"),
        at("2024-01-08"),
        at("2024-01-15"),
        at("2024-01-22"),
    ]
    # open: the first present day's open (close - 0.5): 3 Jan 102.5, 8 Jan 107.5, 15 Jan 114.5, 22 Jan 121.5
    assert weeks.open.tolist() == [102.5, 107.5, 114.5, 121.5]
    # high: max of the highs: 7 Jan 109; the 9th's 130; 21 Jan 123; 23 Jan 125
    assert weeks.high.tolist() == [109.0, 130.0, 123.0, 125.0]
    # low: min of the lows: 3 Jan 100; 8 Jan 105; the 16th's 90; 22 Jan 119
    assert weeks.low.tolist() == [100.0, 105.0, 90.0, 119.0]
    # close: the last present day's close: Sun 7 Jan 107, Sun 14 Jan 114, Sun 21 Jan 121, Tue 23 Jan 123
    assert weeks.close.tolist() == [107.0, 114.0, 121.0, 123.0]
    # volume: the sum: 5 days; 6 days with the 12th's 10 (1 * 5 + 10); 7 days; 2 days
    assert weeks.volume.tolist() == [5.0, 15.0, 7.0, 2.0]


def test_a_weekly_value_counts_from_the_sunday_that_completes_its_week() -> None:
    alt = january()
    weekly_close = indicator_series(operand(indicator="close", timeframe="1w"), alt)
    expected = {}
    for d in DAYS:
        if d < 7:
            expected[d] = np.nan  # Wed 3 .. Sat 6: no week complete yet
        elif d < 14:
            expected[d] = 107.0  # Sun 7 .. Sat 13: the week of 1 January (on Sunday its own close)
        elif d < 21:
            expected[d] = 114.0  # Sun 14 .. Sat 20: the week of 8 January
        else:
            expected[d] = (
                121.0  # Sun 21 .. Tue 23: the week of 15 January (that of 22 January is not complete)
            )
    np.testing.assert_array_equal(weekly_close, [expected[d] for d in DAYS])
    # shift counts weeks: one week earlier than the above, from the second complete week on
    shifted = indicator_series(operand(indicator="close", timeframe="1w", shift=1), alt)
    np.testing.assert_array_equal(shifted, [np.nan if d < 14 else 107.0 if d < 21 else 114.0 for d in DAYS])
    # SMA(2) of weekly closes: (107 + 114) / 2 = 110.5 from Sun 14, (114 + 121) / 2 = 117.5 from Sun 21
    sma = indicator_series(operand(indicator="sma", period=2, timeframe="1w"), alt)
    np.testing.assert_array_equal(sma, [np.nan if d < 14 else 110.5 if d < 21 else 117.5 for d in DAYS])


def test_a_week_without_its_sunday_counts_from_the_next_monday() -> None:
    days = [d for d in JANUARY if d != "2024-01-14"]
    alt = candles("ALT", days, [100.0 + int(d[-2:]) for d in days])
    weekly_close = indicator_series(operand(indicator="close", timeframe="1w"), alt)
    by_day = dict(zip((int(d[-2:]) for d in days), weekly_close.tolist(), strict=True))
    assert by_day[13] == 107.0  # Saturday: the week of 1 January still
    assert by_day[15] == 113.0  # Monday: the week of 8 January, complete, closed by Saturday 13's close


def test_another_instruments_missing_day_is_forward_filled_and_nan_before_its_first() -> None:
    alt = candles("ALT", ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"], [1.0] * 5)
    # BTC starts on the 2nd and lacks the 4th.
    btc = candles("BTC", ["2024-01-02", "2024-01-03", "2024-01-05"], [20.0, 30.0, 50.0])
    close = indicator_series(operand(indicator="close", instrument="bitcoin"), alt, {}, {"bitcoin": btc})
    np.testing.assert_array_equal(close, [np.nan, 20.0, 30.0, 30.0, 50.0])
    # shift counts BTC's own candles: one BTC candle earlier
    earlier = indicator_series(
        operand(indicator="close", instrument="bitcoin", shift=1), alt, {}, {"bitcoin": btc}
    )
    np.testing.assert_array_equal(earlier, [np.nan, np.nan, 20.0, 20.0, 30.0])
    with pytest.raises(ValueError, match="'bitcoin', whose candles were not given"):
        indicator_series(operand(indicator="close", instrument="bitcoin"), alt)


def test_a_weekly_operand_refuses_candles_that_are_not_daily() -> None:
    hourly = CandleArrays("ALT", np.arange(48, dtype=np.int64) * 3600, *(np.ones(48) for _ in range(5)))
    with pytest.raises(ValueError, match="needs daily candles"):
        indicator_series(operand(indicator="close", timeframe="1w"), hourly)


def _random(symbol: str, n: int, rng: np.random.Generator, first_day: int) -> CandleArrays:
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    opened = close * np.exp(rng.normal(0, 0.01, n))
    return CandleArrays(
        symbol,
        (first_day + np.arange(n, dtype=np.int64)) * DAY,
        opened,
        np.maximum(opened, close) * 1.01,
        np.minimum(opened, close) * 0.99,
        close,
        rng.uniform(1, 2, n),
    )


def _drop(c: CandleArrays, keep: np.ndarray) -> CandleArrays:
    return CandleArrays(
        c.symbol,
        c.open_time_seconds[keep],
        c.open[keep],
        c.high[keep],
        c.low[keep],
        c.close[keep],
        c.volume[keep],
    )


def _changed_after(c: CandleArrays, t_seconds: int, rng: np.random.Generator) -> CandleArrays:
    later = c.open_time_seconds > t_seconds
    factor = np.where(later, rng.uniform(0.5, 1.5, len(c)), 1.0)
    return CandleArrays(
        c.symbol,
        c.open_time_seconds,
        c.open * factor,
        c.high * factor * np.where(later, 1.05, 1.0),
        c.low * factor,
        c.close * factor,
        c.volume * factor,
    )


LOOK_AHEAD_CRITERIA = criteria_doc(
    entry={
        "all": [
            {
                "left": {"indicator": "close", "instrument": "bitcoin"},
                "op": ">",
                "right": {"indicator": "sma", "period": 5, "instrument": "bitcoin"},
            },
            {
                "left": {"indicator": "sma", "period": 3, "timeframe": "1w", "instrument": "bitcoin"},
                "op": "crosses_above",
                "right": {
                    "indicator": "ema",
                    "period": 4,
                    "timeframe": "1w",
                    "instrument": "bitcoin",
                    "shift": 1,
                },
            },
        ]
    },
    exit={
        "any": [
            {
                "left": {"indicator": "close", "timeframe": "1w"},
                "op": "<",
                "right": {"indicator": "sma", "period": 3, "timeframe": "1w"},
            },
            {
                "left": {"indicator": "high", "timeframe": "1w"},
                "op": ">",
                "right": {"indicator": "highest", "period": 4, "timeframe": "1w", "shift": 1},
            },
        ]
    },
)


def test_changing_every_candle_after_day_t_changes_no_signal_up_to_t() -> None:
    rng = np.random.default_rng(16)
    # ALT from a Friday, BTC from the Tuesday before, BTC missing some days.
    alt = _random("ALT", 200, rng, 19_726)  # 2024-01-05, a Friday
    btc = _drop(_random("BTC", 210, rng, 19_722), np.flatnonzero(rng.uniform(size=210) > 0.1))
    criteria = criteria_parse(LOOK_AHEAD_CRITERIA)
    full = signals_compute(criteria, alt, references={"bitcoin": btc})
    assert full.entry.any() and full.exit.any() and not full.exit.all()  # not a degenerate case
    for t in range(0, 200, 7):
        for day_shift in range(3):  # t itself and the next days of its week too
            cut = min(t + day_shift, 199)
            cut_seconds = int(alt.open_time_seconds[cut])
            changed = signals_compute(
                criteria,
                _changed_after(alt, cut_seconds, rng),
                references={"bitcoin": _changed_after(btc, cut_seconds, rng)},
            )
            np.testing.assert_array_equal(changed.entry[: cut + 1], full.entry[: cut + 1])
            np.testing.assert_array_equal(changed.exit[: cut + 1], full.exit[: cut + 1])


CROSS = criteria_doc(
    entry={
        "left": {"indicator": "close", "instrument": "bitcoin"},
        "op": ">",
        "right": {"indicator": "sma", "period": 3, "instrument": "bitcoin"},
    },
    exit={
        "left": {"indicator": "close", "instrument": "bitcoin"},
        "op": "<=",
        "right": {"indicator": "sma", "period": 3, "instrument": "bitcoin"},
    },
    fee_rate=0.0,
)
TWELVE = [f"2024-01-{d:02d}" for d in range(1, 13)]
BTC_CLOSES = [10.0, 11.0, 12.0, 13.0, 12.0, 11.0, 10.0, 12.0, 14.0, 13.0, 12.0, 11.0]


def _cross_trades(btc: CandleArrays) -> list[tuple[str | None, str | None]]:
    alt = candles("ALT", TWELVE, [100.0] * 12)
    result = backtest(
        criteria=criteria_parse(CROSS),
        instruments=[alt],
        start_time_seconds=at(TWELVE[0]),
        end_time_seconds=at(TWELVE[-1]),
        starting_cash=1_000.0,
        references={"bitcoin": btc},
    )

    def day(seconds: int | None) -> str | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC).date().isoformat()

    return [(day(t.entry_time_seconds), day(t.exit_time_seconds)) for t in result.trades]


def test_entries_follow_bitcoins_close_above_its_sma_3() -> None:
    # BTC closes (day of January):  1:10  2:11  3:12  4:13  5:12  6:11  7:10  8:12  9:14  10:13  11:12  12:11
    # SMA(3) from the 3rd:                     3:11  4:12  5:12.33 6:12 7:11  8:11  9:12  10:13  11:13  12:12
    # close > SMA on the 3rd, 4th, 8th, 9th: entries at the next opens, the 4th and the 9th; close <= SMA on the
    # 5th (exit at the 6th's open) and the 10th (13 <= 13: exit at the 11th's open).
    btc = candles("BTC", TWELVE, BTC_CLOSES)
    assert _cross_trades(btc) == [("2024-01-04", "2024-01-06"), ("2024-01-09", "2024-01-11")]


def test_bitcoins_missing_day_is_forward_filled_in_a_backtest() -> None:
    # Without BTC's 9th (close 14), its SMA(3) over its own candles: 8th (11 + 10 + 12) / 3 = 11, 10th
    # (10 + 12 + 13) / 3 = 11.67, 11th (12 + 13 + 12) / 3 = 12.33, 12th 12. On ALT's 9th the 8th's values hold
    # (12 > 11: in), on the 10th 13 > 11.67 (in), on the 11th 12 <= 12.33: the exit moves from the 11th's open
    # to the 12th's.
    keep = np.asarray([d != "2024-01-09" for d in TWELVE])
    btc = _drop(candles("BTC", TWELVE, BTC_CLOSES), keep)
    assert _cross_trades(btc) == [("2024-01-04", "2024-01-06"), ("2024-01-09", "2024-01-12")]


def test_parsing_errors_name_the_path() -> None:
    document = criteria_doc(
        entry={
            "all": [
                {
                    "left": {"indicator": "sma", "period": 3, "instrument": "Bit Coin", "timeframe": "4h"},
                    "op": ">",
                    "right": {"value": 1, "instrument": "bitcoin"},
                },
                {"left": {"indicator": "close", "instrument": ""}, "op": ">", "right": {"value": 1}},
                {"left": {"indicator": "close", "instrument": "a" * 101}, "op": ">", "right": {"value": 1}},
                {"left": {"indicator": "close", "timeframe": 7}, "op": ">", "right": {"value": 1}},
            ]
        }
    )
    with pytest.raises(CriteriaError) as caught:
        criteria_parse(document)
    errors = dict(caught.value.errors)
    assert errors["entry.all[0].left.timeframe"] == "must be one of 1d, 1w, was '4h'"
    assert errors["entry.all[0].left.instrument"].startswith("must be a CoinGecko id")
    assert "was 'Bit Coin'" in errors["entry.all[0].left.instrument"]
    assert errors["entry.all[0].right.instrument"] == "unknown field; expected one of shift, value"
    assert "was ''" in errors["entry.all[1].left.instrument"]
    assert "entry.all[2].left.instrument" in errors
    assert errors["entry.all[3].left.timeframe"] == "must be one of 1d, 1w, was 7"


def test_a_parameter_cannot_stand_for_an_instrument_and_a_period_of_one_can_be_a_parameter() -> None:
    with pytest.raises(CriteriaError, match=r"entry\.left\.instrument"):
        criteria_parse(
            {
                **criteria_doc(
                    entry={
                        "left": {"indicator": "close", "instrument": {"param": "x"}},
                        "op": ">",
                        "right": {"value": 1},
                    }
                ),
                "params": {"x": 1},
            }
        )
    parsed = criteria_parse(
        {
            **criteria_doc(
                entry={
                    "left": {"indicator": "close", "instrument": "bitcoin"},
                    "op": ">",
                    "right": {
                        "indicator": "sma",
                        "period": {"param": "n"},
                        "instrument": "bitcoin",
                        "timeframe": "1w",
                    },
                }
            ),
            "params": {"n": 20},
        }
    )
    assert parsed.entry.right.param("period") == 20  # type: ignore[union-attr]
    assert (parsed.entry.right.instrument, parsed.entry.right.timeframe) == ("bitcoin", "1w")  # type: ignore[union-attr]
    assert criteria_instruments(parsed) == ("bitcoin",)
    assert operand_text(parsed.entry.right) == "weekly SMA(20) of bitcoin"  # type: ignore[union-attr]


def test_look_backs_count_weeks_as_seven_days_and_name_the_other_instrument() -> None:
    document = criteria_doc(
        entry={
            "all": [
                {
                    "left": {"indicator": "sma", "period": 200, "timeframe": "1w"},
                    "op": ">",
                    "right": {"value": 1},
                },
                {
                    "left": {"indicator": "sma", "period": 30, "instrument": "bitcoin"},
                    "op": ">",
                    "right": {"value": 1},
                },
                {"left": {"indicator": "sma", "period": 20}, "op": ">", "right": {"value": 1}},
            ]
        }
    )
    assert [(lb.path, lb.candles, lb.instrument) for lb in criteria_lookbacks(document)] == [
        ("entry.all[0].left.period", 1_400, None),
        ("entry.all[1].left.period", 30, "bitcoin"),
        ("entry.all[2].left.period", 20, None),
    ]
    # ALT has 1,000 days (142 weeks), BTC 25
    problems = dict(
        periods_check(
            document,
            available=1_000,
            where="alt up to 2024-12-31",
            references={"bitcoin": (25, "bitcoin up to 2024-12-31")},
        )
    )
    assert problems == {
        "entry.all[0].left.period": "must be at most the 142 weeks (7 days each) of the 1,000 daily candles stored "
        "for alt up to 2024-12-31; was 200 weeks (1,400 days)",
        "entry.all[1].left.period": "must be at most the 25 daily candles stored for bitcoin up to 2024-12-31; was 30",
    }
    assert (
        periods_check(document, available=1_400, where="alt", references={"bitcoin": (30, "bitcoin")}) == []
    )


def _btc_sma_cross(period: int) -> Any:
    return criteria_parse(
        criteria_doc(
            entry={
                "left": {"indicator": "close", "instrument": "bitcoin"},
                "op": "crosses_above",
                "right": {"indicator": "sma", "period": period, "instrument": "bitcoin"},
            },
            exit={
                "left": {"indicator": "close", "instrument": "bitcoin", "timeframe": "1w"},
                "op": "<",
                "right": {"indicator": "sma", "period": 4, "instrument": "bitcoin", "timeframe": "1w"},
            },
            stop_loss_ratio=0.1,
        )
    )


def test_a_sweep_over_a_period_of_bitcoin_equals_the_single_runs_and_computes_each_series_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ETH and LTC traded (Bitstamp daily, with gaps), their entries on BTC's close crossing its SMA, their exits on
    # BTC's weekly close under its 4-week SMA.
    data = bitstamp()

    def arrays(symbol: str) -> CandleArrays:
        c = data[symbol]
        return CandleArrays(
            symbol, c["open_time_seconds"], c["open"], c["high"], c["low"], c["close"], c["volume"]
        )

    traded = [arrays("ETH"), arrays("LTC")]
    references = {"bitcoin": arrays("BTC")}
    periods = [10, 20, 50, 100]
    criteria = [_btc_sma_cross(p) for p in periods]
    run: dict[str, Any] = {
        "start_time_seconds": at("2017-01-02"),
        "end_time_seconds": at("2019-12-30"),
        "starting_cash": 10_000.0,
        "close_at_end": True,
    }
    computed: list[tuple[str, Any]] = []
    own_series = conditions._own_series

    def counting(operand: Any, source: CandleArrays) -> np.ndarray:
        computed.append((source.symbol, operand))
        return own_series(operand, source)

    monkeypatch.setattr(conditions, "_own_series", counting)
    swept = sweep_statistics(
        criteria=criteria, instruments=traded, keep_curves=True, references=references, **run
    )
    # Each distinct series once: BTC's close, its SMA of each period, its weekly close and weekly SMA(4).
    assert sorted((symbol, o.indicator, o.params) for symbol, o in computed) == sorted(
        [("BTC", "close", ()), ("BTC", "close", ()), ("BTC", "sma", (("period", 4), ("source", "close")))]
        + [("BTC", "sma", (("period", p), ("source", "close"))) for p in periods]
    )
    monkeypatch.undo()
    trades = 0
    for n, point in enumerate(criteria):
        single = backtest(criteria=point, instruments=traded, references=references, **run)
        assert swept.errors[n] == ""
        assert swept.statistics[n] == single.statistics, f"point {n}"
        assert swept.equity_curves is not None
        np.testing.assert_array_equal(swept.equity_curves[n], single.equity_curve)
        trades += len(single.trades)
    assert trades > 20  # the points trade
    assert len({s["final_equity"] for s in swept.statistics if s}) == len(periods)
