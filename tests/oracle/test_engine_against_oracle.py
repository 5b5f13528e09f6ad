"""The engine's backtest against the independent oracle of CRITERIA.md (:mod:`tests.oracle.criteria_oracle`), on
the project's shipped history (no database: plain pytest).

Data: ``data/history/bitstamp_(BTC,ETH,LTC)USD_d.csv`` (Bitstamp daily, 2014-11 .. 2020-01-17, gaps on
2019-03-20 .. 31) and ``data/history/BTC_USDT-1h.feather`` (Binance hourly, 2017-08-17 .. 2024-04-21), rolled up
here to complete UTC days (open first, high max, low min, close last, volume sum; a day with fewer than 24 hours
is left out, so the daily series has gaps, which the cases also exercise).

Each case runs the engine and the oracle and requires identical trades (count, symbols, indexes, times, exit
reasons; prices, quantities, fees and P&L to a relative 1e-9) and equity curves (relative 1e-9); each case also
checks that it exercises what its name claims.

Cases in which a stop during candle t is followed by an entry at the open of t + 1 depend on CRITERIA.md's
one-boundary order (risk exits of candle t settled before the entries at t + 1): an engine that enters first
makes other trades there. Their failure message says so.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import feather

from tests.oracle.criteria_oracle import OracleResult, OracleTrade, oracle_backtest, trades_summary
from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import criteria_parse
from trading.engine.types import CandleArrays, Trade

HISTORY = Path(__file__).resolve().parents[2] / "data" / "history"
BITSTAMP = HISTORY / "bitstamp_(BTC,ETH,LTC)USD_d.csv"
BINANCE = HISTORY / "BTC_USDT-1h.feather"
RTOL = 1e-9
Candles = dict[str, np.ndarray]


def day(iso: str) -> int:
    """Seconds since epoch of ``iso`` (``YYYY-MM-DD``) at 00:00 UTC."""
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp())


def iso(seconds: int | None) -> str:
    """``YYYY-MM-DD`` of seconds since epoch (UTC), or ``-``."""
    return "-" if seconds is None else datetime.fromtimestamp(seconds, UTC).date().isoformat()


@cache
def bitstamp() -> dict[str, Candles]:
    """The Bitstamp daily candles by symbol (BTC, ETH, LTC): ``open_time_seconds`` (int64) and ``open``, ``high``,
    ``low``, ``close``, ``volume`` (float64), shape (n,) each; rows with an empty cell for the symbol left out."""
    rows: dict[str, list[list[float]]] = {"BTC": [], "ETH": [], "LTC": []}
    times: dict[str, list[int]] = {symbol: [] for symbol in rows}
    with BITSTAMP.open(newline="") as handle:
        for record in csv.DictReader(handle):
            for symbol in rows:
                cells = [record[f"{symbol}:{k}"] for k in ("open", "high", "low", "close", "volume")]
                if any(cell == "" for cell in cells):
                    continue
                times[symbol].append(day(record[""]))
                rows[symbol].append([float(cell) for cell in cells])
    out: dict[str, Candles] = {}
    for symbol, values in rows.items():
        array = np.array(values, dtype=np.float64)
        out[symbol] = {"open_time_seconds": np.array(times[symbol], dtype=np.int64)}
        for k, name in enumerate(("open", "high", "low", "close", "volume")):
            out[symbol][name] = np.ascontiguousarray(array[:, k])
    return out


@cache
def binance_daily() -> Candles:
    """Binance BTC/USDT rolled up to complete UTC days (24 hourly candles each), arrays as :func:`bitstamp`."""
    table = feather.read_table(BINANCE)
    hours = table.column("date").cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_numpy()
    values = {name: table.column(name).to_numpy() for name in ("open", "high", "low", "close", "volume")}
    days, first, count = np.unique(hours // 86_400, return_index=True, return_counts=True)
    complete = count == 24
    last = first + count - 1
    out: Candles = {"open_time_seconds": (days * 86_400).astype(np.int64)[complete]}
    out["open"] = values["open"][first][complete]
    out["high"] = np.maximum.reduceat(values["high"], first)[complete]
    out["low"] = np.minimum.reduceat(values["low"], first)[complete]
    out["close"] = values["close"][last][complete]
    out["volume"] = np.add.reduceat(values["volume"], first)[complete]
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def candles_for(source: str, symbols: tuple[str, ...]) -> dict[str, Candles]:
    """The candles of ``symbols`` from ``source``: ``"bitstamp"``; ``"binance"``, whose one symbol is BTC; or
    ``"binance+bitstamp"``, Binance's BTC (to 2024-04) with Bitstamp's other ``symbols`` (to 2020-01-17)."""
    if source == "binance":
        return {"BTC": binance_daily()}
    if source == "binance+bitstamp":
        return {
            "BTC": binance_daily(),
            **{symbol: bitstamp()[symbol] for symbol in symbols if symbol != "BTC"},
        }
    return {symbol: bitstamp()[symbol] for symbol in symbols}


def criteria_doc(**fields: Any) -> dict[str, Any]:
    """A full criteria document: CRITERIA.md's defaults with ``fields`` replacing them."""
    doc: dict[str, Any] = {
        "version": 1,
        "side": "long",
        "entry": None,
        "exit": None,
        "stop_loss_ratio": None,
        "take_profit_ratio": None,
        "trailing_stop_ratio": None,
        "max_holding_days": None,
        "sizing": {"method": "equity_fraction", "value": 1.0},
        "fee_rate": 0.001,
        "slippage_ratio": 0.0,
    }
    doc.update(fields)
    return doc


