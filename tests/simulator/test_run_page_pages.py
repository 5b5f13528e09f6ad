"""The run page stays light however many trades a run made (issue 13: a year of one-minute candles makes 10,000):
the trades table shows a page of them (``?trades_page=``), the charts mark that page's trades only, and every
trade is in the trades CSV. A ruined account is said so on the page.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client

from simulator.launch import simulation_start
from simulator.models import RunStatus, Simulation
from simulator.presenters import TRADES_PER_PAGE
from simulator.services.requests import simulation_request_check
from tests.simulator.test_views import json_script

pytestmark = pytest.mark.django_db
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}


@pytest.fixture
def busy_run(shipped_history: None) -> Simulation:
    """In and out every other day over 2015-2023 on shipped bitcoin: some 1,600 trades."""
    trader = User.objects.create_user("trader")
    criteria = {
        "version": 1,
        "side": "long",
        "entry": ALWAYS,
        "exit": ALWAYS,
        "fee_rate": 0.0,
        "slippage_ratio": 0.0,
    }
    simulation = simulation_start(
        request=simulation_request_check(
            instruments=["bitcoin"],
            start=date(2015, 1, 1),
            end=date(2023, 12, 31),
            starting_cash=Decimal(10_000),
            criteria=criteria,
        ),
        created_by=trader,
    )
    assert simulation.status == RunStatus.DONE and len(simulation.trades) > 3 * TRADES_PER_PAGE
    return simulation


def owner(simulation: Simulation) -> Client:
    assert simulation.created_by is not None
    client = Client()
    client.force_login(simulation.created_by)
    return client


def page(simulation: Simulation, query: str = "") -> str:
    response = owner(simulation).get(f"/simulator/runs/{simulation.pk}/{query}")
    assert response.status_code == 200
    return response.content.decode()


def rows(html: str) -> int:
    table = html[html.index('id="trades"') :]
    return len(re.findall(r"<tr[ >]", table[table.index("<tbody") : table.index("</tbody>")]))


def markers(html: str) -> int:
    return sum(len(m) for m in json_script(html, "chart-data")["markers"].values())


def test_a_page_of_trades_its_markers_and_links_to_the_others(busy_run: Simulation) -> None:
    n = len(busy_run.trades)
    pages = -(-n // TRADES_PER_PAGE)

    second = page(busy_run, "?trades_page=2")

    assert rows(second) == TRADES_PER_PAGE
    assert (
        f"Showing trades {TRADES_PER_PAGE + 1} to {2 * TRADES_PER_PAGE} of {n} (page 2 of {pages})" in second
    )
    assert (
        'href="?trades_page=3#trades" rel="next"' in second
        and 'href="?trades_page=1#trades" rel="first"' in second
    )
    assert f"/simulator/runs/{busy_run.pk}/trades.csv" in second
    assert 0 < markers(second) <= 2 * TRADES_PER_PAGE  # an entry and an exit mark per trade shown, no more
    # the page's first row is the 251st trade
    assert busy_run.trades[TRADES_PER_PAGE]["entry_at"][:10] in second[second.index('id="trades"') :]


def test_unreadable_or_past_the_end_page_numbers_show_the_first_or_the_last_page(
    busy_run: Simulation,
) -> None:
    n = len(busy_run.trades)
    pages = -(-n // TRADES_PER_PAGE)

    assert f"(page 1 of {pages})" in page(busy_run, "?trades_page=abc")
    last = page(busy_run, "?trades_page=99999")
    assert f"(page {pages} of {pages})" in last and rows(last) == n - (pages - 1) * TRADES_PER_PAGE


def test_every_trade_is_in_the_csv(busy_run: Simulation) -> None:
    response = owner(busy_run).get(f"/simulator/runs/{busy_run.pk}/trades.csv")
    assert response.status_code == 200
    assert len(response.content.decode().strip().splitlines()) == len(busy_run.trades) + 1


def test_a_ruined_account_is_said_so(busy_run: Simulation) -> None:
    assert 'id="run-ruined"' not in page(busy_run)
    busy_run.statistics = {**busy_run.statistics, "ruined_at": "2019-05-02T00:00:00Z"}
    busy_run.save(update_fields=["statistics"])

    html = page(busy_run)

    assert 'id="run-ruined"' in html and "The account was ruined on 2019-05-02" in html
