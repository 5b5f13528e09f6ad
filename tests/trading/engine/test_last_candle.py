"""The last candle of a backtest is checked for risk exits before what is still open closes ``end_of_data``.

Daily candles, one instrument, an entry signal on every candle: the entry fills at the open of candle 1, and the
run's last candle is candle 3 (boundaries 1 .. 3). Every risk exit on candle 3 is settled by the very rules of
the other candles (level or gapped open, stop before take-profit, slippage, fees); only a trade that none hits
closes at candle 3's close.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import criteria_parse
from trading.engine.types import CandleArrays, Trade

DAY = 86_400
ENTRY = 100.0  # candle 1's open, where the trade enters
QUIET = (100.0, 101.0, 99.0, 100.0)  # a candle that hits no level of the criteria below


def candles(rows: Sequence[tuple[float, float, float, float]]) -> CandleArrays:
    """Daily candles from (open, high, low, close) rows, candle i opening i days after the epoch."""
    table = np.array(rows, dtype=np.float64)
    n = table.shape[0]
    return CandleArrays(
        symbol="BTC",
        open_time_seconds=np.arange(n, dtype=np.int64) * DAY,
        open=table[:, 0].copy(),
        high=table[:, 1].copy(),
        low=table[:, 2].copy(),
        close=table[:, 3].copy(),
        volume=np.full(n, np.nan),
    )


def run(
    last: tuple[float, float, float, float],
    *,
    close_at_end: bool = True,
    fee_rate: float = 0.0,
    slippage_ratio: float = 0.0,
    **levels: float,
) -> BacktestResult:
    """Backtest over boundaries 1 .. 3 of candles 0 .. 3, candle 3 being ``last``; ``levels``: the risk ratios."""
    criteria = criteria_parse(
        {
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
            "fee_rate": fee_rate,
            "slippage_ratio": slippage_ratio,
            **levels,
        }
    )
    return backtest(
        criteria=criteria,
        instruments=[candles([QUIET, QUIET, QUIET, last])],
        start_time_seconds=DAY,
        end_time_seconds=3 * DAY,
        starting_cash=1000.0,
        close_at_end=close_at_end,
    )


def only_trade(result: BacktestResult, entry_price: float = ENTRY) -> Trade:
    [trade] = result.trades
    assert trade.entry_index == 1 and trade.entry_price == pytest.approx(entry_price)
    return trade


def test_a_stop_hit_on_the_last_candle_exits_stop_loss_at_the_stop() -> None:
    result = run((99.0, 100.0, 88.0, 95.0), stop_loss_ratio=0.1)

    trade = only_trade(result)
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(90.0)  # ENTRY * (1 - 0.1), not the close 95
    assert (trade.exit_index, trade.exit_time_seconds) == (3, 3 * DAY)  # inside candle 3, timed at its open
    assert result.statistics["final_equity"] == pytest.approx(1000.0 * 90.0 / ENTRY)
    assert result.equity_curve[-1] == pytest.approx(1000.0 * 90.0 / ENTRY)
    assert result.exposure[-1]


def test_a_take_profit_hit_on_the_last_candle_exits_take_profit_at_its_level() -> None:
    trade = only_trade(run((101.0, 112.0, 100.0, 104.0), stop_loss_ratio=0.1, take_profit_ratio=0.1))

    assert trade.exit_reason == "take_profit"
    assert trade.exit_price == pytest.approx(110.0)


def test_the_last_candle_keeps_the_pessimistic_rule_and_the_gap_rule() -> None:
    both = only_trade(run((101.0, 115.0, 85.0, 104.0), stop_loss_ratio=0.1, take_profit_ratio=0.1))
    gapped = only_trade(run((80.0, 84.0, 78.0, 83.0), stop_loss_ratio=0.1))

    assert both.exit_reason == "stop_loss" and both.exit_price == pytest.approx(90.0)
    assert (gapped.exit_reason, gapped.exit_price) == ("stop_loss", 80.0)  # below the stop at the open


def test_a_trailing_stop_hit_on_the_last_candle_exits_at_its_level() -> None:
    # The highs before candle 3 since entry are 101, so the level in force during candle 3 is 0.95 * 101.
    trade = only_trade(run((100.0, 100.5, 95.0, 97.0), trailing_stop_ratio=0.05))

    assert trade.exit_reason == "trailing_stop"
    assert trade.exit_price == pytest.approx(0.95 * 101.0)


def test_the_last_candles_exit_pays_slippage_and_fees_as_every_other() -> None:
    # CRITERIA.md "Fills": the stop is set from the entry fill, 100 * 1.002; the sell gets the level * (1 - 0.002).
    entry_fill = ENTRY * 1.002
    trade = only_trade(
        run((99.0, 100.0, 88.0, 95.0), stop_loss_ratio=0.1, fee_rate=0.001, slippage_ratio=0.002), entry_fill
    )
    quantity = 1000.0 / (entry_fill * 1.001)
    exit_fill = entry_fill * 0.9 * 0.998
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_price == pytest.approx(exit_fill)
    assert trade.exit_fee == pytest.approx(0.001 * exit_fill * quantity)
    assert trade.pnl == pytest.approx(exit_fill * quantity * 0.999 - 1000.0)


def test_nothing_hit_on_the_last_candle_closes_end_of_data_at_its_close() -> None:
    trade = only_trade(run((100.0, 105.0, 95.0, 103.0), stop_loss_ratio=0.1, take_profit_ratio=0.1))

    assert trade.exit_reason == "end_of_data"
    assert trade.exit_price == 103.0
    assert (trade.exit_index, trade.exit_time_seconds) == (3, 4 * DAY)


def test_the_last_candles_exit_is_the_one_the_next_boundary_settles() -> None:
    """The simulator's exit on the last candle is what the live cycle's close step decides once that candle has
    closed: the backtest one boundary longer (no end_of_data close) makes the same exit."""
    last = (99.0, 100.0, 88.0, 95.0)
    criteria = criteria_parse(
        {
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
            "stop_loss_ratio": 0.1,
            "fee_rate": 0.001,
        }
    )
    one_longer = backtest(
        criteria=criteria,
        instruments=[candles([QUIET, QUIET, QUIET, last, QUIET])],
        start_time_seconds=DAY,
        end_time_seconds=4 * DAY,
        starting_cash=1000.0,
    )

    simulated = only_trade(run(last, stop_loss_ratio=0.1, fee_rate=0.001))
    assert one_longer.trades[0] == simulated


def test_without_the_end_of_data_close_the_run_stops_where_the_live_cycle_does() -> None:
    """Reported open (``close_at_end`` off, as a replay of the same days): the last candle has not closed at the
    last boundary, so its stop is settled by the next one, as the live cycle's close step does."""
    trade = only_trade(run((99.0, 100.0, 88.0, 95.0), close_at_end=False, stop_loss_ratio=0.1))

    assert trade.is_open


