"""Fill prices and fees (CRITERIA.md "Fills"): one formula for the simulator and the live cycle.

A buy fills at ``price * (1 + slippage_ratio)``, a sell at ``price * (1 - slippage_ratio)``; each fill pays
``fee_rate * fill_price * quantity``. All amounts are float64 quote currency; the live path converts the
results to ``Decimal`` once, on the way out. The functions are the compiled ones of
:mod:`trading.engine.kernel`, which the backtest loop calls too.
"""

from __future__ import annotations

from trading.engine.kernel import buy_fill_price, fill_fee, sell_fill_price

__all__ = ["buy_fill_price", "fill_fee", "sell_fill_price"]
