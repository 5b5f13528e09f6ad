"""The report's per-trade figures and breakdowns: excursions (MAE, MFE), cumulative P&L, figures by group (exit
reason, instrument) and monthly returns. Pure numpy (and one compiled loop over the trades' candles); the simulator
stores what this computes with each run (docs/criteria.md "The report's figures").

Public API:

- :func:`trade_excursions`: each trade's maximum adverse and favourable excursion (MAE, MFE) as ratios of its entry
  price, over the candles it was open;
- :func:`cumulative_pnl`: the running sum of closed trades' pnl in exit order;
- :func:`trade_groups`: count, win rate, total pnl, mean pnl ratio and time in market of groups of trades;
- :func:`monthly_returns`: the equity curve's return in each calendar month (UTC) and each year.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

from trading.engine.types import CandleArrays, TradeLog
from trading.engine.vocabulary import ExitReason

_END_OF_DATA_CODE = ExitReason.END_OF_DATA.code


def trade_excursions(log: TradeLog, candles: Sequence[CandleArrays]) -> tuple[np.ndarray, np.ndarray]:
    """Return each trade's maximum adverse excursion (MAE) and maximum favourable excursion (MFE).

    For a long trade with entry price ``P`` (the fill, slippage included): ``mae = min(prices) / P - 1`` and
    ``mfe = max(prices) / P - 1``, where ``prices`` are the prices the trade is known to have seen while open:

    - the entry fill ``P`` itself (so ``mae <= 0 <= mfe``) and, once closed, the exit fill;
    - the low and high of every candle it was held through: from its entry candle (entered at the open, held to
      the close unless it exited inside it) to the candle before its exit candle;
    - the open of its exit candle. Inside the exit candle only the open and the fill count: a stop-loss,
      take-profit or trailing exit happens at a level inside the candle, and a daily candle does not say whether
      its high or low came before the exit (CRITERIA.md "When things happen"; counting them would report
      excursions the trade may never have had, e.g. a low far below a stop that closed it). A signal,
      ``max_holding_days`` or manual exit fills at the exit candle's open, so only that open counts as well;
    - an ``end_of_data`` exit is at the close of its exit candle (the instrument's last): that candle was held
      through, so its low and high count.

    A trade still open (no exit) has NaN excursions: its candles end with the data it was run on.

    Args:
        log: the trades (``entry_index`` and ``exit_index`` index the instrument's candle arrays, as the backtest
            makes them).
        candles: the candles the backtest ran on, one :class:`CandleArrays` per symbol of ``log.symbols`` (any
            order; matched by symbol).

    Returns:
        ``(mae_ratio, mfe_ratio)``: shape (m,), float64 fractions of the entry price, ``mae_ratio <= 0 <=
        mfe_ratio``; NaN for an open trade.

    Raises:
        KeyError: a symbol of ``log.symbols`` has no candles in ``candles``.
        IndexError: a trade's candle indices are outside its instrument's candles.
    """
    by_symbol = {c.symbol: c for c in candles}
    m = len(log)
    mae = np.full(m, np.nan)
    mfe = np.full(m, np.nan)
    for slot, symbol in enumerate(log.symbols):
        rows = np.flatnonzero((log.slot == slot) & log.closed)
        if not rows.size:
            continue
        series = by_symbol[symbol]
        entry = log.entry_index[rows]
        exit_ = log.exit_index[rows]
        if entry.min() < 0 or exit_.max() >= series.open.shape[0] or (exit_ < entry).any():
            raise IndexError(
                f"{symbol}: a trade's candle indices are outside its {series.open.shape[0]} candles"
            )
        low, high = _excursion_extremes(
            np.ascontiguousarray(series.open, dtype=np.float64),
            np.ascontiguousarray(series.high, dtype=np.float64),
            np.ascontiguousarray(series.low, dtype=np.float64),
            entry.astype(np.int64),
            exit_.astype(np.int64),
            log.exit_code[rows].astype(np.int64),
            log.entry_price[rows],
            log.exit_price[rows],
            _END_OF_DATA_CODE,
        )
        mae[rows] = low / log.entry_price[rows] - 1.0
        mfe[rows] = high / log.entry_price[rows] - 1.0
    return mae, mfe


@njit(cache=True)
def _excursion_extremes(
    opens: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
    entry: np.ndarray,
    exit_: np.ndarray,
    codes: np.ndarray,
    entry_price: np.ndarray,
    exit_price: np.ndarray,
    end_of_data_code: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest price each closed trade saw (see :func:`trade_excursions`), one pass a trade."""
    k = entry.shape[0]
    lowest = np.empty(k)
    highest = np.empty(k)
    for row in range(k):
        low = min(entry_price[row], exit_price[row])
        high = max(entry_price[row], exit_price[row])
        last_held = exit_[row] if codes[row] == end_of_data_code else exit_[row] - 1
        for j in range(entry[row], last_held + 1):
            low = min(low, lows[j])
            high = max(high, highs[j])
        if codes[row] != end_of_data_code:
            low = min(low, opens[exit_[row]])
            high = max(high, opens[exit_[row]])
        lowest[row] = low
        highest[row] = high
    return lowest, highest


def cumulative_pnl(exit_time_seconds: np.ndarray, pnl: np.ndarray) -> np.ndarray:
    """Return the realised P&L up to and including each trade's exit: the running sum of closed trades' pnl in
    exit order, given back in the trades' own order.

    Trades that exit at the same time are summed in their given order (a stable sort), so with one instrument
    (one position at a time) the column rises and falls with the table's rows; with several it is the realised
    P&L when each trade closed.

    Args:
        exit_time_seconds: shape (m,), int64, seconds since epoch; -1 (or any value) for an open trade.
        pnl: shape (m,), float64, quote currency; NaN for an open trade (not counted; its value is NaN).

    Returns:
        shape (m,), float64, quote currency; NaN for open trades.
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    closed = np.isfinite(pnl)
    result = np.full(pnl.shape, np.nan)
    rows = np.flatnonzero(closed)
    order = rows[np.argsort(np.asarray(exit_time_seconds)[rows], kind="stable")]
    result[order] = np.cumsum(pnl[order])
    return result


@dataclass(frozen=True)
class TradeGroup:
    """The closed trades of one group (an exit reason, an instrument).

    Attributes:
        key: the group's value (``stop_loss``, ``BTCUSDT``).
        n_trades: closed trades, >= 1.
        win_rate_ratio: share with ``pnl > 0`` (a zero pnl is not a win), as the report's win rate.
        total_pnl: sum of ``pnl``, quote currency.
        avg_pnl_ratio: mean ``pnl_ratio``, a fraction (the group's expectancy).
        time_in_market_ratio: the sum of the trades' durations (entry fill to exit fill) over ``span_seconds``,
            or None without a span.
    """

    key: str
    n_trades: int
    win_rate_ratio: float
    total_pnl: float
    avg_pnl_ratio: float
    time_in_market_ratio: float | None


def trade_groups(
    keys: Sequence[str],
    pnl: np.ndarray,
    pnl_ratio: np.ndarray,
    duration_seconds: np.ndarray,
    span_seconds: float | None = None,
) -> list[TradeGroup]:
    """Return the figures of each group of closed trades, groups in order of first appearance.

    Args:
        keys: the group of each trade, m values.
        pnl, pnl_ratio, duration_seconds: shape (m,), float64: each trade's pnl (quote currency), pnl ratio
            (fraction) and duration (exit time minus entry time, seconds). A trade with a NaN pnl (still open)
            belongs to no group.
        span_seconds: the run's length (its candles times their length), > 0, for ``time_in_market_ratio``.

    Returns:
        One :class:`TradeGroup` per key that has a closed trade.
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    pnl_ratio = np.asarray(pnl_ratio, dtype=np.float64)
    duration = np.asarray(duration_seconds, dtype=np.float64)
    labels = np.asarray(list(keys), dtype=object)
    if not (labels.shape == pnl.shape == pnl_ratio.shape == duration.shape):
        raise ValueError(
            f"keys, pnl, pnl_ratio and duration_seconds must have one value a trade; shapes were "
            f"{labels.shape}, {pnl.shape}, {pnl_ratio.shape}, {duration.shape}"
        )
    closed = np.isfinite(pnl)
    groups = []
    for key in dict.fromkeys(labels[closed].tolist()):
        rows = closed & (labels == key)
        n = int(np.count_nonzero(rows))
        held = float(duration[rows].sum())
        groups.append(
            TradeGroup(
                key=str(key),
                n_trades=n,
                win_rate_ratio=float(np.count_nonzero(pnl[rows] > 0)) / n,
                total_pnl=float(pnl[rows].sum()),
                avg_pnl_ratio=float(pnl_ratio[rows].mean()),
                time_in_market_ratio=held / span_seconds if span_seconds else None,
            )
        )
    return groups


@dataclass(frozen=True)
class MonthlyReturns:
    """One calendar year of an equity curve's returns (UTC).

    Attributes:
        year: e.g. 2024.
        months: 12 values, January first: the return in that month as a fraction, None for a month outside the
            curve or after a ruin (no account to have a return).
        year_ratio: the return over the year's months in the curve (their compounded product), or None after a
            ruin.
    """

    year: int
    months: tuple[float | None, ...]
    year_ratio: float | None


def monthly_returns(
    times_seconds: np.ndarray, equity_curve: np.ndarray, starting_cash: float
) -> list[MonthlyReturns]:
    """Return the equity curve's return per calendar month and per year, oldest year first.

    ``equity_curve[i]`` is the equity at the close of the candle opening at ``times_seconds[i]``; a candle belongs
    to the month (UTC) of its open. The value at the end of a month is that of its last candle; a month's return is
    ``end of month / end of the previous month in the curve - 1``, the first month's measured from
    ``starting_cash`` (the equity at the first candle's open), so months chain: the product of ``1 + r`` over all
    months is ``equity_curve[-1] / starting_cash``. A month only partly covered (the run's first or last) has
    the return of its covered part. A year's return is its last month's end over the previous year's (or the
    starting cash) ``- 1``. A month whose previous end is 0 (a ruined account) has no return (None).

    Args:
        times_seconds: shape (n,), int64, increasing, seconds since epoch (UTC).
        equity_curve: shape (n,), float64, quote currency, >= 0.
        starting_cash: > 0, quote currency.

    Returns:
        One :class:`MonthlyReturns` per calendar year the curve touches; ``[]`` for an empty curve.

    Raises:
        ValueError: the arrays' shapes differ or are not 1-D.
    """
    times = np.asarray(times_seconds, dtype=np.int64)
    equity = np.asarray(equity_curve, dtype=np.float64)
    if times.ndim != 1 or times.shape != equity.shape:
        raise ValueError(
            f"times_seconds and equity_curve must be 1-D of one length; shapes were {times.shape}, {equity.shape}"
        )
    if not times.size:
        return []
    months = times.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64)  # months since 1970-01
    ends = np.append(np.flatnonzero(months[1:] != months[:-1]), months.shape[0] - 1)
    month_index = months[ends]
    end_value = equity[ends]
    before = np.concatenate(([float(starting_cash)], end_value[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = end_value / before - 1.0
    first_year = int(month_index[0] // 12) + 1970
    last_year = int(month_index[-1] // 12) + 1970
    rows = []
    previous_year_end = float(starting_cash)
    for year in range(first_year, last_year + 1):
        in_year = (month_index // 12) + 1970 == year
        values: list[float | None] = [None] * 12
        for month, value in zip(month_index[in_year] % 12, ratio[in_year], strict=True):
            values[int(month)] = float(value) if np.isfinite(value) else None
        year_end = float(end_value[in_year][-1]) if in_year.any() else previous_year_end
        year_ratio = year_end / previous_year_end - 1.0 if previous_year_end > 0 else None
        rows.append(MonthlyReturns(year=year, months=tuple(values), year_ratio=year_ratio))
        previous_year_end = year_end
    return rows
