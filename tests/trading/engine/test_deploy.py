"""Tests of ``trading.engine.deploy``: the weight rules and the daily volatility, worked by hand. No database."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.engine.deploy import (
    Candidate,
    DeployRuleError,
    WeightProposed,
    daily_returns_volatility,
    weights_propose,
)

DAY = 86_400


def _weights(answer: list[WeightProposed]) -> list[float]:
    return [w.weight for w in answer]


# -- winners --------------------------------------------------------------------------------------------------


def test_winners_share_equally_and_losers_get_nothing() -> None:
    candidates = [
        Candidate("a", 1.5, 0.02),
        Candidate("b", -0.3, 0.01),
        Candidate("c", 0.4, 0.03),
        Candidate("d", 0.0, 0.01),  # exactly at the threshold: not above it, a loser
    ]

    answer = weights_propose(candidates, "winners", "sharpe_ratio")

    # Two winners (a, c): 1 / 2 each; b and d lose.
    assert _weights(answer) == [0.5, 0.0, 0.5, 0.0]
    assert [w.name for w in answer] == ["a", "b", "c", "d"]
    assert "winner" in answer[0].reason and "1/2" in answer[0].reason
    assert "loser" in answer[1].reason and "loser" in answer[3].reason


def test_winners_above_a_threshold_and_an_undefined_statistic_loses() -> None:
    candidates = [Candidate("a", 0.08, None), Candidate("b", 0.03, None), Candidate("c", None, None)]

    answer = weights_propose(candidates, "winners", "total_return_ratio", threshold=0.05)

    # Only a's 8 % is above 5 %: it takes the whole budget.
    assert _weights(answer) == [1.0, 0.0, 0.0]
    assert "undefined" in answer[2].reason


def test_winners_within_a_budget_and_no_winner_means_all_zero() -> None:
    three = [Candidate("a", 1.0, None), Candidate("b", 2.0, None), Candidate("c", 3.0, None)]
    # A budget of 0.6 over three winners: 0.2 each.
    assert _weights(weights_propose(three, "winners", "sharpe_ratio", budget=0.6)) == pytest.approx([0.2] * 3)
    none = [Candidate("a", -1.0, None), Candidate("b", -2.0, None)]
    assert _weights(weights_propose(none, "winners", "sharpe_ratio")) == [0.0, 0.0]


# -- proportional ---------------------------------------------------------------------------------------------


def test_proportional_to_the_positive_values() -> None:
    candidates = [
        Candidate("a", 3.0, None),
        Candidate("b", 1.0, None),
        Candidate("c", -2.0, None),
        Candidate("d", None, None),
    ]

    answer = weights_propose(candidates, "proportional", "sharpe_ratio")

    # Positive total 3 + 1 = 4: a 3/4, b 1/4; c (negative) and d (undefined) 0.
    assert _weights(answer) == pytest.approx([0.75, 0.25, 0.0, 0.0])
    assert "<= 0" in answer[2].reason and "undefined" in answer[3].reason


def test_proportional_within_a_budget_and_nothing_positive() -> None:
    candidates = [Candidate("a", 2.0, None), Candidate("b", 6.0, None)]
    # Budget 0.8: 0.8 * 2/8 = 0.2 and 0.8 * 6/8 = 0.6.
    answer = weights_propose(candidates, "proportional", "calmar_ratio", budget=0.8)
    assert _weights(answer) == pytest.approx([0.2, 0.6])
    losers = [Candidate("a", 0.0, None), Candidate("b", -1.0, None)]
    assert _weights(weights_propose(losers, "proportional", "calmar_ratio")) == [0.0, 0.0]


# -- inverse volatility ---------------------------------------------------------------------------------------


def test_inverse_volatility() -> None:
    candidates = [
        Candidate("a", None, 0.01),
        Candidate("b", None, 0.02),
        Candidate("c", None, None),
        Candidate("d", None, 0.0),
    ]

    answer = weights_propose(candidates, "inverse_volatility", "sharpe_ratio")

    # 1/0.01 = 100, 1/0.02 = 50, total 150: a 2/3, b 1/3; c (no volatility) and d (flat) 0.
    assert _weights(answer) == pytest.approx([2 / 3, 1 / 3, 0.0, 0.0])
    assert "no volatility" in answer[2].reason and "volatility 0" in answer[3].reason


# -- refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "statistic", "kwargs", "message"),
    [
        ("best", "sharpe_ratio", {}, "rule must be one of"),
        ("winners", "sharpness", {}, "statistic must be a key"),
        ("winners", "max_drawdown_ratio", {}, "not one where higher is better"),
        ("winners", "n_trades", {}, "not one where higher is better"),  # not ranked
        ("winners", "sharpe_ratio", {"threshold": math.nan}, "threshold must be a finite number"),
        ("winners", "sharpe_ratio", {"budget": 1.5}, "budget must be a fraction"),
    ],
)
def test_bad_arguments_are_refused(rule: str, statistic: str, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(DeployRuleError, match=message):
        weights_propose([Candidate("a", 1.0, 0.01)], rule, statistic, **kwargs)


@given(
    st.lists(
        st.tuples(
            st.none() | st.floats(-5, 5, allow_nan=False),
            st.none() | st.floats(0, 0.2, allow_nan=False),
        ),
        max_size=8,
    ),
    st.sampled_from(["winners", "proportional", "inverse_volatility"]),
    st.floats(0, 1),
)
def test_weights_are_non_negative_and_add_up_to_the_budget_or_zero(
    figures: list[tuple[float | None, float | None]], rule: str, budget: float
) -> None:
    candidates = [Candidate(str(i), value, vol) for i, (value, vol) in enumerate(figures)]

    weights = _weights(weights_propose(candidates, rule, "sharpe_ratio", budget=budget))

    assert all(w >= 0 for w in weights)
    total = sum(weights)
    assert total == pytest.approx(budget, abs=1e-9) or total == 0.0


# -- daily volatility -----------------------------------------------------------------------------------------


def test_daily_volatility_of_a_daily_curve() -> None:
    # Equity 100, 110, 99, 108.9: returns +10 %, -10 %, +10 %; mean 1/30; deviations 2/30, -4/30, 2/30;
    # squares 4 + 16 + 4 = 24 (/900); sample variance 24/900/2 = 12/900; std sqrt(12)/30.
    times = [DAY * d for d in range(4)]
    assert daily_returns_volatility(times, [100.0, 110.0, 99.0, 108.9]) == pytest.approx(math.sqrt(12) / 30)


def test_daily_volatility_keeps_the_last_point_of_each_day() -> None:
    # Hourly points: day 0 ends at 100, day 1 at 110 (its 105 mid-day is ignored), day 2 at 99.
    times = [0, 3_600, DAY + 3_600, DAY + 7_200, 2 * DAY + 60]
    equity = [90.0, 100.0, 105.0, 110.0, 99.0]
    # Returns +10 %, -10 %: mean 0, sample std sqrt((0.01 + 0.01) / 1) = sqrt(0.02).
    assert daily_returns_volatility(times, equity) == pytest.approx(math.sqrt(0.02))


def test_daily_volatility_needs_two_returns_and_skips_a_ruin() -> None:
    assert daily_returns_volatility([0, DAY], [100.0, 110.0]) is None
    assert daily_returns_volatility([0, 3_600, 7_200], [100.0, 110.0, 120.0]) is None  # one day only
    # 100 -> 0 (-100 %), then 0 -> 0 is left out, leaving one return: too few.
    assert daily_returns_volatility([0, DAY, 2 * DAY], [100.0, 0.0, 0.0]) is None
    with pytest.raises(ValueError, match="differ in length"):
        daily_returns_volatility([0, DAY, 2 * DAY], [1.0, 2.0])
