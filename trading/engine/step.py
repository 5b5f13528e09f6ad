"""What happens at one boundary: after candle t has closed, at the first price after it.

The daily cycle runs **open** (:func:`step_entries`), then **close** (:func:`step_exits`), so the backtest does
the same, in that order, at every boundary; this is what makes a replayed cycle and a backtest agree:

1. Entries: each instrument (in symbol order) without an open trade whose entry signal holds on candle t enters
   at the first price after t, sized on the equity at this boundary, while cash lasts.
2. Exits, of the trades that were open during candle t: a risk exit inside candle t (stop-loss, take-profit,
   trailing stop; at the level or the gapped open, timed at t's open), else an exit signal on t, else the
   maximum holding time, both at the first price after t.

Consequences of that order: cash freed by exits at a boundary is spent from the next boundary on, and an
instrument that exits at a boundary can be entered again from the next one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trading.engine.criteria import Criteria
from trading.engine.exits import (
    MAX_HOLDING,
    SIGNAL,
    risk_exit,
    stop_loss_level,
    take_profit_level,
    trailing_stop_level,
)
from trading.engine.fills import buy_fill_price, fill_fee, sell_fill_price
from trading.engine.sizing import entry_quantity
from trading.engine.types import SECONDS_PER_DAY, Trade


@dataclass(frozen=True)
class InstrumentAtBoundary:
    """One instrument at a boundary.

    Attributes:
        symbol: the instrument's symbol.
        index: index of candle t (the last completed candle) in the instrument's candles, or None when the
            instrument has no candle t.
        open_time: seconds since epoch of candle t's open (when ``index`` is set).
        open, high, low, close: candle t's prices (when ``index`` is set), quote currency.
        entry_signal, exit_signal: the signals on candle t.
        next_index: index of the candle whose open is the next price (replay), or -1 live / None at the end.
        next_time: seconds since epoch of the next price (open of t+1, or now live); None at the end of data.
        next_price: the first price after t (raw, before slippage); None at the end of data.
    """

    symbol: str
    index: int | None
    open_time: int = 0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    close: float = 0.0
    entry_signal: bool = False
    exit_signal: bool = False
    next_index: int | None = None
    next_time: int | None = None
    next_price: float | None = None


@dataclass
class OpenTrade:
    """An open trade and the trailing stop's reference (max of entry price and highs since entry, before t)."""

    trade: Trade
    trail_reference: float


def equity_at_boundary(
    cash: float, open_trades: dict[str, OpenTrade], market: dict[str, InstrumentAtBoundary]
) -> float:
    """Return cash plus open trades at this boundary's prices (the next price, else candle t's close)."""
    total = cash
    for symbol, open_trade in open_trades.items():
        here = market.get(symbol)
        price = None
        if here is not None:
            price = (
                here.next_price
                if here.next_price is not None
                else (here.close if here.index is not None else None)
            )
        total += open_trade.trade.quantity * (price if price is not None else open_trade.trade.entry_price)
    return total


def step_entries(
    *,
    criteria: Criteria,
    market: dict[str, InstrumentAtBoundary],
    open_trades: dict[str, OpenTrade],
    cash: float,
) -> tuple[list[Trade], float]:
    """Decide and fill the entries of one boundary (the **open** step).

    Args:
        criteria: the strategy's criteria.
        market: every instrument of the strategy at this boundary, by symbol.
        open_trades: the trades open before this boundary, by symbol (at most one per instrument).
        cash: free cash before this boundary, quote currency.

    Returns:
        ``(new trades, cash after them)``; the new trades are open, in symbol order.
    """
    equity = equity_at_boundary(cash, open_trades, market)
    entered: list[Trade] = []
    for symbol in sorted(market):
        here = market[symbol]
        if (
            symbol in open_trades
            or not here.entry_signal
            or here.next_price is None
            or here.next_time is None
        ):
            continue
        price = buy_fill_price(here.next_price, criteria.slippage_ratio)
        quantity = entry_quantity(
            sizing=criteria.sizing, equity=equity, cash=cash, fill_price=price, fee_rate=criteria.fee_rate
        )
        if quantity <= 0:
            continue
        fee = fill_fee(price, quantity, criteria.fee_rate)
        cash -= price * quantity + fee
        entered.append(
            Trade(
                symbol=symbol,
                side="long",
                entry_index=here.next_index if here.next_index is not None else -1,
                entry_time=here.next_time,
                entry_price=price,
                quantity=quantity,
                entry_fee=fee,
                stop_loss_price=stop_loss_level(price, criteria.stop_loss_ratio),
                take_profit_price=take_profit_level(price, criteria.take_profit_ratio),
                trailing_stop_price=trailing_stop_level(price, criteria.trailing_stop_ratio),
            )
        )
    return entered, max(cash, 0.0)


