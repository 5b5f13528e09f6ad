"""Live execution on an exchange through ccxt: :class:`ExchangeBroker`, the backend of ``exchange`` strategies.

The engine decides what to buy and sell, how much and at which levels; this module only executes:

- **prices**: the ticker's last price (:meth:`ExchangeBroker.quotes`), the first price after the signal candle;
- **pre-order checks** (:meth:`ExchangeBroker.entry_amount`): the amount rounded down to the market's precision
  (ccxt ``amount_to_precision``), the market's minimum amount and notional (``market["limits"]``), and the free
  quote balance (``fetch_balance``), which sizes an entry down or refuses it with a clear message;
- **idempotent orders** (:meth:`ExchangeBroker.order_send`): every order carries a client order id derived from
  the strategy, instrument, day and purpose (:func:`~positions.execution.order_state.client_order_id`); before
  creating, the exchange is asked for that id, and a timeout or network error during the create is followed by the
  same question, so a retried request never places a second order;
- **order state** (:mod:`positions.execution.order_state`): ccxt's unified order structure written onto our
  ``Order`` row (status, fills, average price, fees, the exchange's raw answer).

Facts from ccxt 4.5.90 (``binance.py``, ``bybit.py``): binance takes the client id as ``newClientOrderId`` and
finds an order by ``origClientOrderId`` (``GET /api/v3/order``; error -2013 is ``OrderNotFound``); bybit takes
it as ``orderLinkId`` and finds it with ``/v5/order/realtime`` (open, and the newest closed ones of a unified
account) or ``/v5/order/history``; both accept ccxt's ``clientOrderId`` param on create. Binance and bybit
allow at most 36 characters of letters, digits, ``-`` and ``_``. A stop-loss is ccxt's unified
``stopLossPrice`` param on a market sell: binance spot ``STOP_LOSS`` (when the market lists that order type),
bybit spot ``tpslOrder`` with a trigger price.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from instruments.sources.exchange.client import exchange_client, exchange_error
from positions.execution.base import ExecutionBackend, Quote
from positions.execution.order_state import OrderState, ccxt_decimal, order_state
from positions.models import Order

if TYPE_CHECKING:
    import ccxt
else:
    from instruments.sources.exchange import ccxt  # loaded on first use

logger = logging.getLogger(__name__)

#: How many times a create that timed out (and was not found on the exchange afterwards) is sent again.
CREATE_ATTEMPTS = 3


class EntryRefusedError(ApplicationError):
    """An entry cannot be sent: below the market's minimum amount or notional, or no free balance for it."""

    http_status = 409


class InstrumentNotTradableError(ApplicationError):
    """An instrument of an exchange strategy has no market on the strategy's exchange."""


def _plain(value: Decimal) -> str:
    """``value`` without trailing zeros or an exponent, for messages: 5.0 -> "5"."""
    return format(value.normalize(), "f")


