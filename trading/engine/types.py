"""Value types shared by the engine's modules. Prices and amounts are float64 in quote currency here; the live
path converts them to ``Decimal`` once, on the way out (style guide rule 5)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trading.engine.vocabulary import EXIT_CODES, RiskLimit, exit_reason_value

SECONDS_PER_DAY = 86_400

#: An account whose equity is at most this fraction of its starting cash is ruined: it makes no more entries
#: (:data:`trading.engine.layout.RULE_RUIN_EQUITY`), and its equity curve is 0 from there on
#: (:func:`trading.engine.statistics.equity_at_ruin`). A billionth: far below any real balance, far above the
#: float rounding of a year of one-minute trades.
RUIN_TOLERANCE_RATIO = 1e-9


@dataclass(frozen=True)
class CandleArrays:
    """The candles of one instrument, oldest first.

    Attributes:
        symbol: the instrument's symbol (orders instruments that trigger together).
        open_time_seconds: shape (n,), int64, seconds since 1970-01-01 UTC of each candle's start.
        open, high, low, close: shape (n,), float64, quote currency.
        volume: shape (n,), float64, base units; NaN where unknown.
    """

    symbol: str
    open_time_seconds: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.open_time_seconds.shape[0])


@dataclass(frozen=True)
class AmbiguousCandle:
    """A daily candle of an open trade whose stop and take-profit were both inside it, its open through neither
    (docs/criteria.md "Finer candles inside a daily candle").

    Attributes:
        symbol: the instrument's symbol.
        open_time_seconds: the candle's open, seconds since epoch (UTC): its day.
        stop_price: the stop in force during the candle (the higher of the stop-loss and the trailing level),
            quote currency.
        take_profit_price: the take-profit, quote currency.
        resolution: ``stop_loss``, ``trailing_stop`` or ``take_profit``, the level the finer candles crossed
            first; ``pessimistic`` when no finer candle could tell (none stored, or one held both levels too):
            the stop was taken.
    """

    symbol: str
    open_time_seconds: int
    stop_price: float
    take_profit_price: float
    resolution: str


@dataclass(frozen=True)
class Halt:
    """A halt of an account's entries by a risk limit beginning or ending (docs/criteria.md "Risk limits").

    Attributes:
        boundary_seconds: the boundary it happened at (the open of candle t + 1), seconds since epoch.
        limit: ``daily_loss_limit_ratio`` or ``max_drawdown_halt_ratio`` (:class:`~trading.engine.vocabulary.
            RiskLimit`).
        began: True when the halt began there, False when it ended.
        equity: the equity measured there, quote currency.
        reference_equity: what the loss was measured from: the day's starting equity, or the peak (the new peak
            when a drawdown halt ends by its resume rule), quote currency.
        book: in a portfolio, the index of the strategy whose own limit it is; None for the account's.
    """

    boundary_seconds: int
    limit: RiskLimit
    began: bool
    equity: float
    reference_equity: float
    book: int | None = None


@dataclass(frozen=True)
class LimitRefusal:
    """An entry signal a risk limit refused: at ``boundary_seconds`` (seconds since epoch), on ``symbol``."""

    boundary_seconds: int
    symbol: str
    limit: RiskLimit


@dataclass
class Trade:
    """One position of a backtest or of the live cycle, open or closed.

    Attributes:
        symbol: the instrument's symbol.
        side: ``"long"``.
        entry_index: index of the candle at whose open the entry filled.
        entry_time_seconds: seconds since epoch (UTC) of that open.
        entry_price: fill price, slippage included, quote currency.
        quantity: base units, > 0.
        entry_fee: quote currency.
        stop_loss_price, take_profit_price: the fixed levels set at entry, or None.
        trailing_stop_price: the trailing level in force (it only rises), or None.
        exit_index, exit_time_seconds, exit_price, exit_fee, exit_reason: set when closed (``exit_time_seconds``
            since epoch; for a stop, the open time of the candle in which it was hit).
        pnl: ``exit_price * quantity - exit_fee - (entry_price * quantity + entry_fee)``, quote currency.
        pnl_ratio: ``pnl / (entry_price * quantity + entry_fee)``: the fraction of the money put in.
    """

    symbol: str
    side: str
    entry_index: int
    entry_time_seconds: int
    entry_price: float
    quantity: float
    entry_fee: float
    stop_loss_price: float | None = None
    take_profit_price: float | None = None
    trailing_stop_price: float | None = None
    exit_index: int | None = None
    exit_time_seconds: int | None = None
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


@dataclass(frozen=True)
class TradeLog:
    """The trades of a run as columns (the compiled backtest's output), m trades in entry order (then symbol).

    Attributes:
        symbols: the instruments' symbols; ``slot`` indexes them.
        slot, entry_index, entry_time_seconds: shape (m,), int64 (times in seconds since epoch, UTC).
        exit_index, exit_time_seconds: shape (m,), int64; -1 while the trade is open.
        exit_code: shape (m,), int64: the reason's code (:class:`trading.engine.vocabulary.ExitReason`), 0 while open.
        entry_price, quantity, entry_fee, stop_loss_price, take_profit_price, trailing_stop_price: shape (m,),
            float64 (quote currency; quantity in base units); NaN for an absent level.
        exit_price, exit_fee, pnl, pnl_ratio: shape (m,), float64; NaN while open.

    The same fields as :class:`Trade`, with the same meanings; :meth:`to_trades` and :meth:`from_trades`
    convert between the two.
    """

    symbols: tuple[str, ...]
    slot: np.ndarray
    entry_index: np.ndarray
    entry_time_seconds: np.ndarray
    exit_index: np.ndarray
    exit_time_seconds: np.ndarray
    exit_code: np.ndarray
    entry_price: np.ndarray
    quantity: np.ndarray
    entry_fee: np.ndarray
    stop_loss_price: np.ndarray
    take_profit_price: np.ndarray
    trailing_stop_price: np.ndarray
    exit_price: np.ndarray
    exit_fee: np.ndarray
    pnl: np.ndarray
    pnl_ratio: np.ndarray

    def __len__(self) -> int:
        return int(self.slot.shape[0])

    @property
    def closed(self) -> np.ndarray:
        """shape (m,), bool: the trades that have exited."""
        return np.asarray(self.exit_code != 0)

    def to_trades(self) -> list[Trade]:
        """Return the trades as :class:`Trade` values (None for NaN levels and for the exit of an open trade)."""

        def optional(values: np.ndarray) -> list[float | None]:
            return [None if v != v else v for v in values.tolist()]  # v != v: NaN

        columns = zip(
            self.slot.tolist(),
            self.entry_index.tolist(),
            self.entry_time_seconds.tolist(),
            self.entry_price.tolist(),
            self.quantity.tolist(),
            self.entry_fee.tolist(),
            optional(self.stop_loss_price),
            optional(self.take_profit_price),
            optional(self.trailing_stop_price),
            self.exit_code.tolist(),
            self.exit_index.tolist(),
            self.exit_time_seconds.tolist(),
            self.exit_price.tolist(),
            self.exit_fee.tolist(),
            self.pnl.tolist(),
            self.pnl_ratio.tolist(),
            strict=True,
        )
        trades = []
        for (
            slot,
            entry_index,
            entry_time_seconds,
            entry_price,
            quantity,
            entry_fee,
            stop_loss,
            take_profit,
            trailing,
            code,
            exit_index,
            exit_time_seconds,
            exit_price,
            exit_fee,
            pnl,
            pnl_ratio,
        ) in columns:
            closed = code != 0
            trades.append(
                Trade(
                    symbol=self.symbols[slot],
                    side="long",
                    entry_index=entry_index,
                    entry_time_seconds=entry_time_seconds,
                    entry_price=entry_price,
                    quantity=quantity,
                    entry_fee=entry_fee,
                    stop_loss_price=stop_loss,
                    take_profit_price=take_profit,
                    trailing_stop_price=trailing,
                    exit_index=exit_index if closed else None,
                    exit_time_seconds=exit_time_seconds if closed else None,
                    exit_price=exit_price if closed else None,
                    exit_fee=exit_fee if closed else None,
                    exit_reason=exit_reason_value(code),
                    pnl=pnl if closed else None,
                    pnl_ratio=pnl_ratio if closed else None,
                )
            )
        return trades

    @classmethod
    def from_trades(cls, trades: Sequence[Trade]) -> TradeLog:
        """Return the columns of ``trades``.

        Raises:
            ValueError: a closed trade (``exit_index`` set) lacks ``exit_time_seconds``, ``exit_fee``, ``pnl`` or
                ``pnl_ratio``, or its ``exit_reason`` is not one of the engine's reasons.
        """
        symbols = tuple(sorted({trade.symbol for trade in trades}))
        slot_of = {symbol: i for i, symbol in enumerate(symbols)}
        codes = []
        for trade in trades:
            if trade.is_open:
                codes.append(0)
                continue
            if (
                trade.pnl is None
                or trade.pnl_ratio is None
                or trade.exit_time_seconds is None
                or trade.exit_fee is None
            ):
                raise ValueError(
                    f"closed trade {trade.symbol} entered at index {trade.entry_index} must have exit_time_seconds, "
                    f"exit_fee, pnl and pnl_ratio set; was exit_time_seconds={trade.exit_time_seconds}, "
                    f"exit_fee={trade.exit_fee}, pnl={trade.pnl}, pnl_ratio={trade.pnl_ratio}"
                )
            if trade.exit_reason not in EXIT_CODES:
                raise ValueError(
                    f"closed trade {trade.symbol} entered at index {trade.entry_index} has exit_reason "
                    f"{trade.exit_reason!r}; expected one of {', '.join(EXIT_CODES)}"
                )
            codes.append(EXIT_CODES[trade.exit_reason])

        def ints(values: list[int | None]) -> np.ndarray:
            return np.array([-1 if v is None else v for v in values], dtype=np.int64)

        def floats(values: list[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        return cls(
            symbols=symbols,
            slot=ints([slot_of[t.symbol] for t in trades]),
            entry_index=ints([t.entry_index for t in trades]),
            entry_time_seconds=ints([t.entry_time_seconds for t in trades]),
            exit_index=ints([t.exit_index for t in trades]),
            exit_time_seconds=ints([t.exit_time_seconds for t in trades]),
            exit_code=np.array(codes, dtype=np.int64),
            entry_price=floats([t.entry_price for t in trades]),
            quantity=floats([t.quantity for t in trades]),
            entry_fee=floats([t.entry_fee for t in trades]),
            stop_loss_price=floats([t.stop_loss_price for t in trades]),
            take_profit_price=floats([t.take_profit_price for t in trades]),
            trailing_stop_price=floats([t.trailing_stop_price for t in trades]),
            exit_price=floats([t.exit_price for t in trades]),
            exit_fee=floats([t.exit_fee for t in trades]),
            pnl=floats([t.pnl for t in trades]),
            pnl_ratio=floats([t.pnl_ratio for t in trades]),
        )
