"""The Monte Carlo of a saved run's trades: the service over the stored rows, the run page's section (form, table,
sentence, fan data) and ``GET /api/simulations/{id}/monte_carlo/``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from simulator.launch import simulation_start
from simulator.models import RunStatus, Simulation
from simulator.services.monte_carlo import simulation_closed_trades
from simulator.services.requests import simulation_request_check
from tests.simulator.test_views import json_script
from tests.trading.factories import sma_cross_criteria
from trading.engine.monte_carlo import MAX_PATH_TRADES

pytestmark = pytest.mark.django_db


def trade_row(exit_at: str | None, pnl: str | None, entry_at: str = "2024-01-01T00:00:00Z") -> dict[str, Any]:
    """A stored trade row (the fields the run page reads)."""
    return {
        "instrument": "bitcoin",
        "symbol": "BTC",
        "entry_at": entry_at,
        "entry_price": "100",
        "exit_at": exit_at,
        "exit_price": None if exit_at is None else "110",
        "quantity": "1",
        "entry_fee": "0",
        "exit_fee": None if exit_at is None else "0",
        "pnl": pnl,
        "pnl_ratio": None,
        "exit_reason": "signal" if exit_at else "",
        "duration_days": None,
        "mae_ratio": None,
        "mfe_ratio": None,
        "cumulative_pnl": None,
    }


def many_trades(n: int) -> list[dict[str, Any]]:
    """``n`` closed trades of +0.01, one a minute from 2024-01-02."""
    first = datetime(2024, 1, 2, tzinfo=UTC)
    return [
        trade_row((first + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"), "0.01") for i in range(n)
    ]


def stored_run(owner: User, trades: list[dict[str, Any]], starting_cash: str = "100") -> Simulation:
    return Simulation.objects.create(
        created_by=owner,
        start=date(2024, 1, 1),
        end=date(2024, 1, 30),
        starting_cash=Decimal(starting_cash),
        criteria=sma_cross_criteria(),
        status=RunStatus.DONE,
        trades=trades,
        statistics={"n_trades": len(trades)},
        equity_curve={
            "time": [1704067200],
            "equity": [100.0],
            "buy_and_hold": [100.0],
            "drawdown_ratio": [0.0],
        },
    )


# Start 100. Stored in entry order, exits out of order: the second entered exits first.
# In exit order: +10 (Jan 3), -11 (Jan 5), -9.9 (Jan 9): equity 110, 99, 89.1; returns +10 %, -10 %, -10 %.
# The open trade (no exit) is left out.
THREE_TRADES = [
    trade_row("2024-01-05T00:00:00Z", "-11"),
    trade_row("2024-01-03T00:00:00Z", "10", entry_at="2024-01-02T00:00:00Z"),
    trade_row("2024-01-09T00:00:00Z", "-9.9"),
    trade_row(None, None, entry_at="2024-01-10T00:00:00Z"),
]


@pytest.fixture
def owner() -> User:
    return User.objects.create_user("trader")


@pytest.fixture
def run(owner: User) -> Simulation:
    return stored_run(owner, THREE_TRADES)


def api_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_closed_trades_in_exit_order_from_the_stored_rows(run: Simulation) -> None:
    trades = simulation_closed_trades(run)
    np.testing.assert_allclose(trades.pnl, [10.0, -11.0, -9.9])
    assert trades.starting_equity == 100.0


def test_api_answers_the_figures_of_the_hand_worked_run(run: Simulation, owner: User) -> None:
    response = api_for(owner).get(
        f"/api/simulations/{run.pk}/monte_carlo/",
        {"method": "reshuffle", "paths": "3000", "seed": "5", "drawdown_limit_ratio": "0.15"},
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["method"], body["paths"], body["seed"], body["n_trades"]) == ("reshuffle", 3000, 5, 3)
    # The three orders (each 2 of the 6 permutations): drawdowns 0.19, 0.109, 0.19; final 89.1 on every path.
    assert body["final_equity_percentiles"] == pytest.approx([89.1, 89.1, 89.1])
    assert body["max_drawdown_ratio_percentiles"] == pytest.approx([0.109, 0.19, 0.19])
    assert body["drawdown_beyond_limit_probability"] == pytest.approx(2 / 3, abs=0.04)
    low, high = body["drawdown_beyond_limit_interval"]
    assert low <= body["drawdown_beyond_limit_probability"] <= high
    # The actual path: the trades in exit order, ending at the starting cash plus their P&L.
    assert body["fan"]["actual_equity"] == pytest.approx([100, 110, 99, 89.1])
    assert body["actual"] == pytest.approx(
        {"final_equity": 89.1, "max_drawdown_ratio": 0.19, "longest_drawdown_trades": 2}
    )
    assert body["fan"]["trade_numbers"] == [0, 1, 2, 3]
    assert len(body["fan"]["equity"]) == 5 and all(len(row) == 4 for row in body["fan"]["equity"])
    # Seeded: asking again gives the same answer.
    again = api_for(owner).get(
        f"/api/simulations/{run.pk}/monte_carlo/",
        {"method": "reshuffle", "paths": "3000", "seed": "5", "drawdown_limit_ratio": "0.15"},
    )
    assert again.json() == body


def test_api_defaults(run: Simulation, owner: User) -> None:
    body = api_for(owner).get(f"/api/simulations/{run.pk}/monte_carlo/").json()
    assert (body["method"], body["paths"], body["seed"], body["drawdown_limit_ratio"]) == (
        "reshuffle",
        1000,
        0,
        0.3,
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"method": "shuffle"}, "method"),
        ({"paths": "0"}, "paths"),
        ({"paths": "10001"}, "paths"),
        ({"paths": "many"}, "paths"),
        ({"seed": "-1"}, "seed"),
        ({"seed": "1.5"}, "seed"),
        ({"drawdown_limit_ratio": "30"}, "drawdown_limit_ratio"),
        ({"drawdown_limit_ratio": "0"}, "drawdown_limit_ratio"),
        ({"drawdown_limit_ratio": "nan"}, "drawdown_limit_ratio"),
        ({"path": "10"}, "path"),
    ],
)
def test_api_bad_parameters_are_400_with_field_errors(
    run: Simulation, owner: User, query: dict[str, str], field: str
) -> None:
    response = api_for(owner).get(f"/api/simulations/{run.pk}/monte_carlo/", query)
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_api_too_many_paths_for_the_trades_is_a_400_on_paths(owner: User) -> None:
    trades = many_trades(MAX_PATH_TRADES // 10_000 + 1)
    simulation = stored_run(owner, trades, starting_cash="1000")
    response = api_for(owner).get(f"/api/simulations/{simulation.pk}/monte_carlo/", {"paths": "10000"})
    assert response.status_code == 400
    assert "paths" in response.json(), response.json()


def test_api_a_run_with_one_closed_trade_is_409(owner: User) -> None:
    simulation = stored_run(owner, [trade_row("2024-01-03T00:00:00Z", "5"), trade_row(None, None)])
    response = api_for(owner).get(f"/api/simulations/{simulation.pk}/monte_carlo/")
    assert response.status_code == 409
    assert "at least 2 closed trades" in response.json()["message"]


def test_api_who_may_ask(run: Simulation) -> None:
    # As reading the run: anonymous 401; another user 404 (runs are their owner's); the superuser 200.
    assert APIClient().get(f"/api/simulations/{run.pk}/monte_carlo/").status_code == 401
    stranger = User.objects.create_user("stranger")
    assert api_for(stranger).get(f"/api/simulations/{run.pk}/monte_carlo/").status_code == 404
    boss = User.objects.create_superuser("boss", password="unused-password-123")
    assert api_for(boss).get(f"/api/simulations/{run.pk}/monte_carlo/").status_code == 200


def page_of(simulation: Simulation, user: User, query: dict[str, str] | None = None) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/simulator/runs/{simulation.pk}/", query or {})
    assert response.status_code == 200
    return response.content.decode()


def test_run_page_section_with_the_defaults(run: Simulation, owner: User) -> None:
    html = page_of(run, owner)
    section = html[html.index('id="monte-carlo"') :]
    assert 'id="monte-carlo-table"' in section
    assert 'data-paths="1000"' in section and 'data-method="reshuffle"' in section
    assert "went beyond 30 %" in section
    assert 'id="chart-monte-carlo"' in section
    fan = json_script(html, "monte-carlo-data")
    assert fan["actual"] == pytest.approx([100, 110, 99, 89.1])
    assert fan["trade_numbers"] == [0, 1, 2, 3]
    assert len(fan["equity"]) == 5


def test_run_page_draws_with_the_forms_parameters(run: Simulation, owner: User) -> None:
    html = page_of(
        run,
        owner,
        {"mc-method": "bootstrap", "mc-paths": "250", "mc-seed": "9", "mc-drawdown_limit_pct": "15"},
    )
    assert 'data-paths="250"' in html and 'data-method="bootstrap"' in html
    assert "of the 250 bootstrap paths the maximum drawdown went beyond 15 %" in html
    assert 'value="9"' in html  # the seed stays in its box


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"mc-paths": "0"}, "mc-paths", "greater than or equal to 1"),
        ({"mc-paths": "abc"}, "mc-paths", "whole number"),
        ({"mc-seed": "-4"}, "mc-seed", "greater than or equal to 0"),
        ({"mc-drawdown_limit_pct": "100"}, "mc-drawdown_limit_pct", "below 100"),
        ({"mc-method": "other"}, "mc-method", "valid choice"),
    ],
)
def test_run_page_bad_input_is_an_error_next_to_its_field(
    run: Simulation, owner: User, query: dict[str, str], field: str, message: str
) -> None:
    params = {
        "mc-method": "reshuffle",
        "mc-paths": "100",
        "mc-seed": "0",
        "mc-drawdown_limit_pct": "30",
        **query,
    }
    html = page_of(run, owner, params)
    errors = html[html.index(f'data-error-for="{field}"') :]
    assert message in errors[: errors.index("</ul>")]
    assert 'id="monte-carlo-table"' not in html
    assert 'id="monte-carlo-data"' not in html


def test_run_page_too_many_paths_for_the_trades_is_an_error_on_paths(owner: User) -> None:
    trades = many_trades(MAX_PATH_TRADES // 10_000 + 1)
    simulation = stored_run(owner, trades, starting_cash="1000")
    html = page_of(
        simulation,
        owner,
        {"mc-method": "reshuffle", "mc-paths": "10000", "mc-seed": "0", "mc-drawdown_limit_pct": "30"},
    )
    errors = html[html.index('data-error-for="mc-paths"') :]
    assert "at most" in errors[: errors.index("</ul>")]


def test_run_page_of_many_trades_draws_fewer_paths_unless_asked(owner: User) -> None:
    # 5,000 trades: 2,000,000 // 5,000 = 400 paths on its own; 1,000 when asked.
    simulation = stored_run(owner, many_trades(5_000), starting_cash="1000")
    html = page_of(simulation, owner)
    assert 'data-paths="400"' in html and 'name="mc-paths" value="400"' in html
    asked = page_of(
        simulation,
        owner,
        {"mc-method": "reshuffle", "mc-paths": "1000", "mc-seed": "0", "mc-drawdown_limit_pct": "30"},
    )
    assert 'data-paths="1000"' in asked


def test_run_page_with_one_closed_trade_says_so_instead_of_a_chart(owner: User) -> None:
    simulation = stored_run(owner, [trade_row("2024-01-03T00:00:00Z", "5")])
    html = page_of(simulation, owner)
    assert "needs at least 2 closed trades; this run has 1." in html
    assert 'id="chart-monte-carlo"' not in html


def test_a_real_runs_actual_path_ends_at_its_final_equity(shipped_history: None, owner: User) -> None:
    simulation = simulation_start(
        request=simulation_request_check(
            instruments=["bitcoin"],
            start=date(2019, 1, 1),
            end=date(2020, 12, 31),
            starting_cash=Decimal(5000),
            criteria=sma_cross_criteria(),
        ),
        created_by=owner,
    )
    simulation.refresh_from_db()
    body = api_for(owner).get(f"/api/simulations/{simulation.pk}/monte_carlo/", {"paths": "200"}).json()
    # Every trade is closed at the end of the run, so the realised path ends at the run's last equity.
    assert body["n_trades"] == len(simulation.trades) >= 2
    assert body["fan"]["actual_equity"][-1] == pytest.approx(simulation.equity_curve["equity"][-1], rel=1e-9)
    assert body["final_equity_percentiles"][1] == pytest.approx(
        simulation.equity_curve["equity"][-1], rel=1e-9
    )
