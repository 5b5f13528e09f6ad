"""The paper path: paper brokers (the price now, or a replayed day's open) and the positions they open and close.

Fills of paper trades are computed by the engine (:mod:`trading.engine.rules`: slippage and the strategy's fee
rate), so paper trading and the simulator fill identically; this module writes what the engine decided.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.sources.coingecko import coingecko_client_from_settings
from instruments.sources.coingecko.schemas import simple_prices
from positions.events import Events, StepResult
from positions.execution.base import ExecutionBackend, Quote
from positions.execution.paper_orders import paper_protect, paper_protection_finish
from positions.models import Position, StrategyStep
from runs.models import HistoryKind
from trading.engine.types import Trade
from trading.engine.vocabulary import ExitReason
from trading.models import Portfolio, Strategy
from trading.selectors import from_seconds, to_decimal

logger = logging.getLogger(__name__)


class PaperBroker(ExecutionBackend):
    """Paper trading at the live price: CoinGecko ``/simple/price``, or the newest candle's close when
    CoinGecko cannot answer."""

    name = "paper"

    def __init__(self) -> None:
        self._known: dict[int, Quote] = {}

    def quotes(self, instruments: list[Instrument], *, as_of: date) -> dict[int, Quote]:
        """Prices now; each instrument is asked for once per broker (one broker serves one run)."""
        missing = [i for i in instruments if i.pk not in self._known]
        if missing:
            self._known.update(self._fetch(missing))
        return {i.pk: self._known[i.pk] for i in instruments if i.pk in self._known}

    def _fetch(self, instruments: list[Instrument]) -> dict[int, Quote]:
        now = timezone.now()
        found: dict[int, Quote] = {}
        by_currency: dict[str, list[Instrument]] = {}
        for instrument in instruments:
            by_currency.setdefault(instrument.quote_currency, []).append(instrument)
        for currency, group in by_currency.items():
            ids = [i.coingecko_id for i in group]
            try:
                client = coingecko_client_from_settings()
                payload = client.api.get_price(ids=",".join(ids), vs_currencies=currency)
                prices = simple_prices(payload, coin_ids=ids, vs_currency=currency)
            except ApplicationError as exc:
                logger.warning("paper quotes: CoinGecko failed (%s); using the newest closes", exc.message)
                prices = {}
            for instrument in group:
                if instrument.coingecko_id in prices:
                    found[instrument.pk] = Quote(
                        prices[instrument.coingecko_id], now, "coingecko:simple_price"
                    )
        for instrument in instruments:
            if instrument.pk not in found:
                last = (
                    InstrumentOHLC.objects.filter(instrument=instrument, timeframe=Timeframe.D1)
                    .order_by("-open_time")
                    .values_list("close", flat=True)
                    .first()
                )
                if last is not None:
                    found[instrument.pk] = Quote(last, now, "last_close")
        return found


class ReplayBroker(ExecutionBackend):
    """Paper trading replayed over stored history: the first price after the signal candle is the open of the
    candle of ``as_of``, at its open time."""

    name = "replay"
    live = False

    def quotes(self, instruments: list[Instrument], *, as_of: date) -> dict[int, Quote]:
        opening = datetime.combine(as_of, time(0), tzinfo=UTC)
        rows = InstrumentOHLC.objects.filter(
            instrument__in=instruments, timeframe=Timeframe.D1, open_time=opening
        ).values_list("instrument_id", "open")
        return {instrument_id: Quote(price, opening, "replay:open") for instrument_id, price in rows}


def paper_position_open(
    *,
    strategy: Strategy,
    instrument: Instrument,
    trade: Trade,
    quote: Quote,
    claim: StrategyStep,
    backend: str,
    pending: Events,
    portfolio: Portfolio | None = None,
) -> StepResult:
    """Inside the open step's transaction: open the position a paper entry made, as the engine filled it.

    Args:
        strategy, instrument: what entered.
        trade: the engine's entry (quantity in base units; prices and fee in quote currency).
        quote: the price it filled at (its time is the entry time).
        claim: the day's open claim of the instrument, which is pointed at the position.
        backend: the broker's name, for History.
        pending: where the order, fill and position-opened events go.
        portfolio: the portfolio whose cash it spends, when the strategy trades as its member.

    Returns:
        The ``opened`` result line.
    """
    position = Position.objects.create(
        strategy=strategy,
        portfolio=portfolio,
        instrument=instrument,
        side=Position.Side.LONG,
        quantity=to_decimal(trade.quantity),
        entry_price=to_decimal(trade.entry_price),
        entry_at=quote.at,
        entry_fee=to_decimal(trade.entry_fee),
        stop_loss_price=None if trade.stop_loss_price is None else to_decimal(trade.stop_loss_price),
        take_profit_price=None if trade.take_profit_price is None else to_decimal(trade.take_profit_price),
        trailing_stop_price=None
        if trade.trailing_stop_price is None
        else to_decimal(trade.trailing_stop_price),
    )
    claim.position = position
    claim.save(update_fields=["position"])
    _trade_events(
        pending,
        position,
        side="buy",
        price=position.entry_price,
        fee=position.entry_fee,
        order={"price": str(quote.price), "source": quote.source, "backend": backend},
        outcome=(
            HistoryKind.POSITION_OPENED,
            f"opened {instrument.symbol} at {position.entry_price}",
            {"entry_price": str(position.entry_price), "entry_at": position.entry_at.isoformat()},
        ),
    )
    paper_protect(position, claim.as_of, backend, pending)  # after the fill, as on an exchange
    return StepResult(
        strategy=strategy.name,
        instrument=instrument.coingecko_id,
        action="opened",
        reason="entry signal",
        position_id=position.pk,
        price=str(position.entry_price),
        quantity=str(position.quantity),
    )


def paper_position_close(position: Position, trade: Trade, pending: Events, backend: str) -> None:
    """Close ``position`` (locked, in a transaction) as the engine's exit ``trade`` filled, and queue its events.

    Args:
        position: the open position.
        trade: the engine's closed trade (exit price, fee and time set; quote currency, seconds).
        pending: where the signal, order, fill and position-closed events go.
        backend: the broker's name, for History.
    """
    assert trade.exit_price is not None and trade.exit_fee is not None and trade.exit_time_seconds is not None  # noqa: S101
    position.status = Position.Status.CLOSED
    position.exit_price = to_decimal(trade.exit_price)
    position.exit_fee = to_decimal(trade.exit_fee)
    # A risk exit is timed at its candle's open (CRITERIA.md), but a live entry fills after the boundary (at the
    # step's price of now): a stop crossed in the entry's own candle filled no earlier than the entry itself.
    position.exit_at = max(from_seconds(trade.exit_time_seconds), position.entry_at)
    position.exit_reason = trade.exit_reason or ExitReason.MANUAL
    position.pnl = to_decimal(trade.pnl or 0.0)
    position.pnl_ratio = to_decimal(trade.pnl_ratio or 0.0)
    if trade.trailing_stop_price is not None:
        position.trailing_stop_price = to_decimal(trade.trailing_stop_price)
    position.save()
    paper_protection_finish(position)
    instrument = position.instrument
    pending.add(
        HistoryKind.SIGNAL,
        f"exit ({position.exit_reason}) on {instrument.symbol}",
        instrument=instrument,
        position=position,
        payload={"reason": position.exit_reason, "side": "exit"},
    )
    _trade_events(
        pending,
        position,
        side="sell",
        price=position.exit_price,
        fee=position.exit_fee,
        order={"backend": backend},
        outcome=(
            HistoryKind.POSITION_CLOSED,
            f"closed {instrument.symbol} ({position.exit_reason}), pnl {position.pnl}",
            {
                "exit_reason": position.exit_reason,
                "exit_price": str(position.exit_price),
                "pnl": str(position.pnl),
                "pnl_ratio": str(position.pnl_ratio),
                "exit_at": position.exit_at.isoformat(),
            },
        ),
    )


def _trade_events(
    pending: Events,
    position: Position,
    *,
    side: str,
    price: Decimal | None,
    fee: Decimal | None,
    order: dict[str, Any],
    outcome: tuple[HistoryKind, str, dict[str, Any]],
) -> None:
    """Queue the order, fill and position-opened/closed events of one paper trade."""
    instrument = position.instrument
    quantity = str(position.quantity)
    done = "bought" if side == "buy" else "sold"
    pending.add(
        HistoryKind.ORDER,
        f"{side} {quantity} {instrument.symbol}",
        instrument=instrument,
        position=position,
        payload={"side": side, "quantity": quantity, **order},
    )
    pending.add(
        HistoryKind.FILL,
        f"{done} {quantity} {instrument.symbol} at {price}",
        instrument=instrument,
        position=position,
        payload={"price": str(price), "fee": str(fee)},
    )
    kind, message, payload = outcome
    pending.add(
        kind, message, instrument=instrument, position=position, payload={"quantity": quantity, **payload}
    )
