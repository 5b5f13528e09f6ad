"""Barter's trading engine: pure Python and numpy (and TA-Lib for indicators); no Django.

The live cycle (``positions.cycle``) and the simulator call the very same functions here, so a strategy makes
the same trades in both. Modules: ``criteria`` (validation of the criteria JSON), ``indicators`` (TA-Lib),
``conditions`` (evaluation over candles), ``fills`` (slippage and fees), ``exits`` (stop-loss, take-profit,
trailing stop, max holding), ``sizing``, ``step`` (what happens at one candle boundary), ``backtest`` (the loop
over history) and ``statistics``.
"""
