"""Parity: the daily cycle replayed day by day makes exactly the trades the engine's backtest reports.

On the real history the project ships (Bitstamp BTC, ETH, LTC; Binance BTCUSDT), for strategies that between
them use every exit kind. The replay sees one day at a time (candles before ``as_of`` only); the backtest sees
all of history at once. Agreement is also the proof that the engine never looks ahead.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from instruments.models import Instrument
from positions.accounts import portfolio_cash, strategy_cash
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.cycle.replay import day_range, replay, replay_account_create
from positions.execution.paper import ReplayBroker
from positions.models import Order, Position
from runs.models import History, HistoryKind
from simulator.launch import simulation_start
from simulator.services.requests import simulation_request_check
from trading.backtests import backtest_stored, instrument_key
from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import criteria_parse, limits_parse
from trading.engine.examples import sma_cross_criteria
from trading.engine.portfolio import PortfolioBook, portfolio_backtest
from trading.engine.types import TradeLog
from trading.models import Portfolio, PortfolioStrategy, Strategy
from trading.selectors import candles_before, from_seconds, to_seconds

START, END = date(2019, 1, 1), date(2019, 12, 31)

STRATEGIES = {
    "sma-cross-stop": (
        ["bitcoin", "ethereum"],
        {
            **sma_cross_criteria(fast_period=20, slow_period=50),
            "stop_loss_ratio": 0.08,
            "fee_rate": 0.001,
            "slippage_ratio": 0.0005,
            "sizing": {"method": "equity_fraction", "value": 1.0},
        },
    ),
    "rsi-take-profit-max-holding": (
        ["bitcoin", "ethereum", "litecoin"],
        {
            "version": 1,
            "side": "long",
            "entry": {
                "all": [{"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 35}}]
            },
            "exit": None,
            "take_profit_ratio": 0.06,
            "max_holding_days": 7,
            "fee_rate": 0.001,
            "slippage_ratio": 0.001,
            "sizing": {"method": "equity_fraction", "value": 0.3},
        },
    ),
    "breakout-trailing": (
        ["bitcoin"],
        {
            "version": 1,
            "side": "long",
            "entry": {
                "all": [
                    {
                        "left": {"indicator": "close"},
                        "op": ">",
                        "right": {"indicator": "highest", "period": 20, "source": "high", "shift": 1},
                    }
                ]
            },
            "exit": None,
            "trailing_stop_ratio": 0.1,
            "fee_rate": 0.001,
            "slippage_ratio": 0.0,
            "sizing": {"method": "equity_fraction", "value": 1.0},
        },
    ),
    "macd-bollinger-fixed-quote": (
        ["ethereum", "litecoin"],
        {
            "version": 1,
            "side": "long",
            "entry": {
                "all": [
                    {
                        "left": {"indicator": "macd"},
                        "op": "crosses_above",
                        "right": {"indicator": "macd_signal"},
                    },
                    {
                        "left": {"indicator": "close"},
                        "op": ">",
                        "right": {"indicator": "bb_middle", "period": 20},
                    },
                ]
            },
            "exit": {
                "any": [
                    {
                        "left": {"indicator": "close"},
                        "op": "<",
                        "right": {"indicator": "bb_lower", "period": 20},
                    },
                    {"left": {"indicator": "roc", "period": 5}, "op": "<", "right": {"value": -0.08}},
                    {
                        "not": {
                            "left": {"indicator": "ema", "period": 10},
                            "op": ">=",
                            "right": {"indicator": "atr", "period": 14, "shift": 0},
                        }
                    },
                ]
            },
            "stop_loss_ratio": 0.05,
            "fee_rate": 0.002,
            "slippage_ratio": 0.001,
            "sizing": {"method": "fixed_quote", "value": 3000},
        },
    ),
    # Issue 16: every risk limit fires over 2019 (test_the_limits_strategies_fire_every_limit).
    "rsi-limits": (
        ["bitcoin", "ethereum", "litecoin"],
        {
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 45}},
            "exit": {"left": {"indicator": "rsi", "period": 14}, "op": ">", "right": {"value": 60}},
            "stop_loss_ratio": 0.04,
            "fee_rate": 0.001,
            "slippage_ratio": 0.0005,
            "sizing": {"method": "equity_fraction", "value": 0.45},
            "limits": {
                "max_open_positions": 2,
                "daily_loss_limit_ratio": 0.02,
                "max_drawdown_halt_ratio": 0.08,
                "drawdown_resume_days": 20,
                "cooldown_days_after_stop_loss": 5,
            },
        },
    ),
    "breakout-atr-risk": (
        ["bitcoin", "ethereum"],
        {
            "version": 1,
            "side": "long",
            "entry": {
                "all": [
                    {
                        "left": {"indicator": "close"},
                        "op": ">",
                        "right": {"indicator": "highest", "period": 10, "source": "high", "shift": 1},
                    }
                ]
            },
            "exit": {
                "left": {"indicator": "close"},
                "op": "<",
                "right": {"indicator": "lowest", "period": 10, "source": "low", "shift": 1},
            },
            "fee_rate": 0.001,
            "slippage_ratio": 0.0005,
            "sizing": {"method": "risk", "value": 0.05, "stop": {"atr": 14, "multiple": 2}},
            "limits": {"max_exposure_ratio": 0.3},
        },
    ),
}


def backtest_of(name: str) -> BacktestResult:
    """The backtest of ``name`` from the stored candles (:func:`trading.backtests.backtest_stored`, the path the
    daily audit uses too); its trades' symbols are :func:`trading.backtests.instrument_key`."""
    coins, document = STRATEGIES[name]
    return backtest_stored(
        criteria=criteria_parse(document),
        instruments=list(Instrument.objects.filter(coingecko_id__in=coins)),
        start=START,
        end=END,
        starting_cash=10_000.0,
    )


