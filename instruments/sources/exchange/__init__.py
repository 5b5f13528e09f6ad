"""Candles (and, for trading, orders) from exchanges through ccxt.

``client`` is the one factory of ccxt exchange objects and the one mapping of ccxt errors to Barter's errors;
``schemas`` turns ccxt OHLCV rows into candles; ``daily`` fetches completed daily candles in pages;
``source`` makes that the collect step's candle source; ``validation`` checks exchange ids and market symbols
without importing ccxt (the models use it).

:data:`ccxt` is the ccxt package, loaded on first use: importing it costs about 75 MB and 0.2 s, which every
web and worker process would otherwise pay at start-up whether or not any instrument or strategy uses an
exchange.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """Return module ``name``, executed on its first attribute access (``importlib.util.LazyLoader``, as in the
    "Implementing lazy imports" recipe of the importlib documentation); the module itself when already imported.

    Raises:
        ModuleNotFoundError: no module ``name`` is installed.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


#: The ccxt package, imported when first used.
ccxt = lazy_module("ccxt")
