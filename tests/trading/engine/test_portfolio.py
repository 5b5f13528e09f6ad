"""The portfolio backtest (issue 16): strategies with weights sharing one account's cash, on the one kernel.

Checked against the single run (a portfolio of one strategy of weight 1 is that strategy run alone), against
hand-worked cases of the shared cash and the budgets, and for the attribution's identities (the books' P&L adds
up to the account's, their drawdown contributions to its deepest drawdown).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.oracle.test_engine_against_oracle import bitstamp, day
from trading.engine.backtest import backtest
from trading.engine.criteria import Limits, criteria_parse
from trading.engine.portfolio import PortfolioBook, portfolio_backtest
from trading.engine.types import SECONDS_PER_DAY, CandleArrays

ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}


def arrays(symbol: str) -> CandleArrays:
    candles = bitstamp()[symbol]
    return CandleArrays(symbol=symbol, **candles)


def document(**fields: Any) -> dict[str, Any]:
    return {"version": 1, "side": "long", "fee_rate": 0.001, "slippage_ratio": 0.0005, **fields}


RSI = document(
    entry={"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 40}},
    exit={"left": {"indicator": "rsi", "period": 14}, "op": ">", "right": {"value": 60}},
    stop_loss_ratio=0.06,
    sizing={"method": "equity_fraction", "value": 0.5},
)
SMA = document(
    entry={
        "left": {"indicator": "close"},
        "op": "crosses_above",
        "right": {"indicator": "sma", "period": 20},
    },
    exit={"left": {"indicator": "close"}, "op": "crosses_below", "right": {"indicator": "sma", "period": 20}},
    trailing_stop_ratio=0.1,
    sizing={"method": "equity_fraction", "value": 1.0},
    limits={"max_open_positions": 1, "cooldown_days_after_stop_loss": 3},
)


def test_one_strategy_of_weight_one_is_that_strategy_run_alone() -> None:
    criteria = criteria_parse(
        {
            **RSI,
            "limits": {"max_open_positions": 2, "max_drawdown_halt_ratio": 0.15, "drawdown_resume_days": 30},
        }
    )
    instruments = [arrays("BTC"), arrays("ETH"), arrays("LTC")]
    alone = backtest(
        criteria=criteria,
        instruments=instruments,
        start_time_seconds=day("2018-01-01"),
        end_time_seconds=day("2019-12-31"),
        starting_cash=10_000.0,
    )
    portfolio = portfolio_backtest(
        books=[PortfolioBook("rsi", criteria, instruments, 1.0)],
        start_time_seconds=day("2018-01-01"),
        end_time_seconds=day("2019-12-31"),
        starting_cash=10_000.0,
    )
    assert len(alone.trades) > 20
    assert portfolio.trade_logs[0].to_trades() == alone.trades
    np.testing.assert_allclose(portfolio.equity_curve, alone.equity_curve, rtol=1e-12)
    np.testing.assert_allclose(portfolio.book_curves[0], alone.equity_curve, rtol=1e-9)
    assert [(r.boundary_seconds, r.symbol, r.limit) for _, r in portfolio.refusals] == [
        (r.boundary_seconds, r.symbol, r.limit) for r in alone.refusals
    ]
    assert portfolio.statistics == alone.statistics


def _candles(symbol: str, opens: list[float]) -> CandleArrays:
    prices = np.array(opens, dtype=float)
    return CandleArrays(
        symbol=symbol,
        open_time_seconds=np.arange(len(opens), dtype=np.int64) * SECONDS_PER_DAY,
        open=prices,
        high=prices,
        low=prices,
        close=prices,
        volume=np.ones_like(prices),
    )


def test_budgets_are_weights_of_the_accounts_equity_and_the_books_share_its_cash() -> None:
    """Worked by hand; account 1,000, no fee or slippage, open = high = low = close on every candle.
    A (weight 0.6, spends all its budget) signals on candle 0 (close 10 > 0): at the boundary of day 1 it buys
    600 / 10 = 60 units at candle 1's open. B (weight 0.4, spends all) signals on candle 1 (close 30 > 25): at the
    boundary of day 2 the account's equity is the cash 400 plus 60 A at candle 2's open 20 = 1,600, so B's
    budget is 0.4 * 1,600 = 640, but only the cash, 400, is spent: 400 / 30 = 13.333... units.
    At candle 2's close: account 0 + 60 * 20 + 13.333 * 30 = 1,600; A's sleeve 600 + 60 * (20 - 10) = 1,200;
    B's 400 + 13.333 * (30 - 30) = 400; P&L 600 and 0."""
    a = criteria_parse(document(entry=ALWAYS, fee_rate=0.0, slippage_ratio=0.0))
    above = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 25}}
    b = criteria_parse(document(entry=above, fee_rate=0.0, slippage_ratio=0.0))
    result = portfolio_backtest(
        books=[
            PortfolioBook("a", a, [_candles("A", [10, 10, 20])], 0.6),
            PortfolioBook("b", b, [_candles("B", [20, 30, 30])], 0.4),
        ],
        start_time_seconds=SECONDS_PER_DAY,
        end_time_seconds=2 * SECONDS_PER_DAY,
        starting_cash=1_000.0,
    )
    (trade_a,), (trade_b,) = (log.to_trades() for log in result.trade_logs)
    assert trade_a.quantity == pytest.approx(60.0, rel=1e-12)
    assert trade_b.quantity == pytest.approx(400 / 30, rel=1e-12)
    assert result.equity_curve[-1] == pytest.approx(1_600.0, rel=1e-12)
    assert result.book_curves[:, -1] == pytest.approx([1_200.0, 400.0], rel=1e-12)
    assert [row.pnl for row in result.attribution] == pytest.approx([600.0, 0.0], abs=1e-9)


