"""The engine's backtest against the independent oracle (:mod:`tests.oracle.criteria_oracle`) on random runs with
risk limits and risk-based sizing (docs/criteria.md "Risk-based sizing", "Risk limits").

Random daily candles of one to three instruments (random walks with gaps, instruments starting and ending on
different days), random criteria (entry and exit conditions, levels, sizing by equity fraction, fixed quote or risk
on the stop-loss or an ATR stop) and random limits (each one set or not). The engine must make the oracle's trades
(the stop-loss set at entry included), its equity curve (relative 1e-9), and report the same refused entry signals
and the same halts (beginnings and ends, with their equities).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import talib
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.oracle.criteria_oracle import OracleResult, atr, oracle_backtest
from tests.oracle.test_engine_against_oracle import RTOL, cmp, criteria_doc, first_difference, ind
from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import criteria_parse
from trading.engine.types import CandleArrays

DAY = 86_400
SYMBOLS = ("AAA", "BBB", "CCC")


@st.composite
def random_candles(draw: st.DrawFn, symbol_count: int) -> dict[str, dict[str, np.ndarray]]:
    """``symbol_count`` instruments of daily candles: random walks of 8 to 60 days starting on day 0 to 10, some
    days missing (gaps), as ``oracle_backtest`` takes them."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for symbol in SYMBOLS[:symbol_count]:
        length = draw(st.integers(8, 60), label=f"{symbol} length")
        first = draw(st.integers(0, 10), label=f"{symbol} first day")
        steps = np.array(draw(st.lists(st.floats(-0.12, 0.12), min_size=length, max_size=length)))
        gaps = np.array(draw(st.lists(st.floats(-0.03, 0.03), min_size=length, max_size=length)))
        wicks = np.array(draw(st.lists(st.floats(0.0, 0.06), min_size=length, max_size=length)))
        # A fixed wiggle keeps prices from repeating (hypothesis likes steps of 0), so that no comparison of a
        # price with its average is a tie that float rounding decides differently in TA-Lib and in the oracle.
        wiggle = 0.001 * np.sin(1.0 + 2.7 * np.arange(length))
        close = 100.0 * np.cumprod(1.0 + steps + wiggle)
        open_ = np.concatenate(([100.0], close[:-1])) * (1.0 + gaps)
        high = np.maximum(open_, close) * (1.0 + wicks)
        low = np.minimum(open_, close) * (1.0 - wicks[::-1])
        keep = np.ones(length, dtype=bool)
        for missing in draw(st.lists(st.integers(1, length - 1), max_size=3), label=f"{symbol} gaps"):
            keep[missing] = False
        days = first + np.arange(length, dtype=np.int64)
        out[symbol] = {
            "open_time_seconds": np.ascontiguousarray(days[keep] * DAY),
            "open": np.ascontiguousarray(open_[keep]),
            "high": np.ascontiguousarray(high[keep]),
            "low": np.ascontiguousarray(low[keep]),
            "close": np.ascontiguousarray(close[keep]),
            "volume": np.ones(int(keep.sum())),
        }
    return out


