"""Fixtures of the security tests: a user with an API token, and one saved object of every kind the API
and the pages show, so that every URL with an id can be called with a real one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from notifications.models import Channel, Delivery
from positions.models import StrategyAudit
from runs.models import History, Step
from runs.recorder import run_start
from simulator.models import PortfolioSimulation, RunStatus, Simulation, Sweep, SweepPoint, WalkForward
from tests.accounts import api_token
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.trading.factories import PositionFactory, StrategyFactory, sma_cross_criteria
from trading.models import Portfolio, PortfolioStrategy

PASSWORD = "correct horse battery staple 42"


@dataclass
class Seeded:
    """The saved objects, by the first segment of their URLs."""

    user: User
    token: str
    ids: dict[str, int]


@pytest.fixture
def seeded(db: None) -> Seeded:
    """A superuser with a token, an instrument with 30 candles, a strategy with an open position, a history
    run, a finished simulation, sweep, walk-forward and portfolio run owned by the user, a portfolio of the
    strategy, and a daily audit of it."""
    user = User.objects.create_superuser("alice", "alice@example.com", PASSWORD)
    token = api_token(user)
    instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    # From 2024-01-01 whatever ran before: the factory's day counter is global, and after ~790 candles made by
    # earlier tests these would reach test_secrets' as_of (2026-03-01), leaving it nothing to collect.
    CandleFactory.reset_sequence(0)  # type: ignore[no-untyped-call]  # factory_boy leaves it unannotated
    CandleFactory.create_batch(30, instrument=instrument)
    strategy = StrategyFactory.create(name="sma", instruments=[instrument])
    position = PositionFactory.create(strategy=strategy, instrument=instrument)
    run_start(step=Step.COLLECT, params={})
    simulation = Simulation.objects.create(
        created_by=user,
        start=date(2024, 1, 1),
        end=date(2024, 1, 30),
        starting_cash=Decimal(10000),
        criteria=sma_cross_criteria(),
        status=RunStatus.DONE,
        # Two closed trades: enough for its Monte Carlo (GET /api/simulations/{id}/monte_carlo/) to answer 200.
        trades=[
            {"exit_at": "2024-01-10T00:00:00Z", "pnl": "120.5"},
            {"exit_at": "2024-01-20T00:00:00Z", "pnl": "-80.25"},
        ],
        equity_curve={
            "time": [int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())],
            "equity": [10000.0],
            "buy_and_hold": [10000.0],
            "drawdown_ratio": [0.0],
        },
    )
    simulation.instruments.add(instrument)
    sweep = Sweep.objects.create(
        created_by=user,
        start=date(2024, 1, 1),
        end=date(2024, 1, 30),
        starting_cash=Decimal(10000),
        criteria=sma_cross_criteria(),
        axes=[{"path": "stop_loss_ratio", "values": [0.05]}],
        total=1,
        status=RunStatus.DONE,
    )
    sweep.instruments.add(instrument)
    SweepPoint.objects.create(
        sweep=sweep, index=0, values={"stop_loss_ratio": 0.05}, statistics={"n_trades": 0}
    )
    walk_forward = WalkForward.objects.create(
        created_by=user,
        start=date(2024, 1, 1),
        end=date(2024, 1, 30),
        starting_cash=Decimal(10000),
        criteria=sma_cross_criteria(),
        axes=[{"path": "stop_loss_ratio", "values": [0.05]}],
        train_days=20,
        test_days=10,
        step_days=10,
        status=RunStatus.DONE,
    )
    walk_forward.instruments.add(instrument)
    portfolio_run = PortfolioSimulation.objects.create(
        created_by=user,
        start=date(2024, 1, 1),
        end=date(2024, 1, 30),
        starting_cash=Decimal(10000),
        members=[
            {
                "strategy": strategy.pk,
                "name": "sma",
                "weight": 1.0,
                "criteria": sma_cross_criteria(),
                "instruments": ["bitcoin"],
            }
        ],
        status=RunStatus.DONE,
    )
    portfolio = Portfolio.objects.create(name="core")
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=strategy, weight=Decimal("0.5"))
    # A notification channel (its URL no longer in BARTER_NOTIFY_URLS: the tests' setting is empty) and a delivery.
    channel = Channel.objects.create(
        key="0" * 64, position=1, label="JSON json://hooks.example.com", configured=False
    )
    Delivery.objects.create(channel=channel, event="digest", key="digest:2024-04-20", title="digest")
    # A daily audit with a mismatch, so the dashboard's drift table is drawn (and its values escaped) in the walks.
    StrategyAudit.objects.create(
        strategy=strategy,
        as_of=date(2024, 1, 30),
        run_id=uuid.uuid4(),
        first_day=date(2024, 1, 2),
        missed=[{"instrument": "<b>bitcoin</b>", "signal": "entry", "reason": ""}],
        signal_mismatches=1,
        cash_live=Decimal(1000),
        cash_backtest=Decimal(700),
        cash_drift=Decimal(300),
    )
    return Seeded(
        user=user,
        token=token,
        ids={
            "instruments": instrument.pk,
            "strategies": strategy.pk,
            "positions": position.pk,
            "history": History.objects.order_by("id").values_list("id", flat=True).first() or 0,
            "simulations": simulation.pk,
            "runs": simulation.pk,
            "sweeps": sweep.pk,
            "walk_forwards": walk_forward.pk,
            "walk-forwards": walk_forward.pk,
            "portfolio_simulations": portfolio_run.pk,
            "portfolios": portfolio_run.pk,
            "deploy": portfolio.pk,
        },
    )
