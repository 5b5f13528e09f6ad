"""Monte Carlo of one run's trades: how much of the run's path was the luck of the trades' order.

The closed trades of a run are turned into returns on the account (:func:`trade_returns`), then many paths are
drawn from them (:func:`monte_carlo_trades`):

- ``"reshuffle"``: each path is a random permutation of the trades (sampling without replacement). The final
  equity is a product of the same factors in another order, so it is the run's own on every path (up to float
  rounding): only the path, hence the drawdowns, varies. This is the standard "trade order" Monte Carlo.
- ``"bootstrap"``: each path draws as many trades as the run had, with replacement (Efron's bootstrap, B. Efron
  and R. Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 6): the final equity varies as well.

Every path starts at the run's starting equity and compounds the drawn returns, so a trade keeps its size
relative to the account it was made with. Paths are drawn from ``numpy.random.default_rng(seed)``: the same
inputs and seed give the same paths. numpy only at import: scipy (the interval of the drawdown probability) is
imported inside :func:`monte_carlo_trades`, so importing the engine's live step path never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: The ways of drawing paths: a permutation of the trades, or draws with replacement.
METHODS = ("reshuffle", "bootstrap")

Method = Literal["reshuffle", "bootstrap"]

#: Default and largest number of paths.
DEFAULT_PATHS = 1_000
MAX_PATHS = 10_000

#: The most trade steps the paths may draw in all (paths times trades): 10,000 paths of 2,000 trades, about a second.
#: A run beyond it is asked for fewer paths.
MAX_PATH_TRADES = 20_000_000

#: The percentiles of final equity, maximum drawdown and longest drawdown.
SUMMARY_PERCENTILES = (5.0, 50.0, 95.0)

#: The percentiles of the fan: the bands 5-95 and 25-75 and the median.
FAN_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)

#: The fan gives the equity after at most this many trade numbers (evenly spaced, the first and last included).
MAX_FAN_POINTS = 501

#: Paths times trades of one chunk of work: the memory of one (chunk, trades) float64 array is 8 MiB.
_CHUNK_CELLS = 1 << 20

#: Confidence of the interval around the drawdown probability.
INTERVAL_CONFIDENCE = 0.95


@dataclass(frozen=True)
class MonteCarloResult:
    """The paths drawn by :func:`monte_carlo_trades` and their summary.

    Attributes:
        method: ``"reshuffle"`` or ``"bootstrap"``.
        paths: number of paths drawn.
        seed: the seed of ``numpy.random.default_rng``.
        starting_equity: equity before the first trade, quote currency.
        trade_returns_ratio: shape (n,), float64, the trades' returns on the account, in exit order.
        final_equity: shape (paths,), float64, quote currency, each path's equity after its last trade.
        max_drawdown_ratio: shape (paths,), float64 in [0, 1], each path's largest fall below its running peak
            (the starting equity is the first peak), as a fraction of the peak.
        longest_drawdown_trades: shape (paths,), int64, each path's longest run of consecutive trades after which
            the equity was below its running peak (counted in trades, not time; a drawdown still open at the end
            counts).
        final_equity_percentiles, max_drawdown_ratio_percentiles, longest_drawdown_trades_percentiles: shape (3,),
            float64, the :data:`SUMMARY_PERCENTILES` (5th, 50th, 95th) of the three, numpy's default linear
            interpolation (Hyndman and Fan's type 7).
        drawdown_limit_ratio: the drawdown level asked about, a fraction (0.3 = 30 %).
        drawdown_beyond_limit_probability: the share of paths whose maximum drawdown is above the limit, in [0, 1].
        drawdown_beyond_limit_interval: ``(low, high)``, the exact (Clopper-Pearson) 95 % confidence interval of
            that probability given the number of paths: the Monte Carlo error of the estimate, not of the run.
        fan_trade_numbers: shape (m,), int64, the trade numbers at which the fan is given (0 is the start): every
            number from 0 to n when n + 1 <= :data:`MAX_FAN_POINTS`, else that many evenly spaced ones, 0 and n
            included.
        fan_equity: shape (5, m), float64, quote currency, the :data:`FAN_PERCENTILES` (5, 25, 50, 75, 95) across
            paths of the equity after each trade number of ``fan_trade_numbers``.
        actual_equity: shape (n + 1,), float64, quote currency, the run's own path: the starting equity, then the
            equity after each trade in exit order.
        actual_max_drawdown_ratio: the maximum drawdown of ``actual_equity``, a fraction.
        actual_longest_drawdown_trades: the longest drawdown of ``actual_equity``, in trades.
    """

    method: str
    paths: int
    seed: int
    starting_equity: float
    trade_returns_ratio: np.ndarray
    final_equity: np.ndarray
    max_drawdown_ratio: np.ndarray
    longest_drawdown_trades: np.ndarray
    final_equity_percentiles: np.ndarray
    max_drawdown_ratio_percentiles: np.ndarray
    longest_drawdown_trades_percentiles: np.ndarray
    drawdown_limit_ratio: float
    drawdown_beyond_limit_probability: float
    drawdown_beyond_limit_interval: tuple[float, float]
    fan_trade_numbers: np.ndarray
    fan_equity: np.ndarray
    actual_equity: np.ndarray
    actual_max_drawdown_ratio: float
    actual_longest_drawdown_trades: int

    @property
    def n_trades(self) -> int:
        """The number of trades each path draws (the run's closed trades)."""
        return int(self.trade_returns_ratio.size)


def trade_returns(pnl: np.ndarray, *, starting_equity: float) -> np.ndarray:
    """Return each closed trade's P&L as a fraction of the realised equity just before its exit.

    ``r[i] = pnl[i] / E[i - 1]`` with ``E[-1] = starting_equity`` and ``E[i] = E[i - 1] + pnl[i]`` (the starting
    equity plus the realised P&L of the trades closed before): compounding them,
    ``starting_equity * prod(1 + r[:k])``, gives ``E[k - 1]`` back, the run's realised path, so the Monte Carlo's
    "actual" path ends at the starting equity plus the trades' P&L (the run's final equity when all its trades were
    closed). A trade that loses the whole account has ``r = -1``; the account is then ruined and later trades are
    not defined (their return would divide by 0).

    Args:
        pnl: shape (n,), float64, quote currency, the closed trades' P&L net of fees, in exit order.
        starting_equity: the account's equity before the first trade, quote currency, finite and > 0.

    Returns:
        shape (n,), float64, fractions >= -1 (0.02 = the trade added 2 % to the account).

    Raises:
        ValueError: ``pnl`` is not 1-D or not finite; ``starting_equity`` is not finite and > 0; the realised
            equity falls below 0 (more than float rounding), or a trade follows the account's ruin.
    """
    if not (np.isfinite(starting_equity) and starting_equity > 0):
        raise ValueError(f"starting_equity must be finite and > 0; was {starting_equity!r}")
    amounts = np.asarray(pnl, dtype=np.float64)
    if amounts.ndim != 1:
        raise ValueError(f"pnl must be 1-D, shape (n,); was shape {amounts.shape}")
    if not np.isfinite(amounts).all():
        raise ValueError("pnl must be finite; an open trade has no P&L yet: give the closed trades only")
    before = float(starting_equity) + np.concatenate(([0.0], np.cumsum(amounts)[:-1]))
    rounding = 1e-9 * float(starting_equity)
    if amounts.size and (before <= rounding).any():
        index = int(np.argmax(before <= rounding))
        raise ValueError(
            f"the realised equity is {float(before[index])!r} before trade {index} (the account was ruined): "
            "no trade can follow; give the trades up to the ruin"
        )
    returns = amounts / before
    if (returns < -1 - 1e-9).any():
        index = int(np.argmax(returns < -1 - 1e-9))
        raise ValueError(
            f"trade {index} loses {float(-amounts[index])!r}, more than the account's {float(before[index])!r}: "
            "a long-only account cannot owe money"
        )
    return np.maximum(returns, -1.0)


def _path_figures(equity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximum drawdown (fraction) and longest drawdown (trades) of each column of ``equity``, shape (n + 1, p):
    trade steps down the rows (the first row the starting equity, > 0, so every running peak is > 0), one path a
    column, so the running maxima and sums run over contiguous rows."""
    peak = np.maximum.accumulate(equity, axis=0)
    # (peak - equity) / peak at its largest is 1 - equity / peak at its smallest.
    max_drawdown = 1.0 - (equity / peak).min(axis=0)
    under = equity[1:] < peak[1:]
    # Length of the current run of trades under water at each step: the count of such trades so far, minus that
    # count at the last step that was not under water.
    count = np.cumsum(under, axis=0, dtype=np.int32)
    reset = count * ~under
    np.maximum.accumulate(reset, axis=0, out=reset)
    np.subtract(count, reset, out=reset)
    longest = reset.max(axis=0) if under.shape[0] else np.zeros(equity.shape[1], dtype=np.int64)
    return np.maximum(max_drawdown, 0.0), longest.astype(np.int64)


def _fan_trade_numbers(n: int) -> np.ndarray:
    if n + 1 <= MAX_FAN_POINTS:
        return np.arange(n + 1, dtype=np.int64)
    return np.unique(np.linspace(0, n, MAX_FAN_POINTS).round().astype(np.int64))


def monte_carlo_trades(
    trade_returns_ratio: np.ndarray,
    *,
    starting_equity: float,
    method: str = "reshuffle",
    paths: int = DEFAULT_PATHS,
    seed: int = 0,
    drawdown_limit_ratio: float = 0.3,
) -> MonteCarloResult:
    """Draw ``paths`` paths of the trades and summarise their final equity and drawdowns.

    Path ``p`` compounds the drawn returns: ``equity[p, 0] = starting_equity``,
    ``equity[p, k] = equity[p, k - 1] * (1 + R[p, k - 1])``, with ``R[p]`` a permutation of the returns
    (``"reshuffle"``: ``Generator.permuted``) or ``n`` of them drawn uniformly with replacement (``"bootstrap"``:
    ``Generator.integers``). Drawdown at step ``k``: ``(peak - equity) / peak`` with ``peak`` the running maximum
    from the starting equity on (:func:`trading.engine.statistics.drawdown_curve`). Under reshuffling the final
    equity ``starting_equity * prod(1 + r)`` is the same on every path (a product does not depend on the order;
    equal up to float rounding): only the path and its drawdowns vary. Under the bootstrap it varies too.

    Work is done in chunks of paths (about a million path-trades each), vectorised over paths; 1,000 paths of 500
    trades take a few milliseconds.

    Args:
        trade_returns_ratio: shape (n,), n >= 1, float64, the trades' returns on the account in exit order,
            finite and >= -1 (:func:`trade_returns`).
        starting_equity: quote currency, finite and > 0.
        method: ``"reshuffle"`` or ``"bootstrap"``.
        paths: number of paths, 1 to :data:`MAX_PATHS`, and ``paths * n <= MAX_PATH_TRADES``.
        seed: the seed of ``numpy.random.default_rng``, an int >= 0.
        drawdown_limit_ratio: the drawdown level whose probability is asked, a fraction in (0, 1) (0.3 = 30 %).
            A path counts when its maximum drawdown is strictly above it.

    Returns:
        A :class:`MonteCarloResult`.

    Raises:
        ValueError: a bad ``method``, ``paths``, ``seed``, ``drawdown_limit_ratio`` or ``starting_equity``; no
            trade; a return that is not finite or below -1; too many paths for the number of trades. The message
            says what was received.
    """
    returns = np.asarray(trade_returns_ratio, dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; was {method!r}")
    if isinstance(paths, bool) or not isinstance(paths, int | np.integer) or not 1 <= paths <= MAX_PATHS:
        raise ValueError(f"paths must be an int from 1 to {MAX_PATHS}; was {paths!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; was {seed!r}")
    if not (np.isfinite(drawdown_limit_ratio) and 0 < drawdown_limit_ratio < 1):
        raise ValueError(
            f"drawdown_limit_ratio must be a fraction in (0, 1), e.g. 0.3 for 30 %; was {drawdown_limit_ratio!r}"
        )
    if not (np.isfinite(starting_equity) and starting_equity > 0):
        raise ValueError(f"starting_equity must be finite and > 0; was {starting_equity!r}")
    if returns.ndim != 1 or returns.size == 0:
        raise ValueError(
            f"trade_returns_ratio must be 1-D with at least one trade; was shape {returns.shape}"
        )
    if not (np.isfinite(returns).all() and (returns >= -1).all()):
        raise ValueError(
            "trade_returns_ratio must be finite and >= -1 (a trade cannot lose more than the account)"
        )
    n = int(returns.size)
    paths = int(paths)
    if paths * n > MAX_PATH_TRADES:
        raise ValueError(
            f"paths times trades must be at most {MAX_PATH_TRADES:,}; was {paths:,} x {n:,}: "
            f"ask for at most {MAX_PATH_TRADES // n:,} paths"
        )

    rng = np.random.default_rng(int(seed))
    start = float(starting_equity)
    fan_numbers = _fan_trade_numbers(n)
    final = np.empty(paths)
    max_drawdown = np.empty(paths)
    longest = np.empty(paths, dtype=np.int64)
    at_fan = np.empty((fan_numbers.size, paths))
    chunk = max(1, _CHUNK_CELLS // n)
    for first in range(0, paths, chunk):
        rows = min(chunk, paths - first)
        # One path a column: (n, rows), each column its own permutation or draw.
        if method == "reshuffle":
            drawn = rng.permuted(np.broadcast_to(returns[:, np.newaxis], (n, rows)), axis=0)
        else:
            drawn = returns[rng.integers(0, n, size=(n, rows))]
        equity = np.empty((n + 1, rows))
        equity[0] = start
        np.cumprod(1.0 + drawn, axis=0, out=equity[1:])
        equity[1:] *= start
        part = slice(first, first + rows)
        final[part] = equity[-1]
        max_drawdown[part], longest[part] = _path_figures(equity)
        at_fan[:, part] = equity[fan_numbers]

    actual = np.empty(n + 1)
    actual[0] = start
    actual[1:] = start * np.cumprod(1.0 + returns)
    actual_drawdown, actual_longest = _path_figures(actual[:, np.newaxis])

    beyond = int(np.count_nonzero(max_drawdown > drawdown_limit_ratio))
    return MonteCarloResult(
        method=method,
        paths=paths,
        seed=int(seed),
        starting_equity=start,
        trade_returns_ratio=returns,
        final_equity=final,
        max_drawdown_ratio=max_drawdown,
        longest_drawdown_trades=longest,
        final_equity_percentiles=np.percentile(final, SUMMARY_PERCENTILES),
        max_drawdown_ratio_percentiles=np.percentile(max_drawdown, SUMMARY_PERCENTILES),
        longest_drawdown_trades_percentiles=np.percentile(longest, SUMMARY_PERCENTILES),
        drawdown_limit_ratio=float(drawdown_limit_ratio),
        drawdown_beyond_limit_probability=beyond / paths,
        drawdown_beyond_limit_interval=proportion_interval(beyond, paths),
        fan_trade_numbers=fan_numbers,
        fan_equity=np.percentile(at_fan, FAN_PERCENTILES, axis=1),
        actual_equity=actual,
        actual_max_drawdown_ratio=float(actual_drawdown[0]),
        actual_longest_drawdown_trades=int(actual_longest[0]),
    )


def proportion_interval(successes: int, trials: int) -> tuple[float, float]:
    """Return the exact (Clopper-Pearson) confidence interval of a proportion, at :data:`INTERVAL_CONFIDENCE`.

    ``scipy.stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="exact")`` (C. J.
    Clopper and E. S. Pearson, Biometrika 26, 1934): the quantiles of Beta distributions, so it is never empty
    and stays inside [0, 1] even at 0 or ``trials`` successes. scipy is imported here, not at the module's top.

    Args:
        successes: an int in [0, trials].
        trials: an int >= 1.

    Returns:
        ``(low, high)``, fractions with ``0 <= low <= successes / trials <= high <= 1``.

    Raises:
        ValueError: ``trials < 1`` or ``successes`` outside [0, trials] (scipy's message).
    """
    from scipy.stats import binomtest

    interval = binomtest(int(successes), int(trials)).proportion_ci(
        confidence_level=INTERVAL_CONFIDENCE, method="exact"
    )
    return float(interval.low), float(interval.high)