def test_a_portfolio_limit_spans_the_strategies_and_a_strategys_own_limit_only_itself() -> None:
    """Three books each entering on every boundary; the portfolio allows 2 positions open: the first two books
    (portfolio order) enter on day 1, the third is refused max_open_positions. A book with its own limit of 0...
    (>= 1) is tested through max_exposure_ratio: book c may hold at most 10 % of its budget."""
    plain = criteria_parse(document(entry=ALWAYS, fee_rate=0.0, slippage_ratio=0.0))
    capped = criteria_parse(
        document(entry=ALWAYS, fee_rate=0.0, slippage_ratio=0.0, limits={"max_exposure_ratio": 0.1})
    )
    books = [
        PortfolioBook("a", plain, [_candles("A", [10, 10, 10])], 0.3),
        PortfolioBook("b", plain, [_candles("B", [10, 10, 10])], 0.3),
        PortfolioBook("c", capped, [_candles("C", [10, 10, 10])], 0.3),
    ]
    limited = portfolio_backtest(
        books=books,
        start_time_seconds=SECONDS_PER_DAY,
        end_time_seconds=2 * SECONDS_PER_DAY,
        starting_cash=1_000.0,
        limits=Limits(max_open_positions=2),
    )
    assert [len(log) for log in limited.trade_logs] == [1, 1, 0]
    assert {(book, r.limit.value) for book, r in limited.refusals} == {("c", "max_open_positions")}
    free = portfolio_backtest(
        books=books,
        start_time_seconds=SECONDS_PER_DAY,
        end_time_seconds=2 * SECONDS_PER_DAY,
        starting_cash=1_000.0,
    )
    # c's own cap: 10 % of its budget (0.3 * 1,000) = 30 at 10 = 3 units.
    assert free.trade_logs[2].to_trades()[0].quantity == pytest.approx(3.0, rel=1e-12)


