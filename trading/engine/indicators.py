"""Indicator series for criteria operands, computed with TA-Lib over every candle given.

Every function returns a float64 array of shape (n,) aligned with the candles, NaN while the indicator warms up
(and wherever an input is NaN). Definitions (TA-Lib's, see https://ta-lib.org/functions/):
``sma`` simple moving average; ``ema`` exponential, seeded with the SMA of its first ``period`` values;
``rsi`` Wilder's relative strength index (0-100); ``roc`` the fractional change over ``period`` candles,
``close[t] / close[t - period] - 1`` (TA-Lib ROCP: 0.05 = +5 %); ``highest``/``lowest`` the max/min of the last
``period`` values including the current one; ``atr`` Wilder's average true range; ``bb_*`` Bollinger bands
(SMA +- ``stddev`` population standard deviations); ``macd*`` MACD line (EMA fast - EMA slow), its signal
(EMA of the line) and histogram (line - signal).
"""

from __future__ import annotations

import numpy as np
import talib

from trading.engine.criteria import Operand
from trading.engine.types import CandleArrays


def indicator_series(
    operand: Operand, candles: CandleArrays, cache: dict[Operand, np.ndarray] | None = None
) -> np.ndarray:
    """Return the values of ``operand`` at every candle.

    Args:
        operand: an indicator operand (not ``"value"``); its ``shift`` is applied.
        candles: the instrument's candles, oldest first.
        cache: optional memo shared across the operands of one evaluation.

    Returns:
        shape (n,), float64; NaN during warm-up and for the first ``shift`` candles.
    """
    if cache is not None and operand in cache:
        return cache[operand]
    base = _unshifted(operand, candles)
    if operand.shift:
        shifted = np.full_like(base, np.nan)
        if operand.shift < base.shape[0]:
            shifted[operand.shift :] = base[: -operand.shift]
        base = shifted
    if cache is not None:
        cache[operand] = base
    return base


def _field(candles: CandleArrays, name: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(candles, name), dtype=np.float64)


def _unshifted(operand: Operand, candles: CandleArrays) -> np.ndarray:
    name = operand.indicator
    if name in ("open", "high", "low", "close", "volume"):
        return _field(candles, name)
    if len(candles) == 0:
        return np.empty(0, dtype=np.float64)
    close = _field(candles, "close")
    if name in ("sma", "ema"):
        source = _field(candles, operand.param("source"))
        function = talib.SMA if name == "sma" else talib.EMA
        return np.asarray(function(source, timeperiod=operand.param("period")), dtype=np.float64)
    if name == "rsi":
        return np.asarray(talib.RSI(close, timeperiod=operand.param("period")), dtype=np.float64)
    if name == "roc":
        return np.asarray(talib.ROCP(close, timeperiod=operand.param("period")), dtype=np.float64)
    if name in ("highest", "lowest"):
        source = _field(candles, operand.param("source"))
        function = talib.MAX if name == "highest" else talib.MIN
        return np.asarray(function(source, timeperiod=operand.param("period")), dtype=np.float64)
    if name == "atr":
        high, low = _field(candles, "high"), _field(candles, "low")
        return np.asarray(talib.ATR(high, low, close, timeperiod=operand.param("period")), dtype=np.float64)
    if name.startswith("bb_"):
        stddev = float(operand.param("stddev"))
        upper, middle, lower = talib.BBANDS(
            close,
            timeperiod=operand.param("period"),
            nbdevup=stddev,
            nbdevdn=stddev,
            matype=talib.MA_Type.SMA,
        )
        return np.asarray({"bb_upper": upper, "bb_middle": middle, "bb_lower": lower}[name], dtype=np.float64)
    if name.startswith("macd"):
        line, signal, histogram = talib.MACD(
            close,
            fastperiod=operand.param("fast"),
            slowperiod=operand.param("slow"),
            signalperiod=operand.param("signal"),
        )
        return np.asarray(
            {"macd": line, "macd_signal": signal, "macd_hist": histogram}[name], dtype=np.float64
        )
    raise ValueError(f"unknown indicator {name!r}")  # criteria_parse refuses it first
