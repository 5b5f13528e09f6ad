"""Deploy winners: propose a portfolio's weights from its members' runs by a named rule (pure, no Django).

A candidate is one member strategy with a statistic of its run (``sharpe_ratio``...) and the volatility of the
run's daily returns; :func:`weights_propose` turns the candidates into weights by one of :data:`RULES`:

- ``winners``: a candidate whose statistic is strictly above ``threshold`` (default 0) is a winner, any other a
  loser (weight 0). The "1 for winners, 0 for losers" indicator is then scaled so the weights add up to the
  budget: every winner gets an equal share ``budget / number of winners`` (with no winner every weight is 0).
- ``proportional``: weights proportional to the statistic's positive values, 0 for a value <= 0 or undefined;
  they add up to the budget (all 0 when no value is positive).
- ``inverse_volatility``: weights proportional to ``1 / volatility`` of the daily returns, adding up to the
  budget; a candidate without a volatility (too short a run, or a flat curve: volatility 0) gets 0. This is the
  naive form of risk parity, which ignores the correlations between the candidates (E. Qian, "Risk Parity
  Portfolios", PanAgora Asset Management, 2005; T. Roncalli, *Introduction to Risk Parity and Budgeting*, CRC
  Press 2013, section 2.2.2, "the inverse volatility portfolio").

The budget is what the rule's candidates share (1 by default: the whole portfolio); the simulator's service
passes 1 minus the weights of the members kept out of the rule. Weights are floats here; the service rounds
them down to the weight field's 6 decimal places, so their sum never exceeds the budget.

:func:`daily_returns_volatility` measures the volatility a candidate carries, from a stored equity curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from trading.engine.vocabulary import STATISTIC_BY_KEY

#: The rules of :func:`weights_propose`, with a line for people each.
RULES: dict[str, str] = {
    "winners": "winners: equal shares for each member whose statistic is above the threshold, 0 for the others",
    "proportional": "proportional: weights proportional to the statistic's positive values (0 for the others)",
    "inverse_volatility": "inverse volatility: weights proportional to 1 / volatility of daily returns "
    "(naive risk parity)",
}
Rule = Literal["winners", "proportional", "inverse_volatility"]

#: Seconds in a UTC day (the curves' times are Unix seconds).
_DAY_SECONDS = 86_400


class DeployRuleError(ValueError):
    """A rule, statistic, threshold or budget :func:`weights_propose` cannot use; the message says which."""


@dataclass(frozen=True)
class Candidate:
    """One member strategy's figures for the rule.

    Attributes:
        name: the strategy's name (for the reasons, and to tell candidates apart).
        statistic_value: the run's statistic (its unit is the statistic's: a fraction for ``_ratio`` keys), or
            None where the run has none (a Sharpe ratio of a run without returns).
        volatility: the standard deviation of the run's daily returns (a fraction per day, not annualised,
            :func:`daily_returns_volatility`), or None where it cannot be measured.
    """

    name: str
    statistic_value: float | None
    volatility: float | None


@dataclass(frozen=True)
class WeightProposed:
    """The rule's answer for one candidate.

    Attributes:
        name: the candidate's name.
        weight: its share of the portfolio's equity, a fraction in [0, budget].
        reason: why, in a short sentence for people ("sharpe_ratio 1.2 > 0: a winner, 1/2 of 1").
    """

    name: str
    weight: float
    reason: str


def _number(value: float | None) -> float | None:
    """``value`` as a float, or None when it is None, not finite, or not a number at all."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: float) -> str:
    return f"{value:.4g}"


def weights_propose(
    candidates: Sequence[Candidate],
    rule: str,
    statistic: str,
    *,
    threshold: float = 0.0,
    budget: float = 1.0,
) -> list[WeightProposed]:
    """Propose a weight for each candidate by ``rule`` (see the module's docstring for the definitions).

    Args:
        candidates: the members the rule applies to, in the order the answer keeps.
        rule: one of :data:`RULES` (``winners``, ``proportional``, ``inverse_volatility``).
        statistic: the key of :data:`trading.engine.vocabulary.STATISTICS` the candidates' ``statistic_value``
            is, one where higher is better (a lower-is-better figure such as ``max_drawdown_ratio`` would make
            "above the threshold" and "proportional" mean the opposite of a winner); named in the reasons.
            ``inverse_volatility`` does not read it but still checks it.
        threshold: ``winners`` only: a winner's statistic is strictly above it, in the statistic's unit
            (``0.05`` for a ``total_return_ratio`` of 5 %).
        budget: what the weights add up to, a fraction in [0, 1] (1: the whole portfolio).

    Returns:
        One :class:`WeightProposed` per candidate, in order; weights >= 0 adding up to ``budget``, or all 0
        when no candidate qualifies (no winner, no positive value, no volatility).

    Raises:
        DeployRuleError: an unknown rule, an unknown or lower-is-better statistic, a threshold that is not a
            finite number, or a budget outside [0, 1].
    """
    if rule not in RULES:
        raise DeployRuleError(f"rule must be one of {', '.join(RULES)}; was {rule!r}")
    known = STATISTIC_BY_KEY.get(statistic)
    if known is None:
        raise DeployRuleError(f"statistic must be a key of the report (sharpe_ratio...); was {statistic!r}")
    if not (known.higher_is_better and known.ranked):
        raise DeployRuleError(
            f"statistic {statistic!r} is not one where higher is better; choose one such as sharpe_ratio"
        )
    if _number(threshold) is None:
        raise DeployRuleError(f"threshold must be a finite number; was {threshold!r}")
    if _number(budget) is None or not 0.0 <= budget <= 1.0:
        raise DeployRuleError(f"budget must be a fraction from 0 to 1; was {budget!r}")
    if rule == "winners":
        return _winners(candidates, statistic, float(threshold), float(budget))
    if rule == "proportional":
        return _proportional(candidates, statistic, float(budget))
    return _inverse_volatility(candidates, float(budget))


