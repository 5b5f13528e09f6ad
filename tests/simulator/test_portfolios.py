"""Portfolio runs (issue 16): ``/api/portfolio_simulations/`` and :mod:`simulator.services.portfolios`.

The oracle of the figures is a direct call of :func:`trading.engine.portfolio.portfolio_backtest` on candles read
here through :func:`trading.selectors.candles_before` (the live cycle's reader); the attribution's own identities
(the members' P&L add up to the account's, their drawdown contributions to its fall from peak to trough) are
checked against the saved curve.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from instruments.models import Instrument
from simulator.models import PortfolioSimulation, RunStatus
from simulator.reaper import simulations_reap
from tests.trading.factories import StrategyFactory, sma_cross_criteria
from trading.engine.criteria import Limits, criteria_parse
from trading.engine.portfolio import PortfolioBook, portfolio_backtest
from trading.models import Portfolio, PortfolioStrategy, Strategy
from trading.selectors import candles_before, reference_candles

pytestmark = pytest.mark.django_db

START, END = date(2018, 1, 1), date(2019, 12, 31)


def _criteria(fast: int, slow: int, **overrides: Any) -> dict[str, Any]:
    document = sma_cross_criteria(**overrides)
    document["entry"]["all"][0]["left"]["period"] = fast
    document["entry"]["all"][0]["right"]["period"] = slow
    document["exit"]["any"][0]["left"]["period"] = fast
    document["exit"]["any"][0]["right"]["period"] = slow
    return document


@pytest.fixture
def trio(shipped_history: None) -> list[Strategy]:
    """Three strategies on the shipped BTC, ETH and LTC: SMA crosses of different lengths, sizing half the budget
    each time so several positions are open at once."""
    bitcoin, ethereum, litecoin = (
        Instrument.objects.get(coingecko_id=c) for c in ("bitcoin", "ethereum", "litecoin")
    )
    half = {"method": "equity_fraction", "value": 0.5}
    return [
        StrategyFactory.create(
            name="btc-eth 10/30", criteria=_criteria(10, 30, sizing=half), instruments=[bitcoin, ethereum]
        ),
        StrategyFactory.create(name="ltc 5/20", criteria=_criteria(5, 20), instruments=[litecoin]),
        StrategyFactory.create(
            name="all 20/50",
            criteria=_criteria(20, 50, sizing=half),
            instruments=[bitcoin, ethereum, litecoin],
        ),
    ]


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("trader"))
    return client


def _body(strategies: list[Strategy], weights: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "name": "three",
        "strategies": [{"strategy": s.pk, "weight": w} for s, w in zip(strategies, weights, strict=True)],
        "start": START.isoformat(),
        "end": END.isoformat(),
        "starting_cash": "10000",
        **extra,
    }


def _direct(strategies: list[Strategy], weights: list[float], limits: Limits) -> Any:
    """The engine called here on candles read here: the oracle of a saved run's figures."""
    until = datetime.combine(END + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    books = []
    for strategy, weight in zip(strategies, weights, strict=True):
        instruments = sorted(strategy.instruments.all(), key=lambda i: i.symbol)
        books.append(
            PortfolioBook(
                name=strategy.name,
                criteria=criteria_parse(strategy.criteria),
                instruments=[candles_before(i, until) for i in instruments],
                weight=weight,
            )
        )
    return portfolio_backtest(
        books=books,
        start_time_seconds=int(datetime.combine(START, datetime.min.time(), tzinfo=UTC).timestamp()),
        end_time_seconds=int(datetime.combine(END, datetime.min.time(), tzinfo=UTC).timestamp()),
        starting_cash=10_000.0,
        limits=limits,
        close_at_end=True,
        references=reference_candles(set(), until),
    )


def test_a_three_strategy_run_has_the_figures_of_a_direct_portfolio_backtest(
    trio: list[Strategy], api: APIClient
) -> None:
    weights = [0.3, 0.3, 0.4]
    limits = {"max_open_positions": 3}
    response = api.post("/api/portfolio_simulations/", _body(trio, weights, limits=limits), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "done", body["error"]
    direct = _direct(trio, weights, Limits(max_open_positions=3))

    assert [m["name"] for m in body["members"]] == ["btc-eth 10/30", "ltc 5/20", "all 20/50"]
    assert body["members"][0]["instruments"] == ["bitcoin", "ethereum"]
    assert {
        k: v for k, v in body["statistics"].items() if k not in ("coverage", "ruined_at")
    } == pytest.approx(
        {
            k: (None if isinstance(v, float) and not np.isfinite(v) else v)
            for k, v in direct.statistics.items()
        }
    )
    assert body["statistics"]["n_trades"] > 10
    curve = body["equity_curve"]
    assert len(curve["time"]) == (END - START).days + 1 == direct.times.shape[0]
    assert curve["equity"] == pytest.approx(direct.equity_curve.tolist(), abs=1e-6)
    assert curve["buy_and_hold"] == pytest.approx(direct.buy_and_hold_curve.tolist(), abs=1e-6)
    np.testing.assert_allclose(
        np.asarray(body["book_curves"]["values"]), direct.book_curves, atol=1e-6, rtol=0
    )
    for row, expected in zip(body["attribution"], direct.attribution, strict=True):
        assert row["name"] == expected.name
        assert float(row["pnl"]) == pytest.approx(expected.pnl, abs=1e-6)
        assert float(row["drawdown_contribution"]) == pytest.approx(expected.drawdown_contribution, abs=1e-6)
        assert row["exposure_ratio"] == pytest.approx(expected.exposure_ratio)
        assert row["n_trades"] == expected.n_trades
        assert float(row["budget"]) == pytest.approx(10_000 * expected.weight)
    np.testing.assert_allclose(np.asarray(body["correlation"]["matrix"], dtype=float), direct.correlation)
    assert body["limits_report"]["refusals_total"] == len(direct.refusals)

    # The identities of the attribution, from the saved documents alone: the members' P&L add up to the account's
    # (all the cash is budgeted: 0.3 + 0.3 + 0.4 = 1), and their contributions to its fall from peak to trough.
    pnl = sum(Decimal(row["pnl"]) for row in body["attribution"])
    assert float(pnl) == pytest.approx(curve["equity"][-1] - 10_000, abs=1e-6)
    equity = np.asarray(curve["equity"])
    trough = int(np.argmax(1 - equity / np.maximum.accumulate(np.r_[10_000, equity])[1:]))
    peak_value = max(10_000.0, float(equity[: trough + 1].max()))
    contribution = sum(float(row["drawdown_contribution"]) for row in body["attribution"])
    assert contribution == pytest.approx(float(equity[trough]) - peak_value, abs=1e-6)
    # The correlation is symmetric with ones on its diagonal.
    matrix = np.asarray(body["correlation"]["matrix"], dtype=float)
    assert np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1.0)


def test_a_saved_run_keeps_its_members_as_they_were(trio: list[Strategy], api: APIClient) -> None:
    body = api.post("/api/portfolio_simulations/", _body(trio, [0.5, 0.5, 0.0]), format="json").json()
    Strategy.objects.filter(pk=trio[0].pk).update(name="renamed", criteria=_criteria(3, 7))

    record = PortfolioSimulation.objects.get(pk=body["id"])
    assert record.members[0]["name"] == "btc-eth 10/30"
    assert record.members[0]["criteria"] == trio[0].criteria
    # A weight of 0 makes no entry: its budget and P&L are 0.
    assert record.attribution[2]["n_trades"] == 0 and Decimal(record.attribution[2]["pnl"]) == 0


def test_a_saved_portfolio_gives_its_members_order_cash_and_limits(
    trio: list[Strategy], api: APIClient
) -> None:
    portfolio = Portfolio.objects.create(
        name="core", starting_cash=Decimal("20000"), limits={"max_open_positions": 2}
    )
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=trio[2], weight=Decimal("0.6"), order=0)
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=trio[1], weight=Decimal("0.4"), order=1)

    response = api.post(
        "/api/portfolio_simulations/",
        {"portfolio": portfolio.pk, "start": START.isoformat(), "end": END.isoformat()},
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert [(m["name"], m["weight"]) for m in body["members"]] == [("all 20/50", 0.6), ("ltc 5/20", 0.4)]
    assert body["starting_cash"] == "20000.000000000000000000"
    assert body["limits"] == {"max_open_positions": 2}
    assert body["portfolio"] == portfolio.pk
    assert body["status"] == "done"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"strategies": []}, "strategies", "choose at least one strategy"),
        ({"weights": [0.5, 1.5, 0.0]}, "strategies", "strategies[1].weight: must be a number from 0 to 1"),
        ({"weights": [0.5, 0.5, 0.2]}, "strategies", "the weights add up to 1.2 (120.00 %); at most 1"),
        (
            {"strategies": [{"strategy": 999999, "weight": 0.1}]},
            "strategies",
            "strategies[0].strategy: unknown",
        ),
        ({"strategies": [{"strategy": "x", "weight": 0.1}]}, "strategies", "strategies[0].strategy: must be"),
        (
            {"strategies": [{"weight": 0.1, "strategy": 1, "extra": 1}]},
            "strategies",
            "unknown field(s) extra",
        ),
        ({"end": "2017-01-01"}, "end", "must be on or after start (2018-01-01)"),
        ({"start": "2019-02-30"}, "start", "Date has wrong format"),
        ({"starting_cash": "-1"}, "starting_cash", "must be > 0"),
        ({"timeframe": "1h"}, "timeframe", "daily candles only"),
        ({"limits": {"max_open_positions": 0}}, "limits", "limits.max_open_positions:"),
        ({"limits": {"max_positions": 2}}, "limits", "max_positions"),
        ({"portfolio": 999999, "strategies": None}, "portfolio", "unknown portfolio 999999"),
        ({"portfolio": 1}, "portfolio", "not both"),
        ({"strategy": 1}, "strategy", "unknown field"),
        ({"start": "2010-01-01", "end": "2010-12-31"}, "end", "bitcoin has candles from 2014-11-28 only"),
    ],
)
def test_bad_requests_are_400_with_the_field_errors(
    trio: list[Strategy], api: APIClient, change: dict[str, Any], field: str, message: str
) -> None:
    change = dict(change)
    weights = change.pop("weights", [0.3, 0.3, 0.4])
    body = {**_body(trio, weights), **change}
    if body.get("strategies") is None:
        body.pop("strategies", None)

    response = api.post("/api/portfolio_simulations/", body, format="json")

    assert response.status_code == 400
    errors = response.json()
    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors
    assert not PortfolioSimulation.objects.exists()


