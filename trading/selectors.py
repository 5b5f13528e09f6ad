"""Reads for the trading cycle: candles as engine arrays, a strategy's cash and equity, open trades."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db import connection
from django.db.models import QuerySet

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.precision import price_quantize
from positions.models import Position
from trading.engine.exits import trailing_reference
from trading.engine.step import OpenTrade
from trading.engine.types import SECONDS_PER_DAY, CandleArrays, Trade
from trading.models import Strategy

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_seconds(moment: datetime) -> int:
    """Seconds since 1970-01-01 UTC of an aware datetime."""
    return int((moment - EPOCH).total_seconds())


def from_seconds(seconds: int) -> datetime:
    """The aware UTC datetime of ``seconds`` since epoch."""
    return EPOCH + timedelta(seconds=int(seconds))


def to_decimal(value: float) -> Decimal:
    """Convert an engine float to a stored ``Decimal``: its shortest round-trip text, rounded to the stored
    precision (the one conversion on the way out of the engine)."""
    return price_quantize(Decimal(repr(float(value))))


#: Candles as floats straight from the database: the engine's one conversion on the way in, without building a
#: ``Decimal`` and a ``datetime`` per value (which made ``candles_before`` the slowest part of a replay).
_CANDLES_SQL = {
    "postgresql": (
        "SELECT CAST(EXTRACT(EPOCH FROM open_time) AS BIGINT), CAST(open AS DOUBLE PRECISION), "
        "CAST(high AS DOUBLE PRECISION), CAST(low AS DOUBLE PRECISION), CAST(close AS DOUBLE PRECISION), "
        "CAST(volume AS DOUBLE PRECISION) FROM {table} "
        "WHERE instrument_id = %s AND timeframe = %s AND open_time < %s ORDER BY open_time"
    ),
    "sqlite": (
        "SELECT CAST(strftime('%%s', open_time) AS INTEGER), CAST(open AS REAL), CAST(high AS REAL), "
        "CAST(low AS REAL), CAST(close AS REAL), CAST(volume AS REAL) FROM {table} "
        "WHERE instrument_id = %s AND timeframe = %s AND open_time < %s ORDER BY open_time"
    ),
}


def candles_before(instrument: Instrument, before: datetime) -> CandleArrays:
    """Return every daily candle of ``instrument`` that opened before ``before``, as engine arrays.

    Only completed candles as of ``before`` (a day boundary) are returned, so the live cycle cannot look ahead.
    Prices become float64 here, once (style guide rule 5); volumes unknown to the source are NaN.
    """
    sql = _CANDLES_SQL[connection.vendor].format(table=InstrumentOHLC._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [instrument.pk, Timeframe.D1.value, connection.ops.adapt_datetimefield_value(before)]
        )
        rows = cursor.fetchall()
    table = np.array(rows, dtype=np.float64).reshape(-1, 6) if rows else np.empty((0, 6), dtype=np.float64)
    return CandleArrays(
        symbol=instrument.symbol,
        open_time_seconds=table[:, 0].astype(np.int64),
        open=np.ascontiguousarray(table[:, 1]),
        high=np.ascontiguousarray(table[:, 2]),
        low=np.ascontiguousarray(table[:, 3]),
        close=np.ascontiguousarray(table[:, 4]),
        volume=np.ascontiguousarray(table[:, 5]),
    )


#: Attribute :func:`trading.selectors_dashboard.strategies_with_accounts` prefetches a strategy's positions into.
ACCOUNT_POSITIONS_ATTR = "account_positions"
#: The fields of a position that its strategy's cash and equity depend on.
ACCOUNT_FIELDS = (
    "id",
    "strategy_id",
    "instrument_id",
    "status",
    "quantity",
    "entry_price",
    "entry_fee",
    "exit_price",
    "exit_fee",
)


def _account_positions(strategy: Strategy) -> list[Position]:
    prefetched: list[Position] | None = getattr(strategy, ACCOUNT_POSITIONS_ATTR, None)
    if prefetched is not None:
        return prefetched
    return list(Position.objects.for_strategy(strategy).order_by("id").only(*ACCOUNT_FIELDS))


def strategy_cash(strategy: Strategy) -> Decimal:
    """Free cash of a strategy's account, quote currency: ``starting_cash - sum(entry_price * quantity +
    entry_fee) + sum over closed positions (exit_price * quantity - exit_fee)``.

    Uses the positions prefetched by :func:`trading.selectors_dashboard.strategies_with_accounts` where present
    (no query), else reads them (one query).
    """
    cash = strategy.starting_cash
    for position in _account_positions(strategy):
        cash -= position.entry_price * position.quantity + position.entry_fee
        if position.status == Position.Status.CLOSED and position.exit_price is not None:
            cash += position.exit_price * position.quantity - (position.exit_fee or Decimal(0))
    return cash


def strategy_equity(strategy: Strategy, prices: dict[int, Decimal]) -> Decimal:
    """Cash plus open positions marked at ``prices`` (quote currency by instrument id; the entry price where
    none). Uses prefetched positions as :func:`strategy_cash` does."""
    equity = strategy_cash(strategy)
    for position in _account_positions(strategy):
        if position.status == Position.Status.OPEN:
            equity += position.quantity * prices.get(position.instrument_id, position.entry_price)
    return equity


def open_positions(strategy: Strategy) -> QuerySet[Position]:
    """The strategy's open positions with their instruments."""
    return (
        Position.objects.for_strategy(strategy)
        .open()
        .select_related("instrument")
        .order_by("instrument__symbol")
    )


def position_trade(position: Position, candles: CandleArrays, *, next_check: int) -> OpenTrade:
    """Return an open position as the engine's open trade, ready to be checked from candle ``next_check`` on.

    The entry is placed on the candle it happened in (its day's open), which is what the backtest records; the
    trailing reference is ``max(entry_price, highs of the candles from entry up to next_check)``, the value the
    backtest carries incrementally.
    """
    entry_time_seconds = to_seconds(position.entry_at) // SECONDS_PER_DAY * SECONDS_PER_DAY
    entry_index = int(np.searchsorted(candles.open_time_seconds, entry_time_seconds))
    highs = candles.high[entry_index:next_check].tolist() if next_check > entry_index else []
    entry_price = float(position.entry_price)
    trade = Trade(
        symbol=position.instrument.symbol,
        side=position.side,
        entry_index=entry_index,
        entry_time_seconds=entry_time_seconds,
        entry_price=entry_price,
        quantity=float(position.quantity),
        entry_fee=float(position.entry_fee),
        stop_loss_price=None if position.stop_loss_price is None else float(position.stop_loss_price),
        take_profit_price=None if position.take_profit_price is None else float(position.take_profit_price),
        trailing_stop_price=None
        if position.trailing_stop_price is None
        else float(position.trailing_stop_price),
    )
    return OpenTrade(trade=trade, trail_reference=trailing_reference(entry_price, highs))