def ind(name: str, period: int | None = None, **more: Any) -> dict[str, Any]:
    """An indicator operand."""
    operand: dict[str, Any] = {"indicator": name}
    if period is not None:
        operand["period"] = period
    operand.update(more)
    return operand


def cmp(left: dict[str, Any], op: str, right: dict[str, Any] | float) -> dict[str, Any]:
    """A comparison; a number on the right is a constant operand."""
    return {"left": left, "op": op, "right": right if isinstance(right, dict) else {"value": right}}


SMA_CROSS_UP = cmp(ind("sma", 10, source="close"), "crosses_above", ind("sma", 20, source="close"))
SMA_CROSS_DOWN = cmp(ind("sma", 10, source="close"), "crosses_below", ind("sma", 20, source="close"))
STOP_CASE_CRITERIA = criteria_doc(
    entry=SMA_CROSS_UP, exit=SMA_CROSS_DOWN, stop_loss_ratio=0.05, fee_rate=0.002, slippage_ratio=0.001
)
RSI_BINANCE = criteria_doc(
    entry=cmp(ind("rsi", 14), "<", 30),
    exit=cmp(ind("rsi", 14), ">", 70),
    stop_loss_ratio=0.08,
)


@dataclass(frozen=True)
class Case:
    """One run of both implementations.

    Attributes:
        id: the case's name (what it exercises).
        source, symbols: the data (:func:`candles_for`).
        criteria: the criteria document.
        start, end: the first and last boundary, ``YYYY-MM-DD``.
        close_at_end: sell what is open at the last close (``end_of_data``).
        reasons: exit reasons (or ``"open"``) the oracle's trades must include, so the case is not vacuous.
        claim: a further check of the oracle's result (given the candles), with what it checks.
        cash: starting cash, quote currency.
    """

    id: str
    source: str
    symbols: tuple[str, ...]
    criteria: dict[str, Any]
    start: str
    end: str
    close_at_end: bool = False
    reasons: tuple[str, ...] = ()
    claim: tuple[str, Callable[[OracleResult, dict[str, Candles]], bool]] | None = None
    cash: float = 10_000.0


def _symbols_traded(result: OracleResult) -> int:
    """How many symbols traded."""
    return len({t.symbol for t in result.trades})


