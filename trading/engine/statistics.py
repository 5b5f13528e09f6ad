"""Performance statistics of a backtest (or of the live account): the figures ``CRITERIA.md`` "Statistics" names.

Numpy, and one compiled pass over the equity curve (:func:`_curve_figures`: a year of minutes is 527,040 values,
and a dozen numpy passes over them cost more than the backtest's loop); the simulator and the live cycle call the
same functions. Public API:

- :func:`drawdown_curve`: the fraction below the running peak at every candle (the chart draws it);
- :func:`max_drawdown_ratio`: its maximum;
- :func:`backtest_statistics`: every figure of the report, as a JSON-friendly dict;
- :func:`equity_at_ruin`: an equity curve with float rounding below 0 clamped, and where the account was ruined.

Conventions, with their sources:

- **The returns series.** The account holds ``starting_cash`` at the open of the first candle and
  ``equity_curve[i]`` at the close of candle ``i``. The per-candle simple returns are taken over the anchored
  curve ``[starting_cash, equity_curve[0], ..., equity_curve[n - 1]]``, so ``n`` candles give ``n`` returns and
  the first one includes what happened during the first candle (an entry fee, the first move). This is
  empyrical's model: a returns series plus a starting value (``empyrical.cum_returns(returns, starting_value)``).
- **Annualisation.** ``periods_per_year = 365 * 86_400 / candle_seconds`` (365-day years: crypto trades every
  day; empyrical's ``annualization`` argument, backtesting.py's 365-day calendar for assets that trade at
  weekends).
- **Ruin.** An account whose equity reaches 0 is ruined: it holds nothing to trade with (entries size on the
  equity and refuse dust, :func:`trading.engine.rules.entry_quantity`), so it stays at 0. A long-only account
  paying fees from its cash cannot go below 0, but thousands of trades that take it near 0 leave float rounding
  (about -6e-13 after 10,600 one-minute trades at 0.1 % a side): a value within
  :data:`RUIN_TOLERANCE_RATIO` of the starting cash below 0 is 0 (:func:`equity_at_ruin`). The statistics of a
  ruined run are those of backtesting.py and freqtrade for a wiped-out account: total return -100 %, max drawdown
  100 %, CAGR -100 %; Sharpe and Sortino over the returns up to the ruin (see :func:`backtest_statistics`).
- **Undefined figures are None**, never NaN or inf, so the dict serialises to strict JSON. A figure that would
  overflow float64 on extreme but valid input (a CAGR over a few one-minute candles) is None as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from trading.engine.types import RUIN_TOLERANCE_RATIO, SECONDS_PER_DAY, Trade, TradeLog
from trading.engine.vocabulary import STATISTICS_KEYS

#: Seconds in the 365-day year used for every annualisation here.
SECONDS_PER_YEAR = 365 * SECONDS_PER_DAY

#: Equity below 0 by at most this fraction of the starting cash is float rounding of an account at 0 (a ruined
#: one); further below 0 is an error.

#: Returns spread by no more than this times (1 + the largest |return|) count as all equal (a few float64 ulps).
_RETURN_ROUNDING = 4 * float(np.finfo(np.float64).eps)


def drawdown_curve(equity_curve: np.ndarray, *, starting_equity: float | None = None) -> np.ndarray:
    """Return how far below its running peak the equity is at each candle.

    ``drawdown[i] = (peak[i] - equity[i]) / peak[i]`` with ``peak[i] = max(equity[:i + 1])`` (and
    ``starting_equity`` when given): the ``drawdown_series`` of empyrical and backtesting.py's ``DrawdownPct``,
    with the sign flipped so that a fall is positive. See https://en.wikipedia.org/wiki/Drawdown_(economics).

    Args:
        equity_curve: shape (n,), float64, quote currency, in time order, all finite and >= 0 (0 from a ruin
            on: :func:`equity_at_ruin`, which clamps rounding below 0 here too).
        starting_equity: the equity before the first candle (a backtest's starting cash), quote currency, > 0.
            When given it is the first peak, so a first candle that closes below it is already a drawdown.

    Returns:
        shape (n,), float64, fractions in [0, 1]; 0.25 means 25 % below the peak, 1.0 a ruined account. Exactly
        0.0 at every running peak (where the equity equals its maximum so far), and where there has been no peak
        above 0 yet (a curve at 0 from its first value, without ``starting_equity``). Shape (0,) for an empty
        curve.

    Raises:
        ValueError: ``equity_curve`` is not 1-D, or holds a value that is not finite or further below 0 than
            rounding (:func:`equity_at_ruin`); or ``starting_equity`` is not finite and > 0.
    """
    if starting_equity is not None:
        _require_positive(starting_equity, name="starting_equity")
    equity, _ = equity_at_ruin(equity_curve, starting_cash=starting_equity)
    peak = np.maximum.accumulate(equity) if equity.size else equity.copy()
    if starting_equity is not None:
        peak = np.maximum(peak, float(starting_equity))
    # peak - equity is exactly 0.0 where equity is the running peak, so the peaks are exact zeros.
    with np.errstate(invalid="ignore"):
        drawdown: np.ndarray = (peak - equity) / peak
    if starting_equity is None and equity.size and equity[0] == 0:
        drawdown[peak == 0] = 0.0
    return drawdown


def equity_at_ruin(
    equity_curve: np.ndarray, *, starting_cash: float | None = None, ruin_ratio: float = 0.0
) -> tuple[np.ndarray, int | None]:
    """Return ``equity_curve`` with a ruined account at exactly 0, and the index of the candle of the ruin.

    The account is ruined at the first candle whose equity is at or below ``ruin_ratio`` of the starting cash (0
    for a bare curve, :data:`~trading.engine.types.RUIN_TOLERANCE_RATIO` for the backtest's own curve, which it
    clamps with this function before its statistics) and never again above the float rounding of 0 after it: a
    dip to that level while a position worth dust is held, which then recovers, is not a ruin (the engine only
    stops entering there); a value at or below 0 followed by a recovery is an error. CRITERIA.md's account cannot
    go below 0 (it is long only and
    pays its fees from its cash): what is below 0 is float rounding of 0, and what is left under a billionth of the
    start is not money. That value and every later one are 0: the engine makes no entry once the equity is that
    low (:data:`~trading.engine.layout.RULE_RUIN_EQUITY`), so a ruined account holds nothing to grow again; every
    later value must be within the rounding of 0 as well.

    Args:
        equity_curve: shape (n,), float64, quote currency, the equity at each candle's close, in time order.
        starting_cash: the equity before the first candle, quote currency, > 0; the scale of the rounding
            tolerance. Default: the largest |value| of the curve.
        ruin_ratio: the fraction of ``starting_cash`` at or below which the account is ruined (used only with
            ``starting_cash``); :func:`trading.engine.backtest.backtest` passes the engine's ``RUIN_TOLERANCE_RATIO``.

    Returns:
        ``(curve, ruin)``: ``curve`` shape (n,), float64, finite and >= 0 (``equity_curve`` itself, not a copy,
        when there is no ruin); ``ruin`` the index of the ruin's first value, or None.

    Raises:
        ValueError: ``equity_curve`` is not 1-D, holds NaN or an infinity, or a value below
            ``-RUIN_TOLERANCE_RATIO * starting_cash`` (money the account cannot owe), or above
            ``RUIN_TOLERANCE_RATIO * starting_cash`` after the ruin; the message says where.
    """
    array = np.asarray(equity_curve, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"equity_curve must be 1-D, shape (n,); was shape {array.shape}")
    # Two passes where all is well (a year of minutes: 527,040 values): every value > 0 (NaN is not) and a finite
    # maximum (so no +inf); the failing index is looked for only when one fails.
    # A bare curve is ruined at 0; a backtest's at the engine's ruin (ruin_ratio of its starting cash).
    threshold = 0.0 if starting_cash is None else ruin_ratio * float(starting_cash)
    if not array.size or ((array > threshold).all() and np.isfinite(array.max())):
        return array, None
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"equity_curve must be finite and >= 0 everywhere; was {float(array[bad[0]])!r} at index {bad[0]}"
        )
    scale = float(starting_cash) if starting_cash is not None else float(np.abs(array).max())
    tolerance = RUIN_TOLERANCE_RATIO * scale
    # A dip to the ruin level while a position is held (its value dust, but > 0) is no ruin when the position then
    # recovers: the engine only stops entering. The ruin is the first candle at or below the level from which
    # the equity never again exceeds the rounding of 0.
    above = np.flatnonzero(array > tolerance)
    after = int(above[-1]) + 1 if above.size else 0
    at_level = np.flatnonzero(array[after:] <= threshold)
    ruin: int | None = after + int(at_level[0]) if at_level.size else None
    # Before it, nothing at 0 or below: an account that had nothing cannot recover.
    nothing = np.flatnonzero(array[: ruin if ruin is not None else array.shape[0]] <= 0.0)
    if nothing.size:
        first = int(nothing[0])
        highest = first + int(np.argmax(array[first:]))
        raise ValueError(
            f"equity_curve reaches 0 at index {first} (a ruined account) but is {float(array[highest])!r} at index "
            f"{highest}: a ruined account holds nothing to recover with"
        )
    if ruin is None:
        return array, None
    lowest = ruin + int(np.argmin(array[ruin:]))
    if not array[lowest] + tolerance >= 0:
        raise ValueError(
            f"equity_curve must be >= 0 everywhere (a long-only account cannot owe money); was "
            f"{float(array[lowest])!r} at index {lowest}, below the float rounding of 0 "
            f"({-tolerance!r})"
        )
    clamped = array.copy()
    clamped[ruin:] = 0.0
    return clamped, ruin


def max_drawdown_ratio(equity_curve: np.ndarray, *, starting_equity: float | None = None) -> float:
    """Return the largest peak-to-trough fall of an equity curve.

    The maximum of :func:`drawdown_curve`; equals ``-empyrical.max_drawdown(returns)`` for the returns of the
    curve (empyrical anchors its running peak at the starting value, as ``starting_equity`` does here).

    Args:
        equity_curve: shape (n,), float64, quote currency, in time order, all finite and >= 0.
        starting_equity: the equity before the first candle, quote currency, > 0; the first peak when given.

    Returns:
        Fraction of the running peak in [0, 1]; 0.25 means a 25 % fall, 1.0 a ruined account.
        0.0 when the equity never falls below
        a previous peak, which includes n < 2 without ``starting_equity`` and n == 0.

    Raises:
        ValueError: as :func:`drawdown_curve`.
    """
    drawdown = drawdown_curve(equity_curve, starting_equity=starting_equity)
    return float(drawdown.max()) if drawdown.size else 0.0


def backtest_statistics(
    *,
    equity_curve: np.ndarray,
    buy_and_hold_curve: np.ndarray,
    exposure: np.ndarray,
    trades: Sequence[Trade] | TradeLog,
    candle_seconds: int,
    starting_cash: float,
    ambiguous_candles: int = 0,
    ambiguous_resolved: int = 0,
) -> dict[str, float | int | None]:
    """Return the report's statistics (``CRITERIA.md`` "Statistics") of one run.

    Let ``n`` be the number of candles, ``e = [starting_cash, equity_curve...]`` the anchored curve (n + 1
    values), ``r = e[1:] / e[:-1] - 1`` the n per-candle returns, ``ppy = 365 * 86_400 / candle_seconds`` the
    candles per 365-day year and ``years = n * candle_seconds / (365 * 86_400)`` the span from the first
    candle's open to the last candle's close.

    Account figures:

    - ``total_return_ratio = equity_curve[-1] / starting_cash - 1``.
    - ``buy_and_hold_return_ratio = buy_and_hold_curve[-1] / starting_cash - 1``: measured from the starting
      cash (the curve's value at the first candle's open, by its definition) rather than from
      ``buy_and_hold_curve[0]`` (its value at the first close), so it covers the same span as
      ``total_return_ratio``.
    - ``cagr_ratio = (equity_curve[-1] / starting_cash) ** (1 / years) - 1``: ``empyrical.annual_return(r,
      annualization=ppy)``, whose ``num_years = len(r) / ppy`` is ``years``. None when it overflows float64
      (a large gain over a span of minutes).
    - ``sharpe_ratio = mean(r) / std(r, ddof=1) * sqrt(ppy)``, risk-free 0: ``empyrical.sharpe_ratio``.
      None when n < 2 (empyrical: NaN) or when all returns are equal, a flat curve included (empyrical's
      ``_zero_dispersion_std``: zero dispersion, so no ratio). Returns count as equal when they differ by no
      more than float64 rounding, ``ptp(r) <= 4 * eps * (1 + max|r|)``, so a curve compounding at a constant
      rate, whose returns differ in the last bit only, has no Sharpe ratio rather than one near 1e15.
    - ``sortino_ratio = mean(r) / sqrt(mean(min(r, 0) ** 2)) * sqrt(ppy)``, required return 0:
      ``empyrical.sortino_ratio`` with ``empyrical.downside_risk`` (the mean of the squared shortfalls is over
      all n returns, not only the negative ones). None when n < 2 or when no return is negative (empyrical:
      inf or NaN).
    - ``max_drawdown_ratio``: :func:`max_drawdown_ratio` of ``equity_curve`` with ``starting_cash`` as the
      first peak; in [0, 1]; ``-empyrical.max_drawdown(r)``.
    - ``max_drawdown_duration_days``: the longest stretch from a peak of ``e`` to the first later point at or
      above that peak (or to the last candle's close when it never recovers), in candles times
      ``candle_seconds / 86_400``; backtesting.py's "Max. Drawdown Duration". 0.0 when there is no drawdown.
    - ``calmar_ratio = cagr_ratio / max_drawdown_ratio``: ``empyrical.calmar_ratio``; None when there is no
      drawdown or no CAGR.
    - ``volatility_ratio = std(r, ddof=1) * sqrt(ppy)``: ``empyrical.annual_volatility``, over the same returns as
      the Sharpe ratio (up to a ruin). None when n < 2; 0.0 when the returns count as equal (as for Sharpe).
    - ``avg_drawdown_ratio``: the mean over the drawdown episodes of ``e`` (maximal runs of points below the
      running peak, an unrecovered one at the end included) of each episode's deepest drawdown: backtesting.py's
      "Avg. Drawdown" (which leaves out a last episode of one candle when an earlier one exists). 0.0 when there
      is no drawdown, as ``max_drawdown_ratio``.
    - ``exposure_ratio = mean(exposure)``: the share of the n candles with a position open at some point of
      the candle (backtesting.py's "Exposure Time").
    - ``final_equity = equity_curve[-1]``, quote currency.

    A ruined account (:func:`equity_at_ruin`: the equity reached 0 at candle ``k``, float rounding below 0
    included) has ``total_return_ratio`` -1, ``max_drawdown_ratio`` 1, ``cagr_ratio`` -1 (``0 ** (1 / years) -
    1``), ``calmar_ratio`` -1 and ``final_equity`` 0. Its Sharpe and Sortino ratios are over the ``k + 1`` returns
    up to the ruin, the last of them -1 (everything lost in that candle): after it the returns are 0 / 0,
    undefined, and empyrical, whose ratios take ``nanmean`` and ``nanstd``, leaves them out in the same way. A
    constant 0 % return after the ruin would instead dilute the loss with candles in which there was no account.
    They are None when that leaves fewer than two returns (a ruin in the first candle), as above.

    Trade figures: only **closed** trades count (a trade still open at the end has no exit and no pnl yet; a
    simulator that closes it at the last close with ``end_of_data`` makes it count):

    - ``n_trades``: the number of closed trades.
    - ``win_rate_ratio``: the share of closed trades with ``pnl > 0`` (backtesting.py's ``(pl > 0).mean()``; a
      zero pnl is not a win).
    - ``profit_factor = sum(pnl > 0) / abs(sum(pnl < 0))`` over the quote-currency pnl (freqtrade's
      ``profit_factor`` from ``profit_abs``; backtesting.py uses the trades' returns instead). None when there
      is no losing trade (no gross loss: the ratio would be infinite or 0/0); 0.0 when no trade wins.
    - ``expectancy_ratio = mean(pnl_ratio)`` (backtesting.py's "Expectancy"); ``best_trade_ratio`` and
      ``worst_trade_ratio`` are the max and min ``pnl_ratio``.
    - ``avg_trade_duration_days = mean(exit_time_seconds - entry_time_seconds) / 86_400`` (backtesting.py's "Avg. Trade
      Duration").
    - ``sqn = sqrt(N) * mean(pnl) / std(pnl, ddof=1)`` over the N closed trades' quote-currency pnl: Van Tharp's
      System Quality Number as backtesting.py's "SQN" computes it; None for N < 2 or equal pnl.
    - ``avg_win``, ``avg_loss``: the mean pnl of the trades with ``pnl > 0``, ``pnl < 0`` (quote currency;
      ``avg_loss`` < 0); ``avg_win_ratio``, ``avg_loss_ratio`` the mean ``pnl_ratio`` of the same trades;
      ``largest_win = max(pnl)``, ``largest_loss = min(pnl)`` over them. None without a win (a loss).
    - ``max_consecutive_losses``: the longest run of trades with ``pnl < 0`` in exit order (ties in the given
      order; a zero pnl ends a run), an int, 0 without a losing trade (and without a closed trade).
    - ``max_trade_duration_days``: the longest ``exit_time_seconds - entry_time_seconds``, in days
      (backtesting.py's "Max. Trade Duration").
    - These are None when there is no closed trade; ``n_trades`` is then 0.
    - ``total_fees``: the entry fees of every trade, open or closed, plus the exit fees of the closed ones,
      quote currency: what the run actually paid.

    Bar magnifier figures (docs/criteria.md "Finer candles inside a daily candle"), passed in by the backtest:

    - ``ambiguous_candles``: the candles of open trades whose stop (the higher of the stop-loss and the trailing
      level) and take-profit were both inside the candle, its open through neither;
    - ``ambiguous_resolved``: those of them that finer candles decided (the others took the stop).

    Args:
        equity_curve: shape (n,), float64, quote currency, the account's equity (cash plus open positions at
            the close) at each candle's close, in time order, all finite and > 0 up to a ruin (at or below 0 by no
            more than float rounding: :func:`equity_at_ruin`), n >= 1.
        buy_and_hold_curve: shape (n,), float64, quote currency, the equity of putting ``starting_cash`` into
            the instruments (equal weights) at the first candle's open, at each candle's close; only its last
            value is used.
        exposure: shape (n,), bool, True where a position was open at some point of that candle.
        trades: the run's trades, open and closed, as :class:`Trade` values or a :class:`TradeLog`; a closed
            trade must have ``exit_time_seconds``, ``exit_fee``, ``pnl`` and ``pnl_ratio`` set.
        candle_seconds: length of one candle in seconds, > 0 (86_400 for daily, 60 for one-minute).
        starting_cash: the cash at the first candle's open, quote currency, > 0.
        ambiguous_candles, ambiguous_resolved: ints >= 0 (see above), 0 by default.

    Returns:
        The keys of :data:`~trading.engine.vocabulary.STATISTICS_KEYS`, in that order: ``n_trades``,
        ``max_consecutive_losses`` and the ambiguous counts ints, the others Python floats or None (undefined).
        Ratios are fractions (0.05 = 5 %); ``total_fees``, ``final_equity``, ``avg_win``, ``avg_loss``,
        ``largest_win`` and ``largest_loss`` are quote currency; ``*_days`` are days. No value is NaN or infinite.

    Raises:
        ValueError: an input has the wrong shape or an invalid value; the message says which and what was
            received.
    """
    _require_positive(starting_cash, name="starting_cash")
    starting_cash = float(starting_cash)
    equity, ruin = equity_at_ruin(equity_curve, starting_cash=starting_cash)
    n = equity.shape[0]
    if n == 0:
        raise ValueError("equity_curve is empty; compute statistics over at least one candle")
    buy_and_hold = _positive_curve(buy_and_hold_curve, name="buy_and_hold_curve")
    exposure_array = np.asarray(exposure)
    for name, array in (("buy_and_hold_curve", buy_and_hold), ("exposure", exposure_array)):
        if array.shape != (n,):
            raise ValueError(f"{name} must have the shape of equity_curve, {(n,)}; was {array.shape}")
    if (
        isinstance(candle_seconds, bool)
        or not isinstance(candle_seconds, int | np.integer)
        or candle_seconds <= 0
    ):
        raise ValueError(
            f"candle_seconds must be an integer > 0 (86400 for daily candles); was {candle_seconds!r}"
        )

    # Up to the ruin's candle: the returns after it are 0 / 0 (see the docstring).
    returns_count = n if ruin is None else ruin + 1
    log = trades if isinstance(trades, TradeLog) else TradeLog.from_trades(trades)
    return statistics_from_figures(
        curve_figures=np.array([_curve_figures(equity, starting_cash, returns_count)], dtype=np.float64),
        trade_figures_rows=_trade_figures_of(log).reshape(1, -1),
        n=n,
        returns_count=np.array([returns_count]),
        final_equity=equity[-1:],
        buy_and_hold_last=float(buy_and_hold[-1]),
        exposure_count=np.array([np.count_nonzero(exposure_array)]),
        candle_seconds=int(candle_seconds),
        starting_cash=starting_cash,
        ambiguous_candles=np.array([ambiguous_candles]),
        ambiguous_resolved=np.array([ambiguous_resolved]),
    )[0]


def statistics_from_figures(
    *,
    curve_figures: np.ndarray,
    trade_figures_rows: np.ndarray,
    n: int,
    returns_count: np.ndarray,
    final_equity: np.ndarray,
    buy_and_hold_last: float,
    exposure_count: np.ndarray,
    candle_seconds: int,
    starting_cash: float,
    ambiguous_candles: np.ndarray,
    ambiguous_resolved: np.ndarray,
) -> list[dict[str, float | int | None]]:
    """The statistics dicts of :func:`backtest_statistics` from the compiled figures of one or many runs over the
    same candles: the single run (one row) and the points of a sweep (:func:`trading.engine.sweep.
    sweep_statistics`) come here, so their statistics are equal to the last bit.

    Args:
        curve_figures: shape (P, 9), float64: :func:`_curve_figures` of each (ruin-clamped) equity curve.
        trade_figures_rows: shape (P, TRADE_FIGURES_SIZE), float64: :func:`trade_figures` of each run's trades.
        n: the number of candles of every curve.
        returns_count: shape (P,), int64: the returns that count (n, or up to a ruin).
        final_equity: shape (P,), float64, quote currency: each curve's last value.
        buy_and_hold_last: the buy-and-hold curve's last value, quote currency (the same for every run).
        exposure_count: shape (P,), int64: the candles with a position open.
        candle_seconds: > 0; starting_cash: quote currency, > 0.
        ambiguous_candles, ambiguous_resolved: shape (P,), int64: the bar magnifier's counts.

    Returns:
        One dict a row, as :func:`backtest_statistics`.
    """
    # Valid but extreme inputs (equity spanning 1e-300 to 1e300, a 1000x gain over three one-minute candles)
    # overflow float64; such figures come out inf or NaN here and are reported as None by _finite_or_none.
    with np.errstate(over="ignore", invalid="ignore"):
        return [
            _statistics_row(
                curve=(
                    float(row[0]),
                    int(row[1]),
                    float(row[2]),
                    float(row[3]),
                    float(row[4]),
                    float(row[5]),
                    float(row[6]),
                    int(row[7]),
                    float(row[8]),
                ),
                trades=trade_statistics_from_figures(trades_row),
                n=n,
                returns_count=int(count),
                final_equity=float(final),
                buy_and_hold_last=buy_and_hold_last,
                exposure_count=int(exposed),
                candle_seconds=candle_seconds,
                starting_cash=starting_cash,
                ambiguous_candles=int(ambiguous),
                ambiguous_resolved=int(resolved),
            )
            for row, trades_row, count, final, exposed, ambiguous, resolved in zip(
                curve_figures.tolist(),
                trade_figures_rows,
                returns_count.tolist(),
                final_equity.tolist(),
                exposure_count.tolist(),
                ambiguous_candles.tolist(),
                ambiguous_resolved.tolist(),
                strict=True,
            )
        ]


def _statistics_row(
    *,
    curve: tuple[float, int, float, float, float, float, float, int, float],
    trades: dict[str, float | int | None],
    n: int,
    returns_count: int,
    final_equity: float,
    buy_and_hold_last: float,
    exposure_count: int,
    candle_seconds: int,
    starting_cash: float,
    ambiguous_candles: int = 0,
    ambiguous_resolved: int = 0,
) -> dict[str, float | int | None]:
    """One row of :func:`statistics_from_figures` (inside its ``np.errstate``)."""
    (
        max_drawdown,
        longest_underwater,
        mean,
        std,
        spread,
        largest,
        downside_deviation,
        drawdown_episodes,
        episode_maxima_sum,
    ) = curve
    years = n * candle_seconds / SECONDS_PER_YEAR
    periods_per_year = SECONDS_PER_YEAR / candle_seconds
    cagr = _finite_or_none(np.float64(final_equity / starting_cash) ** (1.0 / years) - 1.0)
    sharpe = _sharpe_ratio(returns_count, mean, std, spread, largest, periods_per_year)
    sortino = _sortino_ratio(returns_count, mean, downside_deviation, periods_per_year)
    calmar = _finite_or_none(cagr / max_drawdown) if cagr is not None and max_drawdown > 0 else None
    volatility = (
        _finite_or_none(std * np.sqrt(periods_per_year))
        if returns_count > 1 and spread > _RETURN_ROUNDING * (1.0 + largest)
        else (0.0 if returns_count > 1 else None)
    )
    statistics: dict[str, float | int | None] = {
        "total_return_ratio": _finite_or_none(np.float64(final_equity) / starting_cash - 1.0),
        "buy_and_hold_return_ratio": _finite_or_none(buy_and_hold_last / starting_cash - 1.0),
        "cagr_ratio": cagr,
        "sharpe_ratio": sharpe,
        "sortino_ratio": sortino,
        "max_drawdown_ratio": float(max_drawdown),
        "max_drawdown_duration_days": int(longest_underwater) * candle_seconds / SECONDS_PER_DAY,
        "calmar_ratio": calmar,
        "volatility_ratio": volatility,
        "avg_drawdown_ratio": float(episode_maxima_sum / drawdown_episodes) if drawdown_episodes else 0.0,
        **trades,
        "exposure_ratio": float(exposure_count) / n,
        "final_equity": float(final_equity),
        "ambiguous_candles": int(ambiguous_candles),
        "ambiguous_resolved": int(ambiguous_resolved),
    }
    return {key: statistics[key] for key in STATISTICS_KEYS}


@njit(cache=True, error_model="numpy")
def _curve_figures(
    equity: np.ndarray, starting_cash: float, returns_count: int
) -> tuple[float, int, float, float, float, float, float, int, float]:
    """The figures of :func:`backtest_statistics` that need the whole curve, in one compiled pass each.

    Args:
        equity: shape (n,), float64, the equity curve (finite, >= 0, exactly 0 from a ruin on), n >= 1.
        starting_cash: the anchored curve's first value, > 0.
        returns_count: how many per-candle returns of the anchored curve ``[starting_cash, equity...]`` count
            (all n, or those up to a ruin), >= 1.

    Returns:
        ``(max_drawdown, longest_underwater, mean, std, spread, largest, downside_deviation, episodes,
        episode_maxima_sum)``: ``max(drawdown)`` with the running peak of the anchored curve
        (:func:`drawdown_curve`, the same division at each point); the longest stretch, in candles, from a peak
        of the anchored curve (a point at or above every earlier point) to the next peak, or to the last point
        when the curve ends below its peak (two adjacent peaks have no stretch between them); and of the first
        ``returns_count`` returns ``r[i] = e[i + 1] / e[i] - 1``: their mean, standard deviation with ddof 1 (NaN
        for fewer than 2), ``max - min``, ``max |r|`` and ``sqrt(mean(min(r, 0) ** 2))`` (empyrical's downside
        risk, required return 0); the number of drawdown episodes (maximal runs of consecutive points below the
        running peak, an unrecovered one at the end included) and the sum of each episode's largest drawdown.
        Sums are taken in order (numpy's pairwise sums differ in the last bits).
    """
    n = equity.shape[0]
    peak = starting_cash
    max_drawdown = 0.0
    last_peak = 0  # position in the anchored curve, whose point 0 is the starting cash
    longest = 0
    episodes = 0
    episode_maxima_sum = 0.0
    episode_max = 0.0  # the largest drawdown of the episode under way; 0.0 at a peak
    for i in range(n):
        value = equity[i]
        if value >= peak:
            gap = i + 1 - last_peak
            if gap > 1 and gap > longest:
                longest = gap
            last_peak = i + 1
            peak = value
            if episode_max > 0.0:
                episodes += 1
                episode_maxima_sum += episode_max
                episode_max = 0.0
        else:
            drawdown = (peak - value) / peak
            if drawdown > max_drawdown:
                max_drawdown = drawdown
            if drawdown > episode_max:
                episode_max = drawdown
    if episode_max > 0.0:
        episodes += 1
        episode_maxima_sum += episode_max
    longest = max(longest, n - last_peak)
    total = 0.0
    lowest = np.inf
    highest = -np.inf
    largest = 0.0
    shortfall = 0.0
    previous = starting_cash
    for i in range(returns_count):
        r = equity[i] / previous - 1.0
        previous = equity[i]
        total += r
        lowest = min(lowest, r)
        highest = max(highest, r)
        largest = max(largest, abs(r))
        if r < 0.0:
            shortfall += r * r
    mean = total / returns_count
    squares = 0.0
    previous = starting_cash
    for i in range(returns_count):
        r = equity[i] / previous - 1.0
        previous = equity[i]
        squares += (r - mean) * (r - mean)
    std = np.sqrt(squares / (returns_count - 1)) if returns_count > 1 else np.nan
    return (
        max_drawdown,
        longest,
        mean,
        std,
        highest - lowest,
        largest,
        np.sqrt(shortfall / returns_count),
        episodes,
        episode_maxima_sum,
    )


def _sharpe_ratio(
    count: int, mean: float, std: float, spread: float, largest: float, periods_per_year: float
) -> float | None:
    """empyrical.sharpe_ratio with risk-free 0, from :func:`_curve_figures` of ``count`` returns; None where
    empyrical gives NaN or inf."""
    if count < 2:
        return None
    # Returns within a few rounding errors of the division that made them are equal: a curve growing by a
    # constant 1 % per candle has returns that differ in the last bit only, and their std of ~1e-18 would
    # make a Sharpe ratio of ~1e15 (the problem empyrical's _zero_dispersion_std solves for exact equality).
    # NaN (an overflow) fails the comparison and goes on to the checks below.
    if spread <= _RETURN_ROUNDING * (1.0 + largest):
        return None
    if not std > 0:  # overflowed to NaN, or underflowed to 0 for returns too close to tell apart
        return None
    return _finite_or_none(mean / std * np.sqrt(periods_per_year))


def _sortino_ratio(
    count: int, mean: float, downside_deviation: float, periods_per_year: float
) -> float | None:
    """empyrical.sortino_ratio with required return 0, from :func:`_curve_figures` of ``count`` returns; None
    where empyrical gives NaN or inf."""
    if count < 2:
        return None
    if not downside_deviation > 0:
        return None
    return _finite_or_none(mean / downside_deviation * np.sqrt(periods_per_year))


#: Positions in the vector of trade figures (:func:`trade_figures`).
TRADE_FIGURES = (
    "n_trades",
    "win_rate_ratio",
    "profit_factor",
    "expectancy_ratio",
    "avg_trade_duration_days",
    "best_trade_ratio",
    "worst_trade_ratio",
    "total_fees",
    "sqn",
    "avg_win",
    "avg_loss",
    "avg_win_ratio",
    "avg_loss_ratio",
    "largest_win",
    "largest_loss",
    "max_consecutive_losses",
    "max_trade_duration_days",
)
TRADE_FIGURES_SIZE = len(TRADE_FIGURES)
_INT_TRADE_FIGURES = ("n_trades", "max_consecutive_losses")


@njit(cache=True, error_model="numpy")
def trade_figures(
    closed: np.ndarray,
    entry_fee: np.ndarray,
    exit_fee: np.ndarray,
    pnl: np.ndarray,
    pnl_ratio: np.ndarray,
    entry_time_seconds: np.ndarray,
    exit_time_seconds: np.ndarray,
) -> np.ndarray:
    """The trade figures of :func:`backtest_statistics`, in one compiled pass (the single run and every point of
    a sweep call it, so their figures are equal to the last bit).

    Args:
        closed: shape (m,), bool, the trade has exited; entry_fee, exit_fee, pnl, pnl_ratio: shape (m,), float64
            (quote currency; ratios as fractions); entry_time_seconds, exit_time_seconds: shape (m,), int64.

    Returns:
        shape (TRADE_FIGURES_SIZE,), float64, in the order of :data:`TRADE_FIGURES`; NaN where a figure is
        undefined (:func:`backtest_statistics` says when). Sums are taken in trade order.
    """
    out = np.full(TRADE_FIGURES_SIZE, np.nan)
    m = closed.shape[0]
    total_fees = 0.0
    for i in range(m):
        total_fees += entry_fee[i]
    n = 0
    for i in range(m):
        if closed[i]:
            total_fees += exit_fee[i]
            n += 1
    out[0] = n
    out[7] = total_fees
    out[15] = 0.0
    if n == 0:
        return out
    wins = 0
    losses = 0
    gross_profit = 0.0
    gross_loss = 0.0
    pnl_sum = 0.0
    ratio_sum = 0.0
    win_sum = 0.0
    loss_sum = 0.0
    win_ratio_sum = 0.0
    loss_ratio_sum = 0.0
    duration_sum = 0.0
    best = -np.inf
    worst = np.inf
    largest = -np.inf
    smallest = np.inf
    longest = 0.0
    exits = np.empty(n, dtype=np.int64)
    lost = np.empty(n, dtype=np.bool_)
    j = 0
    for i in range(m):
        if not closed[i]:
            continue
        value = pnl[i]
        ratio = pnl_ratio[i]
        duration = float(exit_time_seconds[i] - entry_time_seconds[i])
        pnl_sum += value
        ratio_sum += ratio
        duration_sum += duration
        best = max(best, ratio)
        worst = min(worst, ratio)
        largest = max(largest, value)
        smallest = min(smallest, value)
        longest = max(longest, duration)
        if value > 0:
            wins += 1
            gross_profit += value
            win_sum += value
            win_ratio_sum += ratio
        elif value < 0:
            losses += 1
            gross_loss -= value
            loss_sum += value
            loss_ratio_sum += ratio
        exits[j] = exit_time_seconds[i]
        lost[j] = value < 0
        j += 1
    mean = pnl_sum / n
    out[1] = wins / n
    if gross_loss > 0:
        out[2] = gross_profit / gross_loss
    out[3] = ratio_sum / n
    out[4] = duration_sum / n / SECONDS_PER_DAY
    out[5] = best
    out[6] = worst
    if n > 1:
        # Van Tharp's System Quality Number as backtesting.py computes it: over the trades' pnl in money.
        squares = 0.0
        for i in range(m):
            if closed[i]:
                squares += (pnl[i] - mean) * (pnl[i] - mean)
        std = np.sqrt(squares / (n - 1))
        if std > 0:
            out[8] = np.sqrt(n) * mean / std
    if wins:
        out[9] = win_sum / wins
        out[11] = win_ratio_sum / wins
        out[13] = largest
    if losses:
        out[10] = loss_sum / losses
        out[12] = loss_ratio_sum / losses
        out[14] = smallest
    # Losing streaks in exit order (a stable sort keeps the log's entry order between equal exit times).
    order = np.argsort(exits, kind="mergesort")
    run = 0
    streak = 0
    for i in range(n):
        if lost[order[i]]:
            run += 1
            streak = max(streak, run)
        else:
            run = 0
    out[15] = streak
    out[16] = longest / SECONDS_PER_DAY
    return out


def _trade_figures_of(log: TradeLog) -> np.ndarray:
    """:func:`trade_figures` of a trade log."""
    return trade_figures(
        np.ascontiguousarray(log.closed),
        np.ascontiguousarray(log.entry_fee, dtype=np.float64),
        np.ascontiguousarray(log.exit_fee, dtype=np.float64),
        np.ascontiguousarray(log.pnl, dtype=np.float64),
        np.ascontiguousarray(log.pnl_ratio, dtype=np.float64),
        np.ascontiguousarray(log.entry_time_seconds, dtype=np.int64),
        np.ascontiguousarray(log.exit_time_seconds, dtype=np.int64),
    )


def trade_statistics_from_figures(figures: np.ndarray) -> dict[str, float | int | None]:
    """:func:`trade_figures`' vector as the statistics dict's trade entries (ints as ints, NaN as None)."""
    values = figures.tolist()
    return {
        name: (int(value) if name in _INT_TRADE_FIGURES else (value if math.isfinite(value) else None))
        for name, value in zip(TRADE_FIGURES, values, strict=True)
    }


def longest_run(flags: np.ndarray) -> int:
    """Return the length of the longest run of consecutive True values.

    Args:
        flags: shape (m,), bool (e.g. "this trade lost", in exit order).

    Returns:
        An int in [0, m]; 0 for an empty array or one without True.
    """
    if not flags.any():
        return 0
    # Pad with False on both sides: each run starts at a rise and ends at a fall of the padded 0/1 series.
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    return int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())


def _positive_curve(values: np.ndarray, *, name: str) -> np.ndarray:
    """``values`` as a 1-D float64 array, checked finite and > 0."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, shape (n,); was shape {array.shape}")
    # Two passes where all is well (a year of minutes: 527,040 values): every value > 0 (NaN is not) and a finite
    # maximum (so no +inf); the failing index is looked for only when one fails.
    if array.size and (array > 0).all() and np.isfinite(array.max()):
        return array
    bad = np.flatnonzero(~(np.isfinite(array) & (array > 0)))
    if bad.size:
        raise ValueError(
            f"{name} must be finite and > 0 everywhere; was {float(array[bad[0]])!r} at index {bad[0]}"
        )
    return array


def _require_positive(value: float, *, name: str) -> None:
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0; was {value!r}")


def _finite_or_none(value: float | np.floating) -> float | None:
    """``value`` as a Python float, or None when it is NaN or infinite (strict JSON has neither)."""
    result = float(value)
    return result if np.isfinite(result) else None