def _winners(
    candidates: Sequence[Candidate], statistic: str, threshold: float, budget: float
) -> list[WeightProposed]:
    values = [_number(c.statistic_value) for c in candidates]
    winners = sum(1 for v in values if v is not None and v > threshold)
    share = budget / winners if winners else 0.0
    answer = []
    for candidate, value in zip(candidates, values, strict=True):
        if value is None:
            answer.append(WeightProposed(candidate.name, 0.0, f"{statistic} undefined: not a winner"))
        elif value > threshold:
            answer.append(
                WeightProposed(
                    candidate.name,
                    share,
                    f"{statistic} {_text(value)} > {_text(threshold)}: a winner, 1/{winners} of {_text(budget)}",
                )
            )
        else:
            answer.append(
                WeightProposed(
                    candidate.name, 0.0, f"{statistic} {_text(value)} <= {_text(threshold)}: a loser"
                )
            )
    return answer


def _proportional(candidates: Sequence[Candidate], statistic: str, budget: float) -> list[WeightProposed]:
    values = [_number(c.statistic_value) for c in candidates]
    positive = [v for v in values if v is not None and v > 0]
    largest = max(positive, default=1.0)
    # Shares of the largest value first: the sum of values near the float maximum cannot overflow.
    total = sum(v / largest for v in positive)
    answer = []
    for candidate, value in zip(candidates, values, strict=True):
        if value is None:
            answer.append(WeightProposed(candidate.name, 0.0, f"{statistic} undefined: weight 0"))
        elif value <= 0:
            answer.append(WeightProposed(candidate.name, 0.0, f"{statistic} {_text(value)} <= 0: weight 0"))
        else:
            answer.append(
                WeightProposed(
                    candidate.name,
                    budget * (value / largest) / total,
                    f"{statistic} {_text(value)} of the positive total {_text(total * largest)}",
                )
            )
    return answer


def _inverse_volatility(candidates: Sequence[Candidate], budget: float) -> list[WeightProposed]:
    volatilities = [_number(c.volatility) for c in candidates]
    smallest = min((v for v in volatilities if v is not None and v > 0), default=1.0)
    # smallest / v rather than 1 / v: a tiny volatility cannot overflow the inverse (the ratios are the same).
    inverses = [smallest / v if v is not None and v > 0 else None for v in volatilities]
    total = sum(i for i in inverses if i is not None)
    answer = []
    for candidate, volatility, inverse in zip(candidates, volatilities, inverses, strict=True):
        if inverse is None or volatility is None:
            why = "no volatility (too few days)" if volatility is None else "volatility 0 (a flat curve)"
            answer.append(WeightProposed(candidate.name, 0.0, f"{why}: weight 0"))
        else:
            answer.append(
                WeightProposed(
                    candidate.name,
                    budget * inverse / total,
                    f"1 / volatility {_text(volatility)} = {_text(inverse / smallest)} of the total "
                    f"{_text(total / smallest)}",
                )
            )
    return answer


def daily_returns_volatility(time_seconds: Sequence[float], equity: Sequence[float]) -> float | None:
    """The sample standard deviation (ddof 1, as the engine's Sharpe ratio) of a curve's daily returns.

    The curve is reduced to one value per UTC day, the last one of the day (a daily run's curve is one per day
    already; an hourly or minute run's stored curve is resampled so), and the daily returns are
    ``r[d] = e[d] / e[d - 1] - 1`` between consecutive days of the curve. A return from an equity <= 0 (after a
    ruin) is left out. Not annualised: 0.02 means 2 % a day.

    Args:
        time_seconds: shape (n,), Unix seconds (UTC) of each point, in time order.
        equity: shape (n,), the equity at each point, quote currency.

    Returns:
        The standard deviation as a fraction per day, or None for fewer than 2 daily returns.

    Raises:
        ValueError: ``time_seconds`` and ``equity`` differ in length.
    """
    times = np.asarray(time_seconds, dtype=np.float64)
    values = np.asarray(equity, dtype=np.float64)
    if times.shape != values.shape:
        raise ValueError(f"time and equity differ in length: {times.size} and {values.size}")
    if values.size < 3:
        return None
    days = np.floor_divide(times, _DAY_SECONDS)
    last_of_day = np.append(days[1:] != days[:-1], True)
    closes = values[last_of_day]
    previous, current = closes[:-1], closes[1:]
    keep = (previous > 0) & np.isfinite(previous) & np.isfinite(current)
    returns = current[keep] / previous[keep] - 1.0
    if returns.size < 2:
        return None
    return float(np.std(returns, ddof=1))