def step_exits(
    *,
    criteria: Criteria,
    market: dict[str, InstrumentAtBoundary],
    open_trades: dict[str, OpenTrade],
) -> tuple[list[Trade], dict[str, OpenTrade]]:
    """Decide and fill the exits of one boundary (the **close** step).

    Only trades that were open during candle t are considered (entered at or before t's open); the others,
    and instruments without a candle t, are carried unchanged.

    Args:
        criteria: the strategy's criteria.
        market: every instrument at this boundary, by symbol.
        open_trades: the open trades, by symbol.

    Returns:
        ``(closed trades, still-open trades)``: closed ones are copies with the exit fields and P&L set; the
        still-open ones carry the trailing reference and level updated with candle t's high.
    """
    closed: list[Trade] = []
    still_open: dict[str, OpenTrade] = {}
    for symbol in sorted(open_trades):
        open_trade = open_trades[symbol]
        trade = open_trade.trade
        here = market.get(symbol)
        if here is None or here.index is None or trade.entry_time > here.open_time:
            still_open[symbol] = open_trade
            continue
        trailing = trailing_stop_level(open_trade.trail_reference, criteria.trailing_stop_ratio)
        hit = risk_exit(
            open_=here.open,
            high=here.high,
            low=here.low,
            stop_loss=trade.stop_loss_price,
            take_profit=trade.take_profit_price,
            trailing_stop=trailing,
        )
        if hit is not None:
            closed.append(
                _close(trade, criteria, here.index, here.open_time, hit.price, hit.reason, trailing)
            )
            continue
        if here.next_price is not None and here.next_time is not None:
            held_seconds = here.next_time - trade.entry_time
            reason = None
            if here.exit_signal:
                reason = SIGNAL
            elif (
                criteria.max_holding_days is not None
                and held_seconds >= criteria.max_holding_days * SECONDS_PER_DAY
            ):
                reason = MAX_HOLDING
            if reason is not None:
                next_index = here.next_index if here.next_index is not None else -1
                closed.append(
                    _close(trade, criteria, next_index, here.next_time, here.next_price, reason, trailing)
                )
                continue
        reference = max(open_trade.trail_reference, here.high)
        still_open[symbol] = OpenTrade(
            trade=replace(
                trade, trailing_stop_price=trailing_stop_level(reference, criteria.trailing_stop_ratio)
            ),
            trail_reference=reference,
        )
    return closed, still_open


def _close(
    trade: Trade,
    criteria: Criteria,
    index: int,
    time: int,
    raw_price: float,
    reason: str,
    trailing: float | None,
) -> Trade:
    price = sell_fill_price(raw_price, criteria.slippage_ratio)
    fee = fill_fee(price, trade.quantity, criteria.fee_rate)
    pnl = price * trade.quantity - fee - trade.cost
    return replace(
        trade,
        trailing_stop_price=trailing,
        exit_index=index,
        exit_time=time,
        exit_price=price,
        exit_fee=fee,
        exit_reason=reason,
        pnl=pnl,
        pnl_ratio=pnl / trade.cost,
    )


def trade_close_at(
    trade: Trade, criteria: Criteria, *, index: int, time: int, raw_price: float, reason: str
) -> Trade:
    """Close ``trade`` at ``raw_price`` (slippage and fee applied) for ``reason``: end of data, or manual."""
    return _close(trade, criteria, index, time, raw_price, reason, trade.trailing_stop_price)
