"""Operand series over other candles than the traded instrument's own: weekly candles built from daily ones, and
the alignment of another series (another instrument's, or weekly) to the traded candles without look-ahead.

docs/criteria.md, "Another instrument and weekly candles", states the rules:

- **Weekly candles** (:func:`weekly_candles`): weeks start on Monday 00:00 UTC (the ISO week, as exchanges' ``1w``
  candles); a week's candle is built from the daily candles present in it: open = its first day's open, high =
  the highest high, low = the lowest low, close = its last day's close, volume = the sum (NaN when a day's volume
  is unknown). A week without any daily candle has no weekly candle (a gap).
- **Completeness** (:func:`completed_weeks_index`): on daily candle t, a weekly series has the value of the last
  week whose final day (Sunday) is at or before t: on Sunday's candle that week counts (its close is the week's
  close), on Monday .. Saturday the week before it. A week counts once its Sunday has passed even when Sunday's
  candle is missing.
- **Another instrument** (:func:`at_or_before_index`): on traded candle t the value of the other series' last
  candle that opens at or before t's open (forward-filled over the other instrument's missing days, as
  TradingView's ``request.security`` does); NaN before its first candle.

Pure numpy: no Django.
"""

from __future__ import annotations

import numpy as np

from trading.engine.types import SECONDS_PER_DAY, CandleArrays

#: A week, seconds.
WEEK_SECONDS = 7 * SECONDS_PER_DAY
#: 1970-01-01 was a Thursday: day ``d`` (days since epoch) is in the ISO week ``(d + 3) // 7``, whose Monday is
#: day ``7 * week - 3``.
_EPOCH_TO_MONDAY_DAYS = 3


def week_start_seconds(open_time_seconds: np.ndarray) -> np.ndarray:
    """The Monday 00:00 UTC that starts the week of each time.

    Args:
        open_time_seconds: shape (n,), int64, seconds since epoch (UTC).

    Returns:
        shape (n,), int64, seconds since epoch of each time's week start.
    """
    days = np.floor_divide(np.asarray(open_time_seconds, dtype=np.int64), SECONDS_PER_DAY)
    weeks = np.floor_divide(days + _EPOCH_TO_MONDAY_DAYS, 7)
    starts: np.ndarray = (weeks * 7 - _EPOCH_TO_MONDAY_DAYS) * SECONDS_PER_DAY
    return starts


def daily_check(candles: CandleArrays) -> None:
    """Refuse candles that are not daily (a weekly operand is built from daily candles and counts a week on the
    candle of its Sunday, a rule for daily candles only).

    Raises:
        ValueError: some candle does not open at 00:00 UTC (an hourly or minute series).
    """
    if np.any(np.remainder(candles.open_time_seconds, SECONDS_PER_DAY)):
        raise ValueError(
            f'a "timeframe": "1w" operand needs daily candles; {candles.symbol} has candles that do not open '
            "at 00:00 UTC (run it on 1d candles)"
        )


def weekly_candles(candles: CandleArrays) -> CandleArrays:
    """Weekly candles built from daily ones (weeks from Monday 00:00 UTC, from the days present).

    Args:
        candles: daily candles, oldest first (:func:`daily_check`).

    Returns:
        One candle per week that has at least one daily candle, oldest first, same symbol; ``open_time_seconds``
        is the week's Monday 00:00 UTC even when Monday's candle is missing.

    Raises:
        ValueError: the candles are not daily.
    """
    daily_check(candles)
    starts = week_start_seconds(candles.open_time_seconds)
    if starts.shape[0] == 0:
        empty = np.empty(0, dtype=np.float64)
        return CandleArrays(candles.symbol, np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
    first = np.flatnonzero(np.concatenate(([True], starts[1:] != starts[:-1])))
    last = np.append(first[1:], starts.shape[0]) - 1
    return CandleArrays(
        symbol=candles.symbol,
        open_time_seconds=starts[first],
        open=np.asarray(candles.open, dtype=np.float64)[first],
        high=np.maximum.reduceat(np.asarray(candles.high, dtype=np.float64), first),
        low=np.minimum.reduceat(np.asarray(candles.low, dtype=np.float64), first),
        close=np.asarray(candles.close, dtype=np.float64)[last],
        volume=np.add.reduceat(np.asarray(candles.volume, dtype=np.float64), first),
    )


def completed_weeks_index(week_open_seconds: np.ndarray, daily_open_seconds: np.ndarray) -> np.ndarray:
    """For each daily candle, the index of the last week complete at its close, or -1.

    Week ``w`` (starting Monday ``week_open_seconds[w]``) is complete on daily candle t when its Sunday is at or
    before t: ``week_open_seconds[w] + 7 days <= t's open + 1 day`` (t's close).

    Args:
        week_open_seconds: shape (m,), int64, increasing week starts (:func:`weekly_candles`).
        daily_open_seconds: shape (n,), int64, the daily candles' opens.

    Returns:
        shape (n,), int64, indices into the weeks; -1 before the first complete week.
    """
    week_ends = np.asarray(week_open_seconds, dtype=np.int64) + WEEK_SECONDS
    closes = np.asarray(daily_open_seconds, dtype=np.int64) + SECONDS_PER_DAY
    return np.searchsorted(week_ends, closes, side="right").astype(np.int64) - 1


def at_or_before_index(source_open_seconds: np.ndarray, target_open_seconds: np.ndarray) -> np.ndarray:
    """For each target candle, the index of the last source candle opening at or before it (the forward fill of
    another instrument's series of the same timeframe), or -1 before the source's first candle.

    Args:
        source_open_seconds: shape (m,), int64, increasing.
        target_open_seconds: shape (n,), int64.

    Returns:
        shape (n,), int64.
    """
    return (
        np.searchsorted(
            np.asarray(source_open_seconds, dtype=np.int64), target_open_seconds, side="right"
        ).astype(np.int64)
        - 1
    )


def take_at(series: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``series[index]`` with NaN where ``index`` is -1.

    Args:
        series: shape (m,), float64.
        index: shape (n,), int64, in -1 .. m - 1.

    Returns:
        shape (n,), float64, a new array.
    """
    if series.shape[0] == 0:
        return np.full(index.shape[0], np.nan)
    taken: np.ndarray = np.asarray(series, dtype=np.float64)[np.maximum(index, 0)]
    taken[index < 0] = np.nan
    return taken
