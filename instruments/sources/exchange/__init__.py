"""Candles (and, for trading, orders) from exchanges through ccxt.

``client`` is the one factory of ccxt exchange objects and the one mapping of ccxt errors to Barter's errors;
``schemas`` turns ccxt OHLCV rows into candles; ``daily`` fetches completed daily candles in pages;
``validation`` checks exchange ids and market symbols without importing ccxt (the models use it).
"""
