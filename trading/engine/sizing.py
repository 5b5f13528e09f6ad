"""Position sizing (CRITERIA.md "Sizing"): the compiled rule of :mod:`trading.engine.rules`, with typed input."""

from __future__ import annotations

from trading.engine import layout, rules
from trading.engine.criteria import Sizing
from trading.engine.layout import MIN_SPEND_RATIO

__all__ = ["MIN_SPEND_RATIO", "entry_quantity", "sizing_code"]


def sizing_code(sizing: Sizing) -> int:
    """Return the kernel's code of a sizing method (``SIZING_EQUITY_FRACTION``, ``SIZING_FIXED_QUOTE`` or
    ``SIZING_RISK``)."""
    return {
        "equity_fraction": layout.SIZING_EQUITY_FRACTION,
        "fixed_quote": layout.SIZING_FIXED_QUOTE,
        "risk": layout.SIZING_RISK,
    }[sizing.method]


def entry_quantity(
    *, sizing: Sizing, equity: float, cash: float, fill_price: float, fee_rate: float
) -> float:
    """Return how many base units an entry buys, or 0.0 when there is no cash to spend.

    ``equity_fraction`` spends ``value * equity``, ``fixed_quote`` spends ``value``; never more than ``cash``,
    fee included: ``quantity = spend / (fill_price * (1 + fee_rate))``. A spend below ``MIN_SPEND_RATIO`` of
    equity is dust and buys nothing (:func:`trading.engine.rules.entry_quantity`).

    Args:
        sizing: the criteria's sizing.
        equity: cash plus open positions at this boundary's prices, quote currency.
        cash: free cash, quote currency.
        fill_price: the buy fill price (slippage included), > 0.
        fee_rate: fee as a fraction of notional.

    Returns:
        Base units, >= 0.

    Raises:
        ValueError: risk-based sizing, which needs the stop (:func:`trading.engine.rules.risk_quantity`).
    """
    if sizing.method == "risk":
        raise ValueError("risk-based sizing needs the stop: see trading.engine.rules.risk_quantity")
    return float(
        rules.entry_quantity(
            sizing_code(sizing),
            float(sizing.value),
            float(equity),
            float(cash),
            float(fill_price),
            float(fee_rate),
        )
    )
