"""Walk-forward analysis in the engine (trading/engine/walk_forward.py): fold windows, the choice rules, folds
worked by hand, and no fold seeing its test window while choosing."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest

from trading.engine.backtest import backtest
from trading.engine.criteria import criteria_parse
from trading.engine.types import CandleArrays
from trading.engine.walk_forward import (
    WalkForwardError,
    choose_point,
    day_seconds,
    fold_windows,
    neighbourhood_means,
    parameter_stability,
    walk_forward,
    walk_forward_efficiency,
)

DAY = 86_400
START = date(2024, 1, 1)
ARRAYS = ("open_time_seconds", "open", "high", "low", "close", "volume")


def series(prices: Any, start: date = START, symbol: str = "BTC", warm_days: int = 0) -> CandleArrays:
    """Daily candles from ``start`` whose open, high, low and close are all the day's price, after ``warm_days``
    days at the first price (so that a signal exists before ``start``)."""
    p = np.asarray([prices[0]] * warm_days + list(prices), dtype=np.float64)
    times = day_seconds(start - timedelta(days=warm_days)) + DAY * np.arange(p.size, dtype=np.int64)
    return CandleArrays(symbol, times, p.copy(), p.copy(), p.copy(), p.copy(), np.full(p.size, np.nan))


def always_in(fraction: float) -> dict[str, Any]:
    """Enter at the first open (every close is above 0), never exit before the end, no fee: a run over days
    ``a .. b`` returns ``fraction * (price[b] / price[a] - 1)``."""
    return {
        "version": 1,
        "side": "long",
        "entry": {"all": [{"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}]},
        "exit": {"any": [{"left": {"indicator": "close"}, "op": "<", "right": {"value": 0}}]},
        "sizing": {"method": "equity_fraction", "value": fraction},
        "fee_rate": 0,
    }


# -- windows ---------------------------------------------------------------------------------------------------


def test_rolling_windows_keep_their_length_and_step() -> None:
    folds = fold_windows(start=START, end=START + timedelta(days=99), train_days=30, test_days=10)

    assert len(folds) == 7  # (100 - 30 - 10) // 10 + 1
    assert folds[0].train_start == START and folds[0].train_end == date(2024, 1, 30)
    assert folds[0].test_start == date(2024, 1, 31) and folds[0].test_end == date(2024, 2, 9)
    for fold, following in itertools.pairwise(folds):
        assert fold.train_days == 30 and fold.test_days == 10
        assert following.test_start == fold.test_end + timedelta(days=1)
        assert fold.test_start == fold.train_end + timedelta(days=1)
    assert folds[-1].test_end <= START + timedelta(days=99)


def test_anchored_windows_grow_from_the_first_day() -> None:
    folds = fold_windows(
        start=START, end=START + timedelta(days=59), train_days=20, test_days=10, anchored=True
    )

    assert [f.train_start for f in folds] == [START] * 4
    assert [f.train_days for f in folds] == [20, 30, 40, 50]
    assert [f.test_days for f in folds] == [10] * 4


def test_a_step_longer_than_the_test_window_leaves_days_out() -> None:
    folds = fold_windows(
        start=START, end=START + timedelta(days=59), train_days=20, test_days=5, step_days=15
    )

    assert [(f.test_start - START).days for f in folds] == [20, 35, 50]


@pytest.mark.parametrize(
    ("settings", "field", "words"),
    [
        ({"train_days": 0, "test_days": 5}, "train_days", ">= 1"),
        ({"train_days": 10, "test_days": 0}, "test_days", ">= 1"),
        ({"train_days": 10, "test_days": 5, "step_days": 3}, "step_days", "do not overlap"),
        ({"train_days": 50, "test_days": 20}, "train_days", "has 60"),
        (
            {"train_days": 1, "test_days": 1, "step_days": 1, "end": START + timedelta(days=999)},
            "step_days",
            "folds",
        ),
    ],
)
def test_impossible_windows_are_refused_naming_the_setting(
    settings: dict[str, Any], field: str, words: str
) -> None:
    arguments = {"start": START, "end": START + timedelta(days=59), **settings}
    with pytest.raises(WalkForwardError) as raised:
        fold_windows(**arguments)
    assert raised.value.field == field
    assert words in raised.value.message


# -- the choice rules ------------------------------------------------------------------------------------------

#: A 5 x 5 grid of -5s: a lone spike of 10 at (4, 4), and a plateau of 4s around (2, 2), whose centre is 5.
SPIKE_AND_PLATEAU = np.full((5, 5), -5.0)
SPIKE_AND_PLATEAU[1:4, 1:4] = 4.0
SPIKE_AND_PLATEAU[2, 2] = 5.0
SPIKE_AND_PLATEAU[4, 4] = 10.0


def test_best_takes_the_spike_and_plateau_the_plateau() -> None:
    values = SPIKE_AND_PLATEAU.ravel().tolist()

    assert choose_point(values, shape=(5, 5), rule="best") == (24, 10.0)
    index, score = choose_point(values, shape=(5, 5), rule="plateau", radius=1)
    assert tuple(int(i) for i in np.unravel_index(index, (5, 5))) == (2, 2)
    # Worked by hand: (2, 2)'s 3 x 3 neighbourhood is eight 4s and its own 5.
    assert score == pytest.approx((8 * 4 + 5) / 9)
    # The spike's neighbourhood (clipped at the corner): 10, the plateau's corner 4 and two -5s.
    assert neighbourhood_means(values, shape=(5, 5), radius=1)[24] == pytest.approx((10 + 4 - 10) / 4)
    # Radius 0 is each point alone: the spike again.
    assert choose_point(values, shape=(5, 5), rule="plateau", radius=0)[0] == 24


def test_plateau_leaves_out_points_without_a_value_and_never_centres_on_one() -> None:
    values: list[float | None] = [1.0, None, 3.0, None, 2.0]

    means = neighbourhood_means(values, shape=(5,), radius=1)
    assert means == [1.0, None, 3.0, None, 2.0]
    assert neighbourhood_means([1.0, 2.0, None, 6.0], shape=(4,), radius=1) == [1.5, 1.5, None, 6.0]


def test_ties_go_to_the_first_point_and_lower_is_better_turns_round() -> None:
    assert choose_point([1.0, 3.0, 3.0], shape=(3,), rule="best")[0] == 1
    assert choose_point([0.3, 0.1, 0.1], shape=(3,), rule="best", higher_is_better=False)[0] == 1


def test_undefined_statistics_are_chosen_only_when_nothing_else_is() -> None:
    assert choose_point([None, -0.5, None], shape=(3,), rule="best") == (1, -0.5)
    assert choose_point([None, None], shape=(2,), rule="plateau") == (0, None)
    # A point that did not run (skipped) is not chosen even then.
    assert choose_point([None, None], shape=(2,), rule="best", ran=[False, True]) == (1, None)
    with pytest.raises(WalkForwardError, match="no grid point ran"):
        choose_point([None], shape=(1,), rule="best", ran=[False])


def test_an_unknown_rule_or_radius_is_refused() -> None:
    with pytest.raises(WalkForwardError) as raised:
        choose_point([1.0], shape=(1,), rule="luck")
    assert raised.value.field == "rule"
    with pytest.raises(WalkForwardError) as raised:
        choose_point([1.0], shape=(1,), rule="plateau", radius=-1)
    assert raised.value.field == "radius"


def test_efficiency_is_none_for_an_in_sample_loss() -> None:
    assert walk_forward_efficiency(0.1, 0.4) == pytest.approx(0.25)
    assert walk_forward_efficiency(-0.1, 0.2) == pytest.approx(-0.5)
    assert walk_forward_efficiency(0.1, 0.0) is None
    assert walk_forward_efficiency(0.1, -0.2) is None
    assert walk_forward_efficiency(None, 0.2) is None


def test_parameter_stability_counts_the_changes() -> None:
    rows = parameter_stability(
        [("params.fast", [5.0, 10.0, 20.0]), ("params.slow", [50.0, 100.0])], [0, 1, 5, 5]
    )

    assert rows[0]["values"] == [5.0, 5.0, 20.0, 20.0]
    assert rows[0]["changes"] == 1 and rows[0]["distinct"] == 2 and rows[0]["range_ratio"] == 1.0
    assert rows[1]["values"] == [50.0, 100.0, 100.0, 100.0]
    assert rows[1]["changes"] == 1 and rows[1]["mean"] == pytest.approx(87.5)


# -- folds worked by hand --------------------------------------------------------------------------------------

#: Days 0-9 rise, 10-14 fall, 15-19 rise, 20-24 rise steeply.
HAND_PRICES = (
    [100 + d for d in range(10)]
    + [106, 103, 100, 97, 94]
    + [96, 98, 100, 102, 104]
    + [104, 110, 120, 130, 140]
)
FRACTIONS = [0.25, 0.5, 1.0]


def hand_run(anchored: bool) -> Any:
    candles = series(HAND_PRICES, warm_days=5)
    windows = fold_windows(
        start=START, end=START + timedelta(days=24), train_days=10, test_days=5, anchored=anchored
    )
    return walk_forward(
        points=[criteria_parse(always_in(f)) for f in FRACTIONS],
        shape=(3,),
        instruments=[candles],
        windows=windows,
        statistic="total_return_ratio",
        rule="best",
        starting_cash=1000.0,
    )


def test_rolling_folds_worked_by_hand() -> None:
    """Each run over days a .. b returns f * (p[b] / p[a] - 1): a train window whose price rose picks the
    largest fraction (1.0), one whose price fell the smallest (0.25).

    - fold 1: train days 0-9, 100 -> 109, rose: 1.0; test days 10-14, 106 -> 94: 1.0 * (94 / 106 - 1).
    - fold 2: train days 5-14, 105 -> 94, fell: 0.25; test days 15-19, 96 -> 104: 0.25 * (104 / 96 - 1).
    - fold 3: train days 10-19, 106 -> 104, fell: 0.25; test days 20-24, 104 -> 140: 0.25 * (140 / 104 - 1).
    """
    result = hand_run(anchored=False)

    assert [FRACTIONS[f.chosen_index] for f in result.folds] == [1.0, 0.25, 0.25]
    expected = [1.0 * (94 / 106 - 1), 0.25 * (104 / 96 - 1), 0.25 * (140 / 104 - 1)]
    assert [f.out_of_sample.statistics["total_return_ratio"] for f in result.folds] == pytest.approx(expected)
    assert result.folds[0].in_sample_values == pytest.approx([0.25 * 0.09, 0.5 * 0.09, 0.09])
    # One account: each test window starts with the previous one's final equity.
    assert [f.starting_cash for f in result.folds] == pytest.approx(
        [1000, 1000 * (94 / 106), 1000 * (94 / 106) * (1 + expected[1])]
    )
    final = 1000 * math.prod(1 + r for r in expected)
    assert result.equity_curve[-1] == pytest.approx(final)
    assert result.statistics["total_return_ratio"] == pytest.approx(final / 1000 - 1)
    assert result.equity_curve.size == 15 and result.times[0] == day_seconds(START + timedelta(days=10))
    assert np.all(np.diff(result.times) == DAY)
    # Buy and hold over the test windows, chained: 94/106 * 104/96 * 140/104.
    assert result.buy_and_hold_curve[-1] == pytest.approx(1000 * 94 / 106 * 104 / 96 * 140 / 104)
    # WFE: fold 1's in-sample CAGR is above 0; folds 2 and 3 lost in-sample, so theirs is None.
    fold = result.folds[0]
    assert fold.efficiency == pytest.approx(
        fold.out_of_sample.statistics["cagr_ratio"] / fold.in_sample_statistics["cagr_ratio"]
    )
    assert [f.efficiency is None for f in result.folds] == [False, True, True]


def test_anchored_folds_worked_by_hand() -> None:
    """Anchored: fold 2 trains on days 0-14 (100 -> 94, fell: 0.25), fold 3 on days 0-19 (100 -> 104, rose: 1.0)."""
    result = hand_run(anchored=True)

    assert [FRACTIONS[f.chosen_index] for f in result.folds] == [1.0, 0.25, 1.0]
    expected = [94 / 106 - 1, 0.25 * (104 / 96 - 1), 140 / 104 - 1]
    assert [f.out_of_sample.statistics["total_return_ratio"] for f in result.folds] == pytest.approx(expected)
    assert result.folds[2].in_sample_statistics["total_return_ratio"] == pytest.approx(104 / 100 - 1)


def test_a_tie_in_a_flat_train_window_goes_to_the_first_point() -> None:
    candles = series([100.0] * 10 + [100 + d for d in range(5)], warm_days=5)
    windows = fold_windows(start=START, end=START + timedelta(days=14), train_days=10, test_days=5)

    result = walk_forward(
        points=[criteria_parse(always_in(f)) for f in FRACTIONS],
        shape=(3,),
        instruments=[candles],
        windows=windows,
        statistic="total_return_ratio",
        rule="best",
        starting_cash=1000.0,
    )

    assert result.folds[0].in_sample_values == [0.0, 0.0, 0.0]
    assert result.folds[0].chosen_index == 0


# -- no fold sees its test window while choosing -----------------------------------------------------------------


def crossover(fast: int, slow: int) -> dict[str, Any]:
    return {
        "version": 1,
        "side": "long",
        "entry": {
            "all": [
                {
                    "left": {"indicator": "sma", "period": fast},
                    "op": "crosses_above",
                    "right": {"indicator": "sma", "period": slow},
                }
            ]
        },
        "exit": {
            "any": [
                {
                    "left": {"indicator": "sma", "period": fast},
                    "op": "crosses_below",
                    "right": {"indicator": "sma", "period": slow},
                }
            ]
        },
    }


FAST = [3, 5, 8]
SLOW = [10, 20, 30]


def random_walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0.0, 0.03, n)))


def poisoned(candles: CandleArrays, since_seconds: int) -> CandleArrays:
    """Every candle opening at or after ``since_seconds`` with absurd prices (1,000 times, its high 3,000 times)."""
    late = candles.open_time_seconds >= since_seconds
    scale = np.where(late, 1000.0, 1.0)
    return replace(
        candles,
        open=candles.open * scale,
        high=candles.high * np.where(late, 3000.0, 1.0),
        low=candles.low * scale,
        close=candles.close * np.where(late, 1000.0 + np.arange(len(candles)) % 7, 1.0),
    )


@pytest.mark.parametrize(("anchored", "rule"), [(False, "best"), (True, "plateau")])
def test_poisoning_a_folds_test_window_leaves_its_choice_unchanged(anchored: bool, rule: str) -> None:
    """For each fold k, every candle from its test window on is made absurd: folds 1 .. k choose the same points
    from bit-identical in-sample statistics, and fold k's out-of-sample result changes."""
    instruments = [series(random_walk(400, 4)), series(random_walk(400, 5), symbol="ETH")]
    points = [criteria_parse(crossover(f, s)) for f in FAST for s in SLOW]
    windows = fold_windows(
        start=START + timedelta(days=40),
        end=START + timedelta(days=399),
        train_days=120,
        test_days=40,
        anchored=anchored,
    )

    def run(candles: list[CandleArrays]) -> Any:
        return walk_forward(
            points=points,
            shape=(3, 3),
            instruments=candles,
            windows=windows,
            statistic="sharpe_ratio",
            rule=rule,
            starting_cash=10_000.0,
        )

    clean = run(instruments)
    assert len(clean.folds) == 6
    assert len({f.chosen_index for f in clean.folds}) > 1  # the choice does depend on the data
    for k, window in enumerate(windows):
        since = day_seconds(window.test_start)
        dirty = run([poisoned(c, since) for c in instruments])
        for before in range(k + 1):
            assert dirty.folds[before].chosen_index == clean.folds[before].chosen_index
            assert dirty.folds[before].in_sample_values == clean.folds[before].in_sample_values
            assert dirty.folds[before].in_sample_sharpe_ratios == clean.folds[before].in_sample_sharpe_ratios
        assert dirty.folds[k].out_of_sample.statistics != clean.folds[k].out_of_sample.statistics


