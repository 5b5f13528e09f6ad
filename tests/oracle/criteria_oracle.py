"""A plain-Python, day-by-day oracle of the trade-criteria contract, written from the text of CRITERIA.md alone.

It imports nothing from ``trading/`` (no engine code, no engine indicators): the indicators are plain loops
here, and the run is a loop over the daily boundaries that follows the contract's sentences one by one. It is
meant to be slow and obvious, so that the engine can be checked against it.

Vocabulary. Times are seconds since 1970-01-01 UTC; prices and amounts are quote currency; quantities base units.
Boundary ``b`` is the open of the candle opening at ``b``: candle ``t`` (the one opening at ``b - 1 day``) has
closed, and what its close decided acts at the open of ``b``. A run from ``start`` to ``end`` visits every
boundary ``start <= b <= end`` one day apart.

The one-boundary order, as CRITERIA.md states it ("When things happen"), for each boundary ``b``:

1. risk exits (stop-loss, take-profit, trailing stop) that happened during candle ``t`` are settled at their
   levels (or at candle ``t``'s open when the open had already gapped through a level); the cash is back before
   the entries below;
2. entries whose condition held on candle ``t`` fill at the open of ``b``, in symbol order, while cash lasts,
   sized on the equity at this boundary's prices;
3. signal and ``max_holding_days`` exits fill at the open of ``b``; their cash is only used from the next
   boundary on (automatically so: the entries of ``b`` were made before).

With ``close_at_end`` the last candle (the one opening at ``end``) is checked for risk exits like every other,
then what is still open is sold at the last close with exit reason ``end_of_data`` (slippage and fee as for
any sell).

Choices where CRITERIA.md is silent (taken from the engine's public docstrings: ``trading.engine.types.Trade``,
``trading.engine.backtest.backtest`` / ``BacktestResult``, ``trading.engine.criteria.Criteria``,
``trading.engine.sizing.entry_quantity``, ``trading.engine.boundary.equity_at_boundary``,
``trading.engine.rules.risk_exit_code``):

- ``entry_index`` / ``entry_time_seconds``: the candle opening at the boundary, and the boundary itself.
- A risk exit during candle ``t``: ``exit_index = t``, ``exit_time_seconds`` = the open time of candle ``t``.
  A signal or max-holding exit at boundary ``b``: the candle opening at ``b``, and ``b``.
  An ``end_of_data`` exit: the last candle at or before ``end``, timed at that candle's close (its open + 1 day).
- ``pnl = exit_price * quantity - exit_fee - (entry_price * quantity + entry_fee)``;
  ``pnl_ratio = pnl / (entry_price * quantity + entry_fee)``. Prices are fill prices (slippage included).
- Levels: stop-loss ``entry_price * (1 - ratio)``, take-profit ``entry_price * (1 + ratio)``, on the fill price.
- Risk priority within one candle: the effective stop is the higher of the stop-loss and the trailing level (the
  stop-loss when equal). In this order: the open at or below the stop fills the stop at the open; the open at or
  above the take-profit fills the take-profit at the open; the low at or below the stop fills at the stop; the high
  at or above the take-profit fills at the take-profit.
- Sizing: ``spend = min(wanted, cash)`` where ``wanted`` is ``value * equity`` or ``value``; the spend includes
  the fee: ``quantity = spend / (fill_price * (1 + fee_rate))``. A spend at or below ``1e-6 * equity`` is dust
  and buys nothing (the engine's ``MIN_SPEND_RATIO``). Equity for sizing is one value per boundary ("sized on
  the equity at this boundary", the engine's ``entries_at_boundary``), taken after the risk exits of step 1 and
  before any entry of step 2: cash plus every open position at the boundary's raw price (the open at ``b``; else
  candle ``t``'s close; else its entry price). The text ("equity = cash + open positions at the fill price")
  could also be read as re-valued before each fill, which would make the second of two same-boundary entries
  smaller by the first one's fee and slippage; the engine does not, and neither does the oracle.
- ``max_holding_days = N``: exit at the first open at least ``N`` days after the entry (``b - entry >= N`` days)
  at a boundary whose candle t is stored: like a signal exit, it is decided on candle t (docs/criteria.md "Exits
  at the open across a gap"; the live close step waits for the day's candle too).
- A held position is marked, for sizing and the limits, at the next open, else candle t's close, else the close
  of its last candle before the boundary (across a gap), as the equity curve marks it.
  A position entered at boundary ``b`` is not exited by a signal or max-holding at that same boundary (its exit
  condition on candle ``t`` held before it existed); when both a signal and max-holding apply, the reason is
  ``signal``.
- An instrument trades only inside its stored candles: an entry or an exit at the open needs a candle opening at
  ``b`` and (for a signal) the candle ``t``; risk exits need candle ``t``. A day without a candle is skipped.
- Equity curve: one value per boundary ``b``: cash plus each open position marked at the close of its
  instrument's last candle at or before ``b``. A risk exit during candle ``b`` counts as done at ``b`` (it
  happened before that candle's close), except during the last candle of a run without ``close_at_end`` (the run
  ends before it is settled, the trade is reported open). An ``end_of_data`` sale counts as done at the last
  boundary.
- Conditions: a comparison with an undefined operand (warm-up, NaN) is false; ``not`` negates that false.
  ``crosses_above``/``crosses_below`` need all four values defined and are false on the first candle.

Risk-based sizing and risk limits (docs/criteria.md, "Risk-based sizing" and "Risk limits"), written from that
text alone; where it is silent the choice is said here:

- Risk sizing: ``quantity = value * equity / (fill * (1 + fee) - stop * (1 - slip) * (1 - fee))``, at most
  ``cash / (fill * (1 + fee))``; dust when ``quantity * fill * (1 + fee) <= 1e-6 * equity``. The stop is
  ``fill * (1 - stop_loss_ratio)`` or, with an ATR stop, ``fill - multiple * ATR[t]`` (and is then the trade's
  stop-loss); an undefined ATR or a stop at or below 0 refuses the signal (``risk_stop``).
- The limits are evaluated at every boundary of the run (with or without signals) on one equity, after the risk
  exits of candle t and before the entries: the equity the entries are sized on. That equity is "measured" there.
- Daily loss: the day of boundary ``b`` is the UTC day of ``b - 1 day``; on a new day the day's starting equity
  is the equity measured at the previous boundary (the first boundary: its own). A halt is in force from the first
  boundary whose equity is below ``(1 - ratio)`` of it to the end of the day. A halt is reported when it begins
  (reference: the day's starting equity) and when it ends: with its day, at the first boundary of a later day
  (reference: that day's starting equity; the text: "each halt's beginning and end"). Each day's halt is its own
  ("the next day starts afresh"): when the next day's first boundary breaches the limit again, the end of the
  day before's halt and the beginning of a new one are both reported there, in that order.
- Risk sizing with a stop exactly at the fill (an ATR of 0) and neither fee nor slippage: a unit risks nothing,
  the formula divides by 0; the oracle buys nothing and reports no refusal (the engine's ``rules.risk_quantity``
  docstring: "there is no loss to size on").
- Drawdown halt: the peak is the highest equity measured so far, this boundary's included. It begins when the
  equity is below ``(1 - ratio) * peak`` (reference: the peak); it ends at the first boundary at which the
  equity is at or above that line (reference: the peak), or, with ``drawdown_resume_days``, at the first one at
  least that many days after it began, the peak then reset to the equity there (reference: the new peak).
  When both ends apply at once, the recovery is the end (no reset: the resume rule is for an account that did
  not recover).
- Refusals in the text's order: a halt (daily loss before drawdown), the cooldown (``b <= exit time of the
  instrument's last stop-loss + days``), ``max_open_positions`` (positions open now, those entered at this
  boundary included), ``max_exposure_ratio``, then ``risk_stop``. The exposure limit cuts the quantity the sizing
  gives to ``room / fill``, ``room = ratio * equity - open value``, and refuses when the room is at most 1e-6 of
  the equity. Where the text is silent the oracle follows ``trading.engine.boundary.entries_at_boundary``'s
  docstring: the open value takes the positions open before the boundary at the boundary's raw prices (as the
  equity) and those entered at this boundary at their fill price (their notional, which the limit admitted); and
  the limit refuses only an entry that would buy something (a signal that finds no cash is skipped, no refusal,
  as before). A signal without a stop to size on has no quantity; it is refused by ``max_exposure_ratio`` when
  there is no room (listed first), else by ``risk_stop``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DAY_SECONDS = 86_400
#: Spends at or below this fraction of equity are rounding dust and buy nothing.
DUST_RATIO = 1e-6

NAN = math.nan
Series = list[float]


# ---------------------------------------------------------------------------------------------------------------
# Indicators: plain loops over lists of floats; NaN where undefined (warming up).
# ---------------------------------------------------------------------------------------------------------------


def sma(values: Series, period: int) -> Series:
    """Simple mean of the last ``period`` values (current included); first value at index ``period - 1``."""
    out = [NAN] * len(values)
    for i in range(period - 1, len(values)):
        total = 0.0
        for k in range(i - period + 1, i + 1):
            total += values[k]
        out[i] = total / period
    return out


def ema(values: Series, period: int) -> Series:
    """Exponential mean, alpha ``2 / (period + 1)``, seeded as TA-Lib does: the value at index ``period - 1`` is
    the simple mean of the first ``period`` values."""
    out = [NAN] * len(values)
    if len(values) < period:
        return out
    alpha = 2.0 / (period + 1)
    previous = sum(values[:period]) / period
    out[period - 1] = previous
    for i in range(period, len(values)):
        previous = values[i] * alpha + previous * (1.0 - alpha)
        out[i] = previous
    return out


def rsi(close: Series, period: int) -> Series:
    """Wilder's RSI (TA-Lib convention): the first average gain and loss are the simple means of the first
    ``period`` changes; then ``avg = (avg * (period - 1) + change) / period``. First value at index ``period``;
    0 when there was neither gain nor loss."""
    out = [NAN] * len(close)
    if len(close) <= period:
        return out
    gain = loss = 0.0
    for i in range(1, period + 1):
        change = close[i] - close[i - 1]
        if change > 0:
            gain += change
        else:
            loss -= change
    gain /= period
    loss /= period

    def value(g: float, lo: float) -> float:
        return 0.0 if g + lo == 0.0 else 100.0 * g / (g + lo)

    out[period] = value(gain, loss)
    for i in range(period + 1, len(close)):
        change = close[i] - close[i - 1]
        up = change if change > 0 else 0.0
        down = -change if change < 0 else 0.0
        gain = (gain * (period - 1) + up) / period
        loss = (loss * (period - 1) + down) / period
        out[i] = value(gain, loss)
    return out


def highest(values: Series, period: int) -> Series:
    """Maximum over the last ``period`` values, the current one included; first value at index ``period - 1``."""
    out = [NAN] * len(values)
    for i in range(period - 1, len(values)):
        out[i] = max(values[i - period + 1 : i + 1])
    return out


def lowest(values: Series, period: int) -> Series:
    """Minimum over the last ``period`` values, the current one included; first value at index ``period - 1``."""
    out = [NAN] * len(values)
    for i in range(period - 1, len(values)):
        out[i] = min(values[i - period + 1 : i + 1])
    return out


def atr(high: Series, low: Series, close: Series, period: int) -> Series:
    """Wilder's average true range (TA-Lib convention): true range ``TR[i] = max(high-low, |high-close[i-1]|,
    |low-close[i-1]|)`` from index 1; the first ATR, at index ``period``, is the mean of ``TR[1..period]``; then
    ``atr = (atr * (period - 1) + TR) / period``."""
    n = len(close)
    out = [NAN] * n
    if n <= period:
        return out
    tr = [NAN] * n
    for i in range(1, n):
        tr[i] = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
    previous = sum(tr[1 : period + 1]) / period
    out[period] = previous
    for i in range(period + 1, n):
        previous = (previous * (period - 1) + tr[i]) / period
        out[i] = previous
    return out


def roc(values: Series, period: int) -> Series:
    """Fractional change over ``period`` candles: ``(x[i] - x[i-period]) / x[i-period]`` (0.05 = +5 %)."""
    out = [NAN] * len(values)
    for i in range(period, len(values)):
        out[i] = (values[i] - values[i - period]) / values[i - period]
    return out


def shifted(values: Series, k: int) -> Series:
    """The value ``k`` candles earlier (undefined for the first ``k`` candles)."""
    if k == 0:
        return list(values)
    return [NAN] * min(k, len(values)) + values[: max(len(values) - k, 0)]


# ---------------------------------------------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------------------------------------------


def _defined(x: float) -> bool:
    return not math.isnan(x)


def operand_series(operand: dict[str, Any], candles: dict[str, Series]) -> Series:
    """The values of one operand on every candle (NaN where undefined), shape (n,).

    Args:
        operand: ``{"value": x}`` or ``{"indicator": name, ...}``, optionally with ``"shift": k``.
        candles: the instrument's ``open``, ``high``, ``low``, ``close``, ``volume`` as lists of floats.
    """
    n = len(candles["close"])
    if "value" in operand:
        series = [float(operand["value"])] * n
    else:
        name = operand["indicator"]
        period = int(operand.get("period", 0))
        if name in ("open", "high", "low", "close", "volume"):
            series = list(candles[name])
        elif name == "sma":
            series = sma(candles[operand.get("source", "close")], period)
        elif name == "ema":
            series = ema(candles[operand.get("source", "close")], period)
        elif name == "rsi":
            series = rsi(candles["close"], period)
        elif name == "roc":
            series = roc(candles["close"], period)
        elif name == "highest":
            series = highest(candles[operand["source"]], period)
        elif name == "lowest":
            series = lowest(candles[operand["source"]], period)
        elif name == "atr":
            series = atr(candles["high"], candles["low"], candles["close"], period)
        else:
            raise NotImplementedError(f"the oracle does not implement indicator {name!r}")
    return shifted(series, int(operand.get("shift", 0)))


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def condition_series(condition: dict[str, Any], candles: dict[str, Series]) -> list[bool]:
    """Whether ``condition`` holds on each candle (using data up to that candle's close), shape (n,)."""
    n = len(candles["close"])
    if "all" in condition:
        parts = [condition_series(c, candles) for c in condition["all"]]
        return [all(p[i] for p in parts) for i in range(n)]
    if "any" in condition:
        parts = [condition_series(c, candles) for c in condition["any"]]
        return [any(p[i] for p in parts) for i in range(n)]
    if "not" in condition:
        part = condition_series(condition["not"], candles)
        return [not x for x in part]
    left = operand_series(condition["left"], candles)
    right = operand_series(condition["right"], candles)
    op = condition["op"]
    out = [False] * n
    for i in range(n):
        a, b = left[i], right[i]
        if not (_defined(a) and _defined(b)):
            continue
        if op in _COMPARE:
            out[i] = _COMPARE[op](a, b)
            continue
        if i == 0 or not (_defined(left[i - 1]) and _defined(right[i - 1])):
            continue
        if op == "crosses_above":
            out[i] = a > b and left[i - 1] <= right[i - 1]
        elif op == "crosses_below":
            out[i] = a < b and left[i - 1] >= right[i - 1]
        else:
            raise ValueError(f"unknown op {op!r}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class OracleTrade:
    """One position (fields as the engine's ``Trade``; exit fields None while open).

    Prices are fill prices (slippage included), quote currency; ``quantity`` base units; times seconds since epoch.
    ``exit_reason`` is one of ``stop_loss``, ``take_profit``, ``trailing_stop``, ``signal``, ``max_holding``,
    ``end_of_data``, or None while open. ``stop_loss_price`` is the stop-loss set at entry (from
    ``stop_loss_ratio`` or an ATR stop), or None.
    """

    symbol: str
    entry_index: int
    entry_time_seconds: int
    entry_price: float
    quantity: float
    entry_fee: float
    exit_index: int | None = None
    exit_time_seconds: int | None = None
    exit_price: float | None = None
    exit_fee: float | None = None
    exit_reason: str | None = None
    pnl: float | None = None
    pnl_ratio: float | None = None
    stop_loss_price: float | None = None

    @property
    def cost(self) -> float:
        """Notional plus entry fee, quote currency."""
        return self.entry_price * self.quantity + self.entry_fee


@dataclass(frozen=True)
class OracleRefusal:
    """An entry signal a risk limit refused (``limit``: the limit's field name, or ``risk_stop``)."""

    boundary_seconds: int
    symbol: str
    limit: str


@dataclass(frozen=True)
class OracleHalt:
    """A halt of the entries beginning (``began``) or ending at ``boundary_seconds``; ``limit`` is
    ``daily_loss_limit_ratio`` or ``max_drawdown_halt_ratio``; ``equity`` the equity measured there and
    ``reference_equity`` what the loss is measured from (the day's starting equity, or the peak)."""

    boundary_seconds: int
    limit: str
    began: bool
    equity: float
    reference_equity: float


@dataclass
class OracleResult:
    """What the oracle made.

    Attributes:
        trades: every trade, in entry order (then symbol).
        times: shape (n,), int64: the boundaries ``start .. end``, seconds since epoch.
        equity_curve: shape (n,), float64: equity at each boundary's candle close (see the module docstring).
        skipped_entries: entries whose condition held and whose price existed but that found no cash (dust).
        cash_limited_entries: entries made that spent less than the sizing wanted, for want of cash.
        refusals: the entry signals refused by a risk limit, in time order then symbol.
        halts: each halt's beginning and end, in time order (daily loss before drawdown at one boundary).
    """

    trades: list[OracleTrade]
    times: np.ndarray
    equity_curve: np.ndarray
    skipped_entries: int = 0
    cash_limited_entries: int = 0
    refusals: list[OracleRefusal] = field(default_factory=list)
    halts: list[OracleHalt] = field(default_factory=list)


@dataclass
class _Position:
    trade: OracleTrade
    stop_loss: float | None
    take_profit: float | None
    trail_reference: float  # max(entry price, highs of the candles checked since entry)


@dataclass
class _Instrument:
    symbol: str
    times: list[int]
    open: Series
    high: Series
    low: Series
    close: Series
    entry: list[bool]
    exit: list[bool]
    index_of: dict[int, int] = field(default_factory=dict)
    atr: Series = field(default_factory=list)

    def at(self, time_seconds: int) -> int | None:
        """Index of the candle opening exactly at ``time_seconds``, or None."""
        return self.index_of.get(time_seconds)

    def last_at_or_before(self, time_seconds: int) -> int | None:
        """Index of the last candle opening at or before ``time_seconds``, or None."""
        position = bisect.bisect_right(self.times, time_seconds)
        return position - 1 if position > 0 else None


def _close(
    position: _Position,
    raw_price: float,
    index: int,
    time_seconds: int,
    reason: str,
    fee_rate: float,
    slip: float,
) -> float:
    """Sell ``position`` at ``raw_price`` (slippage and fee applied); return the proceeds net of the fee."""
    trade = position.trade
    price = raw_price * (1.0 - slip)
    fee = fee_rate * price * trade.quantity
    proceeds = price * trade.quantity - fee
    trade.exit_index = index
    trade.exit_time_seconds = time_seconds
    trade.exit_price = price
    trade.exit_fee = fee
    trade.exit_reason = reason
    trade.pnl = proceeds - trade.cost
    trade.pnl_ratio = trade.pnl / trade.cost
    return proceeds


def _risk_exit(
    position: _Position, o: float, h: float, lo: float, trailing_ratio: float | None
) -> tuple[str, float]:
    """The risk exit of a long position during one candle (open ``o``, high ``h``, low ``lo``): ``(reason, raw
    price)``, or ``("", nan)`` for none."""
    stop, stop_reason = NAN, ""
    if position.stop_loss is not None:
        stop, stop_reason = position.stop_loss, "stop_loss"
    if trailing_ratio is not None:
        trail = (1.0 - trailing_ratio) * position.trail_reference
        if stop_reason == "" or trail > stop:
            stop, stop_reason = trail, "trailing_stop"
    tp = position.take_profit
    if stop_reason and o <= stop:
        return stop_reason, o
    if tp is not None and o >= tp:
        return "take_profit", o
    if stop_reason and lo <= stop:
        return stop_reason, stop
    if tp is not None and h >= tp:
        return "take_profit", tp
    return "", NAN


def oracle_backtest(
    criteria: dict[str, Any],
    candles: dict[str, dict[str, np.ndarray]],
    start_time_seconds: int,
    end_time_seconds: int,
    starting_cash: float,
    close_at_end: bool,
) -> OracleResult:
    """Run the criteria document over daily candles of one or several instruments sharing one cash balance.

    Args:
        criteria: the criteria JSON document (CRITERIA.md format, version 1), as a dict.
        candles: symbol -> arrays of shape (n,): ``open_time_seconds`` (int, strictly increasing, daily),
            ``open``, ``high``, ``low``, ``close`` and optionally ``volume`` (float). Every stored candle,
            including those before the start (indicators warm up on them).
        start_time_seconds, end_time_seconds: the first and last boundary, multiples of a day.
        starting_cash: quote currency.
        close_at_end: sell what is still open at the last close (``end_of_data``) after checking the last candle
            for risk exits, instead of reporting it open.

    Returns:
        :class:`OracleResult`.
    """
    stop_ratio: float | None = criteria.get("stop_loss_ratio")
    tp_ratio: float | None = criteria.get("take_profit_ratio")
    trail_ratio: float | None = criteria.get("trailing_stop_ratio")
    max_days: int | None = criteria.get("max_holding_days")
    sizing = criteria.get("sizing") or {"method": "equity_fraction", "value": 1.0}
    fee_rate = float(criteria.get("fee_rate", 0.0))
    slip = float(criteria.get("slippage_ratio", 0.0))
    risk_stop = sizing.get("stop") if sizing["method"] == "risk" else None
    atr_stop: dict[str, Any] | None = risk_stop if isinstance(risk_stop, dict) else None
    limits: dict[str, Any] = criteria.get("limits") or {}
    max_open: int | None = limits.get("max_open_positions")
    max_exposure: float | None = limits.get("max_exposure_ratio")
    daily_ratio: float | None = limits.get("daily_loss_limit_ratio")
    drawdown_ratio: float | None = limits.get("max_drawdown_halt_ratio")
    resume_days: int | None = limits.get("drawdown_resume_days")
    cooldown_days: int | None = limits.get("cooldown_days_after_stop_loss")

    instruments: list[_Instrument] = []
    for symbol in sorted(candles):
        arrays = candles[symbol]
        lists = {k: [float(x) for x in arrays[k]] for k in ("open", "high", "low", "close")}
        n = len(lists["close"])
        lists["volume"] = [float(x) for x in arrays["volume"]] if "volume" in arrays else [NAN] * n
        times = [int(x) for x in arrays["open_time_seconds"]]
        exit_condition = criteria.get("exit")
        instruments.append(
            _Instrument(
                symbol=symbol,
                times=times,
                open=lists["open"],
                high=lists["high"],
                low=lists["low"],
                close=lists["close"],
                entry=condition_series(criteria["entry"], lists),
                exit=condition_series(exit_condition, lists) if exit_condition is not None else [False] * n,
                index_of={t: i for i, t in enumerate(times)},
                atr=(
                    atr(lists["high"], lists["low"], lists["close"], int(atr_stop["atr"]))
                    if atr_stop is not None
                    else []
                ),
            )
        )

    cash = float(starting_cash)
    positions: dict[str, _Position] = {}
    trades: list[OracleTrade] = []
    skipped = limited = 0
    refusals: list[OracleRefusal] = []
    halts: list[OracleHalt] = []
    last_stop_loss: dict[str, int] = {}  # symbol -> exit time of its last stop-loss
    previous_equity: float | None = None  # measured at the previous boundary
    current_day: int | None = None
    day_start = NAN
    daily_halted = False
    peak = NAN
    drawdown_halted = False
    drawdown_began = 0
    boundaries = list(range(start_time_seconds, end_time_seconds + 1, DAY_SECONDS))
    steps = [*boundaries, end_time_seconds + DAY_SECONDS] if close_at_end else boundaries

    def price_for_equity(instrument: _Instrument, b: int, position: _Position) -> float:
        nxt = instrument.at(b)
        if nxt is not None:
            return instrument.open[nxt]
        last = instrument.last_at_or_before(b - DAY_SECONDS)  # candle t, or the last one before a gap
        if last is not None:
            return instrument.close[last]
        return position.trade.entry_price

    for b in steps:
        after_end = b > end_time_seconds
        # (1) risk exits that happened during candle t, settled at their levels.
        for instrument in instruments:
            position = positions.get(instrument.symbol)
            t = instrument.at(b - DAY_SECONDS)
            if position is None or t is None:
                continue
            reason, raw = _risk_exit(
                position, instrument.open[t], instrument.high[t], instrument.low[t], trail_ratio
            )
            if reason:
                cash += _close(position, raw, t, instrument.times[t], reason, fee_rate, slip)
                del positions[instrument.symbol]
                if reason == "stop_loss":
                    last_stop_loss[instrument.symbol] = instrument.times[t]
            else:
                position.trail_reference = max(position.trail_reference, instrument.high[t])
        if after_end:
            break
        # (2) entries at the open, in symbol order, while cash lasts.
        # One equity for every entry of the boundary: after the risk exits above, before any entry.
        equity = cash + sum(
            p.trade.quantity * price_for_equity(i, b, p)
            for i in instruments
            if (p := positions.get(i.symbol)) is not None
        )
        # The limits' state at this boundary, measured on that same equity.
        if daily_ratio is not None:
            day_index = (b - DAY_SECONDS) // DAY_SECONDS
            if day_index != current_day:
                current_day = day_index
                day_start = equity if previous_equity is None else previous_equity
                if daily_halted:  # the day's halt ended with its day
                    daily_halted = False
                    halts.append(OracleHalt(b, "daily_loss_limit_ratio", False, equity, day_start))
            if not daily_halted and equity < (1.0 - daily_ratio) * day_start:
                daily_halted = True
                halts.append(OracleHalt(b, "daily_loss_limit_ratio", True, equity, day_start))
        if drawdown_ratio is not None:
            peak = equity if math.isnan(peak) else max(peak, equity)
            line = (1.0 - drawdown_ratio) * peak
            if drawdown_halted:
                if equity >= line:
                    drawdown_halted = False
                elif resume_days is not None and b - drawdown_began >= resume_days * DAY_SECONDS:
                    drawdown_halted = False
                    peak = equity
                if not drawdown_halted:
                    halts.append(OracleHalt(b, "max_drawdown_halt_ratio", False, equity, peak))
            elif equity < line:
                drawdown_halted = True
                drawdown_began = b
                halts.append(OracleHalt(b, "max_drawdown_halt_ratio", True, equity, peak))
        previous_equity = equity

        entered: set[str] = set()
        for instrument in instruments:
            t = instrument.at(b - DAY_SECONDS)
            nxt = instrument.at(b)
            if instrument.symbol in positions or t is None or nxt is None or not instrument.entry[t]:
                continue
            fill = instrument.open[nxt] * (1.0 + slip)
            refused = ""
            room = NAN
            stop = NAN
            if daily_halted:
                refused = "daily_loss_limit_ratio"
            elif drawdown_halted:
                refused = "max_drawdown_halt_ratio"
            elif (
                cooldown_days is not None
                and instrument.symbol in last_stop_loss
                and b <= last_stop_loss[instrument.symbol] + cooldown_days * DAY_SECONDS
            ):
                refused = "cooldown_days_after_stop_loss"
            elif max_open is not None and len(positions) >= max_open:
                refused = "max_open_positions"
            if not refused and max_exposure is not None:
                # Open before this boundary: at the boundary's prices; entered at it: at the fill (their notional).
                held = sum(
                    p.trade.quantity
                    * (p.trade.entry_price if i.symbol in entered else price_for_equity(i, b, p))
                    for i in instruments
                    if (p := positions.get(i.symbol)) is not None
                )
                room = max_exposure * equity - held
            if not refused and sizing["method"] == "risk":
                if atr_stop is None:
                    stop = fill * (1.0 - float(stop_ratio or 0.0))
                else:
                    stop = fill - float(atr_stop["multiple"]) * instrument.atr[t]
                if math.isnan(stop) or stop <= 0.0:
                    # No quantity to cut: the exposure limit, listed before, refuses when there is no room.
                    refused = "max_exposure_ratio" if room <= DUST_RATIO * equity else "risk_stop"
            if refused:
                refusals.append(OracleRefusal(b, instrument.symbol, refused))
                continue
            if sizing["method"] == "risk":
                per_unit_loss = fill * (1.0 + fee_rate) - stop * (1.0 - slip) * (1.0 - fee_rate)
                if (
                    per_unit_loss <= 0.0
                ):  # a stop at the fill (ATR 0) without fee or slippage: nothing to size on
                    skipped += 1
                    continue
                wanted_quantity = sizing["value"] * equity / per_unit_loss
                quantity = min(wanted_quantity, cash / (fill * (1.0 + fee_rate)))
                spend = quantity * fill * (1.0 + fee_rate)
                if spend <= DUST_RATIO * equity or fill <= 0.0:
                    skipped += 1
                    continue
                limited += quantity < wanted_quantity
            else:
                wanted = (
                    sizing["value"] * equity if sizing["method"] == "equity_fraction" else sizing["value"]
                )
                spend = min(wanted, cash)
                if spend <= DUST_RATIO * equity or fill <= 0.0:
                    skipped += 1
                    continue
                limited += spend < wanted
                quantity = spend / (fill * (1.0 + fee_rate))
            if max_exposure is not None and quantity * fill > room:
                if room <= DUST_RATIO * equity:
                    refusals.append(OracleRefusal(b, instrument.symbol, "max_exposure_ratio"))
                    continue
                quantity = room / fill
            fee = fee_rate * fill * quantity
            stop_loss: float | None
            if sizing["method"] == "risk":
                stop_loss = stop
            else:
                stop_loss = None if stop_ratio is None else fill * (1.0 - stop_ratio)
            trade = OracleTrade(instrument.symbol, nxt, b, fill, quantity, fee, stop_loss_price=stop_loss)
            cash -= fill * quantity + fee
            trades.append(trade)
            positions[instrument.symbol] = _Position(
                trade,
                stop_loss=stop_loss,
                take_profit=None if tp_ratio is None else fill * (1.0 + tp_ratio),
                trail_reference=fill,
            )
            entered.add(instrument.symbol)
        # (3) signal and max-holding exits at the open; their cash is used from the next boundary on.
        for instrument in instruments:
            position = positions.get(instrument.symbol)
            nxt = instrument.at(b)
            if position is None or nxt is None or instrument.symbol in entered:
                continue
            t = instrument.at(b - DAY_SECONDS)
            if t is None:  # exits at the open are decided on a stored candle t (docs/criteria.md), as live
                continue
            if instrument.exit[t]:
                reason = "signal"
            elif max_days is not None and b - position.trade.entry_time_seconds >= max_days * DAY_SECONDS:
                reason = "max_holding"
            else:
                continue
            cash += _close(position, instrument.open[nxt], nxt, b, reason, fee_rate, slip)
            del positions[instrument.symbol]
        # An instrument trades only inside its stored candles: with close_at_end, what is open when its data ends
        # before the run's is sold at its last close ("end_of_data"), timed at that close (this boundary); like
        # every sale at a boundary its cash is spent from the next boundary on.
        for instrument in instruments:
            position = positions.get(instrument.symbol)
            t = instrument.at(b - DAY_SECONDS)
            if not close_at_end or position is None or t is None or t != len(instrument.times) - 1:
                continue
            cash += _close(position, instrument.close[t], t, b, "end_of_data", fee_rate, slip)
            del positions[instrument.symbol]

    if close_at_end:
        for instrument in instruments:
            position = positions.pop(instrument.symbol, None)
            if position is None:
                continue
            last = instrument.last_at_or_before(end_time_seconds)
            assert last is not None  # an open position was entered at a stored candle
            cash += _close(
                position,
                instrument.close[last],
                last,
                instrument.times[last] + DAY_SECONDS,
                "end_of_data",
                fee_rate,
                slip,
            )

    by_symbol = {i.symbol: i for i in instruments}
    equity_curve = np.empty(len(boundaries), dtype=np.float64)
    for j, b in enumerate(boundaries):
        value = float(starting_cash)
        for trade in trades:
            if trade.entry_time_seconds > b:
                continue
            value -= trade.cost
            # A risk exit during candle b is timed at b's open; an end_of_data sale at the last candle's close.
            settled = trade.exit_time_seconds
            if settled is not None and trade.exit_reason == "end_of_data":
                settled -= DAY_SECONDS
            done = settled is not None and settled <= b
            if done:
                assert trade.exit_price is not None and trade.exit_fee is not None
                value += trade.exit_price * trade.quantity - trade.exit_fee
            else:
                instrument = by_symbol[trade.symbol]
                last = instrument.last_at_or_before(b)
                assert last is not None
                value += trade.quantity * instrument.close[last]
        equity_curve[j] = value
    return OracleResult(
        trades, np.array(boundaries, dtype=np.int64), equity_curve, skipped, limited, refusals, halts
    )


def trades_summary(trades: Sequence[OracleTrade]) -> dict[str, int]:
    """Count of trades by exit reason (``"open"`` for open trades)."""
    counts: dict[str, int] = {}
    for trade in trades:
        key = trade.exit_reason or "open"
        counts[key] = counts.get(key, 0) + 1
    return counts
