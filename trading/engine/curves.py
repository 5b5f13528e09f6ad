"""The equity curve and exposure of a backtest, rebuilt from its trades in compiled code.

Compiled with ``cache=True``: the machine code is kept on disk beside this module, so a new process loads it
instead of compiling again. Numba checks only this file's timestamp, so after editing a module it calls, delete
``trading/engine/__pycache__`` (a fresh checkout starts with none).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trading.engine.layout import (
    END_OF_DATA_CODE,
    NO_EXIT,
    STOP_LOSS_CODE,
    TAKE_PROFIT_CODE,
    TRAILING_STOP_CODE,
)


@njit(cache=True)
def curves_from_trades(
    times: np.ndarray,
    closes: np.ndarray,
    slots: np.ndarray,
    entry_time_seconds: np.ndarray,
    cost: np.ndarray,
    quantity: np.ndarray,
    exit_time_seconds: np.ndarray,
    exit_proceeds: np.ndarray,
    exit_codes: np.ndarray,
    starting_cash: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the equity at each candle's close and the exposure, rebuilt from the trades.

    A trade entered at the open of candle ``s`` and exited at candle ``e`` is held at the closes of
    ``s .. e-1``; its cost leaves the cash at ``s`` and its proceeds arrive at ``e``. ``e`` is the candle of a
    risk exit (which happens inside it, so the candle counts as exposed), the candle at whose open a signal,
    max-holding or manual exit fills, or for ``end_of_data`` the candle whose close it is timed at (the next
    candle's open): the instrument's last candle, the run's last one unless the instrument's data ends earlier.

    Args:
        times: shape (n,), int64: the open time of each candle of the curves.
        closes: shape (n, k), float64: each instrument's close at each time (0.0 before its first candle).
        slots, entry_time_seconds, cost, quantity, exit_time_seconds, exit_proceeds, exit_codes: shape (m,), one value a
            trade; ``exit_codes`` is ``NO_EXIT`` for a trade still open; ``exit_proceeds`` is
            ``exit_price * quantity - exit_fee``.
        starting_cash: quote currency.

    Returns:
        ``(equity, exposure)``: shape (n,) float64 quote currency, and shape (n,) bool.
    """
    n = times.shape[0]
    cash_delta = np.zeros(n)
    held_value = np.zeros(n)
    exposure = np.zeros(n, dtype=np.bool_)
    for row in range(slots.shape[0]):
        start = np.searchsorted(times, entry_time_seconds[row])
        if start >= n:
            continue
        cash_delta[start] -= cost[row]
        code = exit_codes[row]
        if code == NO_EXIT:
            end = n
            exposed_until = n
        else:
            last = n - 1
            if code == END_OF_DATA_CODE:
                # Timed at its instrument's last close (the next candle's open): the candle before that time,
                # which is the run's last one unless the instrument's data ends earlier.
                end = min(np.searchsorted(times, exit_time_seconds[row]) - 1, last)
            else:
                end = min(np.searchsorted(times, exit_time_seconds[row]), last)
            cash_delta[end] += exit_proceeds[row]
            risk = code in (STOP_LOSS_CODE, TAKE_PROFIT_CODE, TRAILING_STOP_CODE, END_OF_DATA_CODE)
            exposed_until = end + 1 if risk else end
        slot = slots[row]
        for j in range(start, end):
            held_value[j] += quantity[row] * closes[j, slot]
        for j in range(start, exposed_until):
            exposure[j] = True
    equity = np.empty(n)
    running = starting_cash
    for j in range(n):
        running += cash_delta[j]
        equity[j] = running + held_value[j]
    return equity, exposure
