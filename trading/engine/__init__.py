"""Barter's trading engine: pure Python and numpy (and TA-Lib for indicators, Numba for the loop); no Django.

The live cycle (``positions.cycle``) and the simulator call the very same functions here, so a strategy makes
the same trades in both. Modules:

- ``vocabulary``: the words written once: :class:`~trading.engine.vocabulary.ExitReason` and the statistics;
- ``criteria`` (validation of the criteria JSON) and ``limits`` (how large a document or a run may be);
- ``indicators``: the indicator registry (parameters and compute function of each); ``conditions`` evaluates
  criteria over candles;
- the compiled core: ``layout`` (codes and columns), ``rules`` (fills, fees, sizing, risk exits), ``boundary``
  (the open and close steps of one boundary), ``loop`` (every boundary of a backtest), ``curves`` (equity and
  exposure);
- ``exits`` and ``sizing`` (the rules with typed input), ``step`` (one boundary of the live cycle),
  ``backtest`` (the loop over history), ``statistics``, ``examples`` (the example criteria), ``warmup``.
"""
