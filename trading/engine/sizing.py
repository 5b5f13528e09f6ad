"""Position sizing (CRITERIA.md "Sizing")."""

from __future__ import annotations

from trading.engine.criteria import Sizing

#: Entries that would spend less than this fraction of equity are skipped: what is left after spending "all"
#: the cash is rounding dust (float in the backtest, Decimal live), not money to open a position with.
MIN_SPEND_RATIO = 1e-6


def entry_quantity(
    *, sizing: Sizing, equity: float, cash: float, fill_price: float, fee_rate: float
) -> float:
    """Return how many base units an entry buys, or 0.0 when there is no cash to spend.

    ``equity_fraction`` spends ``value * equity``, ``fixed_quote`` spends ``value``; never more than ``cash``,
    fee included: ``quantity = spend / (fill_price * (1 + fee_rate))``. A spend below ``MIN_SPEND_RATIO`` of
    equity is dust and buys nothing.

    Args:
        sizing: the criteria's sizing.
        equity: cash plus open positions at this boundary's prices, quote currency.
        cash: free cash, quote currency.
        fill_price: the buy fill price (slippage included), > 0.
        fee_rate: fee as a fraction of notional.

    Returns:
        Base units, >= 0.
    """
    wanted = sizing.value * equity if sizing.method == "equity_fraction" else sizing.value
    spend = min(wanted, cash)
    if spend <= MIN_SPEND_RATIO * equity or fill_price <= 0:
        return 0.0
    return spend / (fill_price * (1 + fee_rate))