class ExchangeBroker(ExecutionBackend):
    """Real orders on one exchange account (``Strategy.exchange_id``); prices from its ticker.

    One broker serves one run: markets, prices and the free balance are asked for once and cached, so the
    decisions of a run see one consistent account. HTTP calls happen outside database transactions (the
    steps call :meth:`prepare` before their transaction and send orders after it commits).

    Args:
        exchange_id: ccxt id (``binance``, ``bybit``, ...).
    """

    name = "exchange"

    def __init__(self, exchange_id: str) -> None:
        self.exchange_id = exchange_id
        self._client: ccxt.Exchange | None = None
        self._quotes: dict[int, Quote] = {}
        self._free: dict[str, Decimal] | None = None

    # -- plumbing ---------------------------------------------------------------------------------------------

    @property
    def client(self) -> ccxt.Exchange:
        """The authenticated ccxt object (:func:`~instruments.sources.exchange.client.exchange_client`).

        Raises:
            ExchangeConfigError: the exchange's API key or secret is not set.
        """
        if self._client is None:
            self._client = exchange_client(self.exchange_id, authenticated=True)
        return self._client

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            if method != "load_markets":
                self.client.load_markets()
            return getattr(self.client, method)(*args, **kwargs)
        except ccxt.BaseError as exc:
            raise exchange_error(exc, what=what, exchange_id=self.exchange_id) from exc

    def market_symbol(self, instrument: Instrument) -> str:
        """The ccxt unified symbol the instrument trades as (its ``market_symbol``).

        Raises:
            InstrumentNotTradableError: the instrument has no market symbol.
        """
        symbol = getattr(instrument, "market_symbol", "")
        if not symbol:
            raise InstrumentNotTradableError(
                f"instrument {instrument.symbol} ({instrument.coingecko_id}) has no market_symbol, so an exchange "
                f"strategy cannot trade it on {self.exchange_id}: set its candle source to exchange "
                f"{self.exchange_id} with a market symbol such as '{instrument.symbol.upper()}/USDT'",
                extra={"instrument": instrument.coingecko_id, "exchange_id": self.exchange_id},
            )
        return str(symbol)

    def market(self, symbol: str) -> dict[str, Any]:
        """ccxt's market structure of ``symbol`` (markets are loaded once per process).

        Raises:
            ExchangeApiError: markets could not be loaded, or the exchange lists no such market.
        """
        market: dict[str, Any] = self._call(f"finding market {symbol}", "market", symbol)
        return market

    def supports_stop_loss(self, symbol: str) -> bool:
        """Whether a stop-loss order can rest on the exchange for ``symbol``: ccxt's ``features`` say spot
        ``createOrder`` takes ``stopLossPrice``, and (binance) the market lists ``STOP_LOSS`` among its order
        types."""
        features = (self.client.features or {}).get("spot", {}).get("createOrder", {}) or {}
        if not features.get("stopLossPrice"):
            return False
        order_types = (self.market(symbol).get("info") or {}).get("orderTypes")
        return order_types is None or "STOP_LOSS" in order_types

    # -- prices and balance -----------------------------------------------------------------------------------

    def quotes(self, instruments: list[Instrument], *, as_of: date) -> dict[int, Quote]:
        """The ticker's last price of each instrument now (``fetch_ticker``), asked once per broker.

        Raises:
            ExchangeApiError: the exchange could not answer.
            InstrumentNotTradableError: an instrument has no market symbol.
        """
        now = timezone.now()
        for instrument in instruments:
            if instrument.pk in self._quotes:
                continue
            symbol = self.market_symbol(instrument)
            ticker = self._call(f"fetching the ticker of {symbol}", "fetch_ticker", symbol)
            price = ccxt_decimal(ticker.get("last") or ticker.get("close"))
            if price is not None and price > 0:
                self._quotes[instrument.pk] = Quote(price, now, f"{self.exchange_id}:ticker")
        return {i.pk: self._quotes[i.pk] for i in instruments if i.pk in self._quotes}

    def free_balance(self, currency: str) -> Decimal:
        """Free balance of ``currency`` (``fetch_balance``, once per broker), less what this run reserved."""
        if self._free is None:
            balance = self._call("fetching the balance", "fetch_balance")
            self._free = {
                code: ccxt_decimal(amount) or Decimal(0)
                for code, amount in (balance.get("free") or {}).items()
            }
        return self._free.get(currency, Decimal(0))

    def reserve(self, currency: str, amount: Decimal) -> None:
        """Take ``amount`` off the cached free balance of ``currency`` (an entry about to be sent)."""
        self.free_balance(currency)
        assert self._free is not None  # noqa: S101
        self._free[currency] = self._free.get(currency, Decimal(0)) - amount

    def prepare(self, instruments: list[Instrument]) -> None:
        """Load the markets and the free balance before a transaction starts (HTTP outside row locks).

        Raises:
            ExchangeApiError: the exchange could not answer.
            InstrumentNotTradableError: an instrument has no market symbol.
        """
        for instrument in instruments:
            self.free_balance(str(self.market(self.market_symbol(instrument))["quote"]))

    def entry_amount(
        self, *, instrument: Instrument, quantity: Decimal, price: Decimal, fee_rate: Decimal
    ) -> Decimal:
        """Check an entry the engine sized and return the amount to buy, in base units.

        The amount is rounded down to the market's precision (``amount_to_precision``, truncating); when the
        free quote balance cannot pay ``amount * price * (1 + fee_rate)`` the amount is sized down to it. The
        result must reach the market's minimum amount and minimum notional (``market["limits"]``).

        Args:
            instrument: what to buy.
            quantity: the engine's quantity, base units, > 0.
            price: the price it was sized at (the ticker's), quote currency.
            fee_rate: the strategy's fee rate (0.001 means 0.1 %).

        Returns:
            The amount, as the exchange will take it.

        Raises:
            EntryRefusedError: below the minimum amount or notional, or no free balance.
        """
        symbol = self.market_symbol(instrument)
        market = self.market(symbol)
        quote, base = str(market["quote"]), str(market["base"])
        free = self.free_balance(quote)
        amount = self._precise(symbol, quantity)
        if amount * price * (1 + fee_rate) > free:
            affordable = (free / (price * (1 + fee_rate))).quantize(Decimal("1e-18"), rounding=ROUND_DOWN)
            amount = self._precise(symbol, affordable) if affordable > 0 else Decimal(0)
            if amount <= 0:
                raise EntryRefusedError(
                    f"entry of {quantity} {base} = {quantity * price:.2f} {quote} refused: the free {quote} balance "
                    f"on {self.exchange_id} is {free:.2f}",
                    extra={"exchange_id": self.exchange_id, "free": str(free), "currency": quote},
                )
        limits = market.get("limits") or {}
        min_amount = ccxt_decimal((limits.get("amount") or {}).get("min"))
        min_cost = ccxt_decimal((limits.get("cost") or {}).get("min"))
        cost = amount * price
        if min_amount is not None and amount < min_amount:
            raise EntryRefusedError(
                f"entry of {amount} {base} is below {self.exchange_id}'s minimum amount {_plain(min_amount)} {base} "
                f"for {symbol}; raise the strategy's sizing or its cash",
                extra={"exchange_id": self.exchange_id, "amount": str(amount), "min_amount": str(min_amount)},
            )
        if min_cost is not None and cost < min_cost:
            raise EntryRefusedError(
                f"entry of {amount} {base} = {cost:.2f} {quote} is below {self.exchange_id}'s minimum notional "
                f"{_plain(min_cost)} {quote} for {symbol}; raise the strategy's sizing or its cash",
                extra={"exchange_id": self.exchange_id, "cost": str(cost), "min_cost": str(min_cost)},
            )
        return amount

    def amount_precise(self, symbol: str, amount: Decimal) -> Decimal:
        """``amount`` rounded down to the market's amount precision (0 when below it)."""
        return self._precise(symbol, amount)

    def _precise(self, symbol: str, amount: Decimal) -> Decimal:
        try:
            return Decimal(self.client.amount_to_precision(symbol, format(amount, "f")))
        except ccxt.InvalidOrder:
            return Decimal(0)  # below the amount's precision: nothing can be bought

    def price_precise(self, symbol: str, price: Decimal) -> Decimal:
        """``price`` rounded to the market's price precision (``price_to_precision``)."""
        return Decimal(
            self._call(f"rounding a price of {symbol}", "price_to_precision", symbol, format(price, "f"))
        )

    def base_and_quote(self, instrument: Instrument) -> tuple[str, str]:
        """The market's base and quote currency codes."""
        market = self.market(self.market_symbol(instrument))
        return str(market["base"]), str(market["quote"])

    # -- orders -----------------------------------------------------------------------------------------------

    def order_find(self, order: Order) -> OrderState | None:
        """Ask the exchange for the order by its client order id; None when it does not know it.

        Raises:
            ExchangeApiError: the exchange could not answer.
        """
        symbol, cid = order.market_symbol, order.client_order_id
        what = f"looking up order {cid}"
        if self.exchange_id == "bybit":
            found = self._call(what, "fetch_open_orders", symbol, None, None, {"orderLinkId": cid})
            if not found:
                found = self._call(
                    what, "fetch_canceled_and_closed_orders", symbol, None, None, {"orderLinkId": cid}
                )
            if not found:
                return None
            return self._state(found[0])
        try:
            data = self.client.fetch_order(None, symbol, {"origClientOrderId": cid})
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError as exc:
            raise exchange_error(exc, what=what, exchange_id=self.exchange_id) from exc
        return self._state(data)

    def _state(self, data: dict[str, Any]) -> OrderState:
        """The order's state; its fees from ``fetch_my_trades`` when the order payload has none (binance), each
        in its currency (the market's base and quote tell a third currency's fee apart)."""
        market = self.market(str(data["symbol"])) if data.get("symbol") else {}
        base, quote = str(market.get("base") or ""), str(market.get("quote") or "")
        state = order_state(data, base=base, quote=quote)
        if (
            state.filled_quantity > 0
            and state.fee == 0
            and not state.other_fees
            and self.client.has.get("fetchMyTrades")
        ):
            trades = self._call(
                f"fetching the fills of order {data.get('id')}",
                "fetch_my_trades",
                data.get("symbol"),
                None,
                None,
                {"orderId": data.get("id")},
            )
            mine = [t for t in trades if str(t.get("order")) == str(data.get("id"))]
            if mine:
                state = order_state(data, trades=mine, base=base, quote=quote)
        return state

    def order_send(self, order: Order) -> OrderState:
        """Place ``order`` exactly once: use the exchange's order of that client id if there is one, else create.

        A timeout or network error during the create is followed by a lookup of the client id (the exchange may
        have accepted it): an order found is used; otherwise the create is sent again, up to
        :data:`CREATE_ATTEMPTS` times in all. Market orders are sent without a price (bybit's unified account
        then takes the amount in base units); a stop-loss carries ccxt's ``stopLossPrice``.

        Returns:
            The order's state after the create (or as found).

        Raises:
            ExchangeRejectedError: the exchange refused the order (funds, limits, unsupported type).
            ExchangeUnavailableError: no answer after every attempt; the order may still exist, and the next
                run's reconciliation looks it up by its client id.
        """
        found = self.order_find(order)
        if found is not None:
            return found
        params: dict[str, Any] = {"clientOrderId": order.client_order_id}
        if order.type == Order.Type.STOP_LOSS:
            assert order.price is not None  # noqa: S101 (constraint order_stop_loss_has_price)
            params["stopLossPrice"] = format(order.price, "f")
        what = f"placing {order.purpose} order {order.client_order_id}"
        last: ccxt.BaseError | None = None
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                data = self.client.create_order(
                    order.market_symbol, "market", order.side, format(order.quantity, "f"), None, params
                )
            except ccxt.NetworkError as exc:
                last = exc
                logger.warning("%s: attempt %d failed (%s); looking it up", what, attempt, type(exc).__name__)
                found = self.order_find(order)
                if found is not None:
                    return found
                continue
            except ccxt.BaseError as exc:
                raise exchange_error(exc, what=what, exchange_id=self.exchange_id) from exc
            state = self._state(data)
            if state.status == Order.Status.NEW or (
                state.filled_quantity == 0 and order.type == Order.Type.MARKET
            ):
                # bybit acknowledges with the ids only: ask for the order itself
                return self.order_find(order) or state
            return state
        assert last is not None  # noqa: S101
        raise exchange_error(last, what=what, exchange_id=self.exchange_id) from last

    def order_cancel(self, order: Order) -> OrderState | None:
        """Cancel ``order`` and return its final state (None when the exchange does not know it).

        An order that already filled or was cancelled cannot be cancelled; its state is returned as found.

        Raises:
            ExchangeApiError: the exchange could not answer.
        """
        what = f"cancelling order {order.client_order_id}"
        if not order.exchange_order_id:
            found = self.order_find(order)
            if found is None:
                return None
            order.exchange_order_id = found.exchange_order_id
        if order.exchange_order_id:
            params: dict[str, Any] = {}
            if order.type == Order.Type.STOP_LOSS and self.exchange_id == "bybit":
                params["orderFilter"] = "tpslOrder"
            try:
                self.client.cancel_order(order.exchange_order_id, order.market_symbol, params)
            except (ccxt.OrderNotFound, ccxt.InvalidOrder):
                pass  # filled or gone meanwhile: the lookup below says which
            except ccxt.BaseError as exc:
                raise exchange_error(exc, what=what, exchange_id=self.exchange_id) from exc
        return self.order_find(order)
