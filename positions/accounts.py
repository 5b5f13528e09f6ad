"""A strategy's account: its cash and equity from its positions, its open positions as the engine's open trades.

The strategy admin and API show these figures too (``trading.admin``, ``trading.api_strategies``): the one place
where trading reads upward into positions, an exception the import-linter contract names.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from positions.models import Position
from trading.engine.exits import trailing_reference
from trading.engine.step import OpenTrade
from trading.engine.types import SECONDS_PER_DAY, CandleArrays, Trade
from trading.models import Portfolio, Strategy
from trading.selectors import to_seconds

#: Attribute :func:`strategies_with_accounts` prefetches a strategy's positions into.
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

    Uses the positions prefetched by :func:`strategies_with_accounts` where present
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
    entry_time = to_seconds(position.entry_at) // SECONDS_PER_DAY * SECONDS_PER_DAY
    entry_index = int(np.searchsorted(candles.open_time_seconds, entry_time))
    highs = candles.high[entry_index:next_check].tolist() if next_check > entry_index else []
    entry_price = float(position.entry_price)
    trade = Trade(
        symbol=position.instrument.symbol,
        side=position.side,
        entry_index=entry_index,
        entry_time_seconds=entry_time,
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


def strategies_with_accounts(strategies: QuerySet[Strategy] | None = None) -> QuerySet[Strategy]:
    """Return strategies ready for ``strategy_cash`` and ``strategy_equity`` without a query per row.

    Args:
        strategies: the strategies to read; default all of them.

    Returns:
        The queryset with ``open_positions_count`` (int) annotated, ``instruments`` prefetched, and every
        position's :data:`ACCOUNT_FIELDS` prefetched into ``account_positions``: two queries beyond the page's,
        however many strategies and positions there are.
    """
    open_count = (
        Position.objects.open()
        .filter(strategy=OuterRef("pk"))
        .order_by()
        .values("strategy")
        .annotate(n=Count("pk"))
        .values("n")
    )
    queryset = strategies if strategies is not None else Strategy.objects.all()
    return queryset.annotate(
        # A subquery, not Count over a join: filters on other relations (instruments) cannot inflate it.
        open_positions_count=Coalesce(Subquery(open_count, output_field=IntegerField()), Value(0)),
    ).prefetch_related(
        "instruments",
        Prefetch(
            "positions",
            queryset=Position.objects.order_by("id").only(*ACCOUNT_FIELDS),
            to_attr=ACCOUNT_POSITIONS_ATTR,
        ),
    )


def account_open_positions_count(strategy: Strategy) -> int:
    """Number of open positions: the ``open_positions_count`` annotation where present, else one query."""
    annotated: int | None = getattr(strategy, "open_positions_count", None)
    if annotated is not None:
        return int(annotated)
    return Position.objects.for_strategy(strategy).open().count()


def portfolio_cash(portfolio: Portfolio) -> Decimal:
    """Free cash of a portfolio's account, quote currency: its ``starting_cash`` less what the positions its
    members opened as members cost (``Position.portfolio``), plus what the closed ones returned
    (docs/portfolios.md)."""
    cash = portfolio.starting_cash
    for position in Position.objects.filter(portfolio=portfolio).only(*ACCOUNT_FIELDS):
        cash -= position.entry_price * position.quantity + position.entry_fee
        if position.status == Position.Status.CLOSED and position.exit_price is not None:
            cash += position.exit_price * position.quantity - (position.exit_fee or Decimal(0))
    return cash


def member_realized_pnl(portfolio: Portfolio, strategy: Strategy) -> Decimal:
    """The P&L of the positions ``strategy`` closed as a member of ``portfolio`` (its sleeve's realized part,
    quote currency)."""
    total = Decimal(0)
    for position in Position.objects.filter(portfolio=portfolio, strategy=strategy).closed().only("pnl"):
        total += position.pnl or Decimal(0)
    return total


def portfolio_of(strategy: Strategy) -> Portfolio | None:
    """The portfolio ``strategy`` is a member of, or None (one query)."""
    return Portfolio.objects.filter(members__strategy=strategy).first()
