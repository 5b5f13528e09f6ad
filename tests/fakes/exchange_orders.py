"""Stateful fakes of Binance's spot REST API and Bybit's v5 API for order execution, answered by ``responses``.

ccxt's synchronous classes send through ``requests``, so a ``responses.RequestsMock`` answers them without any
socket. Each fake keeps the account's state (orders by client order id, fills, balances) and answers in the
exchanges' documented formats (Binance: developers.binance.com "Spot REST API" exchangeInfo, ticker/24hr,
account, order, openOrders, myTrades; Bybit: bybit-exchange.github.io/docs/v5 market/instruments-info,
market/tickers, account/wallet-balance, order/create, order/realtime, order/history, order/cancel). Knobs:

- ``prices[symbol]``: where market orders fill (the ticker's last price);
- ``fill_ratio``: the share of the next market orders that fills (1 = all; a partial fill otherwise);
- ``timeouts``: how many of the next creates the exchange accepts and then never answers (a read timeout);
- :meth:`move` (price): stops at or above the price trigger and fill at it, as overnight.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import responses

DUMMY_KEY = "dummy-api-key-7f3a9c"
DUMMY_SECRET = "dummy-api-secret-0b1e44"
NOW_MS = 1_704_933_600_000  # 2024-01-11 00:40 UTC

#: A route's handler: the request in, ``(status, headers, body)`` out (what ``responses`` callbacks return).
Handler = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]


@dataclass
class FakeOrder:
    order_id: str
    client_id: str
    symbol: str  # exchange id, e.g. BTCUSDT
    side: str  # BUY / SELL
    type: str  # MARKET / STOP_LOSS
    quantity: Decimal
    stop_price: Decimal | None = None
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_asset: str = ""
    status: str = "NEW"  # binance vocabulary; bybit's is derived
    time_ms: int = NOW_MS
    fills: list[dict[str, Any]] = field(default_factory=list)


class _FakeExchange:
    base_asset = "BTC"
    quote_asset = "USDT"
    market_id = "BTCUSDT"
    fee_rate = Decimal("0.001")

    def __init__(self, mock: responses.RequestsMock, *, usdt: str = "1000") -> None:
        self.mock = mock
        self.orders: dict[str, FakeOrder] = {}
        self.balances = {self.quote_asset: Decimal(usdt), self.base_asset: Decimal(0)}
        self.prices = {self.market_id: Decimal("105")}
        self.fill_ratio = Decimal(1)
        self.bnb_fee: Decimal | None = None  # set: every fill pays this much BNB as its whole fee
        self.timeouts = 0
        self.creates = 0  # create requests received (accepted or not)
        self.requests: list[requests.PreparedRequest] = []
        self._ids = itertools.count(1001)
        self.time_ms = NOW_MS

    # -- state ------------------------------------------------------------------------------------------------

    def _fill(self, order: FakeOrder, quantity: Decimal, price: Decimal) -> None:
        quote = (quantity * price).quantize(Decimal("1e-8"))
        if self.bnb_fee is not None:  # binance's BNB discount: the fee is paid in BNB, never in BTC or USDT
            fee, asset = self.bnb_fee, "BNB"
            sign = 1 if order.side == "BUY" else -1
            self.balances[self.quote_asset] -= sign * quote
            self.balances[self.base_asset] += sign * quantity
        elif order.side == "BUY":
            fee, asset = (quantity * self.fee_rate).quantize(Decimal("1e-8")), self.base_asset
            self.balances[self.quote_asset] -= quote
            self.balances[self.base_asset] += quantity - fee
        else:
            fee, asset = (quote * self.fee_rate).quantize(Decimal("1e-8")), self.quote_asset
            self.balances[self.base_asset] -= quantity
            self.balances[self.quote_asset] += quote - fee
        order.executed += quantity
        order.quote += quote
        order.fee += fee
        order.fee_asset = asset
        order.time_ms = self.time_ms
        order.fills.append(
            {
                "price": price,
                "qty": quantity,
                "fee": fee,
                "asset": asset,
                "id": next(self._ids),
                "time": self.time_ms,
            }
        )

    def _place(
        self, *, client_id: str, side: str, type_: str, quantity: Decimal, stop: Decimal | None
    ) -> FakeOrder:
        order = FakeOrder(str(next(self._ids)), client_id, self.market_id, side, type_, quantity, stop)
        order.time_ms = self.time_ms
        self.orders[client_id] = order
        if type_ == "MARKET":
            filled = (quantity * self.fill_ratio).quantize(Decimal("1e-8"), rounding=ROUND_DOWN)
            if filled > 0:
                self._fill(order, filled, self.prices[self.market_id])
            order.status = "FILLED" if filled == quantity else self._partial_status()
        return order

    def _partial_status(self) -> str:
        raise NotImplementedError

    def move(self, price: str, *, at_ms: int) -> None:
        """The market trades at ``price`` at ``at_ms``: live stops at or above it trigger and fill at it."""
        self.time_ms = at_ms
        self.prices[self.market_id] = Decimal(price)
        for order in self.orders.values():
            live_stop = order.type == "STOP_LOSS" and order.status == "NEW" and order.stop_price is not None
            if live_stop and order.stop_price is not None and Decimal(price) <= order.stop_price:
                self._fill(order, order.quantity, Decimal(price))
                order.status = "FILLED"

    def placed(self, *, side: str | None = None, type_: str | None = None) -> list[FakeOrder]:
        """Orders the exchange accepted, oldest first."""
        return [
            o
            for o in self.orders.values()
            if (side is None or o.side == side) and (type_ is None or o.type == type_)
        ]

    def _count_create(self) -> None:
        self.creates += 1

    def _maybe_time_out(self) -> None:
        if self.timeouts > 0:
            self.timeouts -= 1
            raise requests.exceptions.ReadTimeout("read timed out (the fake accepted the order first)")

    @staticmethod
    def _params(request: requests.PreparedRequest) -> dict[str, str]:
        query = dict(parse_qsl(urlsplit(request.url or "").query))
        body = request.body
        if body:
            text = body.decode() if isinstance(body, bytes) else str(body)
            if text.startswith("{"):
                query.update({k: str(v) for k, v in json.loads(text).items()})
            else:
                query.update(dict(parse_qsl(text)))
        return query


def _j(status: int, payload: Any) -> tuple[int, dict[str, str], str]:
    return status, {"Content-Type": "application/json"}, json.dumps(payload)


class FakeBinance(_FakeExchange):
    """Binance spot (``https://api.binance.com/api/v3``): one market, BTC/USDT, with a 5 USDT minimum notional.

    Args:
        mock: the active ``responses`` mock.
        usdt: the free USDT balance.
        stop_loss: whether the market lists the ``STOP_LOSS`` order type.
    """

    host = "https://api.binance.com"

    def __init__(self, mock: responses.RequestsMock, *, usdt: str = "1000", stop_loss: bool = True) -> None:
        super().__init__(mock, usdt=usdt)
        self.stop_loss = stop_loss
        base = re.escape(self.host + "/api/v3/")
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "exchangeInfo", self._exchange_info),
            ("GET", "ticker/24hr", self._ticker),
            ("GET", "account", self._account),
            ("POST", "order", self._create),
            ("GET", "order", self._get),
            ("DELETE", "order", self._cancel),
            ("GET", "openOrders", self._open_orders),
            ("GET", "myTrades", self._my_trades),
        ]
        for method, path, handler in routes:
            mock.add_callback(
                method, re.compile(base + re.escape(path) + r"(\?.*)?$"), callback=self._recorded(handler)
            )

    def _recorded(self, handler: Handler) -> Handler:
        def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            self.requests.append(request)
            return handler(request)

        return callback

    def _partial_status(self) -> str:
        return "EXPIRED"  # a market order that ran out of liquidity expires with what it filled

    def _exchange_info(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        order_types = ["LIMIT", "LIMIT_MAKER", "MARKET"] + (
            ["STOP_LOSS", "STOP_LOSS_LIMIT"] if self.stop_loss else []
        )
        return _j(200, {
            "timezone": "UTC", "serverTime": self.time_ms, "rateLimits": [], "exchangeFilters": [],
            "symbols": [{
                "symbol": self.market_id, "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
                "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8, "orderTypes": order_types,
                "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False, "permissions": [], "permissionSets": [["SPOT"]],
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
                     "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000",
                     "stepSize": "0.00001000"},
                    {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
            }],
        })  # fmt: skip

    def _ticker(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        last = str(self.prices[self.market_id])
        return _j(200, {
            "symbol": self.market_id, "priceChange": "0", "priceChangePercent": "0", "weightedAvgPrice": last,
            "prevClosePrice": last, "lastPrice": last, "lastQty": "0.1", "bidPrice": last, "bidQty": "1",
            "askPrice": last, "askQty": "1", "openPrice": last, "highPrice": last, "lowPrice": last,
            "volume": "100", "quoteVolume": "10500", "openTime": self.time_ms - 86_400_000,
            "closeTime": self.time_ms, "firstId": 1, "lastId": 2, "count": 2,
        })  # fmt: skip

    def _account(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        return _j(200, {
            "makerCommission": 10, "takerCommission": 10, "canTrade": True, "canWithdraw": True,
            "canDeposit": True, "updateTime": self.time_ms, "accountType": "SPOT", "permissions": ["SPOT"],
            "balances": [{"asset": a, "free": str(v), "locked": "0.00000000"} for a, v in self.balances.items()],
        })  # fmt: skip

    def _order(self, order: FakeOrder, *, fills: bool = False) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "symbol": order.symbol, "orderId": int(order.order_id), "orderListId": -1,
            "clientOrderId": order.client_id, "price": "0.00000000", "origQty": str(order.quantity),
            "executedQty": str(order.executed), "cummulativeQuoteQty": str(order.quote), "status": order.status,
            "timeInForce": "GTC", "type": order.type, "side": order.side,
            "stopPrice": str(order.stop_price or "0.00000000"), "time": order.time_ms, "updateTime": order.time_ms,
            "isWorking": True, "workingTime": order.time_ms, "selfTradePreventionMode": "NONE",
        }  # fmt: skip
        if fills:
            payload["transactTime"] = order.time_ms
            payload["fills"] = [
                {"price": str(f["price"]), "qty": str(f["qty"]), "commission": str(f["fee"]),
                 "commissionAsset": f["asset"], "tradeId": f["id"]}
                for f in order.fills
            ]  # fmt: skip
        return payload

    def _create(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self._count_create()
        params = self._params(request)
        client_id = params["newClientOrderId"]
        if client_id in self.orders:
            return _j(400, {"code": -2010, "msg": "Duplicate order sent."})
        quantity = Decimal(params["quantity"])
        if params["type"] == "MARKET" and quantity * self.prices[self.market_id] < 5:
            return _j(400, {"code": -1013, "msg": "Filter failure: NOTIONAL"})
        if (
            params["side"] == "BUY"
            and quantity * self.prices[self.market_id] > self.balances[self.quote_asset]
        ):
            return _j(400, {"code": -2010, "msg": "Account has insufficient balance for requested action."})
        stop = Decimal(params["stopPrice"]) if "stopPrice" in params else None
        order = self._place(
            client_id=client_id, side=params["side"], type_=params["type"], quantity=quantity, stop=stop
        )
        self._maybe_time_out()
        return _j(200, self._order(order, fills=True))

    def _find(self, params: dict[str, str]) -> FakeOrder | None:
        if "origClientOrderId" in params:
            return self.orders.get(params["origClientOrderId"])
        return next((o for o in self.orders.values() if o.order_id == params.get("orderId")), None)

    def _get(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        order = self._find(self._params(request))
        if order is None:
            return _j(400, {"code": -2013, "msg": "Order does not exist."})
        return _j(200, self._order(order))

    def _cancel(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        order = self._find(self._params(request))
        if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
            return _j(400, {"code": -2011, "msg": "Unknown order sent."})
        order.status = "CANCELED"
        return _j(200, {**self._order(order), "origClientOrderId": order.client_id})

    def _open_orders(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        return _j(
            200, [self._order(o) for o in self.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")]
        )

    def _my_trades(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        params = self._params(request)
        trades = []
        for order in self.orders.values():
            if params.get("orderId") not in (None, order.order_id):
                continue
            for f in order.fills:
                trades.append({
                    "symbol": order.symbol, "id": f["id"], "orderId": int(order.order_id), "orderListId": -1,
                    "price": str(f["price"]), "qty": str(f["qty"]), "quoteQty": str(f["price"] * f["qty"]),
                    "commission": str(f["fee"]), "commissionAsset": f["asset"], "time": f["time"],
                    "isBuyer": order.side == "BUY", "isMaker": False, "isBestMatch": True,
                })  # fmt: skip
        return _j(200, trades)


class FakeBybit(_FakeExchange):
    """Bybit v5, unified trading account (``https://api.bybit.com/v5``): spot BTC/USDT, minimum order 5 USDT."""

    host = "https://api.bybit.com"

    def __init__(self, mock: responses.RequestsMock, *, usdt: str = "1000") -> None:
        super().__init__(mock, usdt=usdt)
        base = re.escape(self.host + "/v5/")
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "market/instruments-info", self._instruments),
            ("GET", "market/tickers", self._tickers),
            ("GET", "asset/coin/query-info", lambda r: self._ok({"rows": []})),
            ("GET", "user/query-api", lambda r: self._ok({"id": "1", "readOnly": 0, "unified": 0, "uta": 1})),
            (
                "GET",
                "account/info",
                lambda r: self._ok({"unifiedMarginStatus": 5, "marginMode": "REGULAR_MARGIN"}),
            ),
            ("GET", "account/wallet-balance", self._wallet),
            ("POST", "order/create", self._create),
            ("GET", "order/realtime", lambda r: self._list(r, live=True)),
            ("GET", "order/history", lambda r: self._list(r, live=False)),
            ("POST", "order/cancel", self._cancel),
            ("GET", "execution/list", self._executions),
        ]
        for method, path, handler in routes:
            mock.add_callback(
                method, re.compile(base + re.escape(path) + r"(\?.*)?$"), callback=self._recorded(handler)
            )

    def _recorded(self, handler: Handler) -> Handler:
        def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            self.requests.append(request)
            return handler(request)

        return callback

    def _partial_status(self) -> str:
        return "PARTIALLY_FILLED"  # bybit shows it PartiallyFilled until the rest is cancelled

    def _ok(self, result: Any) -> tuple[int, dict[str, str], str]:
        return _j(
            200, {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.time_ms}
        )

    def _error(self, code: int, message: str) -> tuple[int, dict[str, str], str]:
        return _j(
            200, {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": self.time_ms}
        )

    def _instruments(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        return self._ok({"category": "spot", "list": [{
            "symbol": self.market_id, "baseCoin": "BTC", "quoteCoin": "USDT", "innovation": "0",
            "status": "Trading", "marginTrading": "utaOnly", "stTag": "0",
            "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                              "minOrderQty": "0.000048", "maxOrderQty": "71.73956243", "minOrderAmt": "5",
                              "maxOrderAmt": "2000000"},
            "priceFilter": {"tickSize": "0.01"},
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        }]})  # fmt: skip

    def _tickers(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        last = str(self.prices[self.market_id])
        return self._ok({"category": "spot", "list": [{
            "symbol": self.market_id, "bid1Price": last, "bid1Size": "1", "ask1Price": last, "ask1Size": "1",
            "lastPrice": last, "prevPrice24h": last, "price24hPcnt": "0", "highPrice24h": last,
            "lowPrice24h": last, "turnover24h": "10500", "volume24h": "100", "usdIndexPrice": last,
        }]})  # fmt: skip

    def _wallet(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        coins = [
            {"coin": a, "equity": str(v), "walletBalance": str(v), "locked": "0", "borrowAmount": "0",
             "accruedInterest": "0", "totalOrderIM": "0", "totalPositionIM": "0", "usdValue": str(v)}
            for a, v in self.balances.items()
        ]  # fmt: skip
        return self._ok({"list": [{"accountType": "UNIFIED", "totalEquity": "1000", "coin": coins}]})

    def _status(self, order: FakeOrder) -> str:
        return {
            "NEW": "Untriggered" if order.type == "STOP_LOSS" else "New",
            "PARTIALLY_FILLED": "PartiallyFilled",
            "FILLED": "Filled",
            "CANCELED": "PartiallyFilledCanceled" if order.executed > 0 else "Cancelled",
            "EXPIRED": "Deactivated",
        }[order.status]

    def _order(self, order: FakeOrder) -> dict[str, Any]:
        average = str((order.quote / order.executed).quantize(Decimal("1e-8"))) if order.executed else ""
        return {
            "orderId": order.order_id, "orderLinkId": order.client_id, "blockTradeId": "", "symbol": order.symbol,
            "price": "0", "qty": str(order.quantity), "side": order.side.capitalize(), "isLeverage": "0",
            "positionIdx": 0, "orderStatus": self._status(order), "cancelType": "UNKNOWN", "rejectReason": "EC_NoError",
            "avgPrice": average, "leavesQty": str(order.quantity - order.executed), "leavesValue": "0",
            "cumExecQty": str(order.executed), "cumExecValue": str(order.quote), "cumExecFee": str(order.fee),
            "cumFeeDetail": {order.fee_asset: str(order.fee)} if order.fee else {},
            "timeInForce": "IOC" if order.type == "MARKET" else "GTC",
            "orderType": "Market", "stopOrderType": "tpslOrder" if order.type == "STOP_LOSS" else "",
            "orderIv": "", "triggerPrice": str(order.stop_price or "0"),
            "takeProfit": "0", "stopLoss": "0", "tpTriggerBy": "", "slTriggerBy": "",
            "triggerDirection": 2 if order.type == "STOP_LOSS" else 0, "triggerBy": "LastPrice",
            "lastPriceOnCreated": "", "reduceOnly": order.type == "STOP_LOSS", "closeOnTrigger": False,
            "smpType": "None", "smpGroup": 0, "smpOrderId": "", "tpslMode": "", "tpLimitPrice": "",
            "slLimitPrice": "", "placeType": "", "marketUnit": "baseCoin" if order.type == "MARKET" else "",
            "createdTime": str(order.time_ms), "updatedTime": str(order.time_ms),
        }  # fmt: skip

    def _create(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        self._count_create()
        params = self._params(request)
        client_id = params["orderLinkId"]
        if client_id in self.orders:
            return self._error(170141, "Duplicate clientOrderId.")
        quantity = Decimal(params["qty"])
        if quantity * self.prices[self.market_id] < 5:
            return self._error(170140, "Order value exceeded lower limit.")
        stop = Decimal(params["triggerPrice"]) if "triggerPrice" in params else None
        type_ = "STOP_LOSS" if stop is not None else "MARKET"
        order = self._place(
            client_id=client_id, side=params["side"].upper(), type_=type_, quantity=quantity, stop=stop
        )
        self._maybe_time_out()
        return self._ok({"orderId": order.order_id, "orderLinkId": order.client_id})

    def _list(self, request: requests.PreparedRequest, *, live: bool) -> tuple[int, dict[str, str], str]:
        params = self._params(request)
        found = [
            o
            for o in self.orders.values()
            if params.get("orderLinkId") in (None, o.client_id)
            and params.get("orderId") in (None, o.order_id)
            and ((o.status in ("NEW", "PARTIALLY_FILLED")) == live)
        ]
        return self._ok({"category": "spot", "list": [self._order(o) for o in found], "nextPageCursor": ""})

    def _cancel(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        params = self._params(request)
        order = next(
            (
                o
                for o in self.orders.values()
                if params.get("orderId") == o.order_id or params.get("orderLinkId") == o.client_id
            ),
            None,
        )
        if order is None or order.status not in ("NEW", "PARTIALLY_FILLED"):
            return self._error(170213, "Order does not exist.")
        order.status = "CANCELED"
        return self._ok({"orderId": order.order_id, "orderLinkId": order.client_id})

    def _executions(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        rows = [
            {"symbol": o.symbol, "orderId": o.order_id, "orderLinkId": o.client_id, "side": o.side.capitalize(),
             "execPrice": str(f["price"]), "execQty": str(f["qty"]), "execFee": str(f["fee"]),
             "feeCurrency": f["asset"], "execTime": str(f["time"]), "execId": str(f["id"]), "isMaker": False,
             "orderType": "Market", "execValue": str(f["price"] * f["qty"]), "execType": "Trade"}
            for o in self.orders.values()
            for f in o.fills
        ]  # fmt: skip
        return self._ok({"category": "spot", "list": rows, "nextPageCursor": ""})
