"""The simulator form's criteria builder, both ways: criteria document -> form rows -> criteria document, with
percent in the form and fractions inside; engine errors put back on the row and field they name."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from simulator.builder.conversions import (
    DEFAULT_CRITERIA,
    number_from_text,
    numeric_paths,
    path_is_percent,
    ratio_from_percent,
)
from simulator.builder.reading import builder_from_criteria, builder_from_data
from simulator.builder.rows import Builder
from simulator.display import number_text, percent_text
from tests.trading.factories import CRITERIA_MD_EXAMPLE, sma_cross_criteria
from trading.engine.criteria import CriteriaError, criteria_parse

# Every parameter kind, shifts, a constant on the left, any-entry, fixed sizing, every risk exit.
EVERYTHING: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "entry": {
        "any": [
            {
                "left": {"indicator": "macd", "fast": 8, "slow": 21, "signal": 5},
                "op": "crosses_above",
                "right": {"indicator": "macd_signal", "fast": 8, "slow": 21, "signal": 5},
            },
            {
                "left": {"indicator": "close"},
                "op": ">",
                "right": {"indicator": "highest", "period": 20, "source": "close", "shift": 1},
            },
            {"left": {"value": 0.02}, "op": "<=", "right": {"indicator": "roc", "period": 7}},
            {
                "left": {"indicator": "low"},
                "op": "<",
                "right": {"indicator": "bb_lower", "period": 20, "stddev": 2.5},
            },
            {"left": {"indicator": "ema", "period": 9, "source": "open"}, "op": ">=", "right": {"value": -3}},
        ]
    },
    "exit": {"all": [{"left": {"indicator": "atr", "period": 14}, "op": ">", "right": {"value": 1500.5}}]},
    "stop_loss_ratio": 0.025,
    "take_profit_ratio": 0.4,
    "trailing_stop_ratio": 0.125,
    "max_holding_days": 30,
    "sizing": {"method": "fixed_quote", "value": 2500},
    "fee_rate": 0.00075,
    "slippage_ratio": 0.0005,
}
# Only risk exits; the optional keys left out (their defaults apply).
NO_EXIT: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "entry": {"all": [{"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 30}}]},
    "exit": None,
    "take_profit_ratio": 0.06,
    "max_holding_days": 7,
}


def as_post(builder: Builder) -> dict[str, str]:
    """What the browser posts for a builder as the form draws it (every input of every row)."""
    data = dict(builder.fields)
    for group, rows in builder.rows.items():
        data[f"{group}_next"] = str(builder.next_keys[group])
        for row in rows:
            data[f"{row.prefix}-op"] = row.op
            for operand in (row.left, row.right):
                data[f"{operand.prefix}indicator"] = operand.indicator
                for field in operand.inputs():
                    data[field.input_name] = field.value
    return data


# Numbers in text: the arithmetic is in the comments.
@pytest.mark.parametrize(
    ("text", "ratio"),
    [
        ("5", 0.05),  # 5 / 100
        ("0.1", 0.001),  # the default fee: 0.1 / 100, made in decimal (no 0.0010000000000000002)
        ("12.5", 0.125),
        ("100", 1.0),
        (" 8 ", 0.08),
        ("0", 0.0),
        ("", None),
        ("   ", None),
        ("abc", "abc"),  # left for the engine to refuse, with the field's path
        ("nan", "nan"),
    ],
)
def test_percent_in_the_form_is_a_fraction_inside(text: str, ratio: float | str | None) -> None:
    assert ratio_from_percent(text) == ratio


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(0.05, "5"), (0.001, "0.1"), (0.125, "12.5"), (1.0, "100"), (1e-05, "0.001"), (0.0, "0"), (None, "")],
)
def test_a_fraction_is_shown_in_percent(ratio: float | None, text: str) -> None:
    assert percent_text(ratio) == text


@pytest.mark.parametrize(
    ("text", "number"),
    [("10", 10), ("10.0", 10), ("2.5", 2.5), ("-3", -3), ("1e3", 1000), ("", None), ("ten", "ten")],
)
def test_numbers_are_read_as_integers_when_integral(text: str, number: int | float | str | None) -> None:
    value = number_from_text(text)
    assert value == number
    assert type(value) is type(number)


def test_numbers_are_shown_without_float_noise() -> None:
    assert [number_text(v) for v in (10, 2.0, 2.5, 1e-07, 1500.5, None)] == [
        "10",
        "2",
        "2.5",
        "0.0000001",
        "1500.5",
        "",
    ]


@pytest.mark.parametrize(
    "document", [CRITERIA_MD_EXAMPLE, EVERYTHING, NO_EXIT, DEFAULT_CRITERIA, sma_cross_criteria()]
)
def test_criteria_to_rows_and_back_is_the_same_criteria(document: dict[str, Any]) -> None:
    builder = builder_from_criteria(copy.deepcopy(document))

    assert builder.representable
    assert builder.to_criteria() == criteria_parse(document).document
    # and through the browser: the rows as posted, read back
    assert builder_from_data(as_post(builder)).to_criteria() == criteria_parse(document).document


def test_criteria_become_rows_with_percent_fields() -> None:
    builder = builder_from_criteria(EVERYTHING)

    assert builder.fields == {
        "entry_mode": "any",
        "exit_mode": "all",
        "stop_loss_pct": "2.5",
        "take_profit_pct": "40",
        "trailing_stop_pct": "12.5",
        "fee_pct": "0.075",
        "slippage_pct": "0.05",
        "max_holding_days": "30",
        "sizing_method": "fixed_quote",
        "sizing_value": "2500",  # quote currency, not percent
    }
    assert [row.prefix for row in builder.entry_rows] == [f"entry-{n}" for n in range(5)]
    macd = builder.entry_rows[0]
    assert (macd.left.indicator, macd.left.values, macd.op) == (
        "macd",
        {"fast": "8", "slow": "21", "signal": "5"},
        "crosses_above",
    )
    highest = builder.entry_rows[1].right
    assert highest.values == {"period": "20", "source": "close", "shift": "1"}
    assert builder.entry_rows[2].left.indicator == "value"
    assert builder.entry_rows[2].left.values == {"value": "0.02"}
    shown = {i.name for i in builder.entry_rows[3].right.inputs() if i.shown}
    assert shown == {"period", "stddev", "shift"}  # bb_lower takes a period and a stddev
    assert builder.next_keys == {"entry": 5, "exit": 1}


def test_form_rows_become_criteria_with_fractions() -> None:
    data = {
        "entry_mode": "any",
        "exit_mode": "any",
        # rows 0 and 2 are left after row 1 was removed; the keys need not be contiguous
        "entry-0-left_indicator": "sma",
        "entry-0-left_period": "10",
        "entry-0-left_source": "",  # empty: the engine's default (close)
        "entry-0-left_stddev": "7",  # sma takes no stddev: ignored
        "entry-0-op": "crosses_above",
        "entry-0-right_indicator": "sma",
        "entry-0-right_period": "30",
        "entry-2-left_indicator": "rsi",
        "entry-2-left_period": "14",
        "entry-2-left_value": "99",  # not a constant: ignored
        "entry-2-op": "<",
        "entry-2-right_indicator": "value",
        "entry-2-right_value": "35",
        "entry-2-right_shift": "",
        "stop_loss_pct": "5",
        "take_profit_pct": "",
        "trailing_stop_pct": "12.5",
        "max_holding_days": "10",
        "sizing_method": "equity_fraction",
        "sizing_value": "50",
        "fee_pct": "0.1",
        "slippage_pct": "0.05",
    }

    document = builder_from_data(data).to_criteria()

    assert document == {
        "version": 1,
        "side": "long",
        "entry": {
            "any": [
                {
                    "left": {"indicator": "sma", "period": 10},
                    "op": "crosses_above",
                    "right": {"indicator": "sma", "period": 30},
                },
                {"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 35}},
            ]
        },
        "exit": None,  # no exit rows: no signal exit
        "stop_loss_ratio": 0.05,  # 5 %
        "take_profit_ratio": None,
        "trailing_stop_ratio": 0.125,  # 12.5 %
        "max_holding_days": 10,
        "sizing": {"method": "equity_fraction", "value": 0.5},  # 50 % of equity
        "fee_rate": 0.001,  # 0.1 %
        "slippage_ratio": 0.0005,  # 0.05 %
    }
    criteria_parse(document)  # valid as it is


def test_empty_fee_and_slippage_take_the_defaults() -> None:
    document = builder_from_data({"entry-0-left_indicator": "close", "entry-0-op": ">"}).to_criteria()

    assert (document["fee_rate"], document["slippage_ratio"]) == (0.001, 0.0)
    assert document["sizing"] == {"method": "equity_fraction", "value": None}  # the engine asks for it


@pytest.mark.parametrize(
    "document",
    [
        {
            **CRITERIA_MD_EXAMPLE,
            "entry": {"all": [{"any": CRITERIA_MD_EXAMPLE["entry"]["all"]}]},
        },  # a nested group
        {**CRITERIA_MD_EXAMPLE, "exit": {"not": CRITERIA_MD_EXAMPLE["exit"]["any"][0]}},
        {
            **CRITERIA_MD_EXAMPLE,
            "entry": {"all": [{**CRITERIA_MD_EXAMPLE["entry"]["all"][0], "note": "x"}]},
        },  # a field with no input
        {**CRITERIA_MD_EXAMPLE, "future_field": 1},
        {**CRITERIA_MD_EXAMPLE, "version": 2},
    ],
)
def test_criteria_the_builder_cannot_show_are_marked(document: dict[str, Any]) -> None:
    assert not builder_from_criteria(document).representable


def test_a_bare_comparison_is_one_row_of_an_all_group() -> None:
    bare = {**NO_EXIT, "entry": NO_EXIT["entry"]["all"][0]}

    builder = builder_from_criteria(bare)

    assert builder.representable
    assert builder.to_criteria()["entry"] == NO_EXIT["entry"]


def _engine_messages(document: dict[str, Any]) -> list[str]:
    with pytest.raises(CriteriaError) as caught:
        criteria_parse(document)
    return [f"{path}: {message}" if path else message for path, message in caught.value.errors]


def test_engine_errors_are_put_on_the_row_and_field_they_name() -> None:
    data = {
        "entry_mode": "all",
        "entry-0-left_indicator": "sma",
        "entry-0-left_period": "10",
        "entry-0-op": ">",
        "entry-0-right_indicator": "close",
        # key 3: the second row of the list, entry.all[1]
        "entry-3-left_indicator": "sma",
        "entry-3-left_period": "10",
        "entry-3-op": "crosses_above",
        "entry-3-right_indicator": "sma",
        "entry-3-right_period": "0",
        "exit-0-left_indicator": "value",
        "exit-0-left_value": "ten",
        "exit-0-op": "<",
        "exit-0-right_indicator": "close",
        "exit-0-right_shift": "-1",
        "stop_loss_pct": "150",
        "sizing_method": "equity_fraction",
        "sizing_value": "100",
        "fee_pct": "12",
        "max_holding_days": "2.5",
    }
    builder = builder_from_data(data)
    messages = _engine_messages(builder.to_criteria())

    left_over = builder.place_errors([*messages, "criteria must be a JSON object, was list"])

    second = builder.entry_rows[1]
    assert second.prefix == "entry-3"
    assert second.right.errors == {"period": ["must be an integer >= 1, was 0"]}
    assert builder.entry_rows[0].right.errors == {}
    exit_row = builder.exit_rows[0]
    assert exit_row.left.errors == {"value": ["must be a number, was 'ten'"]}
    assert exit_row.right.errors == {"shift": ["must be an integer >= 0, was -1"]}
    # fractions are said in percent where the form takes percent
    assert builder.errors["stop_loss_pct"] == ["must be > 0 % and < 100 %, was 150 %"]
    assert builder.errors["fee_pct"] == ["must be >= 0 % and < 10 %, was 12 %"]
    assert builder.errors["max_holding_days"] == ["must be an integer >= 1 or null, was 2.5"]
    assert left_over == ["criteria must be a JSON object, was list"]
    assert builder.has_errors


def test_an_empty_entry_group_is_an_error_of_the_group() -> None:
    builder = builder_from_data({"entry_mode": "any", "sizing_value": "100"})

    assert builder.place_errors(_engine_messages(builder.to_criteria())) == []
    assert builder.errors == {"entry": ["add at least one condition"]}


def test_quoted_user_text_keeps_its_digits_in_a_percent_message() -> None:
    builder = builder_from_data({"stop_loss_pct": "5x"})

    builder.place_errors(["stop_loss_ratio: must be a number or null, was '5x'"])

    assert builder.errors["stop_loss_pct"] == ["must be a number or null, was '5x'"]


def test_numeric_paths_list_every_number_a_sweep_can_vary() -> None:
    document = criteria_parse(CRITERIA_MD_EXAMPLE).document

    assert numeric_paths(document) == [
        ("exit.any[0].left.period", "exit.any[0].left.period"),
        ("exit.any[0].right.period", "exit.any[0].right.period"),
        ("stop_loss_ratio", "stop_loss_ratio (%)"),
        ("sizing.value", "sizing.value (%)"),
        ("fee_rate", "fee_rate (%)"),
        ("slippage_ratio", "slippage_ratio (%)"),
        ("entry.all[0].left.period", "entry.all[0].left.period"),
        ("entry.all[0].right.period", "entry.all[0].right.period"),
        ("entry.all[1].left.period", "entry.all[1].left.period"),
        ("entry.all[1].right.value", "entry.all[1].right.value"),
    ]


def test_sizing_is_percent_only_as_a_fraction_of_equity() -> None:
    assert path_is_percent("sizing.value", {"sizing": {"method": "equity_fraction", "value": 1.0}})
    assert not path_is_percent("sizing.value", {"sizing": {"method": "fixed_quote", "value": 500}})
    assert path_is_percent("trailing_stop_ratio", {})
    assert not path_is_percent("entry.all[0].left.period", {})
