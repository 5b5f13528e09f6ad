"""The indicator registry: every indicator it lists is parsed, bounded and computed from it alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from trading.engine.conditions import indicator_series
from trading.engine.criteria import Operand, criteria_parse
from trading.engine.indicators import INDICATORS, Indicator, lookback_params
from trading.engine.limits import criteria_periods
from trading.engine.types import CandleArrays


def candles(n: int = 60) -> CandleArrays:
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    return CandleArrays(
        symbol="X",
        open_time_seconds=np.arange(n, dtype=np.int64) * 86_400,
        open=close * 0.99,
        high=close * 1.03,
        low=close * 0.96,
        close=close,
        volume=np.arange(1.0, n + 1.0),
    )


def operand_of(name: str, **params: Any) -> Operand:
    """The operand ``criteria_parse`` makes of ``{"indicator": name, **params}`` (defaults filled in)."""
    document = {
        "version": 1,
        "side": "long",
        "entry": {"left": {"indicator": name, **params}, "op": ">", "right": {"value": 0}},
    }
    (operand,) = criteria_parse(document).operands()
    return operand


def required(name: str) -> dict[str, int]:
    """A value for each required parameter of ``name`` (all of them are look-back periods today)."""
    return {param: 5 for param, (_, default) in INDICATORS[name].params.items() if default is None}


@pytest.mark.parametrize("name", list(INDICATORS))
def test_every_registered_indicator_parses_and_computes_an_aligned_series(name: str) -> None:
    data = candles()
    series = indicator_series(operand_of(name, **required(name)), data)
    assert series.shape == (len(data),) and series.dtype == np.float64
    defined = np.flatnonzero(~np.isnan(series))
    assert defined.size > 0
    assert np.all(~np.isnan(series[defined[0] :])), "NaN only while warming up"


def test_price_fields_are_the_candles_columns_and_sma_is_the_rolling_mean() -> None:
    # sma(5) at t is mean(close[t-4 .. t]); highest(5) of the high is their max.
    data = candles()
    assert np.array_equal(indicator_series(operand_of("close"), data), data.close)
    assert np.array_equal(indicator_series(operand_of("volume"), data), data.volume)
    sma = indicator_series(operand_of("sma", period=5), data)
    windows = np.lib.stride_tricks.sliding_window_view(data.close, 5)
    np.testing.assert_allclose(sma[4:], windows.mean(axis=1), rtol=1e-12)
    assert np.isnan(sma[:4]).all()
    highest = indicator_series(operand_of("highest", period=5), data)
    np.testing.assert_allclose(
        highest[4:], np.lib.stride_tricks.sliding_window_view(data.high, 5).max(axis=1)
    )


def test_a_shift_takes_the_value_that_many_candles_earlier() -> None:
    data = candles()
    plain = indicator_series(operand_of("sma", period=3), data)
    shifted = indicator_series(operand_of("sma", period=3, shift=2), data)
    np.testing.assert_array_equal(shifted[2:], plain[:-2])
    assert np.isnan(shifted[:2]).all()


def test_the_parser_names_the_registry_when_an_indicator_is_unknown() -> None:
    with pytest.raises(ValueError) as raised:
        operand_of("vwap")
    assert f"must be one of value, {', '.join(INDICATORS)}, was 'vwap'" in str(raised.value)


def test_macd_periods_are_checked_across_parameters() -> None:
    with pytest.raises(ValueError, match=r"entry\.left\.fast: must be below slow \(10\), was 12"):
        operand_of("macd", slow=10)


def test_look_back_parameters_come_from_the_registry() -> None:
    assert lookback_params() == {"period", "fast", "slow", "signal"}


def test_an_indicator_added_to_the_registry_is_parsed_bounded_and_computed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Adding an indicator touches the registry only: the parser, the look-back limits and the evaluation read it."""

    def doubled(data: CandleArrays, params: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(data.close * 2.0 + params["window"], dtype=np.float64)

    added = Indicator("double_close", {"window": ("period", None)}, doubled)
    monkeypatch.setitem(INDICATORS, "double_close", added)
    data = candles(10)
    operand = operand_of("double_close", window=3)
    np.testing.assert_array_equal(indicator_series(operand, data), data.close * 2.0 + 3)
    document = {
        "version": 1,
        "side": "long",
        "entry": {"left": {"indicator": "double_close", "window": 7}, "op": ">", "right": {"value": 0}},
    }
    assert criteria_periods(document) == [("entry.left.window", 7)]
    with pytest.raises(ValueError, match=r"entry\.left\.window: must be an integer >= 1, was 0"):
        operand_of("double_close", window=0)
