"""CSV formula neutralisation (OWASP CSV injection): every CSV Barter writes, on the simulator's pages and from
the API, shows text that a spreadsheet would evaluate as text, and keeps numbers numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.test import Client

from barter_site.csv_export import csv_safe_cell
from simulator.models import Simulation
from tests.security.conftest import PASSWORD, Seeded


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
        ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("-", "'-"),
        # Numbers stay numbers, as values and as text.
        ("-775.81", "-775.81"),
        ("+5", "+5"),
        ("-1e-05", "-1e-05"),
        (-775.81, -775.81),
        (Decimal("-775.81"), Decimal("-775.81")),
        (-3, -3),
        # Text that cannot start a formula, and empty cells, as they are.
        ("BTC", "BTC"),
        ("stop_loss", "stop_loss"),
        ("2024-01-02T00:00:00Z", "2024-01-02T00:00:00Z"),
        (None, ""),
    ],
)
def test_a_cell_is_neutralised_only_when_it_could_start_a_formula(cell: object, written: object) -> None:
    assert csv_safe_cell(cell) == written


@pytest.fixture
def hostile_simulation(seeded: Seeded) -> Simulation:
    """The seeded simulation with one losing trade of an instrument whose symbol is a formula."""
    simulation = Simulation.objects.get(pk=seeded.ids["simulations"])
    simulation.trades = [
        {
            "instrument": "=1+1",
            "symbol": "@SUM(A1:A9)",
            "entry_at": "2024-01-02T00:00:00Z",
            "entry_price": 64940.59,
            "exit_at": "2024-01-09T00:00:00Z",
            "exit_price": 64165.0,
            "quantity": 1.0,
            "entry_fee": 0.0,
            "exit_fee": 0.0,
            "pnl": -775.81,
            "pnl_ratio": -0.0119,
            "exit_reason": "-stop_loss",
        }
    ]
    simulation.save(update_fields=["trades"])
    return simulation


@pytest.mark.parametrize("prefix", ["/api/simulations", "/simulator/runs"])
def test_the_trades_csv_neutralises_formulas_and_keeps_numbers(
    seeded: Seeded, hostile_simulation: Simulation, prefix: str
) -> None:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    response = client.get(f"{prefix}/{hostile_simulation.pk}/trades.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["instrument"] == "'=1+1"
    assert rows[0]["symbol"] == "'@SUM(A1:A9)"
    assert rows[0]["exit_reason"] == "'-stop_loss"
    assert rows[0]["pnl"] == "-775.81"
    assert rows[0]["pnl_ratio"] == "-0.0119"


@pytest.mark.parametrize("prefix", ["/api/simulations", "/simulator/runs"])
def test_the_equity_csv_keeps_negative_numbers(
    seeded: Seeded, hostile_simulation: Simulation, prefix: str
) -> None:
    hostile_simulation.equity_curve = {
        "time": [1704153600],
        "equity": [-12.5],
        "buy_and_hold": [9000.0],
        "drawdown_ratio": [0.25],
    }
    hostile_simulation.save(update_fields=["equity_curve"])
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    text = client.get(f"{prefix}/{hostile_simulation.pk}/equity.csv").content.decode()
    assert text.splitlines()[1] == "2024-01-02T00:00:00Z,-12.5,9000.0,0.25"
