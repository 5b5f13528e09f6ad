"""Value types shared by the engine's modules. Prices and amounts are float64 in quote currency here; the live
path converts them to ``Decimal`` once, on the way out (style guide rule 5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class CandleArrays:
    """The candles of one instrument, oldest first.

    Attributes:
        symbol: the instrument's symbol (orders instruments that trigger together).
        open_time: shape (n,), int64, seconds since 1970-01-01 UTC of each candle's start.
        open, high, low, close: shape (n,), float64, quote currency.
        volume: shape (n,), float64, base units; NaN where unknown.
    """

    symbol: str
    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.open_time.shape[0])


@dataclass
class Trade:
    """One position of a backtest or of the live cycle, open or closed.

    Attributes:
        symbol: the instrument's symbol.
        side: ``"long"``.
        entry_index: index of the candle at whose open the entry filled.
        entry_time: seconds since epoch (UTC) of that open.
        entry_price: fill price, slippage included, quote currency.
        quantity: base units, > 0.
        entry_fee: quote currency.
        stop_loss_price, take_profit_price: the fixed levels set at entry, or None.
        trailing_stop_price: the trailing level in force (it only rises), or None.
        exit_index, exit_time, exit_price, exit_fee, exit_reason: set when closed (exit_time in seconds since
            epoch; for a stop, the open time of the candle in which it was hit).
        pnl: ``exit_price * quantity - exit_fee - (entry_price * quantity + entry_fee)``, quote currency.
        pnl_ratio: ``pnl / (entry_price * quantity + entry_fee)``: the fraction of the money put in.
    """

    symbol: str
    side: str
    entry_index: int
    entry_time: int
    entry_price: float
    quantity: float
    entry_fee: float
    stop_loss_price: float | None = None
    take_profit_price: float | None = None
    trailing_stop_price: float | None = None
    exit_index: int | None = None
    exit_time: int | None = None
    exit_price: float | None = None
    exit_fee: float | None = None
    exit_reason: str | None = None
    pnl: float | None = None
    pnl_ratio: float | None = None

    @property
    def is_open(self) -> bool:
        """True until the trade has exited."""
        return self.exit_index is None

    @property
    def cost(self) -> float:
        """What the entry cost: notional plus fee, quote currency."""
        return self.entry_price * self.quantity + self.entry_fee