def test_an_instrument_whose_data_ends_first_is_sold_at_its_last_close_and_its_cash_spent_by_the_other() -> (
    None
):
    """CRITERIA.md: an instrument trades only inside its stored candles. A's data ends with candle 3 while the run
    goes on to candle 6: with close_at_end, A's trade is sold end_of_data at candle 3's close, timed at that close
    (the boundary of day 4), and B, which wanted in from the start but found no cash, enters with A's proceeds at
    the next open (day 5): a sale at a boundary is spent from the next one on."""
    criteria = criteria_parse(
        {
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
            "fee_rate": 0.001,
            "slippage_ratio": 0.0,
        }
    )
    a = candles([QUIET, QUIET, QUIET, (100.0, 101.0, 99.0, 110.0)])
    b = candles([QUIET] * 7)
    b = CandleArrays("B", b.open_time_seconds, b.open, b.high, b.low, b.close, b.volume)
    a = CandleArrays("A", a.open_time_seconds, a.open, a.high, a.low, a.close, a.volume)

    result = backtest(
        criteria=criteria,
        instruments=[b, a],
        start_time_seconds=DAY,
        end_time_seconds=6 * DAY,
        starting_cash=1000.0,
        close_at_end=True,
    )

    first, second, *rest = result.trades
    assert (first.symbol, first.entry_index, first.exit_reason) == ("A", 1, "end_of_data")
    assert first.exit_index == 3 and first.exit_time_seconds == 4 * DAY
    assert first.exit_price == pytest.approx(110.0)
    proceeds = 110.0 * first.quantity * (1 - 0.001)
    assert (second.symbol, second.entry_index) == ("B", 5)
    assert second.quantity == pytest.approx(proceeds / (100.0 * 1.001))
    assert not rest
    # B's trade is closed at the run's end, at candle 6's close (its own last).
    assert second.exit_reason == "end_of_data" and second.exit_time_seconds == 7 * DAY
