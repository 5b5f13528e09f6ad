"""The example criteria, written once: the SMA crossover that the simulator's form starts from, the shipped
"SMA 20/50 trend" strategy (:mod:`trading.examples`), the tests and the documentation's examples build on.

Pure data (a criteria document, ``CRITERIA.md`` format version 1), like the rest of the engine.
"""

from __future__ import annotations

from typing import Any

from trading.engine.criteria import VERSION


def sma_cross_criteria(*, fast_period: int = 10, slow_period: int = 20) -> dict[str, Any]:
    """Return a new criteria document: enter when SMA(``fast_period``) crosses above SMA(``slow_period``) of the
    close, exit when it crosses back below.

    Only ``version``, ``side``, ``entry`` and ``exit`` are set: :func:`trading.engine.criteria.criteria_parse`
    fills in the rest (no stops, all of the equity, fee 0.1 %, no slippage); callers add their own. Each call
    returns a fresh document, so a caller may change it.

    Args:
        fast_period: candles of the fast average, >= 1.
        slow_period: candles of the slow average, >= 1 (above ``fast_period`` for a trend signal).
    """
    fast = {"indicator": "sma", "period": fast_period}
    slow = {"indicator": "sma", "period": slow_period}
    return {
        "version": VERSION,
        "side": "long",
        "entry": {"all": [{"left": fast, "op": "crosses_above", "right": dict(slow)}]},
        "exit": {"any": [{"left": dict(fast), "op": "crosses_below", "right": dict(slow)}]},
    }