def replay_and_backtest(name: str) -> tuple[list[Position], BacktestResult]:
    coins, document = STRATEGIES[name]
    strategy = Strategy.objects.create(name=name, criteria=document, starting_cash=10_000)
    strategy.instruments.set(Instrument.objects.filter(coingecko_id__in=coins))
    result = replay(strategy=strategy, start=START, end=END)
    positions = list(
        Position.objects.for_strategy(result.account)
        .select_related("instrument")
        .order_by("entry_at", "instrument__symbol")
    )
    return positions, backtest_of(name)


def close(a: Decimal | float | None, b: Decimal | float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_replay_makes_exactly_the_backtests_trades(shipped_history: None, name: str) -> None:
    positions, expected = replay_and_backtest(name)

    assert len(positions) == len(expected.trades) > 0
    for position, trade in zip(positions, expected.trades, strict=True):
        where = f"{position.instrument.symbol} entered {position.entry_at:%Y-%m-%d}"
        assert instrument_key(position.instrument) == trade.symbol, where
        assert position.entry_at == from_seconds(trade.entry_time_seconds), where
        assert close(position.entry_price, trade.entry_price), where
        assert close(position.quantity, trade.quantity), where
        assert close(position.entry_fee, trade.entry_fee), where
        if trade.exit_time_seconds is None:
            assert position.status == "open", where
            continue
        assert position.status == "closed", where
        assert position.exit_reason == trade.exit_reason, where
        assert position.exit_at == from_seconds(trade.exit_time_seconds), where
        assert close(position.exit_price, trade.exit_price), where
        assert close(position.exit_fee, trade.exit_fee), where
        assert close(position.pnl, trade.pnl), where


@pytest.mark.django_db
def test_the_parity_strategies_use_every_exit_kind(shipped_history: None) -> None:
    reasons = set()
    for name in STRATEGIES:
        reasons |= {t.exit_reason for t in backtest_of(name).trades if t.exit_reason}
    assert reasons == {"signal", "stop_loss", "take_profit", "trailing_stop", "max_holding"}


@pytest.mark.django_db
def test_the_limits_strategies_fire_every_limit_and_the_replay_records_each_refusal_and_halt(
    shipped_history: None,
) -> None:
    """The parity of the limits strategies means something: every limit refuses entries over 2019, and the
    replay's History has exactly the backtest's refusals (``entry_refused``) and halts (``halt``)."""
    fired = set()
    for name in ("rsi-limits", "breakout-atr-risk"):
        coins, document = STRATEGIES[name]
        expected = backtest_of(name)
        fired |= {refusal.limit.value for refusal in expected.refusals}
        strategy = Strategy.objects.create(name=name, criteria=document, starting_cash=10_000)
        strategy.instruments.set(Instrument.objects.filter(coingecko_id__in=coins))
        account = replay(strategy=strategy, start=START, end=END).account
        refused = sorted(
            (date.fromisoformat(row.payload["as_of"]), instrument_key(row.instrument), row.payload["limit"])
            for row in _history(account, HistoryKind.ENTRY_REFUSED)
            if row.instrument is not None
        )
        assert refused == sorted(
            (from_seconds(r.boundary_seconds).date(), r.symbol, r.limit.value) for r in expected.refusals
        )
        halts = [
            (date.fromisoformat(row.payload["boundary"][:10]), row.payload["limit"], row.payload["began"])
            for row in _history(account, HistoryKind.HALT)
        ]
        assert halts == [
            (from_seconds(h.boundary_seconds).date(), h.limit.value, h.began) for h in expected.halts
        ]
        if name == "rsi-limits":
            assert {h.limit.value for h in expected.halts if h.began} == {
                "daily_loss_limit_ratio",
                "max_drawdown_halt_ratio",
            }
            assert any(not h.began for h in expected.halts)  # a drawdown halt ended
    assert fired == {
        "max_open_positions",
        "max_exposure_ratio",
        "daily_loss_limit_ratio",
        "max_drawdown_halt_ratio",
        "cooldown_days_after_stop_loss",
    }


def _history(account: Strategy, kind: str) -> list[History]:
    return list(
        History.objects.filter(strategy=account, kind=kind)
        .select_related("instrument")
        .order_by("created_at", "id")
    )


RSI_STOP = {
    "version": 1,
    "side": "long",
    "entry": {"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 30}},
    "exit": {"left": {"indicator": "rsi", "period": 14}, "op": ">", "right": {"value": 70}},
    "stop_loss_ratio": 0.08,
    "take_profit_ratio": 0.3,
    "fee_rate": 0.001,
    "slippage_ratio": 0.0005,
    "sizing": {"method": "equity_fraction", "value": 1.0},
}
RSI_START, RSI_END = date(2020, 2, 20), date(2020, 4, 10)


def _replayed_positions(account: Strategy) -> list[Position]:
    return list(
        Position.objects.for_strategy(account)
        .select_related("instrument")
        .order_by("entry_at", "instrument__symbol")
    )


def _assert_same_trades(positions: list[Position], expected: BacktestResult) -> None:
    assert len(positions) == len(expected.trades) > 0
    for position, trade in zip(positions, expected.trades, strict=True):
        where = f"{position.instrument.symbol} entered {position.entry_at:%Y-%m-%d}"
        assert position.entry_at == from_seconds(trade.entry_time_seconds), where
        assert close(position.entry_price, trade.entry_price), where
        assert close(position.quantity, trade.quantity), where
        assert position.exit_reason == (trade.exit_reason or ""), where
        if trade.exit_time_seconds is not None:
            assert position.exit_at == from_seconds(trade.exit_time_seconds), where
            assert close(position.exit_price, trade.exit_price), where
            assert close(position.pnl, trade.pnl), where


@pytest.mark.django_db
def test_a_stop_settled_before_the_next_open_is_entered_again_there_in_replay_and_backtest(
    shipped_history: None,
) -> None:
    """Issue 13, item 1: a paper stop rests as an order and is settled at the start of the next day's steps,
    before the entries: the replayed cycle re-enters at the open after the stop, as the backtest does."""
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")
    strategy = Strategy.objects.create(name="rsi-stop", criteria=RSI_STOP, starting_cash=10_000)
    strategy.instruments.set([bitcoin])
    expected = backtest(
        criteria=criteria_parse(RSI_STOP),
        instruments=[candles_before(bitcoin, datetime(2100, 1, 1, tzinfo=UTC))],
        start_time_seconds=to_seconds(datetime.combine(RSI_START, datetime.min.time(), tzinfo=UTC)),
        end_time_seconds=to_seconds(datetime.combine(RSI_END, datetime.min.time(), tzinfo=UTC)),
        starting_cash=10_000.0,
    )

    positions = _replayed_positions(replay(strategy=strategy, start=RSI_START, end=RSI_END).account)

    _assert_same_trades(positions, expected)
    stopped = next(p for p in positions if p.exit_reason == "stop_loss")
    assert stopped.exit_at is not None
    again = next(p for p in positions if p.entry_at > stopped.entry_at)
    assert again.entry_at.date() == stopped.exit_at.date() + timedelta(days=1)  # the very next open
    # The stop rested as a paper order and filled at the stop's price; its take-profit was cancelled.
    orders = {o.type: o for o in Order.objects.filter(position=stopped)}
    assert orders["stop_loss"].status == "filled" and orders["stop_loss"].average_price == stopped.exit_price
    assert orders["take_profit"].status == "canceled"
    assert not Order.objects.live().filter(position__status="closed").exists()


@pytest.mark.django_db
def test_each_day_is_the_same_whichever_step_runs_first(shipped_history: None) -> None:
    """The result of a day does not depend on the order of its steps: close then open, every day, makes the
    trades open then close makes (the replay's order), stops and re-entries included."""
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")
    strategy = Strategy.objects.create(name="rsi-stop", criteria=RSI_STOP, starting_cash=10_000)
    strategy.instruments.set([bitcoin])
    open_first = replay(strategy=strategy, start=RSI_START, end=RSI_END).account
    close_first = replay_account_create(strategy=strategy, start=RSI_START, end=date(2020, 4, 11))
    broker = ReplayBroker()
    for day in day_range(RSI_START, RSI_END):
        sync_close_positions(as_of=day, broker=broker, strategies=[close_first])
        sync_new_trades(as_of=day, broker=broker, strategies=[close_first])

    fields = ("entry_at", "entry_price", "quantity", "exit_at", "exit_price", "exit_reason", "pnl", "status")
    assert [[getattr(p, f) for f in fields] for p in _replayed_positions(close_first)] == [
        [getattr(p, f) for f in fields] for p in _replayed_positions(open_first)
    ]
    assert strategy_cash(close_first) == strategy_cash(open_first)


@pytest.mark.django_db
def test_replay_equals_the_simulator_where_hourly_candles_decide_ambiguous_days(
    shipped_history: None,
) -> None:
    """The bar magnifier live and in the simulator: shipped bitcoin has its Binance hours stored, and a day that
    holds both the stop and the take-profit is decided by them in the replayed close step exactly as in the
    simulation (issue 13)."""
    criteria = {
        "version": 1,
        "side": "long",
        "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
        "stop_loss_ratio": 0.03,
        "take_profit_ratio": 0.03,
        "fee_rate": 0.001,
        "slippage_ratio": 0.0,
        "sizing": {"method": "equity_fraction", "value": 1.0},
    }
    start, end = date(2021, 5, 1), date(2021, 6, 30)
    simulation = simulation_start(
        request=simulation_request_check(
            instruments=["bitcoin"], start=start, end=end, starting_cash=Decimal(10_000), criteria=criteria
        )
    )
    ambiguous = simulation.statistics["ambiguous"]
    resolved = {row["resolution"] for row in ambiguous}
    assert "take_profit" in resolved and "stop_loss" in resolved  # the hours decided both ways
    strategy = Strategy.objects.create(name="both-levels", criteria=criteria, starting_cash=10_000)
    strategy.instruments.set(Instrument.objects.filter(coingecko_id="bitcoin"))

    # One day further: the simulation settles the risk exits of its last candle, the live cycle at the next day.
    replayed = _replayed_positions(
        replay(strategy=strategy, start=start, end=end + timedelta(days=1)).account
    )
    positions = [p for p in replayed if p.entry_at.date() <= end]

    closed = [t for t in simulation.trades if t["exit_reason"] != "end_of_data"]
    assert [p.exit_reason for p in positions if p.status == "closed"] == [t["exit_reason"] for t in closed]
    for position, trade in zip(positions, closed, strict=False):
        assert position.entry_at.isoformat().replace("+00:00", "Z") == trade["entry_at"]
        assert position.exit_at is not None
        assert position.exit_at.isoformat().replace("+00:00", "Z") == trade["exit_at"]
        assert close(position.exit_price, Decimal(trade["exit_price"]))
        assert close(position.pnl, Decimal(trade["pnl"]))


@pytest.mark.django_db
def test_the_simulator_reports_what_the_limits_refused_as_the_backtest_and_shows_it(
    shipped_history: None, client: Client
) -> None:
    """Issue 16: "the simulator shows when limits blocked entries": the run's statistics keep every refusal and
    halt of the engine's run, and its page shows the counts per limit and the halts."""
    coins, document = STRATEGIES["rsi-limits"]
    simulation = simulation_start(
        request=simulation_request_check(
            instruments=coins, start=START, end=END, starting_cash=Decimal(10_000), criteria=document
        )
    )
    expected = backtest_of("rsi-limits")
    limits = simulation.limits_report
    assert limits["refused"] == dict(Counter(r.limit.value for r in expected.refusals))
    assert limits["refusals_total"] == len(expected.refusals) == len(limits["refusals"])
    assert [(row["at"], row["symbol"], row["limit"]) for row in limits["refusals"]] == [
        # The simulator names instruments by ticker; backtest_stored keys them as the live cycle does (ticker, id).
        (from_seconds(r.boundary_seconds).isoformat(), r.symbol.partition("\x00")[0], r.limit.value)
        for r in expected.refusals
    ]
    assert [(row["limit"], row["began"]) for row in limits["halts"]] == [
        (h.limit.value, h.began) for h in expected.halts
    ]
    client.force_login(User.objects.create_superuser("boss", password="unused-password-123"))
    page = client.get(reverse("simulator:run", args=[simulation.pk])).content.decode()
    for limit, count in limits["refused"].items():
        assert (
            f'<tr data-limit="{limit}"><td><code>{limit}</code></td><td class="num" data-field="count">{count}</td>'
            in page
        )
    assert page.count('data-began="true"') == sum(1 for h in expected.halts if h.began)
    assert page.count('data-began="false"') == sum(1 for h in expected.halts if not h.began)


PORTFOLIO_MEMBERS = {
    "pf-rsi": (
        ["bitcoin", "ethereum"],
        0.4,
        {
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 45}},
            "exit": {"left": {"indicator": "rsi", "period": 14}, "op": ">", "right": {"value": 60}},
            "stop_loss_ratio": 0.04,
            "fee_rate": 0.001,
            "slippage_ratio": 0.0005,
            "sizing": {"method": "equity_fraction", "value": 0.6},
            "limits": {"cooldown_days_after_stop_loss": 5},
        },
    ),
    "pf-breakout": (
        ["ethereum", "litecoin"],
        0.35,
        {
            "version": 1,
            "side": "long",
            "entry": {
                "left": {"indicator": "close"},
                "op": ">",
                "right": {"indicator": "highest", "period": 10, "source": "high", "shift": 1},
            },
            "trailing_stop_ratio": 0.08,
            "fee_rate": 0.001,
            "slippage_ratio": 0.0005,
            "sizing": {"method": "equity_fraction", "value": 1.0},
            "limits": {"max_open_positions": 1, "daily_loss_limit_ratio": 0.02},
        },
    ),
    "pf-sma": (
        ["bitcoin"],
        0.25,
        {
            **sma_cross_criteria(fast_period=20, slow_period=50),
            "stop_loss_ratio": 0.08,
            "fee_rate": 0.001,
            "slippage_ratio": 0.0005,
            "sizing": {"method": "equity_fraction", "value": 1.0},
        },
    ),
}
PORTFOLIO_LIMITS = {"max_open_positions": 3, "max_drawdown_halt_ratio": 0.1, "drawdown_resume_days": 15}