def _overlapping_symbols(result: OracleResult, _: dict[str, Candles] | None = None) -> bool:
    """Two positions of different symbols open at once."""
    for a in result.trades:
        for b in result.trades:
            if a.symbol < b.symbol:
                a_end = a.exit_time_seconds or 2**62
                b_end = b.exit_time_seconds or 2**62
                if a.entry_time_seconds < b_end and b.entry_time_seconds < a_end:
                    return True
    return False


def _fixed_spend(result: OracleResult, _: dict[str, Candles]) -> bool:
    """Some entry spent exactly the fixed 2,500 (notional plus fee), and none spent more."""
    costs = [t.cost for t in result.trades]
    return any(math.isclose(c, 2_500.0, rel_tol=1e-12) for c in costs) and max(costs) <= 2_500.0 * (1 + 1e-12)


def _gapped_stop(result: OracleResult, candles: dict[str, Candles]) -> bool:
    """A stop filled at the open of its candle, which had gapped through the level."""
    for t in result.trades:
        if t.exit_reason == "stop_loss" and t.exit_price is not None and t.exit_index is not None:
            slippage = t.entry_price / float(candles[t.symbol]["open"][t.entry_index]) - 1.0
            at_open = float(candles[t.symbol]["open"][t.exit_index]) * (1.0 - slippage)
            if math.isclose(t.exit_price, at_open, rel_tol=1e-12):
                return True
    return False


def _open_through_stop(result: OracleResult, candles: dict[str, Candles]) -> bool:
    """The last trade is open, and the low of its instrument's last candle is at or below a 5 % stop."""
    last = result.trades[-1]
    low = float(
        candles[last.symbol]["low"][
            int(np.searchsorted(candles[last.symbol]["open_time_seconds"], result.times[-1]))
        ]
    )
    return last.exit_reason is None and low <= last.entry_price * 0.95


def _stop_then_reentry(result: OracleResult, _: dict[str, Candles] | None = None) -> bool:
    """A stop during candle t followed by an entry at the very next open (t + 1 day) on the same symbol."""
    stops = {
        (t.symbol, t.exit_time_seconds)
        for t in result.trades
        if t.exit_reason in ("stop_loss", "trailing_stop")
    }
    return any((t.symbol, t.entry_time_seconds - 86_400) in stops for t in result.trades)


