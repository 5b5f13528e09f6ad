"""The bar magnifier's input: finer candles (1h or 1m) packed for the compiled risk phase (docs/criteria.md).

:func:`trading.engine.boundary.risk_exits_at_boundary` walks the finer candles inside an ambiguous candle t; it
finds them through ``finer_bounds`` and ``finer_prices`` (one array each, not one per column: with five more array
arguments the kernel ran 4 to 7 times slower). The backtest packs every boundary of a run, the live cycle one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from trading.engine.criteria import Criteria
from trading.engine.types import CandleArrays


def uses_finer_candles(criteria: Criteria) -> bool:
    """True when a candle of ``criteria`` can be ambiguous (docs/criteria.md "Finer candles inside a daily
    candle"): it has a take-profit and a stop (stop-loss or trailing stop). Without both, finer candles decide
    nothing, and are neither packed nor loaded."""
    return criteria.take_profit_ratio is not None and (
        criteria.stop_loss_ratio is not None or criteria.trailing_stop_ratio is not None
    )


def finer_columns(
    symbols: Sequence[str],
    finer: Mapping[str, CandleArrays],
    t_open_time_seconds: np.ndarray,
    candle_seconds: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The finer candles of every instrument in one array, and where those inside each candle t lie in it.

    Args:
        symbols: the instruments, in slot (symbol) order.
        finer: finer candles by symbol (oldest first, open times strictly increasing); symbols absent have none.
        t_open_time_seconds: shape (n,) or (n, k), int64, seconds since epoch: the open of candle t at each
            boundary (of each instrument).
        candle_seconds: the length of candle t, seconds.

    Returns:
        ``(finer_bounds, finer_prices)``: shape (n, k, 2) int64 (the finer candles opening in
        ``[t, t + candle_seconds)`` are the columns ``finer_bounds[j, i, 0] .. finer_bounds[j, i, 1] - 1``), and
        shape (3, f) float64, the open, high and low of the instruments' finer candles one after another. Without
        any finer candle, shapes (0, k, 2) and (3, 0): the compiled risk phase reads no bounds then.

    Raises:
        ValueError: a symbol of ``finer`` is not one of ``symbols``.
    """
    unknown = sorted(set(finer) - set(symbols))
    if unknown:
        raise ValueError(f"finer candles given for {unknown}, which are not instruments of the backtest")
    n, k = t_open_time_seconds.shape[0], len(symbols)
    if not any(len(fine) for fine in finer.values()):  # nothing to look at: no rows (the kernel reads none)
        return np.zeros((0, k, 2), dtype=np.int64), np.empty((3, 0))
    opens = t_open_time_seconds.reshape(n, 1) if t_open_time_seconds.ndim == 1 else t_open_time_seconds
    bounds = np.zeros((n, k, 2), dtype=np.int64)
    parts: list[CandleArrays] = []
    base = 0
    for i, symbol in enumerate(symbols):
        fine = finer.get(symbol)
        if fine is None or len(fine) == 0:
            bounds[:, i, :] = base
            continue
        times = fine.open_time_seconds
        column = opens[:, i] if opens.shape[1] == k else opens[:, 0]
        bounds[:, i, 0] = base + np.searchsorted(times, column, side="left")
        bounds[:, i, 1] = base + np.searchsorted(times, column + candle_seconds, side="left")
        parts.append(fine)
        base += len(fine)
    if not parts:
        return bounds, np.empty((3, 0))
    prices = np.empty((3, base))
    for row, name in enumerate(("open", "high", "low")):
        prices[row] = np.concatenate([getattr(p, name) for p in parts])
    return bounds, prices