def test_attribution_adds_up_to_the_account() -> None:
    books = [
        PortfolioBook("rsi", criteria_parse(RSI), [arrays("BTC"), arrays("ETH")], 0.5),
        PortfolioBook("sma", criteria_parse(SMA), [arrays("LTC"), arrays("ETH")], 0.4),
    ]
    result = portfolio_backtest(
        books=books,
        start_time_seconds=day("2018-01-01"),
        end_time_seconds=day("2019-12-31"),
        starting_cash=10_000.0,
        limits=Limits(daily_loss_limit_ratio=0.03),
    )
    assert all(len(log) > 5 for log in result.trade_logs)
    unspent = 10_000.0 * (1 - 0.5 - 0.4)
    assert sum(b.pnl for b in result.attribution) == pytest.approx(
        result.equity_curve[-1] - 10_000.0, rel=1e-9
    )
    np.testing.assert_allclose(result.book_curves.sum(axis=0) + unspent, result.equity_curve, rtol=1e-9)
    peak, trough = result.drawdown_peak_index, result.drawdown_trough_index
    assert 0 <= peak < trough
    assert sum(b.drawdown_contribution for b in result.attribution) == pytest.approx(
        result.equity_curve[trough] - result.equity_curve[peak], rel=1e-9
    )
    assert result.correlation.shape == (2, 2)
    assert result.correlation[0, 0] == pytest.approx(1.0)
    returns = [
        np.diff(np.concatenate([[w * 10_000.0], c])) / np.concatenate([[w * 10_000.0], c])[:-1]
        for w, c in zip((0.5, 0.4), result.book_curves, strict=True)
    ]
    assert result.correlation[0, 1] == pytest.approx(
        float(np.corrcoef(returns[0], returns[1])[0, 1]), rel=1e-9
    )
    assert any(h.book is None and h.limit.value == "daily_loss_limit_ratio" for h in result.halts)
    assert not math.isnan(result.correlation[0, 1])


@pytest.mark.parametrize(
    ("weights", "message"),
    [((0.7, 0.4), "add up to 1.1"), ((-0.1, 0.5), "must be in [0, 1]"), ((1.5, 0.0), "must be in [0, 1]")],
)
def test_bad_weights_are_refused(weights: tuple[float, float], message: str) -> None:
    criteria = criteria_parse(RSI)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        portfolio_backtest(
            books=[PortfolioBook(str(n), criteria, [arrays("BTC")], w) for n, w in enumerate(weights)],
            start_time_seconds=day("2019-01-01"),
            end_time_seconds=day("2019-02-01"),
            starting_cash=1_000.0,
        )


def test_a_book_sized_on_an_atr_stop_beside_one_that_is_not() -> None:
    """Found by the engine's warm-up: the books' ATR columns differ (only one book sizes on an ATR stop). The
    ATR-sized book's trades equal its run alone with weight 1 when the other book never enters."""
    never = criteria_parse(document(entry={"left": {"indicator": "close"}, "op": "<", "right": {"value": 0}}))
    atr_sized = criteria_parse(
        document(
            entry={
                "left": {"indicator": "close"},
                "op": "crosses_above",
                "right": {"indicator": "sma", "period": 20},
            },
            exit={
                "left": {"indicator": "close"},
                "op": "crosses_below",
                "right": {"indicator": "sma", "period": 20},
            },
            sizing={"method": "risk", "value": 0.02, "stop": {"atr": 14, "multiple": 2}},
        )
    )
    start, end = day("2018-01-01"), day("2019-12-31")
    result = portfolio_backtest(
        books=[
            PortfolioBook("never", never, [arrays("ETH")], 0.0),
            PortfolioBook("atr", atr_sized, [arrays("BTC")], 1.0),
        ],
        start_time_seconds=start,
        end_time_seconds=end,
        starting_cash=10_000.0,
    )
    alone = backtest(
        criteria=atr_sized,
        instruments=[arrays("BTC")],
        start_time_seconds=start,
        end_time_seconds=end,
        starting_cash=10_000.0,
    )
    assert len(alone.trades) > 5
    assert result.trade_logs[1].to_trades() == alone.trades
    assert all(t.stop_loss_price is not None for t in alone.trades)
