"""Fill prices and fees (CRITERIA.md "Fills"): one formula for the simulator and the live cycle.

A buy fills at ``price * (1 + slippage_ratio)``, a sell at ``price * (1 - slippage_ratio)``; each fill pays
``fee_rate * fill_price * quantity``. All amounts are float64 quote currency; the live path converts the
results to ``Decimal`` once, on the way out.
"""

from __future__ import annotations


def buy_fill_price(price: float, slippage_ratio: float) -> float:
    """Return what a buy at ``price`` pays per unit: ``price * (1 + slippage_ratio)``."""
    return price * (1 + slippage_ratio)


def sell_fill_price(price: float, slippage_ratio: float) -> float:
    """Return what a sell at ``price`` receives per unit: ``price * (1 - slippage_ratio)``."""
    return price * (1 - slippage_ratio)


def fill_fee(fill_price: float, quantity: float, fee_rate: float) -> float:
    """Return the fee of one fill: ``fee_rate * fill_price * quantity`` (quote currency)."""
    return fee_rate * fill_price * quantity
