"""A run trades only inside its stored data and says what it used (issue 13, item 3).

The issue's reproduction on the shipped history: ETH (Bitstamp, ``ethereum``) with the simulator's default dates
2019-04-21 .. 2024-04-20, but its data ends 2020-01-17. Before, the run went on to 2024 over a flat curve, the
``end_of_data`` fee was charged on 2024-04-20 while the trade said it exited at 2020-01-18, and exposure, CAGR and
drawdown duration counted the empty years.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from instruments.models import InstrumentOHLC, Timeframe
from simulator.launch import simulation_start
from simulator.models import RunStatus, Simulation
from simulator.services.requests import simulation_request_check
from tests.trading.factories import sma_cross_criteria

pytestmark = pytest.mark.django_db

START, END = date(2019, 4, 21), date(2024, 4, 20)
CASH = Decimal("10000")
CRITERIA = sma_cross_criteria(stop_loss_ratio=None)  # fee_rate 0.001, no slippage, all of the equity


def eth_days() -> list[date]:
    """The days of the stored daily ethereum candles, in order."""
    times = InstrumentOHLC.objects.filter(
        instrument__coingecko_id="ethereum", timeframe=Timeframe.D1
    ).values_list("open_time", flat=True)
    return sorted(t.date() for t in times)


def candle(day: date, coingecko_id: str = "ethereum") -> InstrumentOHLC:
    """The stored daily candle of ``coingecko_id`` that opens on ``day``."""
    return InstrumentOHLC.objects.get(
        instrument__coingecko_id=coingecko_id,
        timeframe=Timeframe.D1,
        open_time=datetime(day.year, day.month, day.day, tzinfo=UTC),
    )


def run(start: date = START, end: date = END) -> Simulation:
    simulation = simulation_start(
        request=simulation_request_check(
            instruments=["ethereum"], start=start, end=end, starting_cash=CASH, criteria=CRITERIA
        )
    )
    assert simulation.status == RunStatus.DONE, simulation.error
    return simulation


def test_a_run_past_the_data_ends_at_the_last_candle(shipped_history: None) -> None:
    days = eth_days()
    last_day = days[-1]
    assert last_day == date(2020, 1, 17)  # the data the issue describes
    simulation = run()

    # The equity curve has one point a used day, the last one at the last candle.
    used_days = [d for d in days if START <= d <= last_day]
    curve_days = [datetime.fromtimestamp(t, tz=UTC).date() for t in simulation.equity_curve["time"]]
    assert curve_days[-1] == last_day

    # The trade still open at the end closes end_of_data at the last candle's close, its fee charged there.
    last = simulation.trades[-1]
    assert last["exit_reason"] == "end_of_data"
    assert last["exit_at"] == "2020-01-18T00:00:00Z"  # the close of 2020-01-17
    close = candle(last_day).close
    assert Decimal(last["exit_price"]) == pytest.approx(close, rel=Decimal("1e-12"))
    fee = Decimal(last["quantity"]) * close * Decimal("0.001")
    assert Decimal(last["exit_fee"]) == pytest.approx(fee, rel=Decimal("1e-9"))
    # The final equity is the cash after that exit, on the last day of the curve.
    final = Decimal(str(simulation.equity_curve["equity"][-1]))
    assert final == pytest.approx(Decimal(simulation.statistics["final_equity"]), abs=Decimal("1e-6"))

    # Exposure over the used days: each trade is held from its entry day to its exit day.
    held: set[date] = set()
    for trade in simulation.trades:
        entry = date.fromisoformat(trade["entry_at"][:10])
        exit_day = date.fromisoformat(trade["exit_at"][:10])
        if trade["exit_reason"] == "end_of_data":
            exit_day -= timedelta(days=1)  # timed at the next day's open, held through its own candle
            held.update(entry + timedelta(days=k) for k in range((exit_day - entry).days + 1))
        else:
            held.update(entry + timedelta(days=k) for k in range((exit_day - entry).days))
    assert curve_days == used_days  # no gap in this range
    assert simulation.statistics["exposure_ratio"] == pytest.approx(len(held) / len(used_days))

    coverage = simulation.statistics["coverage"]
    assert coverage["requested"] == {"start": "2019-04-21", "end": "2024-04-20"}
    assert coverage["used"] == {"start": "2019-04-21", "end": last_day.isoformat()}
    assert coverage["note"] == (
        "Ran 2019-04-21 .. 2020-01-17 (requested 2019-04-21 .. 2024-04-20): the data of ethereum ends 2020-01-17."
    )


def test_a_gap_inside_the_data_is_reported(shipped_history: None) -> None:
    days = eth_days()
    # The CSV has no row 2019-03-20 .. 2019-03-31 for any instrument.
    before = [d for d in days if d < date(2019, 4, 1)][-1]
    after = days[days.index(before) + 1]
    assert (before, after) == (date(2019, 3, 19), date(2019, 4, 1))

    simulation = run(start=date(2019, 3, 1), end=date(2019, 4, 30))

    coverage = simulation.statistics["coverage"]
    assert coverage["used"] == {"start": "2019-03-01", "end": "2019-04-30"}
    [row] = coverage["instruments"]
    assert row["gaps"] == [{"start": "2019-03-20", "end": "2019-03-31", "days": 12}]
    assert "2019-03-20 .. 2019-03-31" in coverage["note"]


def test_the_api_page_and_command_show_the_coverage(
    shipped_history: None, client: Client, tmp_path: Path
) -> None:
    user = User.objects.create_user("trader")
    api = APIClient()
    api.force_authenticate(user)
    body = {
        "instruments": ["ethereum"],
        "start": START.isoformat(),
        "end": END.isoformat(),
        "starting_cash": str(CASH),
        "criteria": CRITERIA,
    }
    created = api.post("/api/simulations/", body, format="json")
    assert created.status_code == 201, created.content
    coverage = created.json()["coverage"]
    assert coverage["used"]["end"] == "2020-01-17"
    assert api.get(f"/api/simulations/{created.json()['id']}/").json()["coverage"] == coverage
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    documented = schema["components"]["schemas"]["Simulation"]["properties"]["coverage"]
    assert documented["readOnly"] is True and "gaps" in documented["description"]

    client.force_login(user)
    page = client.get(reverse("simulator:run", args=[created.json()["id"]]))
    assert page.status_code == 200
    assert html.escape(coverage["note"]) in page.content.decode()

    criteria_file = tmp_path / "criteria.json"
    criteria_file.write_text(json.dumps(CRITERIA))
    out = StringIO()
    call_command(
        "simulate",
        "--instrument",
        "ethereum",
        "--start",
        START.isoformat(),
        "--end",
        END.isoformat(),
        "--criteria",
        str(criteria_file),
        stdout=out,
    )
    assert f"Coverage: {coverage['note']}" in out.getvalue()


def test_an_instrument_whose_data_ends_first_closes_at_its_own_last_close(shipped_history: None) -> None:
    """ETH and BTC sharing cash, half each: the run goes on to 2024 (bitcoin has data), and ETH's trade still open
    at its last candle (2020-01-17) closes end_of_data there, its fee charged on that day's equity, not in 2024."""
    criteria = sma_cross_criteria(stop_loss_ratio=None, sizing={"method": "equity_fraction", "value": 0.5})
    simulation = simulation_start(
        request=simulation_request_check(
            instruments=["ethereum", "bitcoin"], start=START, end=END, starting_cash=CASH, criteria=criteria
        )
    )
    assert simulation.status == RunStatus.DONE, simulation.error
    assert simulation.statistics["coverage"]["used"] == {"start": "2019-04-21", "end": "2024-04-20"}
    by_day = {
        datetime.fromtimestamp(t, tz=UTC).date(): Decimal(str(e))
        for t, e in zip(simulation.equity_curve["time"], simulation.equity_curve["equity"], strict=True)
    }
    assert max(by_day) == END
    day, before = date(2020, 1, 17), date(2020, 1, 16)
    [eth] = [t for t in simulation.trades if t["symbol"] == "ETH" and t["exit_reason"] == "end_of_data"]
    assert eth["exit_at"] == "2020-01-18T00:00:00Z"
    assert Decimal(eth["exit_price"]) == pytest.approx(candle(day).close, rel=Decimal("1e-12"))
    # Bitcoin's position held through both days (no bitcoin trade starts or ends there).
    [btc] = [
        t
        for t in simulation.trades
        if t["symbol"] == "BTC"
        and t["entry_at"][:10] <= before.isoformat()
        and t["exit_at"][:10] > day.isoformat()
    ]
    # equity(17) - equity(16) = q_btc * (btc close 17 - close 16) + q_eth * (eth close 17 - close 16) - eth exit fee
    change = (
        Decimal(btc["quantity"]) * (candle(day, "bitcoin").close - candle(before, "bitcoin").close)
        + Decimal(eth["quantity"]) * (candle(day).close - candle(before).close)
        - Decimal(eth["exit_fee"])
    )
    assert by_day[day] - by_day[before] == pytest.approx(change, abs=Decimal("1e-6"))