def test_a_test_run_warms_its_indicators_on_earlier_data() -> None:
    """The test window's run equals a backtest over the same days given every candle up to its end."""
    candles = series(random_walk(200, 3))
    windows = fold_windows(
        start=START + timedelta(days=30), end=START + timedelta(days=199), train_days=100, test_days=30
    )
    result = walk_forward(
        points=[criteria_parse(crossover(5, 20))],
        shape=(1,),
        instruments=[candles],
        windows=windows,
        statistic="total_return_ratio",
        rule="best",
        starting_cash=1000.0,
    )
    fold = result.folds[-1]
    direct = backtest(
        criteria=criteria_parse(crossover(5, 20)),
        instruments=[candles],
        start_time_seconds=day_seconds(fold.window.test_start),
        end_time_seconds=day_seconds(fold.window.test_end),
        starting_cash=fold.starting_cash,
        close_at_end=True,
    )
    np.testing.assert_array_equal(fold.out_of_sample.equity_curve, direct.equity_curve)


def test_skipped_points_are_never_run_nor_chosen() -> None:
    candles = series(HAND_PRICES, warm_days=5)
    windows = fold_windows(start=START, end=START + timedelta(days=24), train_days=10, test_days=5)
    result = walk_forward(
        points=[criteria_parse(always_in(0.25)), criteria_parse(always_in(0.5)), None],
        shape=(3,),
        instruments=[candles],
        windows=windows,
        statistic="total_return_ratio",
        rule="best",
        starting_cash=1000.0,
    )
    assert result.folds[0].chosen_index == 1  # 1.0 would win, but it is skipped
    assert result.folds[0].in_sample_values[2] is None