def test_a_member_whose_criteria_need_more_days_than_stored_is_an_error_at_its_path(
    trio: list[Strategy], api: APIClient
) -> None:
    Strategy.objects.filter(pk=trio[1].pk).update(criteria=_criteria(5, 2000))

    response = api.post("/api/portfolio_simulations/", _body(trio, [0.3, 0.3, 0.4]), format="json")

    assert response.status_code == 400
    assert any(m.startswith("strategies[1].criteria: ") for m in response.json()["strategies"])


def test_runs_are_ones_own_and_need_a_login(trio: list[Strategy], api: APIClient) -> None:
    mine = api.post("/api/portfolio_simulations/", _body(trio, [0.3, 0.3, 0.4]), format="json").json()
    other = APIClient()
    other.force_authenticate(User.objects.create_user("someone-else"))
    root = APIClient()
    root.force_authenticate(User.objects.create_superuser("root"))

    listed = api.get("/api/portfolio_simulations/").json()
    assert [row["id"] for row in listed["results"]] == [mine["id"]]
    assert "equity_curve" not in listed["results"][0]
    assert api.get(f"/api/portfolio_simulations/{mine['id']}/").json()["attribution"] == mine["attribution"]
    assert other.get(f"/api/portfolio_simulations/{mine['id']}/").status_code == 404
    assert other.get("/api/portfolio_simulations/").json()["results"] == []
    assert root.get(f"/api/portfolio_simulations/{mine['id']}/").status_code == 200
    anonymous = APIClient()
    assert anonymous.get("/api/portfolio_simulations/").status_code == 401
    assert anonymous.get(f"/api/portfolio_simulations/{mine['id']}/").status_code == 401
    assert (
        anonymous.post("/api/portfolio_simulations/", _body(trio, [0.3, 0.3, 0.4]), format="json").status_code
        == 401
    )


def test_a_large_run_is_queued_and_run_off_the_request(
    trio: list[Strategy], api: APIClient, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.BARTER_SIMULATOR_INLINE_CANDLES = 10  # every run is "large"
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/portfolio_simulations/", _body(trio, [0.3, 0.3, 0.4]), format="json")

    assert response.status_code == 201
    assert response.json()["status"] == "pending"  # answered before the work ran
    record = PortfolioSimulation.objects.get()
    assert record.status == RunStatus.DONE, record.error  # the embedded pool of the test settings ran it
    assert record.heartbeat_at is not None


def test_the_reaper_fails_a_portfolio_run_whose_worker_died(trio: list[Strategy]) -> None:
    stale = datetime.now(tz=UTC) - timedelta(hours=1)
    record = PortfolioSimulation.objects.create(
        start=START,
        end=END,
        starting_cash=Decimal(1000),
        members=[],
        status=RunStatus.RUNNING,
        progress_ratio=0.4,
        heartbeat_at=stale,
    )

    assert simulations_reap()["portfolio_simulations"] == [record.pk]
    record.refresh_from_db()
    assert record.status == RunStatus.FAILED
    assert record.error == f"worker lost: no heartbeat since {stale.isoformat()} (the run was at 40%)"