CASES: list[Case] = [
    Case(
        "stop_loss_and_signal_btc_bitstamp_fees_slippage",
        "bitstamp",
        ("BTC",),
        STOP_CASE_CRITERIA,
        "2015-06-01",
        "2019-12-31",
        reasons=("stop_loss", "signal"),
    ),
    Case(
        "take_profit_ema_btc_binance",
        "binance",
        ("BTC",),
        criteria_doc(
            entry={
                "all": [
                    cmp(ind("ema", 12, source="close"), "crosses_above", ind("ema", 26, source="close")),
                    cmp(ind("rsi", 14), "<=", 70),
                    cmp(ind("volume"), ">=", 0),
                ]
            },
            take_profit_ratio=0.1,
            stop_loss_ratio=0.15,
            fee_rate=0.001,
            slippage_ratio=0.0005,
        ),
        "2020-01-01",
        "2023-12-31",
        reasons=("take_profit", "stop_loss"),
    ),
    Case(
        "trailing_stop_breakout_btc_binance",
        "binance",
        ("BTC",),
        criteria_doc(
            entry=cmp(ind("close"), ">", ind("highest", 20, source="high", shift=1)),
            trailing_stop_ratio=0.1,
            stop_loss_ratio=0.12,
            slippage_ratio=0.001,
        ),
        "2020-01-01",
        "2024-04-20",
        reasons=("trailing_stop",),
    ),
    Case(
        "max_holding_roc_ltc_equity_fraction_half",
        "bitstamp",
        ("LTC",),
        criteria_doc(
            entry={"any": [cmp(ind("roc", 5), "<", -0.1), cmp(ind("roc", 3, shift=1), ">=", 0.25)]},
            exit={"not": cmp(ind("close"), ">", ind("lowest", 30, source="low"))},
            max_holding_days=7,
            sizing={"method": "equity_fraction", "value": 0.5},
            fee_rate=0.0025,
            slippage_ratio=0.002,
        ),
        "2017-08-01",
        "2020-01-17",
        reasons=("max_holding",),
    ),
    Case(
        "fixed_quote_atr_eth",
        "bitstamp",
        ("ETH",),
        criteria_doc(
            entry={"any": [cmp(ind("rsi", 14), "<", 35), cmp(ind("atr", 14), ">", ind("atr", 14, shift=5))]},
            exit=cmp(ind("rsi", 14), ">", 60),
            stop_loss_ratio=0.3,
            sizing={"method": "fixed_quote", "value": 2_500.0},
            fee_rate=0.001,
            slippage_ratio=0.0005,
        ),
        "2018-01-01",
        "2020-01-17",
        reasons=("signal",),
        claim=("an entry spends exactly the fixed quote, none more", _fixed_spend),
    ),
    Case(
        "shared_cash_runs_out_btc_eth_ltc",
        "bitstamp",
        ("BTC", "ETH", "LTC"),
        criteria_doc(
            entry=cmp(ind("rsi", 14), "<", 38),
            exit=cmp(ind("rsi", 14), ">", 55),
            fee_rate=0.001,
            slippage_ratio=0.001,
        ),
        "2018-01-01",
        "2020-01-17",
        reasons=("signal",),
        claim=(
            "several symbols trade and some entries find no cash",
            lambda r, _: r.skipped_entries > 0 and _symbols_traded(r) == 3,
        ),
    ),
    Case(
        "shared_cash_fixed_quote_max_holding_btc_eth_ltc",
        "bitstamp",
        ("BTC", "ETH", "LTC"),
        criteria_doc(
            entry=cmp(ind("close"), "<", ind("lowest", 10, source="close", shift=1)),
            max_holding_days=10,
            sizing={"method": "fixed_quote", "value": 4_000.0},
            fee_rate=0.001,
            slippage_ratio=0.0005,
        ),
        "2018-01-01",
        "2020-01-17",
        reasons=("max_holding",),
        claim=(
            "positions of different symbols overlap and some entries get less than the fixed quote",
            lambda r, _: _overlapping_symbols(r) and r.cash_limited_entries > 0,
        ),
    ),
    Case(
        "shared_cash_fraction_btc_eth_ltc",
        "bitstamp",
        ("BTC", "ETH", "LTC"),
        criteria_doc(
            entry=cmp(ind("rsi", 14), "<", 40),
            exit=cmp(ind("rsi", 14), ">", 60),
            stop_loss_ratio=0.08,
            sizing={"method": "equity_fraction", "value": 0.4},
            fee_rate=0.002,
            slippage_ratio=0.0005,
        ),
        "2018-01-01",
        "2020-01-17",
        reasons=("signal", "stop_loss"),
        claim=(
            "positions of different symbols overlap and some entries get less than 0.4 of equity",
            lambda r, _: _overlapping_symbols(r) and r.cash_limited_entries > 0,
        ),
    ),
    Case(
        "rsi_binance_contract_example",
        "binance",
        ("BTC",),
        RSI_BINANCE,
        "2020-01-01",
        "2024-04-20",
        reasons=("stop_loss", "signal"),
        claim=("a stop is followed by an entry at the next open", _stop_then_reentry),
    ),
    Case(
        "stop_gapped_open_fills_at_open_btc",
        "bitstamp",
        ("BTC",),
        criteria_doc(entry=SMA_CROSS_UP, exit=SMA_CROSS_DOWN, stop_loss_ratio=0.2, slippage_ratio=0.001),
        "2015-06-01",
        "2016-06-01",
        reasons=("stop_loss",),
        claim=("a stop fills at the open that gapped through it", _gapped_stop),
    ),
    Case(
        "stop_in_last_candle_reported_open",
        "bitstamp",
        ("BTC",),
        STOP_CASE_CRITERIA,
        "2018-06-01",
        "2018-09-06",
        reasons=("open",),
        claim=("the last trade is open although the last candle goes through its stop", _open_through_stop),
    ),
    Case(
        "stop_in_last_candle_close_at_end",
        "bitstamp",
        ("BTC",),
        STOP_CASE_CRITERIA,
        "2018-06-01",
        "2018-09-06",
        close_at_end=True,
        reasons=("stop_loss",),
        claim=(
            "the last candle's stop is taken before end_of_data",
            lambda r, _: (
                r.trades[-1].exit_reason == "stop_loss"
                and iso(r.trades[-1].exit_time_seconds) == "2018-09-06"
            ),
        ),
    ),
    Case(
        "ends_inside_open_trade_reported_open",
        "bitstamp",
        ("BTC",),
        criteria_doc(entry=SMA_CROSS_UP, exit=SMA_CROSS_DOWN, stop_loss_ratio=0.2, slippage_ratio=0.001),
        "2016-01-01",
        "2017-12-10",
        reasons=("open",),
        claim=("the last trade is open", lambda r, _: r.trades[-1].exit_reason is None),
    ),
    Case(
        "ends_inside_open_trade_close_at_end",
        "bitstamp",
        ("BTC",),
        criteria_doc(entry=SMA_CROSS_UP, exit=SMA_CROSS_DOWN, stop_loss_ratio=0.2, slippage_ratio=0.001),
        "2016-01-01",
        "2017-12-10",
        close_at_end=True,
        reasons=("end_of_data",),
        claim=("the last trade ends at end_of_data", lambda r, _: r.trades[-1].exit_reason == "end_of_data"),
    ),
    Case(
        "data_end_of_one_instrument_frees_its_cash_for_the_other",
        "binance+bitstamp",
        ("BTC", "ETH"),
        criteria_doc(
            entry=SMA_CROSS_UP, exit=SMA_CROSS_DOWN, sizing={"method": "equity_fraction", "value": 0.9}
        ),
        "2019-10-01",
        "2020-06-30",
        close_at_end=True,
        reasons=("end_of_data",),
        claim=(
            "ETH's data ends 2020-01-17 inside a trade, sold end_of_data at that close, and BTC enters later",
            lambda r, _: (
                any(
                    t.symbol == "ETH"
                    and t.exit_reason == "end_of_data"
                    and iso(t.exit_time_seconds) == "2020-01-18"
                    for t in r.trades
                )
                and any(t.symbol == "BTC" and iso(t.entry_time_seconds) > "2020-01-18" for t in r.trades)
            ),
        ),
    ),
]


