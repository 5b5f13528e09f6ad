"""The one limit set of criteria (``trading.engine.limits``), applied by ``criteria_parse``: sizes, comparisons,
nesting, periods and finite numbers; whatever it accepts, TA-Lib computes without ``TA_BAD_PARAM``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trading.engine.conditions import indicator_series
from trading.engine.criteria import CriteriaError, criteria_parse
from trading.engine.indicators import INDICATOR_PARAMS
from trading.engine.limits import (
    MAX_CONDITIONS,
    MAX_CRITERIA_BYTES,
    MAX_DEPTH,
    criteria_periods,
    json_depth,
    periods_check,
)
from trading.engine.types import CandleArrays


def document_with(entry: Any) -> dict[str, Any]:
    return {"version": 1, "side": "long", "entry": entry}


def compare(left: dict[str, Any], right: dict[str, Any] | None = None, op: str = ">") -> dict[str, Any]:
    return {"left": left, "op": op, "right": right or {"value": 1}}


def nested(levels: int) -> dict[str, Any]:
    """An entry condition of ``levels`` nested ``not``s around one comparison."""
    condition: dict[str, Any] = compare({"indicator": "close"})
    for _ in range(levels):
        condition = {"not": condition}
    return condition


def many_conditions(count: int) -> dict[str, Any]:
    """A criteria document of ``count`` comparisons, each an SMA crossing an EMA (about 175 bytes a comparison as
    ``json.dumps`` writes it: 14,000 of them are the issue's 2.4 MB document)."""
    rows = [
        compare(
            {"indicator": "sma", "period": 2 + n % 500, "source": "close", "shift": 0},
            {"indicator": "ema", "period": 3 + n % 700, "source": "close", "shift": 0},
            "crosses_above",
        )
        for n in range(count)
    ]
    return document_with({"all": rows})


def parse_errors(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(CriteriaError) as raised:
        criteria_parse(document)
    return raised.value.errors


@pytest.mark.parametrize("period", [100_001, 1_000_000])
@pytest.mark.parametrize("indicator", ["sma", "ema", "rsi", "roc", "highest", "lowest", "atr", "bb_upper"])
def test_a_period_beyond_ta_libs_100000_is_refused_with_its_path(indicator: str, period: int) -> None:
    errors = parse_errors(document_with(compare({"indicator": indicator, "period": period})))

    assert errors == [("entry.left.period", f"must be an integer <= 100,000, was {period}")]


@pytest.mark.parametrize("name", ["fast", "slow", "signal"])
def test_macd_periods_beyond_100000_are_refused(name: str) -> None:
    operand = {"indicator": "macd", "fast": 12, "slow": 26, "signal": 9, name: 100_001}

    errors = parse_errors(document_with(compare(operand)))

    assert (f"entry.left.{name}", "must be an integer <= 100,000, was 100001") in errors


@pytest.mark.parametrize("stddev", [1e308, 3.1e37, 101, float("inf")])
def test_a_bollinger_stddev_beyond_100_or_infinite_is_refused(stddev: float) -> None:
    errors = parse_errors(document_with(compare({"indicator": "bb_upper", "period": 20, "stddev": stddev})))

    assert [path for path, _ in errors] == ["entry.left.stddev"]
    assert errors[0][1].startswith(("must be > 0 and <= 100, was", "must be a finite number"))


@pytest.mark.parametrize("indicator", ["highest", "lowest"])
def test_highest_and_lowest_need_a_period_of_two_as_ta_lib_max_and_min_do(indicator: str) -> None:
    errors = parse_errors(document_with(compare({"indicator": indicator, "period": 1})))

    assert errors == [("entry.left.period", "must be an integer >= 2, was 1")]


@pytest.mark.parametrize("field", ["take_profit_ratio", "fee_rate"])
def test_infinite_numbers_are_refused(field: str) -> None:
    document = {**document_with(compare({"indicator": "close"})), field: float("inf")}

    assert parse_errors(document) == [(field, "must be a finite number, was inf")]


def test_an_infinite_constant_is_refused() -> None:
    errors = parse_errors(document_with(compare({"indicator": "close"}, {"value": float("-inf")})))

    assert errors == [("entry.right.value", "must be a finite number, was -inf")]


@pytest.mark.parametrize("levels", [101, 931, 5_000])
def test_deep_nesting_is_refused_without_recursion_error(levels: int) -> None:
    errors = parse_errors(document_with(nested(levels)))

    assert errors == [
        ("", f"nested more than {MAX_DEPTH} levels deep (objects and lists); simplify the criteria")
    ]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    # top object 1, entry's nots 2 .. n + 1, the comparison n + 2, its operands n + 3: n = MAX_DEPTH - 3
    document = document_with(nested(MAX_DEPTH - 3))

    assert json_depth(document) == MAX_DEPTH
    criteria_parse(document)


def test_the_issues_document_of_14000_conditions_and_2_4_mb_is_refused_by_size_and_count() -> None:
    document = many_conditions(14_000)
    size = len(json.dumps(document).encode())
    assert 2_400_000 < size < 2_500_000  # the issue's 2.4 MB, under Django's 2.5 MiB body limit

    errors = parse_errors(document)

    assert [path for path, _ in errors] == ["", ""]
    assert errors[0][1].startswith("the criteria are ") and errors[0][1].endswith(
        f"bytes as compact JSON; at most {MAX_CRITERIA_BYTES:,}"
    )
    assert (
        errors[1][1] == f"the criteria have 14,000 comparisons (entry and exit); at most {MAX_CONDITIONS:,}"
    )


def test_the_largest_allowed_number_of_comparisons_fits_the_size_limit() -> None:
    criteria_parse(many_conditions(MAX_CONDITIONS))
    assert parse_errors(many_conditions(MAX_CONDITIONS + 1))[0][1].startswith(
        "the criteria have 201 comparisons"
    )


def test_periods_longer_than_the_candles_available_are_named_by_path() -> None:
    document = document_with(
        {
            "all": [
                compare({"indicator": "sma", "period": 300}, {"indicator": "macd", "slow": 400, "signal": 9})
            ]
        }
    )

    assert criteria_periods(document) == [
        ("entry.all[0].left.period", 300),
        ("entry.all[0].right.slow", 400),
        ("entry.all[0].right.signal", 9),
    ]
    assert periods_check(document, available=365, where="bitcoin up to 2020-01-01") == [
        (
            "entry.all[0].right.slow",
            "must be at most the 365 daily candles stored for bitcoin up to 2020-01-01; was 400",
        )
    ]


def _candles(n: int) -> CandleArrays:
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    return CandleArrays(
        symbol="BTC",
        open_time_seconds=np.arange(n, dtype=np.int64) * 86_400,
        open=close,
        high=close + 1,
        low=close - 1,
        close=close,
        volume=np.full(n, 10.0),
    )


_numbers = st.one_of(
    st.integers(min_value=-3, max_value=120_000),
    st.sampled_from([0, 1, 2, 99_999, 100_000, 100_001, 1_000_000, 10**20]),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    indicator=st.sampled_from(sorted(n for n, spec in INDICATOR_PARAMS.items() if spec)),
    values=st.dictionaries(
        st.sampled_from(["period", "stddev", "fast", "slow", "signal", "shift"]), _numbers
    ),
)
def test_whatever_criteria_parse_accepts_ta_lib_computes(indicator: str, values: dict[str, float]) -> None:
    """TA-Lib raised TA_BAD_PARAM for parameters the validator let through (period 1,000,000, stddev 1e308,
    highest over 1 candle); every accepted operand must now compute."""
    operand = {
        "indicator": indicator,
        **{k: v for k, v in values.items() if k in INDICATOR_PARAMS[indicator]},
    }
    if "shift" in values:
        operand["shift"] = values["shift"]
    try:
        criteria = criteria_parse(document_with(compare(operand)))
    except CriteriaError:
        return
    series = indicator_series(criteria.operands()[0], _candles(60))
    assert series.shape == (60,)