@pytest.mark.django_db
def test_a_portfolio_replayed_day_by_day_through_the_live_services_equals_the_portfolio_simulation(
    shipped_history: None,
) -> None:
    """Issue 16's parity: three strategies with weights on one account, with limits that fire (the portfolio's
    drawdown halt, a member's daily loss halt, a cooldown after a stop-loss, max-positions refusals of a member and
    of the portfolio), replayed day by day through the live open and close steps, make the portfolio backtest's
    trades, and the same equity at the end to 1e-9."""
    everything = datetime(2100, 1, 1, tzinfo=UTC)
    books = []
    portfolio = Portfolio.objects.create(
        name="parity", starting_cash=10_000, limits=PORTFOLIO_LIMITS, is_enabled=True
    )
    members = []
    for order, (name, (coins, weight, document)) in enumerate(PORTFOLIO_MEMBERS.items()):
        instruments = Instrument.objects.filter(coingecko_id__in=coins).order_by("symbol")
        strategy = Strategy.objects.create(name=name, criteria=document, starting_cash=10_000)
        strategy.instruments.set(instruments)
        PortfolioStrategy.objects.create(
            portfolio=portfolio, strategy=strategy, weight=Decimal(str(weight)), order=order
        )
        members.append(strategy)
        books.append(
            PortfolioBook(
                name, criteria_parse(document), [candles_before(i, everything) for i in instruments], weight
            )
        )
    expected = portfolio_backtest(
        books=books,
        start_time_seconds=to_seconds(datetime.combine(START, datetime.min.time(), tzinfo=UTC)),
        end_time_seconds=to_seconds(datetime.combine(END, datetime.min.time(), tzinfo=UTC)),
        starting_cash=10_000.0,
        limits=limits_parse(PORTFOLIO_LIMITS),
    )
    fired = {(book, r.limit.value) for book, r in expected.refusals}
    assert {"cooldown_days_after_stop_loss", "max_open_positions", "max_drawdown_halt_ratio"} <= {
        limit for _, limit in fired
    }
    assert {(h.book, h.limit.value) for h in expected.halts if h.began} >= {
        (None, "max_drawdown_halt_ratio"),
        (1, "daily_loss_limit_ratio"),
    }

    broker = ReplayBroker()
    for day in day_range(START, END):
        sync_new_trades(as_of=day, broker=broker, strategies=members)
        sync_close_positions(as_of=day, broker=broker, strategies=members)

    for strategy, log in zip(members, expected.trade_logs, strict=True):
        positions = _replayed_positions(strategy)
        assert all(p.portfolio_id == portfolio.pk for p in positions)
        _assert_same_trades(positions, _as_result(log))
    last_closes = {
        i.pk: float(
            candles_before(
                i, datetime.combine(END + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
            ).close[-1]
        )
        for i in Instrument.objects.filter(coingecko_id__in=["bitcoin", "ethereum", "litecoin"])
    }
    equity = float(portfolio_cash(portfolio)) + sum(
        float(p.quantity) * last_closes[p.instrument_id]
        for p in Position.objects.filter(portfolio=portfolio).open()
    )
    assert math.isclose(equity, float(expected.equity_curve[-1]), rel_tol=1e-9)
    halts = [
        (date.fromisoformat(row.payload["boundary"][:10]), row.payload["limit"], row.payload["began"])
        for row in History.objects.filter(kind=HistoryKind.HALT, payload__portfolio="parity").order_by(
            "created_at", "id"
        )
    ]
    assert halts == [
        (from_seconds(h.boundary_seconds).date(), h.limit.value, h.began)
        for h in expected.halts
        if h.book is None
    ]


def _as_result(log: TradeLog) -> BacktestResult:
    """A trade log in the shape :func:`_assert_same_trades` reads (its ``trades``)."""
    return BacktestResult(log, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
