"""The portfolio pages (issue 16): the form (weights in percent, errors next to their fields), a run's page (its
members, correlation and statistics tables, with the saved figures), the list; each user's own runs only."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from instruments.models import Instrument
from simulator.models import PortfolioSimulation, RunStatus
from tests.trading.factories import StrategyFactory, sma_cross_criteria
from trading.models import Portfolio, PortfolioStrategy, Strategy

pytestmark = pytest.mark.django_db


@pytest.fixture
def pair(shipped_history: None) -> list[Strategy]:
    bitcoin, litecoin = (Instrument.objects.get(coingecko_id=c) for c in ("bitcoin", "litecoin"))
    return [
        StrategyFactory.create(name="btc sma", criteria=sma_cross_criteria(), instruments=[bitcoin]),
        StrategyFactory.create(name="ltc sma", criteria=sma_cross_criteria(), instruments=[litecoin]),
    ]


@pytest.fixture
def client(db: None) -> Client:
    browser = Client()
    browser.force_login(User.objects.create_user("trader"))
    return browser


def _post(pair: list[Strategy], weights: list[str], **extra: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "strategy": [str(s.pk) for s in pair],
        "start": "2018-01-01",
        "end": "2019-12-31",
        "starting_cash": "10000",
        "limits": "",
        "name": "pair",
        **extra,
    }
    for strategy, weight in zip(pair, weights, strict=True):
        data[f"weight_{strategy.pk}"] = weight
    return data


def _cell(html: str, member: str, field: str) -> str:
    row = re.search(rf'<tr data-member="{re.escape(member)}">(.*?)</tr>', html, re.DOTALL)
    assert row, f"no row of {member}"
    found = re.search(rf'data-field="{field}">([^<]*)<', row.group(1))
    assert found, f"no {field} in the row of {member}"
    return found.group(1).strip()


def test_the_form_runs_the_portfolio_and_its_page_shows_the_tables(
    pair: list[Strategy], client: Client
) -> None:
    response = client.post("/simulator/portfolios/new/", _post(pair, ["60", "40"]))

    assert response.status_code == 302
    record = PortfolioSimulation.objects.get()
    assert response["Location"] == f"/simulator/portfolios/{record.pk}/"
    assert record.status == RunStatus.DONE, record.error
    assert [(m["name"], m["weight"]) for m in record.members] == [("btc sma", 0.6), ("ltc sma", 0.4)]
    html = client.get(response["Location"]).content.decode()

    first, second = record.attribution
    # 0.6 of 10,000 is a budget of 6,000.00; P&L and contribution to two decimals, ratios in percent.
    assert _cell(html, "btc sma", "weight") == "60.00 %"
    assert _cell(html, "btc sma", "budget") == "6,000.00"
    assert _cell(html, "btc sma", "pnl") == f"{float(first['pnl']):,.2f}"
    assert _cell(html, "ltc sma", "pnl") == f"{float(second['pnl']):,.2f}"
    assert _cell(html, "ltc sma", "exposure") == f"{second['exposure_ratio'] * 100:,.2f} %"
    assert _cell(html, "btc sma", "return_on_budget") == f"{float(first['pnl']) / 6000 * 100:,.2f} %"
    assert _cell(html, "ltc sma", "drawdown_contribution") == f"{float(second['drawdown_contribution']):,.2f}"
    assert _cell(html, "btc sma", "trades") == str(first["n_trades"])
    correlation = re.search(r'id="portfolio-correlation".*?</table>', html, re.DOTALL)
    assert correlation is not None
    off_diagonal = record.correlation["matrix"][0][1]
    assert correlation.group(0).count(f'<td class="num">{off_diagonal:.2f}</td>') == 2
    assert correlation.group(0).count('<td class="num">1.00</td>') == 2
    total = record.statistics["total_return_ratio"]
    assert re.search(
        rf'<tr data-key="total_return_ratio">.*?data-field="value">{re.escape(f"{total * 100:,.2f} %")}<',
        html,
        re.DOTALL,
    )
    assert 'id="chart-equity"' in html and 'id="chart-data"' in html
    assert "<script>" not in html  # CSP: the chart's data is JSON, drawn by simulator.js

    listed = client.get("/simulator/portfolios/").content.decode()
    assert f'href="/simulator/portfolios/{record.pk}/"' in listed
    assert "btc sma (60 %), ltc sma (40 %)" in listed


def test_form_errors_are_next_to_their_fields(pair: list[Strategy], client: Client) -> None:
    response = client.post(
        "/simulator/portfolios/new/", _post(pair, ["150", "40"], limits='{"max_open_positions": 0}')
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(
        rf'data-error-for="weight_{pair[0].pk}"><li>must be a percent from 0 to 100; was &#x27;150&#x27;',
        html,
    )
    assert not PortfolioSimulation.objects.exists()

    # Valid weights that add up to more than 100 %; a bad limit: each where it belongs.
    html = client.post(
        "/simulator/portfolios/new/", _post(pair, ["70", "40"], limits='{"max_open_positions": 0}')
    ).content.decode()
    assert re.search(r'data-error-for="strategies"><li>the weights add up to 1\.1 \(110\.00 %\)', html)
    assert re.search(r'data-error-for="limits"><li>limits\.max_open_positions: ', html)
    html = client.post(
        "/simulator/portfolios/new/", _post(pair, ["50", "40"], end="2017-01-01", limits="{nope")
    ).content.decode()
    assert re.search(r'data-error-for="limits"><li>must be a JSON object', html)
    html = client.post(
        "/simulator/portfolios/new/", _post(pair, ["50", "40"], end="2017-01-01")
    ).content.decode()
    assert re.search(r'data-error-for="end"><li>must be on or after start \(2018-01-01\)', html)
    assert not PortfolioSimulation.objects.exists()


def test_the_form_is_filled_from_a_saved_portfolio(pair: list[Strategy], client: Client) -> None:
    portfolio = Portfolio.objects.create(
        name="core", starting_cash=Decimal("5000"), limits={"max_open_positions": 1}
    )
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=pair[1], weight=Decimal("0.25"), order=0)

    html = client.get(f"/simulator/portfolios/new/?portfolio={portfolio.pk}").content.decode()

    assert f'name="weight_{pair[1].pk}" id="id_weight_{pair[1].pk}" value="25"' in html
    assert f'name="weight_{pair[0].pk}" id="id_weight_{pair[0].pk}" value=""' in html
    # Its member is listed first; its cash and limits fill their fields.
    assert html.index(f'data-strategy="{pair[1].pk}"') < html.index(f'data-strategy="{pair[0].pk}"')
    assert 'value="5000"' in html and "max_open_positions" in html
    response = client.post(
        "/simulator/portfolios/new/",
        _post(pair, ["", "25"], portfolio=str(portfolio.pk), limits='{"max_open_positions": 1}'),
    )
    assert response.status_code == 302
    assert PortfolioSimulation.objects.get().portfolio == portfolio


def test_another_users_run_is_a_404_and_the_pages_need_a_login(client: Client) -> None:
    other = User.objects.create_user("other")
    record = PortfolioSimulation.objects.create(
        created_by=other, start=date(2018, 1, 1), end=date(2018, 2, 1), starting_cash=Decimal(100), members=[]
    )

    assert client.get(f"/simulator/portfolios/{record.pk}/").status_code == 404
    assert client.get(f"/simulator/portfolios/{record.pk}/progress/").status_code == 404
    assert f"/simulator/portfolios/{record.pk}/" not in client.get("/simulator/portfolios/").content.decode()
    assert Client().get("/simulator/portfolios/new/").status_code == 302
    assert Client().get(f"/simulator/portfolios/{record.pk}/").status_code == 302


def test_a_wrong_weight_box_does_not_hide_the_other_fields_errors(client: Client) -> None:
    """Every problem at once: a weight out of range beside bad limits shows both, each by its field."""
    user = User.objects.create_user("pf-errors", password="unused-password-123")
    client.force_login(user)
    strategy = Strategy.objects.create(
        name="errors-a",
        criteria={
            "version": 1,
            "side": "long",
            "entry": {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}},
        },
    )
    page = client.post(
        "/simulator/portfolios/new/",
        {
            "strategy": [str(strategy.pk)],
            f"weight_{strategy.pk}": "-5",
            "start": "2019-01-01",
            "end": "2019-06-30",
            "starting_cash": "10000",
            "limits": '{"max_open_positions": "two"}',
        },
    ).content.decode()
    assert "must be a percent from 0 to 100; was &#x27;-5&#x27;" in page
    assert "limits.max_open_positions: must be an integer &gt;= 1 or null, was &#x27;two&#x27;" in page
    assert not PortfolioSimulation.objects.exists()
