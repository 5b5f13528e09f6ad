"""Fake Binance and Bybit spot REST APIs for ccxt, answered through ``responses`` from real candles.

ccxt's synchronous exchanges send their HTTP with ``requests``, so a ``responses.RequestsMock`` answers them;
nothing reaches the network. Each fake registers callbacks for its exchange's public endpoints, keeps every
request it answered (``fake.calls``: path and query), and can be told to fail (``fake.fail(...)``).

Candles are real: :func:`binance_days_2024` rolls Binance's real 2024 one-minute klines
(``../shared/data/minute/binance_btcusdt_1m_2024/``) up into days the way Binance builds a daily kline (open of
the first minute, highest high, lowest low, close of the last minute, sum of the volumes); :func:`binance_days_2020`
reads Binance's real 2020 daily candles (``../shared/data/daily/basana/binance_btcusdt_day_2020.csv``). Both are
computed once per process.

Facts from the exchanges' documentation, used below:
- Binance ``GET /api/v3/klines``: ``symbol``, ``interval``, ``startTime``, ``endTime`` (ms), ``limit`` (default 500,
  max 1000); answers ``[[open_time, "open", "high", "low", "close", "volume", close_time, "quote_volume",
  trades, "taker_base", "taker_quote", "0"], ...]`` oldest first: the first ``limit`` klines from ``startTime``,
  or the last ``limit`` up to ``endTime`` (or now) without it. Errors are ``{"code": -1121, "msg": "Invalid
  symbol."}``; 429 carries ``Retry-After``, 418 means the address is banned for a while.
- Bybit ``GET /v5/market/kline``: ``category``, ``symbol``, ``interval`` (``D`` for a day), ``start``, ``end``
  (ms), ``limit`` (default 200, max 1000); answers ``{"retCode": 0, "retMsg": "OK", "result": {"category",
  "symbol", "list": [["startTime", "open", "high", "low", "close", "volume", "turnover"], ...]}}`` with the
  list *newest first*: the newest ``limit`` candles within ``[start, end]`` (``end`` defaults to now).

Extending: a sibling for signed endpoints (orders) subclasses :class:`FakeExchange` and calls :meth:`route`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import responses

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MINUTES_2024 = SHARED_DATA / "minute" / "binance_btcusdt_1m_2024"
DAILY_2020 = SHARED_DATA / "daily" / "basana" / "binance_btcusdt_day_2020.csv"
DAY_MS = 86_400_000


@dataclass(frozen=True)
class DayKline:
    """One real daily candle as the exchange's strings (Binance keeps 8 decimals)."""

    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str = "0"
    trades: int = 0

    def prices(self) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        """The candle as ``Decimal`` open, high, low, close, volume (what Barter should store)."""
        return (
            Decimal(self.open),
            Decimal(self.high),
            Decimal(self.low),
            Decimal(self.close),
            Decimal(self.volume),
        )

    @property
    def day(self) -> datetime:
        """The candle's open time, aware UTC."""
        return datetime.fromtimestamp(self.open_time_ms / 1000, tz=UTC)


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the exchange tests read the shared real data set, which CI checks out as "
            "../shared beside the repository (see /work/shared/data/README.md)"
        )
    return path


@lru_cache(maxsize=1)
def binance_days_2024() -> tuple[DayKline, ...]:
    """Binance's BTCUSDT days of 2024, rolled up from the real one-minute klines (366 days, 1,440 minutes each)."""
    days = []
    for path in sorted(_need(MINUTES_2024).glob("BTCUSDT-1m-2024-*.csv")):
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        # Binance's daily kline: first open, highest high, lowest low, last close, summed volumes.
        days.append(
            DayKline(
                open_time_ms=int(rows[0][0]),
                open=rows[0][1],
                high=max((r[2] for r in rows), key=Decimal),
                low=min((r[3] for r in rows), key=Decimal),
                close=rows[-1][4],
                volume=str(sum((Decimal(r[5]) for r in rows), Decimal(0))),
                quote_volume=str(sum((Decimal(r[7]) for r in rows), Decimal(0))),
                trades=sum(int(r[8]) for r in rows),
            )
        )
    return tuple(days)


