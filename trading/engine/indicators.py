"""The indicator registry: each indicator's parameters and its compute function, in one table.

Adding an indicator is one :class:`Indicator` in :data:`INDICATORS` (and its test): the criteria parser
(:mod:`trading.engine.criteria`), the look-back limits (:mod:`trading.engine.limits`), the simulator's criteria
builder and the evaluation (:func:`trading.engine.conditions.indicator_series`) all read this table.

Every compute function returns a float64 array of shape (n,) aligned with the candles, NaN while the indicator
warms up (and wherever an input is NaN). Definitions (TA-Lib's, see https://ta-lib.org/functions/):
``sma`` simple moving average; ``ema`` exponential, seeded with the SMA of its first ``period`` values;
``rsi`` Wilder's relative strength index (0-100); ``roc`` the fractional change over ``period`` candles,
``close[t] / close[t - period] - 1`` (TA-Lib ROCP: 0.05 = +5 %); ``highest``/``lowest`` the max/min of the last
``period`` values including the current one; ``atr`` Wilder's average true range; ``bb_*`` Bollinger bands
(SMA +- ``stddev`` population standard deviations); ``macd*`` MACD line (EMA fast - EMA slow), its signal
(EMA of the line) and histogram (line - signal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import talib
from talib._ta_lib import MA_Type  # talib.MA_Type, where its type hints declare it

from trading.engine.types import CandleArrays

#: The candle fields an operand may read directly (and a ``source`` parameter may name).
PRICE_FIELDS = ("open", "high", "low", "close", "volume")


#: Parameter kinds, as the criteria parser checks them: ``period`` an integer >= 1, ``period2`` an integer >= 2
#: (TA-Lib's MAX, MIN, RSI, BBANDS and MACD refuse 1 with TA_BAD_PARAM), ``stddev`` a number in (0, MAX_STDDEV],
#: ``source`` one of :data:`PRICE_FIELDS`, ``source_hlc`` one of high, low, close.
PARAM_KINDS = ("period", "period2", "stddev", "source", "source_hlc")


#: The kinds that are a number of candles looked back over (bounded by the candles a run has).
LOOKBACK_KINDS = ("period", "period2")


#: The parameters of an indicator: name -> ``(kind, default)``; a default of None means required.
Params = dict[str, tuple[str, Any]]


#: ``compute(candles, params)``: params hold every parameter, defaults filled in.
Compute = Callable[[CandleArrays, Mapping[str, Any]], np.ndarray]


#: ``check(params) -> [(param, message), ...]``: rules across parameters, run once each one is valid alone.
Check = Callable[[Mapping[str, Any]], list[tuple[str, str]]]


def _no_check(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    return []


@dataclass(frozen=True)
class Indicator:
    """One indicator of the criteria format.

    Attributes:
        name: as written in criteria (``"sma"``).
        params: see :data:`Params`, in the order the builder shows them.
        compute: see :data:`Compute`; shape (n,) float64 out, NaN while warming up.
        check: see :data:`Check`.
        scale: what its values are measured in, for charts: ``"price"`` (a price level of the instrument, drawn
            over its candles: ``bb_upper``, ``high``), ``"volume"``, ``"source"`` (that of its ``source``
            parameter: ``sma`` of closes is a price, of volumes a volume) or ``"own"`` (a scale of its own,
            drawn apart: ``rsi`` 0-100, ``roc`` a fraction, ``atr`` and ``macd`` price differences).
    """

    name: str
    params: Params
    compute: Compute
    check: Check = field(default=_no_check)
    scale: str = "own"


def _field(candles: CandleArrays, name: str) -> np.ndarray:
    return np.ascontiguousarray(getattr(candles, name), dtype=np.float64)


def _price(name: str) -> Indicator:
    scale = "volume" if name == "volume" else "price"
    return Indicator(name, {}, lambda candles, params: _field(candles, name), scale=scale)


def _talib_on_source(name: str, function: Callable[..., Any], params: Params) -> Indicator:
    def compute(candles: CandleArrays, values: Mapping[str, Any]) -> np.ndarray:
        source = _field(candles, values["source"])
        return np.asarray(function(source, timeperiod=values["period"]), dtype=np.float64)

    return Indicator(name, params, compute, scale="source")


def _talib_on_close(name: str, function: Callable[..., Any], params: Params) -> Indicator:
    def compute(candles: CandleArrays, values: Mapping[str, Any]) -> np.ndarray:
        return np.asarray(function(_field(candles, "close"), timeperiod=values["period"]), dtype=np.float64)

    return Indicator(name, params, compute)


def _atr(candles: CandleArrays, values: Mapping[str, Any]) -> np.ndarray:
    high, low, close = _field(candles, "high"), _field(candles, "low"), _field(candles, "close")
    return np.asarray(talib.ATR(high, low, close, timeperiod=values["period"]), dtype=np.float64)


def _bollinger(band: int) -> Compute:
    def compute(candles: CandleArrays, values: Mapping[str, Any]) -> np.ndarray:
        stddev = float(values["stddev"])
        bands = talib.BBANDS(
            _field(candles, "close"),
            timeperiod=values["period"],
            nbdevup=stddev,
            nbdevdn=stddev,
            matype=MA_Type.SMA,
        )
        return np.asarray(bands[band], dtype=np.float64)  # (upper, middle, lower)

    return compute


def _macd(part: int) -> Compute:
    def compute(candles: CandleArrays, values: Mapping[str, Any]) -> np.ndarray:
        parts = talib.MACD(
            _field(candles, "close"),
            fastperiod=values["fast"],
            slowperiod=values["slow"],
            signalperiod=values["signal"],
        )
        return np.asarray(parts[part], dtype=np.float64)  # (line, signal, histogram)

    return compute


def _fast_below_slow(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    fast, slow = params.get("fast"), params.get("slow")
    if isinstance(fast, int) and isinstance(slow, int) and fast >= slow:
        return [("fast", f"must be below slow ({slow}), was {fast}")]
    return []


_AVERAGE: Params = {"period": ("period", None), "source": ("source", "close")}


_BANDS: Params = {"period": ("period2", None), "stddev": ("stddev", 2.0)}


_MACD: Params = {"fast": ("period2", 12), "slow": ("period2", 26), "signal": ("period", 9)}


#: Every indicator of the criteria format, by name, in the order the builder lists them.
INDICATORS: dict[str, Indicator] = {
    indicator.name: indicator
    for indicator in (
        *(_price(name) for name in PRICE_FIELDS),
        _talib_on_source("sma", talib.SMA, _AVERAGE),
        _talib_on_source("ema", talib.EMA, _AVERAGE),
        _talib_on_close("rsi", talib.RSI, {"period": ("period2", None)}),
        _talib_on_close("roc", talib.ROCP, {"period": ("period", None)}),
        # TA-Lib's MAX and MIN take periods from 2 (1 failed with TA_BAD_PARAM).
        _talib_on_source(
            "highest", talib.MAX, {"period": ("period2", None), "source": ("source_hlc", "high")}
        ),
        _talib_on_source("lowest", talib.MIN, {"period": ("period2", None), "source": ("source_hlc", "low")}),
        Indicator("atr", {"period": ("period", None)}, _atr),
        Indicator("bb_upper", _BANDS, _bollinger(0), scale="price"),
        Indicator("bb_middle", _BANDS, _bollinger(1), scale="price"),
        Indicator("bb_lower", _BANDS, _bollinger(2), scale="price"),
        Indicator("macd", _MACD, _macd(0), _fast_below_slow),
        Indicator("macd_signal", _MACD, _macd(1), _fast_below_slow),
        Indicator("macd_hist", _MACD, _macd(2), _fast_below_slow),
    )
}


#: Parameters of each indicator: name -> {param: (kind, default)} (:data:`Params`).
INDICATOR_PARAMS: dict[str, Params] = {name: indicator.params for name, indicator in INDICATORS.items()}


def indicator_scale(name: str, params: Mapping[str, Any]) -> str:
    """The scale of indicator ``name`` with ``params`` (``Indicator.scale``, a ``"source"`` resolved): ``"price"``,
    ``"volume"`` or ``"own"``.

    Raises:
        KeyError: ``name`` is no indicator of :data:`INDICATORS`.
    """
    scale = INDICATORS[name].scale
    if scale == "source":
        return "volume" if params.get("source") == "volume" else "price"
    return scale


def lookback_params() -> frozenset[str]:
    """The parameter names that are a number of candles looked back over, of every indicator of the registry."""
    return frozenset(
        param
        for indicator in INDICATORS.values()
        for param, (kind, _) in indicator.params.items()
        if kind in LOOKBACK_KINDS
    )