def engine_run(case: Case) -> BacktestResult:
    """Run the engine on ``case``."""
    instruments = [
        CandleArrays(
            symbol=symbol,
            open_time_seconds=arrays["open_time_seconds"],
            open=arrays["open"],
            high=arrays["high"],
            low=arrays["low"],
            close=arrays["close"],
            volume=arrays["volume"],
        )
        for symbol, arrays in candles_for(case.source, case.symbols).items()
    ]
    return backtest(
        criteria=criteria_parse(case.criteria),
        instruments=instruments,
        start_time_seconds=day(case.start),
        end_time_seconds=day(case.end),
        starting_cash=case.cash,
        close_at_end=case.close_at_end,
    )


def oracle_run(case: Case) -> OracleResult:
    """Run the oracle on ``case``."""
    return oracle_backtest(
        case.criteria,
        candles_for(case.source, case.symbols),
        day(case.start),
        day(case.end),
        case.cash,
        case.close_at_end,
    )


_EXACT = ("symbol", "entry_index", "entry_time_seconds", "exit_index", "exit_time_seconds", "exit_reason")
_CLOSE = (
    "entry_price",
    "quantity",
    "entry_fee",
    "stop_loss_price",
    "exit_price",
    "exit_fee",
    "pnl",
    "pnl_ratio",
)