ENTRIES = [
    cmp(ind("close"), ">", 0),  # every candle
    cmp(ind("close"), ">", ind("sma", 3, source="close")),
    cmp(ind("close"), "<", ind("open")),
    cmp(ind("rsi", 3), "<", 60),
    {
        "any": [
            cmp(ind("close"), ">", ind("highest", 3, source="high", shift=1)),
            cmp(ind("roc", 2), "<", -0.05),
        ]
    },
]
EXITS = [None, cmp(ind("close"), "<", ind("sma", 4, source="close")), cmp(ind("rsi", 3), ">", 70)]


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def random_criteria(draw: st.DrawFn) -> dict[str, Any]:
    """A criteria document with random conditions, levels, sizing and limits."""
    stop = draw(optional(st.floats(0.02, 0.3)), label="stop_loss_ratio")
    method = draw(st.sampled_from(["equity_fraction", "fixed_quote", "risk", "risk"]), label="sizing")
    if method == "equity_fraction":
        sizing: dict[str, Any] = {"method": method, "value": draw(st.floats(0.05, 1.0))}
    elif method == "fixed_quote":
        sizing = {"method": method, "value": draw(st.floats(50.0, 800.0))}
    else:
        sizing = {"method": method, "value": draw(st.floats(0.005, 0.2))}
        if stop is not None and draw(st.booleans(), label="size on the stop-loss"):
            sizing["stop"] = "stop_loss"
        else:
            stop = None
            sizing["stop"] = {"atr": draw(st.integers(1, 6)), "multiple": draw(st.floats(0.2, 5.0))}
    limits: dict[str, Any] = {
        "max_open_positions": draw(optional(st.integers(1, 3)), label="max_open_positions"),
        "max_exposure_ratio": draw(optional(st.floats(0.05, 1.0)), label="max_exposure_ratio"),
        "daily_loss_limit_ratio": draw(optional(st.floats(0.005, 0.1)), label="daily_loss_limit_ratio"),
        "max_drawdown_halt_ratio": draw(optional(st.floats(0.01, 0.3)), label="max_drawdown_halt_ratio"),
        "cooldown_days_after_stop_loss": draw(optional(st.integers(1, 4)), label="cooldown"),
    }
    if limits["max_drawdown_halt_ratio"] is not None:
        limits["drawdown_resume_days"] = draw(optional(st.integers(1, 8)), label="drawdown_resume_days")
    return criteria_doc(
        entry=draw(st.sampled_from(ENTRIES), label="entry"),
        exit=draw(st.sampled_from(EXITS), label="exit"),
        stop_loss_ratio=stop,
        take_profit_ratio=draw(optional(st.floats(0.02, 0.4)), label="take_profit_ratio"),
        trailing_stop_ratio=draw(optional(st.floats(0.02, 0.3)), label="trailing_stop_ratio"),
        max_holding_days=draw(optional(st.integers(1, 6)), label="max_holding_days"),
        sizing=sizing,
        fee_rate=draw(st.sampled_from([0.0, 0.001, 0.004])),
        slippage_ratio=draw(st.sampled_from([0.0, 0.0005, 0.003])),
        limits={k: v for k, v in limits.items() if v is not None or draw(st.booleans())},
    )


def engine_backtest(
    criteria: dict[str, Any],
    candles: dict[str, dict[str, np.ndarray]],
    start: int,
    end: int,
    close_at_end: bool,
) -> BacktestResult:
    """The engine's run of the same inputs as :func:`oracle_backtest`."""
    instruments = [
        CandleArrays(s, c["open_time_seconds"], c["open"], c["high"], c["low"], c["close"], c["volume"])
        for s, c in candles.items()
    ]
    return backtest(
        criteria=criteria_parse(criteria),
        instruments=instruments,
        start_time_seconds=start,
        end_time_seconds=end,
        starting_cash=1_000.0,
        close_at_end=close_at_end,
    )


