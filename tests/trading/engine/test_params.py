"""Named parameters in criteria (docs/criteria.md "Named parameters"): substitution before validation, errors at
the path of the field with the parameter named, and the engine running a parameterised document exactly as its
resolved one."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from trading.engine.backtest import backtest
from trading.engine.criteria import CriteriaError, criteria_parse, criteria_resolve
from trading.engine.types import CandleArrays

DAY = 86_400


def sma(period: Any) -> dict[str, Any]:
    return {"indicator": "sma", "period": period}


def crossover(fast: Any = 10, slow: Any = 50, **top: Any) -> dict[str, Any]:
    """An SMA crossover whose entry and exit both use ``fast`` and ``slow`` (numbers or references)."""
    return {
        "version": 1,
        "side": "long",
        "entry": {"all": [{"left": sma(fast), "op": "crosses_above", "right": sma(slow)}]},
        "exit": {"any": [{"left": sma(fast), "op": "crosses_below", "right": sma(slow)}]},
        **top,
    }


PARAMETERISED = crossover(
    {"param": "fast"},
    {"param": "slow"},
    params={"fast": 10, "slow": 50, "stop": 0.08},
    stop_loss_ratio={"param": "stop"},
)


def errors_of(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(CriteriaError) as raised:
        criteria_parse(document)
    return raised.value.errors


def test_references_are_substituted_before_validation() -> None:
    parsed = criteria_parse(PARAMETERISED)

    assert parsed == criteria_parse(crossover(10, 50, stop_loss_ratio=0.08))
    assert criteria_resolve(PARAMETERISED) == crossover(10, 50, stop_loss_ratio=0.08)
    # The stored document keeps the parameters and the references, and parses to the same criteria again.
    assert parsed.document["params"] == {"fast": 10, "slow": 50, "stop": 0.08}
    assert parsed.document["entry"]["all"][0]["left"]["period"] == {"param": "fast"}
    assert parsed.document["stop_loss_ratio"] == {"param": "stop"}
    assert criteria_parse(parsed.document) == parsed


def test_a_document_without_parameters_is_resolved_to_itself() -> None:
    document = crossover(10, 50)
    assert criteria_resolve(document) == document
    assert "params" not in criteria_parse(document).document


def test_every_number_field_can_be_a_parameter() -> None:
    p = {"param": "n"}
    document = {
        "version": 1,
        "side": "long",
        "params": {"n": 3, "half": 0.5, "band": 2.5},
        "entry": {
            "all": [
                {
                    "left": {"indicator": "close", "shift": p},
                    "op": ">",
                    "right": {"value": {"param": "band"}},
                },
                {
                    "left": {"indicator": "bb_upper", "period": p, "stddev": {"param": "band"}},
                    "op": ">",
                    "right": sma(p),
                },
                {
                    "left": {"indicator": "macd", "fast": p, "slow": 26, "signal": p},
                    "op": ">",
                    "right": {"value": 0},
                },
            ]
        },
        "stop_loss_ratio": {"param": "half"},
        "take_profit_ratio": {"param": "half"},
        "trailing_stop_ratio": {"param": "half"},
        "max_holding_days": p,
        "sizing": {"method": "equity_fraction", "value": {"param": "half"}},
        "fee_rate": 0,
        "slippage_ratio": 0,
    }
    parsed = criteria_parse(document)

    assert parsed.max_holding_days == 3
    assert parsed.sizing.value == 0.5
    assert parsed.stop_loss_ratio == parsed.take_profit_ratio == parsed.trailing_stop_ratio == 0.5
    assert parsed.document["sizing"] == {"method": "equity_fraction", "value": {"param": "half"}}
    assert parsed == criteria_parse(criteria_resolve(document))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        # The existing check of the field, said of the parameter, at the field's path.
        (
            lambda d: d["params"].update(fast=0),
            [
                ("entry.all[0].left.period", 'parameter "fast" is 0; must be an integer >= 1'),
                ("exit.any[0].left.period", 'parameter "fast" is 0; must be an integer >= 1'),
            ],
        ),
        (
            lambda d: d["params"].update(fast=2.5),
            [
                ("entry.all[0].left.period", 'parameter "fast" is 2.5; must be an integer >= 1'),
                ("exit.any[0].left.period", 'parameter "fast" is 2.5; must be an integer >= 1'),
            ],
        ),
        (
            lambda d: d["params"].update(stop=1.5),
            [("stop_loss_ratio", 'parameter "stop" is 1.5; must be > 0 and < 1')],
        ),
        # Unknown parameter: the message names the known ones.
        (
            lambda d: d["entry"]["all"][0]["right"].update(period={"param": "slwo"}),
            [("entry.all[0].right.period", 'unknown parameter "slwo"; the parameters are fast, slow, stop')],
        ),
        # A parameter no field refers to: a typo guard.
        (
            lambda d: d["params"].update(sloww=30),
            [("params.sloww", 'is never used; refer to it as {"param": "sloww"} or remove it')],
        ),
        # Values are numbers.
        (
            lambda d: d["params"].update(fast="ten"),
            [("params.fast", "must be a number, was 'ten'")],
        ),
        (lambda d: d["params"].update(fast=True), [("params.fast", "must be a number, was true")]),
        (lambda d: d["params"].update(fast=None), [("params.fast", "must be a number, was null")]),
        (
            lambda d: d.update(params=[10, 50]),
            [
                ("params", 'must be an object like {"fast": 10, "slow": 50}, was list'),
                (
                    "entry.all[0].left.period",
                    'unknown parameter "fast"; the parameters are none (declare them in "params": {"fast": 10})',
                ),
                (
                    "entry.all[0].right.period",
                    'unknown parameter "slow"; the parameters are none (declare them in "params": {"fast": 10})',
                ),
                (
                    "exit.any[0].left.period",
                    'unknown parameter "fast"; the parameters are none (declare them in "params": {"fast": 10})',
                ),
                (
                    "exit.any[0].right.period",
                    'unknown parameter "slow"; the parameters are none (declare them in "params": {"fast": 10})',
                ),
                (
                    "stop_loss_ratio",
                    'unknown parameter "stop"; the parameters are none (declare them in "params": {"fast": 10})',
                ),
            ],
        ),
        # Names are identifiers.
        (
            lambda d: d["params"].update({"2fast": 3}),
            [
                (
                    "params",
                    "a parameter's name must be letters, digits and _, not starting with a digit; was '2fast'",
                )
            ],
        ),
        # A reference stands for a number only, and alone.
        (
            lambda d: d["entry"]["all"][0].update(op={"param": "fast"}),
            [("entry.all[0].op", 'parameter "fast" cannot stand here: parameters are numbers')],
        ),
        (
            lambda d: d["entry"]["all"][0]["left"].update(period={"param": "fast", "default": 3}),
            [
                (
                    "entry.all[0].left.period",
                    "a parameter reference is {\"param\": \"<name>\"} alone, was {'param': 'fast', 'default': 3}",
                )
            ],
        ),
    ],
)
def test_parameter_errors_name_the_path_and_the_parameter(
    change: Any, expected: list[tuple[str, str]]
) -> None:
    document = copy.deepcopy(PARAMETERISED)
    change(document)

    assert errors_of(document) == expected


def test_a_reference_without_any_params_is_an_unknown_parameter() -> None:
    document = crossover({"param": "fast"}, 50)

    assert errors_of(document) == [
        (
            "entry.all[0].left.period",
            'unknown parameter "fast"; the parameters are none (declare them in "params": {"fast": 10})',
        ),
        (
            "exit.any[0].left.period",
            'unknown parameter "fast"; the parameters are none (declare them in "params": {"fast": 10})',
        ),
    ]


def test_other_errors_keep_their_messages_beside_substituted_fields() -> None:
    document = copy.deepcopy(PARAMETERISED)
    document["fee_rate"] = 0.5  # not a parameter: the message is the usual one
    document["params"]["slow"] = -1

    assert errors_of(document) == [
        ("entry.all[0].right.period", 'parameter "slow" is -1; must be an integer >= 1'),
        ("exit.any[0].right.period", 'parameter "slow" is -1; must be an integer >= 1'),
        ("fee_rate", "must be >= 0 and < 0.1, was 0.5"),
    ]


def random_walk(n: int = 900, seed: int = 7) -> CandleArrays:
    """Daily candles of a seeded random walk (a price that trends and turns, so SMA crosses happen)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.03, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = np.abs(rng.normal(0, 0.01, n)) * close
    return CandleArrays(
        symbol="BTC",
        open_time_seconds=np.arange(n, dtype=np.int64) * DAY,
        open=open_,
        high=np.maximum(open_, close) + spread,
        low=np.minimum(open_, close) - spread,
        close=close,
        volume=np.full(n, np.nan),
    )


@pytest.mark.parametrize(("fast", "slow", "stop"), [(10, 50, 0.08), (5, 20, 0.03), (30, 120, 0.2)])
def test_a_parameterised_document_backtests_exactly_as_its_resolved_document(
    fast: int, slow: int, stop: float
) -> None:
    document = copy.deepcopy(PARAMETERISED)
    document["params"] = {"fast": fast, "slow": slow, "stop": stop}
    candles = [random_walk()]

    def run(criteria: dict[str, Any]) -> Any:
        return backtest(
            criteria=criteria_parse(criteria),
            instruments=candles,
            start_time_seconds=200 * DAY,
            end_time_seconds=899 * DAY,
            starting_cash=10_000.0,
            candle_seconds=DAY,
            close_at_end=True,
        )

    with_params = run(document)
    resolved = run(crossover(fast, slow, stop_loss_ratio=stop))

    assert with_params.statistics == resolved.statistics
    assert with_params.statistics["n_trades"] >= 3  # the comparison is about trades, not an empty run
    assert [vars(t) for t in with_params.trades] == [vars(t) for t in resolved.trades]
    np.testing.assert_array_equal(with_params.equity_curve, resolved.equity_curve)