def _show(trade: OracleTrade | Trade) -> str:
    return (
        f"{trade.symbol} in {iso(trade.entry_time_seconds)} (#{trade.entry_index}) @ {trade.entry_price:.6g} "
        f"q={trade.quantity:.6g}, out {iso(trade.exit_time_seconds)} (#{trade.exit_index}) "
        f"@ {trade.exit_price if trade.exit_price is None else f'{trade.exit_price:.6g}'} {trade.exit_reason}"
    )


def _same(a: Any, b: Any, exact: bool) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(a == b) if exact else math.isclose(float(a), float(b), rel_tol=RTOL, abs_tol=1e-9)


def first_difference(oracle: OracleResult, engine: BacktestResult) -> str | None:
    """Describe the first difference between the two runs (trades first, then the equity curve), or None."""
    engine_trades = engine.trades
    for k, (mine, theirs) in enumerate(zip(oracle.trades, engine_trades, strict=False)):
        for name in (*_EXACT, *_CLOSE):
            if not _same(getattr(mine, name), getattr(theirs, name), name in _EXACT):
                return (
                    f"trade {k} differs in {name}: oracle {getattr(mine, name)!r}, engine {getattr(theirs, name)!r}"
                    f"\n  oracle: {_show(mine)}\n  engine: {_show(theirs)}"
                )
    if len(oracle.trades) != len(engine_trades):
        k = min(len(oracle.trades), len(engine_trades))
        extra = oracle.trades[k] if len(oracle.trades) > k else engine_trades[k]
        return (
            f"trade count differs: oracle {len(oracle.trades)}, engine {len(engine_trades)}; "
            f"first extra ({'oracle' if len(oracle.trades) > k else 'engine'}): {_show(extra)}"
        )
    if not np.array_equal(oracle.times, engine.times):
        return "the curves' times differ"
    close = np.isclose(oracle.equity_curve, engine.equity_curve, rtol=RTOL, atol=0.0)
    if not close.all():
        j = int(np.flatnonzero(~close)[0])
        return (
            f"equity differs first at {iso(int(oracle.times[j]))}: oracle {oracle.equity_curve[j]!r}, "
            f"engine {engine.equity_curve[j]!r}"
        )
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_engine_matches_oracle(case: Case) -> None:
    """The engine makes the oracle's trades and equity curve, and the case exercises what it claims."""
    oracle = oracle_run(case)
    summary = trades_summary(oracle.trades)
    missing = [reason for reason in case.reasons if reason not in summary]
    assert not missing, f"{case.id} claims {missing} but the oracle's trades are {summary}"
    if case.claim is not None:
        what, check = case.claim
        assert check(oracle, candles_for(case.source, case.symbols)), (
            f"{case.id} claims {what}; not so ({summary})"
        )
    difference = first_difference(oracle, engine_run(case))
    order = " (the oracle re-enters at the open after a stop)" if _stop_then_reentry(oracle) else ""
    assert difference is None, f"{difference}{order}"


def test_oracle_reproduces_the_contract_rsi_figures() -> None:
    """CRITERIA.md's example: RSI(14) < 30 entry, RSI > 70 exit, 8 % stop on Binance BTC/USDT daily 2020-2024
    makes 20 trades and re-enters at the 2020-03-14 open, 5,576.05, after the 2020-03-13 stop at 4,416.01."""
    result = oracle_backtest(
        RSI_BINANCE, {"BTC": binance_daily()}, day("2020-01-01"), day("2024-04-20"), 10_000.0, False
    )
    assert len(result.trades) == 20
    stopped = next(t for t in result.trades if iso(t.exit_time_seconds) == "2020-03-13")
    assert stopped.exit_reason == "stop_loss"
    assert stopped.exit_price is not None and round(stopped.exit_price, 2) == 4_416.01
    again = next(t for t in result.trades if t.entry_time_seconds > stopped.entry_time_seconds)
    assert iso(again.entry_time_seconds) == "2020-03-14"
    assert again.entry_price == 5_576.05