def test_each_folds_deflated_sharpe_ratio_is_the_papers_formula_over_its_train_window() -> None:
    """Worked from Bailey and López de Prado (2014), equations 2 and 4, with scipy in the test: the chosen
    point's per-candle returns over its train window (its single run with the candles cut at the window's end),
    the trials' per-candle Sharpe ratios (their report's, over sqrt(365); 0 where undefined)."""
    from scipy import stats

    instruments = [series(random_walk(400, 4)), series(random_walk(400, 5), symbol="ETH")]
    points = [criteria_parse(crossover(f, s)) for f in FAST for s in SLOW]
    windows = fold_windows(
        start=START + timedelta(days=40), end=START + timedelta(days=399), train_days=120, test_days=40
    )
    result = walk_forward(
        points=points,
        shape=(3, 3),
        instruments=instruments,
        windows=windows,
        statistic="total_return_ratio",
        rule="best",
        starting_cash=10_000.0,
    )
    checked = 0
    for fold in result.folds:
        w = fold.window
        until = day_seconds(w.train_end) + DAY
        cut = [
            replace(c, **{k: getattr(c, k)[c.open_time_seconds < until] for k in ARRAYS}) for c in instruments
        ]
        chosen = backtest(
            criteria=points[fold.chosen_index],
            instruments=cut,
            start_time_seconds=day_seconds(w.train_start),
            end_time_seconds=until - DAY,
            starting_cash=10_000.0,
            close_at_end=True,
        )
        anchored = np.concatenate(([10_000.0], chosen.equity_curve))
        r = anchored[1:] / anchored[:-1] - 1
        sharpe = r.mean() / r.std(ddof=1)
        trials = np.array([(s or 0.0) / math.sqrt(365) for s in fold.in_sample_sharpe_ratios])
        n, gamma = len(trials), 0.5772156649015329
        sr0 = math.sqrt(trials.var(ddof=1)) * (
            (1 - gamma) * stats.norm.ppf(1 - 1 / n) + gamma * stats.norm.ppf(1 - 1 / (n * math.e))
        )
        skew, kurt = stats.skew(r), stats.kurtosis(r, fisher=False)
        expected = stats.norm.cdf(
            (sharpe - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sharpe + (kurt - 1) / 4 * sharpe**2)
        )
        assert fold.deflated_sharpe is not None
        assert fold.deflated_sharpe == pytest.approx(expected, rel=1e-9, abs=1e-12)
        checked += 1
    assert checked == len(windows) >= 5
