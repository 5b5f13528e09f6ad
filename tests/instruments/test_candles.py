"""The Candle value's invariants and the roll-up, including property tests with hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instruments.candles import (
    Candle,
    CandleInvalidError,
    candle_problem,
    candles_rollup,
    floor_time,
    price_point,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
prices = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(10**6), places=8)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ((10, 12, 9, 11), ""),
        ((10, 9, 12, 11), "high 9 is below low 12"),
        ((10, 10.5, 9, 11), "high 10.5 is below max(open 10, close 11)"),
        ((10, 12, 10.5, 11), "low 10.5 is above min(open 10, close 11)"),
        ((0, 12, 9, 11), "open must be a finite price > 0, was 0"),
    ],
)
def test_candle_refuses_broken_invariants(values: tuple[float, float, float, float], problem: str) -> None:
    o, h, low, c = (Decimal(str(v)) for v in values)
    if problem:
        with pytest.raises(CandleInvalidError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            Candle(T0, o, h, low, c)
    else:
        assert candle_problem(Candle(T0, o, h, low, c)) == ""


def test_candle_refuses_naive_times_and_floats() -> None:
    with pytest.raises(CandleInvalidError, match="aware UTC"):
        Candle(datetime(2024, 1, 1), Decimal(1), Decimal(1), Decimal(1), Decimal(1))  # noqa: DTZ001
    with pytest.raises(CandleInvalidError, match=r"open must be a Decimal, was float 1\.0"):
        Candle(T0, 1.0, Decimal(1), Decimal(1), Decimal(1))  # type: ignore[arg-type]  # a float on purpose


@given(st.lists(prices, min_size=4, max_size=4))
def test_any_four_prices_make_a_valid_candle_or_a_clear_refusal(four: list[Decimal]) -> None:
    o, h, low, c = four
    try:
        candle = Candle(T0, o, h, low, c)
    except CandleInvalidError as exc:
        assert "below" in exc.message or "above" in exc.message
    else:
        assert candle.low <= min(candle.open, candle.close) <= max(candle.open, candle.close) <= candle.high


@given(st.lists(st.tuples(st.integers(0, 47), prices, prices), min_size=1, max_size=60))
def test_rollup_of_valid_candles_is_valid_and_bounds_its_inputs(
    rows: list[tuple[int, Decimal, Decimal]],
) -> None:
    by_slot: dict[int, Candle] = {}
    for slot, a, b in rows:
        low, high = min(a, b), max(a, b)
        by_slot[slot] = Candle(T0 + timedelta(minutes=30 * slot), low, high, low, high)  # last one wins
    candles = list(by_slot.values())
    result = candles_rollup(
        candles, period=timedelta(days=1), span=timedelta(minutes=30), max_gap=timedelta(days=1)
    )
    (day,) = result.candles
    assert day.high == max(c.high for c in candles) and day.low == min(c.low for c in candles)
    assert candle_problem(day) == ""


def test_rollup_requires_full_coverage_by_default() -> None:
    half_hours = [price_point(T0 + timedelta(minutes=30 * n), Decimal(100 + n)) for n in range(48)]
    full = candles_rollup(half_hours, period=timedelta(days=1), span=timedelta(minutes=30))
    # open = first open (100), high = max (147), low = min (100), close = last close (147)
    assert [(c.open, c.high, c.low, c.close) for c in full.candles] == [
        (Decimal(100), Decimal(147), Decimal(100), Decimal(147))
    ]
    gappy = candles_rollup(
        half_hours[:10] + half_hours[11:], period=timedelta(days=1), span=timedelta(minutes=30)
    )
    assert gappy.candles == [] and gappy.incomplete == [T0]


def test_rollup_sums_volumes_and_keeps_none_when_unknown() -> None:
    hours = [
        Candle(T0 + timedelta(hours=n), Decimal(1), Decimal(2), Decimal(1), Decimal(2), Decimal("1.5"))
        for n in range(24)
    ]
    (day,) = candles_rollup(hours, period=timedelta(days=1), span=timedelta(hours=1)).candles
    assert day.volume == Decimal("36.0")  # 24 hours x 1.5
    no_volume = [*hours[:-1], Candle(hours[-1].open_time, Decimal(1), Decimal(2), Decimal(1), Decimal(2))]
    assert (
        candles_rollup(no_volume, period=timedelta(days=1), span=timedelta(hours=1)).candles[0].volume is None
    )


def test_floor_time_aligns_to_utc_periods() -> None:
    moment = datetime(2024, 3, 5, 17, 42, 9, tzinfo=UTC)
    assert floor_time(moment, timedelta(days=1)) == datetime(2024, 3, 5, tzinfo=UTC)
    assert floor_time(moment, timedelta(minutes=30)) == datetime(2024, 3, 5, 17, 30, tzinfo=UTC)
