"""The criteria in words (trading/engine/words.py), against sentences written by hand."""

from __future__ import annotations

from typing import Any

import pytest

from trading.engine.criteria import criteria_parse
from trading.engine.words import condition_text, criteria_words, number_text, operand_text

SMA10 = {"indicator": "sma", "period": 10}
SMA30 = {"indicator": "sma", "period": 30}


def _document(**fields: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "side": "long",
        "entry": {"all": [{"left": SMA10, "op": "crosses_above", "right": SMA30}]},
        **fields,
    }


def test_the_sma_crossover_reads_as_a_trader_would_say_it() -> None:
    criteria = criteria_parse(
        _document(
            exit={"any": [{"left": SMA10, "op": "crosses_below", "right": SMA30}]},
            stop_loss_ratio=0.02,
            take_profit_ratio=0.04,
            fee_rate=0.001,
        )
    )

    assert criteria_words(criteria).text == (
        "Enter long when SMA(10) crosses above SMA(30); exit when SMA(10) crosses below SMA(30), or at a 2 % "
        "stop-loss or a 4 % take-profit; size: 100 % of equity; fee 0.1 %, slippage 0 %"
    )


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        # nested all/any: a group inside another is in parentheses, the top one is not
        (
            {
                "all": [
                    {"left": SMA10, "op": ">", "right": SMA30},
                    {
                        "any": [
                            {"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 30}},
                            {
                                "left": {"indicator": "close"},
                                "op": "<=",
                                "right": {"indicator": "bb_lower", "period": 20},
                            },
                        ]
                    },
                ]
            },
            "SMA(10) is above SMA(30) and (RSI(14) is below 30 or close is at or below lower Bollinger band(20, 2))",
        ),
        # not of a comparison negates its verb; not of a group reads "not (...)"
        (
            {"not": {"left": SMA10, "op": "crosses_above", "right": SMA30}},
            "SMA(10) does not cross above SMA(30)",
        ),
        ({"not": {"left": SMA10, "op": ">=", "right": SMA30}}, "SMA(10) is not at or above SMA(30)"),
        (
            {
                "not": {
                    "any": [
                        {"left": {"indicator": "volume"}, "op": ">", "right": {"value": 1000000}},
                        {"left": {"indicator": "roc", "period": 5}, "op": ">", "right": {"value": 0.05}},
                    ]
                }
            },
            "not (volume is above 1,000,000 or ROC(5) is above 0.05)",
        ),
        # a double negation is the condition itself; a group of one is its item
        ({"not": {"not": {"all": [{"left": SMA10, "op": "<", "right": SMA30}]}}}, "SMA(10) is below SMA(30)"),
        # shifts, sources other than the default, constants, every other indicator
        (
            {
                "all": [
                    {
                        "left": {"indicator": "close", "shift": 1},
                        "op": ">",
                        "right": {"indicator": "highest", "period": 20, "shift": 1},
                    },
                    {
                        "left": {"indicator": "ema", "period": 8, "source": "high"},
                        "op": ">",
                        "right": {"indicator": "lowest", "period": 5, "source": "close", "shift": 3},
                    },
                    {"left": {"indicator": "macd_hist"}, "op": ">", "right": {"value": -1.5}},
                    {"left": {"indicator": "atr", "period": 14}, "op": "<", "right": {"value": 250.25}},
                    {
                        "left": {"indicator": "macd", "fast": 5, "slow": 35, "signal": 5},
                        "op": "crosses_above",
                        "right": {"indicator": "macd_signal", "fast": 5, "slow": 35, "signal": 5},
                    },
                    {
                        "left": {"indicator": "bb_upper", "period": 20, "stddev": 2.5},
                        "op": ">",
                        "right": {"indicator": "bb_middle", "period": 20},
                    },
                ]
            },
            "close 1 candle earlier is above highest(20) 1 candle earlier and EMA(8, high) is above "
            "lowest(5, close) 3 candles earlier and MACD histogram(12, 26, 9) is above -1.5 and ATR(14) is below "
            "250.25 and MACD(5, 35, 5) crosses above MACD signal(5, 35, 5) and upper Bollinger band(20, 2.5) is "
            "above middle Bollinger band(20, 2)",
        ),
    ],
)
def test_conditions_read_in_words(condition: dict[str, Any], text: str) -> None:
    criteria = criteria_parse(_document(entry=condition))

    assert condition_text(criteria.entry) == text


@pytest.mark.parametrize(
    ("fields", "exit_text"),
    [
        ({}, "no exit rule: positions close at the end of the data"),
        ({"stop_loss_ratio": 0.08}, "exit at an 8 % stop-loss"),
        ({"take_profit_ratio": 0.125}, "exit at a 12.5 % take-profit"),
        ({"take_profit_ratio": 0.11}, "exit at an 11 % take-profit"),
        ({"trailing_stop_ratio": 0.07}, "exit at a 7 % trailing stop"),  # 0.07 * 100 is 7.000000000000001
        ({"max_holding_days": 1}, "exit after 1 day held"),
        (
            {
                "exit": {"left": {"indicator": "rsi", "period": 14}, "op": ">", "right": {"value": 70}},
                "stop_loss_ratio": 0.05,
                "take_profit_ratio": 0.1,
                "trailing_stop_ratio": 0.03,
                "max_holding_days": 10,
            },
            "exit when RSI(14) is above 70, or at a 5 % stop-loss or a 10 % take-profit or a 3 % trailing stop, "
            "or after 10 days held",
        ),
    ],
)
def test_every_exit_kind_is_said(fields: dict[str, Any], exit_text: str) -> None:
    assert criteria_words(criteria_parse(_document(**fields))).exit == exit_text


def test_sizing_and_costs_are_said_with_their_units() -> None:
    fixed = criteria_parse(
        _document(sizing={"method": "fixed_quote", "value": 2500}, fee_rate=0.00075, slippage_ratio=0.0005)
    )
    fraction = criteria_parse(_document(sizing={"method": "equity_fraction", "value": 0.25}))

    assert criteria_words(fixed, currency="USDT").sizing == "size: 2,500 USDT per entry"
    assert criteria_words(fixed).costs == "fee 0.075 %, slippage 0.05 %"
    assert criteria_words(fraction).sizing == "size: 25 % of equity"


@pytest.mark.parametrize(
    ("value", "text"),
    [(70, "70"), (0.05, "0.05"), (-0.5, "-0.5"), (30000, "30,000"), (1234.5, "1,234.5"), (1e-7, "0.0000001")],
)
def test_numbers_read_without_float_noise(value: float, text: str) -> None:
    assert number_text(value) == text


def test_a_constant_operand_is_its_number() -> None:
    criteria = criteria_parse(_document(entry={"left": {"value": 3, "shift": 2}, "op": "<", "right": SMA10}))

    assert operand_text(criteria.entry.left) == "3 2 candles earlier"  # type: ignore[union-attr]