def limits_difference(oracle: OracleResult, engine: BacktestResult) -> str | None:
    """The first difference between the refusals and halts of the two runs, or None."""
    theirs = [(r.boundary_seconds, r.symbol, str(r.limit)) for r in engine.refusals]
    mine = [(r.boundary_seconds, r.symbol, r.limit) for r in oracle.refusals]
    if mine != theirs:
        first = next(
            (k for k, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
            min(len(mine), len(theirs)),
        )
        return f"refusals differ from #{first}: oracle {mine[first : first + 3]}, engine {theirs[first : first + 3]}"
    for k, (a, b) in enumerate(zip(oracle.halts, engine.halts, strict=False)):
        same = (a.boundary_seconds, a.limit, a.began) == (b.boundary_seconds, str(b.limit), b.began) and all(
            math.isclose(x, y, rel_tol=RTOL)
            for x, y in ((a.equity, b.equity), (a.reference_equity, b.reference_equity))
        )
        if not same:
            return f"halt {k} differs: oracle {a}, engine {b}"
    if len(oracle.halts) != len(engine.halts):
        return f"halt count differs: oracle {oracle.halts}, engine {engine.halts}"
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    symbol_count=st.integers(1, 3),
    start_day=st.integers(0, 15),
    length_days=st.integers(0, 60),
    close_at_end=st.booleans(),
)
def test_random_runs_with_limits_and_risk_sizing_equal_the_oracle(
    data: st.DataObject, symbol_count: int, start_day: int, length_days: int, close_at_end: bool
) -> None:
    candles = data.draw(random_candles(symbol_count), label="candles")
    criteria = data.draw(random_criteria(), label="criteria")
    start, end = start_day * DAY, (start_day + length_days) * DAY
    oracle = oracle_backtest(criteria, candles, start, end, 1_000.0, close_at_end)
    engine = engine_backtest(criteria, candles, start, end, close_at_end)
    for limit in sorted({r.limit for r in oracle.refusals}):
        event(f"refused by {limit}")
    for halt in oracle.halts:
        event(f"halt {halt.limit} {'began' if halt.began else 'ended'}")
    if any(t.exit_reason == "stop_loss" for t in oracle.trades) and criteria["sizing"]["method"] == "risk":
        event(
            f"risk-sized stop-loss exit ({'ATR' if isinstance(criteria['sizing']['stop'], dict) else 'ratio'})"
        )
    assert first_difference(oracle, engine) is None, first_difference(oracle, engine)
    assert limits_difference(oracle, engine) is None, limits_difference(oracle, engine)


@settings(max_examples=50, deadline=None)
@given(
    period=st.integers(1, 20),
    moves=st.lists(st.tuples(st.floats(-0.1, 0.1), st.floats(0.0, 0.05), st.floats(0.0, 0.05)), max_size=40),
)
def test_the_oracles_atr_is_talibs(period: int, moves: list[tuple[float, float, float]]) -> None:
    """The oracle's plain-loop Wilder ATR (first value at index ``period``, the mean of the true ranges 1 to
    ``period``) equals TA-Lib's ``ATR``, which the engine's ``atr`` indicator and its ATR stop use: same values,
    same warm-up."""
    close = np.array(100.0 * np.cumprod([1.0 + m for m, _, _ in moves]), dtype=np.float64)
    high = np.array(close * (1.0 + np.array([u for _, u, _ in moves])), dtype=np.float64)
    low = np.array(close * (1.0 - np.array([d for _, _, d in moves])), dtype=np.float64)
    mine = np.array(atr(high.tolist(), low.tolist(), close.tolist(), period))
    theirs = talib.ATR(high, low, close, timeperiod=period) if len(moves) else np.array([])
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
    np.testing.assert_allclose(mine[~np.isnan(mine)], theirs[~np.isnan(theirs)], rtol=1e-12)


def test_a_max_holding_exit_waits_across_a_gap_for_a_stored_candle_t() -> None:
    """Found by the random runs above (not a risk limit: CRITERIA.md's max_holding_days). Entered at the day-1
    open, held 1 day: the first open at least a day later is day 3's, but day 2 has no candle; exits at the open
    are decided on a stored candle t (docs/criteria.md "Exits at the open across a gap": the live close step
    waits for the collect of the day's candle), so the exit is at day 4's open, decided on day 3's candle."""
    days = np.array([0, 1, 3, 4, 5], dtype=np.int64)
    prices = np.array([100.0, 101.0, 102.0, 103.0, 104.0])
    candles = {
        "AAA": {
            "open_time_seconds": days * DAY,
            "open": prices,
            "high": prices,
            "low": prices,
            "close": prices,
            "volume": np.ones(5),
        }
    }
    criteria = criteria_doc(entry=cmp(ind("close"), "<", 101), max_holding_days=1, fee_rate=0.0)
    oracle = oracle_backtest(criteria, candles, DAY, 5 * DAY, 1_000.0, False)
    [trade] = oracle.trades
    assert (trade.entry_time_seconds, trade.exit_time_seconds, trade.exit_reason) == (
        DAY,
        4 * DAY,
        "max_holding",
    )
    engine = engine_backtest(criteria, candles, DAY, 5 * DAY, False)
    assert first_difference(oracle, engine) is None, first_difference(oracle, engine)