@lru_cache(maxsize=1)
def binance_days_2020() -> tuple[DayKline, ...]:
    """Binance's real BTCUSDT daily candles of 2020 (366 days)."""
    with _need(DAILY_2020).open(newline="") as handle:
        return tuple(
            DayKline(
                open_time_ms=int(
                    datetime.fromisoformat(r["datetime"]).replace(tzinfo=UTC).timestamp() * 1000
                ),
                open=r["open"],
                high=r["high"],
                low=r["low"],
                close=r["close"],
                volume=r["volume"],
            )
            for r in csv.DictReader(handle)
        )


@dataclass
class Failure:
    """A scripted failure: the next ``times`` matching requests get it instead of their answer.

    ``status``/``body``/``headers`` make an HTTP error; ``exception`` is raised in ``requests`` instead (e.g.
    ``requests.exceptions.ReadTimeout()``: ccxt's ``RequestTimeout``).
    """

    path: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    exception: BaseException | None = None
    times: int = 1
    after: int = 0


@dataclass
class Call:
    """One request the fake answered: its path and query parameters."""

    method: str
    path: str
    params: dict[str, str]


Handler = Callable[[dict[str, str]], tuple[int, dict[str, str], Any]]


class FakeExchange:
    """Base of the fakes: routes by method and path on ``base_url``, logs calls, plays scripted failures.

    Args:
        rsps: the active ``responses.RequestsMock``.
        base_url: scheme and host the exchange's ccxt class calls (its testnet host for sandbox tests).
        days: the daily candles served, in time order.
        now: aware UTC time the fake answers as of: candles opening after it are not served; the one that
            contains it is served as the exchange would (incomplete), so a client must drop it itself.
        symbols: the exchange market ids listed, e.g. ``("BTCUSDT",)``.
    """

    def __init__(
        self,
        rsps: responses.RequestsMock,
        *,
        base_url: str,
        days: tuple[DayKline, ...] | list[DayKline] = (),
        now: datetime | None = None,
        symbols: tuple[str, ...] = ("BTCUSDT",),
    ) -> None:
        self.rsps = rsps
        self.base_url = base_url.rstrip("/")
        self.days = list(days)
        self.now = now or datetime.now(UTC)
        self.symbols = symbols
        self.calls: list[Call] = []
        self.failures: list[Failure] = []
        self.ignore_end_time = False

    def route(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method`` ``path`` (any query) with ``handler(params) -> (status, headers, json_body)``."""

        def callback(request: requests.PreparedRequest) -> Any:
            url = urlsplit(str(request.url))
            params = dict(parse_qsl(url.query))
            self.calls.append(Call(method, url.path, params))
            matching = [f for f in self.failures if f.path == url.path and f.times > 0]
            for failure in matching:
                if failure.after > 0:
                    failure.after -= 1
                    continue
                failure.times -= 1
                if failure.exception is not None:
                    return failure.exception
                return failure.status, failure.headers, json.dumps(failure.body)
            status, headers, body = handler(params)
            return status, {"Content-Type": "application/json", **headers}, json.dumps(body)

        self.rsps.add_callback(
            method, re.compile(re.escape(self.base_url + path) + r"(\?.*)?$"), callback=callback
        )

    def fail(self, path: str, **failure: Any) -> Failure:
        """Script a :class:`Failure` of requests to ``path``; returns it (its ``times`` counts down)."""
        scripted = Failure(path=path, **failure)
        self.failures.append(scripted)
        return scripted

    def calls_to(self, path: str) -> list[Call]:
        """The calls answered on ``path``, in order."""
        return [c for c in self.calls if c.path == path]

    @property
    def now_ms(self) -> int:
        """:attr:`now` in ms since the epoch."""
        return int(self.now.timestamp() * 1000)

    def served(self) -> list[DayKline]:
        """The candles that exist as of :attr:`now` (the current day's included)."""
        return [d for d in self.days if d.open_time_ms <= self.now_ms]


class FakeBinance(FakeExchange):
    """Binance spot: ``GET /api/v3/exchangeInfo`` and ``GET /api/v3/klines`` (``interval=1d``)."""

    def __init__(self, rsps: responses.RequestsMock, **kwargs: Any) -> None:
        kwargs.setdefault("base_url", "https://api.binance.com")
        super().__init__(rsps, **kwargs)
        self.route("GET", "/api/v3/exchangeInfo", self.exchange_info)
        self.route("GET", "/api/v3/klines", self.klines)

    def exchange_info(self, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """A minimal documented ``exchangeInfo``: the listed symbols (BTC/USDT-like) with their filters."""
        return (
            200,
            {},
            {
                "timezone": "UTC",
                "serverTime": self.now_ms,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                ],
                "exchangeFilters": [],
                "symbols": [self._symbol(s) for s in self.symbols],
            },
        )

    @staticmethod
    def _symbol(market_id: str) -> dict[str, Any]:
        base, quote = market_id[:-4], market_id[-4:]
        return {
            "symbol": market_id,
            "status": "TRADING",
            "baseAsset": base,
            "baseAssetPrecision": 8,
            "quoteAsset": quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01000000",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.01000000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001000",
                    "maxQty": "9000.00000000",
                    "stepSize": "0.00001000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.00000000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def klines(self, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """Binance's klines: the first ``limit`` from ``startTime``, else the last ``limit`` up to ``endTime``."""
        if params.get("symbol") not in self.symbols:
            return 400, {}, {"code": -1121, "msg": "Invalid symbol."}
        if params.get("interval") != "1d":
            return 400, {}, {"code": -1120, "msg": "Invalid interval."}
        limit = int(params.get("limit", 500))
        if not 1 <= limit <= 1000:
            return 400, {}, {"code": -1130, "msg": "Invalid data sent for a parameter."}
        start = int(params.get("startTime", 0))
        end = self.now_ms if self.ignore_end_time else int(params.get("endTime", self.now_ms))
        window = [d for d in self.served() if start <= d.open_time_ms <= end]
        page = window[:limit] if "startTime" in params else window[-limit:]
        return (
            200,
            {},
            [
                [
                    d.open_time_ms,
                    d.open,
                    d.high,
                    d.low,
                    d.close,
                    d.volume,
                    d.open_time_ms + DAY_MS - 1,
                    d.quote_volume,
                    d.trades,
                    "0",
                    "0",
                    "0",
                ]
                for d in page
            ],
        )


class FakeBybit(FakeExchange):
    """Bybit v5 spot: ``GET /v5/market/instruments-info`` and ``GET /v5/market/kline`` (``interval=D``)."""

    def __init__(self, rsps: responses.RequestsMock, **kwargs: Any) -> None:
        kwargs.setdefault("base_url", "https://api.bybit.com")
        super().__init__(rsps, **kwargs)
        self.route("GET", "/v5/market/instruments-info", self.instruments_info)
        self.route("GET", "/v5/market/kline", self.kline)

    def _envelope(self, result: Any, ret_code: int = 0, ret_msg: str = "OK") -> dict[str, Any]:
        return {
            "retCode": ret_code,
            "retMsg": ret_msg,
            "result": result,
            "retExtInfo": {},
            "time": self.now_ms,
        }

    def instruments_info(self, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """The documented spot ``instruments-info`` for the listed symbols."""
        if params.get("category") != "spot":
            return 200, {}, self._envelope({}, 10001, "params error: category only support spot")
        listed = [
            {
                "symbol": s,
                "baseCoin": s[:-4],
                "quoteCoin": s[-4:],
                "innovation": "0",
                "status": "Trading",
                "marginTrading": "utaOnly",
                "stTag": "0",
                "lotSizeFilter": {
                    "basePrecision": "0.000001",
                    "quotePrecision": "0.00000001",
                    "minOrderQty": "0.000048",
                    "maxOrderQty": "71.73956243",
                    "minOrderAmt": "1",
                    "maxOrderAmt": "2000000",
                },
                "priceFilter": {"tickSize": "0.01"},
                "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
            }
            for s in self.symbols
        ]
        return 200, {}, self._envelope({"category": "spot", "list": listed, "nextPageCursor": ""})

    def kline(self, params: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """Bybit's kline: the newest ``limit`` candles within ``[start, end]``, newest first."""
        if params.get("symbol") not in self.symbols:
            return 200, {}, self._envelope({}, 10001, "Not supported symbols")
        if params.get("interval") != "D":
            return 200, {}, self._envelope({}, 10001, "Invalid period!")
        limit = int(params.get("limit", 200))
        if not 1 <= limit <= 1000:
            return 200, {}, self._envelope({}, 10001, "params error: limit must be in [1, 1000]")
        start = int(params.get("start", 0))
        end = self.now_ms if self.ignore_end_time else int(params.get("end", self.now_ms))
        window = [d for d in self.served() if start <= d.open_time_ms <= end][-limit:]
        rows = [
            [str(d.open_time_ms), d.open, d.high, d.low, d.close, d.volume, d.quote_volume]
            for d in reversed(window)
        ]
        return 200, {}, self._envelope({"category": "spot", "symbol": params["symbol"], "list": rows})
