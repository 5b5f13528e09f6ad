"""The simulator's pages on the shipped real history: the form (errors next to their fields, filled from a
strategy or a run), the result (statistics, charts' data, trades, CSVs, save as strategy), progress of queued
runs, the list and comparison of runs, and sweeps end to end; every page behind the login."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoAssertNumQueries, DjangoCaptureOnCommitCallbacks, Settings

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from simulator.builder.reading import builder_from_criteria
from simulator.launch import simulation_start
from simulator.models import RunStatus, Simulation, Sweep
from simulator.services.requests import simulation_request_check
from simulator.services.simulations import simulation_create, simulation_run
from simulator.services.sweeps import sweep_create
from tests.accounts import permissions
from tests.simulator.test_forms import as_post
from tests.trading.factories import sma_cross_criteria
from trading.engine.vocabulary import STATISTICS_KEYS
from trading.models import Strategy

pytestmark = pytest.mark.django_db
# The data attributes of an instrument option of the form (simulator/_form.html).
OPTION_DATA = r'data-timeframes="[^"]*" data-symbol="[^"]*" data-first="[^"]*" data-last="[^"]*"'

START, END = date(2018, 1, 1), date(2019, 12, 31)
TREND = sma_cross_criteria(stop_loss_ratio=0.08, take_profit_ratio=0.3)
RSI: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "entry": {"all": [{"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 30}}]},
    "exit": None,
    "take_profit_ratio": 0.06,
    "max_holding_days": 7,
    "sizing": {"method": "equity_fraction", "value": 0.5},
    "fee_rate": 0.001,
    "slippage_ratio": 0.0,
}


@pytest.fixture
def trader(db: None) -> User:
    return User.objects.create_user("trader")


@pytest.fixture
def logged_in(client: Client, trader: User) -> Client:
    client.force_login(trader)
    return client


def bitcoin() -> Instrument:
    return Instrument.objects.get(coingecko_id="bitcoin")


def form_data(criteria: dict[str, Any] = TREND, /, **overrides: Any) -> dict[str, Any]:
    """The POST of the form, as a browser sends it for the builder showing ``criteria``.

    ``criteria`` is positional-only, so that no field unpacked into ``overrides``
    (``**{"entry-0-left_period": ...}``) can take its place.
    """
    data: dict[str, Any] = {
        "instruments": [str(bitcoin().pk)],
        "start": START.isoformat(),
        "end": END.isoformat(),
        "starting_cash": "10000",
        "name": "",
        "criteria_json": "",
        "action": "run",
        **as_post(builder_from_criteria(criteria)),
    }
    data.update(overrides)
    return data


def errors_for(html: str, name: str) -> list[str]:
    """The messages shown next to the field posted as ``name``."""
    match = re.search(rf'<ul class="errors" data-error-for="{re.escape(name)}">(.*?)</ul>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", match.group(1), re.S) if match else []


def json_script(html: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


def run_of(user: User, criteria: dict[str, Any] = TREND, name: str = "", **request: Any) -> Simulation:
    arguments = {
        "instruments": ["bitcoin"],
        "start": START,
        "end": END,
        "starting_cash": Decimal("10000"),
        "criteria": criteria,
        **request,
    }
    return simulation_start(request=simulation_request_check(**arguments), created_by=user, name=name)


# Login ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/simulator/"),
        ("post", "/simulator/"),
        ("get", "/simulator/rows/new/?group=entry&entry_next=1"),
        ("post", "/simulator/criteria/"),
        ("post", "/simulator/sweep-paths/"),
        ("get", "/simulator/runs/"),
        ("get", "/simulator/runs/1/"),
        ("get", "/simulator/runs/1/progress/"),
        ("get", "/simulator/runs/1/trades.csv"),
        ("get", "/simulator/runs/1/equity.csv"),
        ("post", "/simulator/runs/1/strategy/"),
        ("get", "/simulator/compare/?ids=1&ids=2"),
        ("get", "/simulator/sweeps/1/"),
        ("get", "/simulator/sweeps/1/progress/"),
        ("get", "/simulator/sweeps/1/points/0/"),
    ],
)
def test_every_page_needs_a_login(client: Client, method: str, path: str) -> None:
    response = getattr(client, method)(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/simulator/")


def test_someone_elses_run_and_sweep_are_not_found(shipped_history: None, logged_in: Client) -> None:
    other = User.objects.create_user("other")
    simulation = run_of(other)
    request = simulation_request_check(
        instruments=["bitcoin"], start=START, end=END, starting_cash=Decimal(1000), criteria=TREND
    )
    sweep = sweep_create(
        request=request, axes=[{"path": "stop_loss_ratio", "values": [0.05]}], created_by=other
    )

    for path in (
        f"/simulator/runs/{simulation.pk}/",
        f"/simulator/runs/{simulation.pk}/progress/",
        f"/simulator/runs/{simulation.pk}/trades.csv",
        f"/simulator/sweeps/{sweep.pk}/",
        f"/simulator/sweeps/{sweep.pk}/points/0/",
    ):
        assert logged_in.get(path).status_code == 404, path
    # Without trading.add_strategy the save is refused before the run is looked up; with it, not found.
    assert logged_in.post(f"/simulator/runs/{simulation.pk}/strategy/", {"name": "x"}).status_code == 403
    User.objects.get(username="trader").user_permissions.add(*permissions("trading.add_strategy"))
    assert logged_in.post(f"/simulator/runs/{simulation.pk}/strategy/", {"name": "x"}).status_code == 404


# The form ---------------------------------------------------------------------------------------------------


def test_the_form_proposes_the_last_five_years_of_the_newest_instrument(
    shipped_history: None, logged_in: Client
) -> None:
    response = logged_in.get("/simulator/")

    html = response.content.decode()
    assert response.status_code == 200
    options = re.findall(r'<option value="(\d+)" ' + OPTION_DATA + r"( selected)?>(\w+) ·", html)
    assert [(symbol, bool(selected)) for _, selected, symbol in options] == [
        ("BTC", True),  # candles up to 2024-12-31, the newest
        ("ETH", False),
        ("LTC", False),
    ]
    assert 'name="start" value="2020-01-01"' in html
    assert 'name="end" value="2024-12-31"' in html
    assert 'name="starting_cash" id="id_starting_cash" value="10000"' in html
    assert 'name="fee_pct" id="id_fee_pct" value="0.1"' in html
    assert 'name="slippage_pct" id="id_slippage_pct" value="0"' in html
    # the builder starts with an SMA cross, and the sweep lists the criteria's numbers
    assert 'name="entry-0-left_period" value="10"' in html
    assert '<option value="entry.all[0].left.period">' in html
    assert '<option value="fee_rate">fee_rate (%)</option>' in html
    # every script is ours, served from static files
    assert re.findall(r'<script src="([^"]+)"', html) == [
        "/static/simulator/vendor/htmx.min.js",
        "/static/simulator/simulator.js",
    ]


def test_posting_the_form_runs_the_simulation_and_redirects_to_it(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    data = form_data(stop_loss_pct="5", take_profit_pct="", sizing_value="50", fee_pct="0.2", name="trend")

    response = logged_in.post("/simulator/", data)

    simulation = Simulation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/simulator/runs/{simulation.pk}/"
    assert simulation.status == RunStatus.DONE
    assert (simulation.name, simulation.created_by, simulation.start, simulation.end) == (
        "trend",
        trader,
        START,
        END,
    )
    assert list(simulation.instruments.all()) == [bitcoin()]
    # percent in the form, fractions inside
    assert simulation.criteria["stop_loss_ratio"] == 0.05
    assert simulation.criteria["take_profit_ratio"] is None
    assert simulation.criteria["sizing"] == {"method": "equity_fraction", "value": 0.5}
    assert simulation.criteria["fee_rate"] == 0.002
    assert simulation.criteria["entry"] == TREND["entry"]


def test_an_htmx_post_is_redirected_with_hx_redirect(shipped_history: None, logged_in: Client) -> None:
    response = logged_in.post("/simulator/", form_data(), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/simulator/runs/{Simulation.objects.get().pk}/"


# ``headers`` is Any as in Django's ``Client.post(**extra: Any)``: WSGI environ entries (``HTTP_HX_REQUEST="true"``).
def _post_with_errors(client: Client, data: dict[str, Any], **headers: Any) -> str:
    response = client.post("/simulator/", data, **headers)
    assert response.status_code == 200
    assert not Simulation.objects.exists()
    return response.content.decode()


def test_a_bad_period_is_shown_on_its_row(shipped_history: None, logged_in: Client) -> None:
    data = form_data()
    # a second entry row, added after one was removed: key 3 is entry.all[1]
    data.update(
        {
            "entry-3-left_indicator": "ema",
            "entry-3-left_period": "12",
            "entry-3-op": ">",
            "entry-3-right_indicator": "sma",
            "entry-3-right_period": "0",
        }
    )

    html = _post_with_errors(logged_in, data)

    assert errors_for(html, "entry-3-right_period") == ["must be an integer &gt;= 1, was 0"]
    assert errors_for(html, "entry-0-right_period") == []
    # the rows come back as they were typed
    assert 'name="entry-3-right_period" value="0"' in html
    assert 'name="entry-3-left_period" value="12"' in html


def test_percent_fields_say_their_errors_in_percent(shipped_history: None, logged_in: Client) -> None:
    html = _post_with_errors(logged_in, form_data(stop_loss_pct="100", fee_pct="abc"))

    assert errors_for(html, "stop_loss_pct") == ["must be &gt; 0 % and &lt; 100 %, was 100 %"]
    assert errors_for(html, "fee_pct") == ["must be a number, was &#x27;abc&#x27;"]


def test_an_end_before_the_start_is_shown_at_the_end(shipped_history: None, logged_in: Client) -> None:
    html = _post_with_errors(logged_in, form_data(start="2019-06-01", end="2019-05-01"))

    assert errors_for(html, "end") == ["must be on or after start (2019-06-01); was 2019-05-01"]
    assert errors_for(html, "start") == []


def test_an_unreadable_date_is_one_error(shipped_history: None, logged_in: Client) -> None:
    html = _post_with_errors(logged_in, form_data(start="2019-02-30"))

    assert errors_for(html, "start") == ["Enter a valid date."]


@pytest.mark.parametrize(
    ("instruments", "message"),
    [([], "choose at least one instrument"), (["999999"], "unknown instrument(s): 999999")],
)
def test_instrument_errors_are_shown_at_the_instruments(
    shipped_history: None, logged_in: Client, instruments: list[str], message: str
) -> None:
    html = _post_with_errors(logged_in, form_data(instruments=instruments))

    assert errors_for(html, "instruments") == [message]


def test_a_malformed_json_paste_is_an_error_of_the_json_box(shipped_history: None, logged_in: Client) -> None:
    data = form_data(advanced="on", criteria_json='{"version": 1, "entry": ')

    html = _post_with_errors(logged_in, data)

    assert errors_for(html, "criteria_json") == ["not valid JSON: Expecting value at line 1, column 25"]
    assert '<input type="checkbox" name="advanced" id="id_advanced" data-advanced-toggle checked>' in html
    assert "{&quot;version&quot;: 1, &quot;entry&quot;: </textarea>" in html  # what was typed is kept


def test_criteria_errors_of_a_json_paste_are_shown_under_the_box_with_their_path(
    shipped_history: None, logged_in: Client
) -> None:
    pasted = {**TREND, "exit": {"any": [{**TREND["exit"]["any"][0], "op": "crosses"}]}}
    data = form_data(advanced="on", criteria_json=json.dumps(pasted))

    html = _post_with_errors(logged_in, data, HTTP_HX_REQUEST="true")

    assert errors_for(html, "criteria_json") == [
        "exit.any[0].op: must be one of &gt;, &gt;=, &lt;, &lt;=, crosses_above, crosses_below, was &#x27;crosses&#x27;"
    ]
    assert errors_for(html, "exit-0-op") == []  # the box wins: the builder is not blamed
    assert html.lstrip().startswith('<form id="simulator-form"')  # htmx gets the form alone


def negated(condition: dict[str, Any], times: int) -> dict[str, Any]:
    for _ in range(times):
        condition = {"not": condition}
    return condition


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ("[1, 2]", "criteria must be a JSON object, was list"),
        ("[" * 5000 + "]" * 5000, "nested more than 32 levels deep; simplify the criteria"),
        (
            json.dumps({**RSI, "entry": negated(RSI["entry"], times=70)}),
            "nested more than 32 levels deep; simplify the criteria",
        ),
    ],
)
def test_a_paste_that_is_no_criteria_document_is_an_error_of_the_json_box(
    shipped_history: None, logged_in: Client, pasted: str, message: str
) -> None:
    html = _post_with_errors(logged_in, form_data(advanced="on", criteria_json=pasted))

    assert errors_for(html, "criteria_json") == [message]


@pytest.mark.parametrize(
    "garbage",
    [
        {"entry-0-left_indicator": "<script>alert(1)</script>", "entry-0-op": "≈"},
        {"entry-0-left_period": "1e999", "entry-0-right_indicator": "", "entry-0-right_value": "nan"},
        {"entry_mode": "some", "sizing_method": "martingale", "sizing_value": "-1", "max_holding_days": "x"},
        {"entry-0-left_indicator": "macd", "entry-0-left_fast": "30", "entry-0-left_slow": "10"},
        {"entry-99999-op": ">", "exit_next": "-5", "starting_cash": "NaN", "start": "yesterday"},
    ],
)
def test_nonsense_in_any_field_is_shown_as_errors_never_a_500(
    shipped_history: None, logged_in: Client, garbage: dict[str, str]
) -> None:
    response = logged_in.post("/simulator/", form_data(**garbage), HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Please correct the fields marked below." in html
    assert "<script>alert" not in html
    assert not Simulation.objects.exists()


def test_the_json_box_wins_over_the_builder(shipped_history: None, logged_in: Client) -> None:
    response = logged_in.post("/simulator/", form_data(advanced="on", criteria_json=json.dumps(RSI)))

    assert response.status_code == 302
    assert Simulation.objects.get().criteria == RSI


def test_an_empty_json_box_leaves_the_builder_in_charge(shipped_history: None, logged_in: Client) -> None:
    logged_in.post("/simulator/", form_data(advanced="on", criteria_json="  "))

    assert Simulation.objects.get().criteria["entry"] == TREND["entry"]


def test_the_form_is_filled_from_a_saved_strategy(shipped_history: None, logged_in: Client) -> None:
    strategy = Strategy.objects.create(name="rsi dip", criteria=RSI, starting_cash=Decimal("2500"))
    strategy.instruments.set(Instrument.objects.filter(coingecko_id__in=["ethereum", "litecoin"]))

    html = logged_in.get(f"/simulator/?strategy={strategy.pk}").content.decode()

    assert "Filled from strategy rsi dip." in html
    assert f'<option value="{strategy.pk}" selected>rsi dip</option>' in html  # the "fill from" select
    selected = re.findall(r'<option value="\d+" ' + OPTION_DATA + r" selected>(\w+) ·", html)
    assert selected == ["ETH", "LTC"]
    assert 'name="starting_cash" id="id_starting_cash" value="2500"' in html
    assert 'name="entry-0-left_indicator" data-indicator-select' in html
    assert '<option value="rsi" data-params="period" selected>' in html
    assert 'name="entry-0-right_value" value="30"' in html
    assert 'name="take_profit_pct" id="id_take_profit_pct" value="6"' in html  # 0.06 -> 6 %
    assert 'name="sizing_value" id="id_sizing_value" value="50"' in html  # half the equity
    assert 'name="max_holding_days" id="id_max_holding_days" value="7"' in html
    assert f'name="source_strategy" value="{strategy.pk}"' in html
    assert 'id="exit-rows">\n    \n  </div>' in html  # no exit rows: no signal exit

    # run as shown: the run remembers the strategy it came from
    data = form_data(RSI, source_strategy=str(strategy.pk))
    assert logged_in.post("/simulator/", data).status_code == 302
    assert Simulation.objects.get().source_strategy == strategy


def test_criteria_the_builder_cannot_show_go_to_the_json_box(
    shipped_history: None, logged_in: Client
) -> None:
    nested = {**RSI, "entry": {"not": RSI["entry"]["all"][0]}}
    strategy = Strategy.objects.create(name="contrarian", criteria=nested, starting_cash=Decimal(1000))

    html = logged_in.get(f"/simulator/?strategy={strategy.pk}").content.decode()

    assert "they are in the JSON box, which is used" in html
    assert "data-advanced-toggle checked>" in html
    assert "&quot;not&quot;" in html


def test_the_form_is_filled_from_a_previous_run(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    simulation = run_of(
        trader, RSI, start=date(2019, 3, 1), end=date(2019, 9, 30), starting_cash=Decimal("777")
    )

    html = logged_in.get(f"/simulator/?from={simulation.pk}").content.decode()

    assert f"Filled from run {simulation.pk}" in html
    assert 'name="start" value="2019-03-01"' in html
    assert 'name="end" value="2019-09-30"' in html
    assert 'name="starting_cash" id="id_starting_cash" value="777"' in html
    assert '<option value="rsi" data-params="period" selected>' in html
    assert 'name="take_profit_pct" id="id_take_profit_pct" value="6"' in html


def test_someone_elses_run_does_not_fill_the_form(shipped_history: None, logged_in: Client) -> None:
    simulation = run_of(User.objects.create_user("other"), RSI)

    html = logged_in.get(f"/simulator/?from={simulation.pk}").content.decode()

    assert f"There is no run {simulation.pk} of yours" in html
    assert '<option value="sma" data-params="period source" selected>' in html  # the defaults


def test_a_new_condition_row_comes_with_the_next_key(logged_in: Client) -> None:
    response = logged_in.get("/simulator/rows/new/?group=exit&exit_next=4")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="row-exit-4"' in html
    assert 'name="exit-4-op"' in html
    assert 'name="exit-4-right_period" value="20"' in html
    assert '<input type="hidden" name="exit_next" id="exit-next" value="5" hx-swap-oob="true">' in html
    assert logged_in.get("/simulator/rows/new/?group=sideways&sideways_next=1").status_code == 400


def test_the_json_box_is_filled_from_the_builder(logged_in: Client) -> None:
    data = as_post(builder_from_criteria(TREND))
    data["stop_loss_pct"] = "4"

    html = logged_in.post("/simulator/criteria/", data).content.decode()

    match = re.search(r"<textarea[^>]*>(.*?)</textarea>", html, re.S)
    assert match
    document = json.loads(match.group(1).replace("&quot;", '"'))
    assert document["stop_loss_ratio"] == 0.04
    assert document["entry"] == TREND["entry"]


def test_the_sweep_lists_the_numbers_of_the_current_criteria(logged_in: Client) -> None:
    data = as_post(builder_from_criteria(TREND))
    data.update(
        {
            "entry-1-left_indicator": "rsi",
            "entry-1-left_period": "14",
            "entry-1-op": "<",
            "entry-1-right_indicator": "value",
            "entry-1-right_value": "70",
            "sweep_path_1": "entry.all[1].right.value",
            "sweep_start_1": "60",
        }
    )

    html = logged_in.post("/simulator/sweep-paths/", data).content.decode()

    assert '<option value="entry.all[1].left.period">' in html
    assert '<option value="entry.all[1].right.value" selected>' in html
    assert '<option value="stop_loss_ratio">stop_loss_ratio (%)</option>' in html
    assert 'name="sweep_start_1" id="id_sweep_start_1" value="60"' in html
    assert 'hx-trigger="change from:#criteria-builder' in html


# The result -------------------------------------------------------------------------------------------------


def test_the_result_shows_statistics_trades_and_chart_data(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    simulation = run_of(trader)
    statistics = simulation.statistics
    n_trades = statistics["n_trades"]
    assert n_trades > 3

    response = logged_in.get(f"/simulator/runs/{simulation.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    # every statistic, named as in CRITERIA.md, with units
    keys = re.findall(r'<tr data-key="(\w+)">', html)
    assert keys == list(STATISTICS_KEYS)

    def cell(key: str, field: str) -> str:
        row = re.search(rf'<tr data-key="{key}">(.*?)</tr>', html, re.S)
        assert row
        found = re.search(rf'data-field="{field}">([^<]*)<', row.group(1))
        assert found
        return found.group(1)

    assert cell("total_return_ratio", "value") == f"{statistics['total_return_ratio'] * 100:,.2f} %"
    assert (
        cell("total_return_ratio", "buy_and_hold")
        == f"{statistics['buy_and_hold_return_ratio'] * 100:,.2f} %"
    )
    assert cell("sharpe_ratio", "value") == f"{statistics['sharpe_ratio']:,.2f}"  # a plain number
    assert cell("max_drawdown_duration_days", "value").endswith(" days")
    assert cell("final_equity", "value") == f"{statistics['final_equity']:,.2f} USD"
    assert cell("n_trades", "value") == str(n_trades)
    assert cell("exposure_ratio", "buy_and_hold") == "100.00 %"
    # the trades table has as many rows as n_trades
    table = re.search(
        r'<table id="trades" data-testid="trades" data-n-trades="(\d+)".*?<tbody>(.*?)</tbody>', html, re.S
    )
    assert table
    assert int(table.group(1)) == n_trades
    assert table.group(2).count("<tr data-trade ") == n_trades
    first = simulation.trades[0]
    assert f'data-sort="{first["entry_at"]}">{first["entry_at"][:10]}</td>' in table.group(2)
    # the charts and their data
    for element in ('id="statistics"', 'id="chart-candles-BTC"', 'id="chart-equity"', 'id="chart-drawdown"'):
        assert element in html
    assert "Charts by TradingView Lightweight Charts" in html
    assert "/static/simulator/vendor/lightweight-charts.standalone.production.js" in html
    data = json_script(html, "chart-data")
    stored = InstrumentOHLC.objects.filter(
        instrument=bitcoin(), timeframe=Timeframe.D1, open_time__date__gte=START, open_time__date__lte=END
    )
    candles = data["candles"]["BTC"]
    assert len(candles) == stored.count() == (END - START).days + 1
    assert candles[0]["time"] == 1514764800  # 2018-01-01T00:00:00Z
    first_candle = stored.order_by("open_time").first()
    assert first_candle is not None
    assert candles[0]["open"] == float(first_candle.open)
    assert len(data["markers"]["BTC"]) == 2 * n_trades  # an entry and an exit each
    assert {m["time"] for m in data["markers"]["BTC"]} <= {c["time"] for c in candles}
    assert [m["time"] for m in data["markers"]["BTC"]] == sorted(m["time"] for m in data["markers"]["BTC"])
    entry_day = str(data["markers"]["BTC"][0]["time"])
    assert data["notes"]["BTC"][entry_day][0].startswith("Entry at ")
    curve = simulation.equity_curve
    assert data["equity"]["time"] == curve["time"]
    assert data["equity"]["equity"] == pytest.approx(curve["equity"], abs=0.005)  # to the cent
    assert data["equity"]["buy_and_hold"] == pytest.approx(curve["buy_and_hold"], abs=0.005)
    assert data["equity"]["drawdown_pct"] == pytest.approx(
        [-100 * d for d in curve["drawdown_ratio"]], abs=0.005
    )
    assert min(data["equity"]["drawdown_pct"]) == pytest.approx(
        -100 * statistics["max_drawdown_ratio"], abs=0.005
    )
    assert f'href="/simulator/?from={simulation.pk}"' in html
    assert f'href="/simulator/runs/{simulation.pk}/trades.csv"' in html


def test_the_result_page_reads_in_a_constant_number_of_queries(
    shipped_history: None,
    logged_in: Client,
    trader: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    simulation = run_of(trader, instruments=["bitcoin", "ethereum", "litecoin"])

    # session, user, the user's and its groups' permissions (may it "save as strategy"?), the run with its
    # strategy, its instruments, then one query of candles per instrument
    with django_assert_max_num_queries(9):
        assert logged_in.get(f"/simulator/runs/{simulation.pk}/").status_code == 200


def test_csv_downloads_hold_every_trade_and_every_candle(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    simulation = run_of(trader)

    trades = logged_in.get(f"/simulator/runs/{simulation.pk}/trades.csv")
    equity = logged_in.get(f"/simulator/runs/{simulation.pk}/equity.csv")

    assert trades["Content-Type"] == "text/csv; charset=utf-8"
    assert trades["Content-Disposition"] == f'attachment; filename="simulation-{simulation.pk}-trades.csv"'
    rows = list(csv.DictReader(io.StringIO(trades.content.decode())))
    assert len(rows) == simulation.statistics["n_trades"]
    assert rows[0]["entry_price"] == simulation.trades[0]["entry_price"]
    curve = list(csv.DictReader(io.StringIO(equity.content.decode())))
    assert len(curve) == len(simulation.equity_curve["time"]) == (END - START).days + 1
    assert curve[0]["time"] == "2018-01-01T00:00:00Z"


def test_save_as_strategy_makes_a_disabled_strategy_and_says_where(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    trader.user_permissions.add(*permissions("trading.add_strategy"))
    simulation = run_of(trader)

    response = logged_in.post(
        f"/simulator/runs/{simulation.pk}/strategy/", {"name": "trend 10/20"}, follow=True
    )

    strategy = Strategy.objects.get(name="trend 10/20")
    assert response.redirect_chain == [(f"/simulator/runs/{simulation.pk}/", 302)]
    assert (strategy.criteria, strategy.is_enabled, strategy.starting_cash) == (
        TREND,
        False,
        Decimal("10000"),
    )
    assert list(strategy.instruments.all()) == [bitcoin()]
    html = response.content.decode()
    assert (
        f'Saved as strategy <a href="/admin/trading/strategy/{strategy.pk}/change/">trend 10/20</a>' in html
    )


def test_save_as_strategy_refuses_a_taken_name_on_the_form(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    trader.user_permissions.add(*permissions("trading.add_strategy"))
    simulation = run_of(trader)
    Strategy.objects.create(name="taken", criteria=RSI, starting_cash=Decimal(1))

    response = logged_in.post(f"/simulator/runs/{simulation.pk}/strategy/", {"name": "taken"})

    assert response.status_code == 200
    assert errors_for(response.content.decode(), "name") == [
        "a strategy named &#x27;taken&#x27; exists; choose another name"
    ]
    assert Strategy.objects.filter(name="taken").count() == 1


def test_a_queued_run_shows_a_polling_progress_bar_until_it_is_done(
    shipped_history: None,
    logged_in: Client,
    settings: Settings,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    settings.BARTER_SIMULATOR_INLINE_CANDLES = 0  # every run goes to the task
    with django_capture_on_commit_callbacks() as queued:
        response = logged_in.post("/simulator/", form_data())
    simulation = Simulation.objects.get()
    assert response["Location"] == f"/simulator/runs/{simulation.pk}/"
    assert simulation.status == RunStatus.PENDING

    page = logged_in.get(response["Location"]).content.decode()
    fragment = logged_in.get(f"/simulator/runs/{simulation.pk}/progress/")

    poll = f'hx-get="/simulator/runs/{simulation.pk}/progress/" hx-trigger="every 500ms"'
    assert poll in page
    assert 'id="statistics"' not in page
    assert poll in fragment.content.decode()
    assert "HX-Refresh" not in fragment

    for callback in queued:  # the worker runs it
        callback()
    finished = logged_in.get(f"/simulator/runs/{simulation.pk}/progress/")

    assert finished["HX-Refresh"] == "true"
    assert "hx-trigger" not in finished.content.decode()
    assert 'id="statistics"' in logged_in.get(response["Location"]).content.decode()


def test_the_progress_bar_shows_the_share_done(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    request = simulation_request_check(
        instruments=["bitcoin"], start=START, end=END, starting_cash=Decimal(1000), criteria=TREND
    )
    simulation = simulation_create(request=request, created_by=trader)
    Simulation.objects.filter(pk=simulation.pk).update(status=RunStatus.RUNNING, progress_ratio=0.4)

    html = logged_in.get(f"/simulator/runs/{simulation.pk}/progress/").content.decode()

    assert '<progress max="100" value="40"' in html
    assert "The run is running" in html


def test_a_failed_run_shows_its_error(shipped_history: None, logged_in: Client, trader: User) -> None:
    request = simulation_request_check(
        instruments=["bitcoin"], start=START, end=END, starting_cash=Decimal(1000), criteria=TREND
    )
    simulation = simulation_create(request=request, created_by=trader)
    Simulation.objects.filter(pk=simulation.pk).update(
        status=RunStatus.FAILED, error="ValueError: no candles <here>"
    )

    html = logged_in.get(f"/simulator/runs/{simulation.pk}/").content.decode()

    assert "The run failed" in html
    assert "ValueError: no candles &lt;here&gt;" in html
    assert "hx-trigger" not in html


def test_a_period_too_large_for_the_indicators_is_an_error_beside_its_field_and_saves_no_run(
    shipped_history: None, logged_in: Client
) -> None:
    # TA-Lib takes periods up to 100,000 (trading.engine.limits.MAX_PERIOD)
    response = logged_in.post("/simulator/", form_data(**{"entry-0-left_period": "99999999999999999999"}))

    assert response.status_code == 200
    assert errors_for(response.content.decode(), "entry-0-left_period") == [
        "must be an integer &lt;= 100,000, was 99999999999999999999"
    ]
    assert not Simulation.objects.exists()


# Lists ------------------------------------------------------------------------------------------------------


def test_the_list_shows_ones_own_runs_newest_first(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    older = run_of(trader, name="older")
    newer = run_of(trader, RSI, name="newer")
    run_of(User.objects.create_user("other"), name="not mine")

    html = logged_in.get("/simulator/runs/").content.decode()

    assert re.findall(r'<tr data-run="(\d+)">', html) == [str(newer.pk), str(older.pk)]
    assert "not mine" not in html
    row = re.search(rf'<tr data-run="{older.pk}">(.*?)</tr>', html, re.S)
    assert row
    total = older.statistics["total_return_ratio"]
    assert f"{total * 100:,.2f} %" in row.group(1)
    assert "2018-01-01 to 2019-12-31" in row.group(1)
    assert f'<input type="checkbox" name="ids" value="{older.pk}"' in row.group(1)


def test_a_superuser_sees_every_run(shipped_history: None, client: Client) -> None:
    run_of(User.objects.create_user("someone"), name="someone's run")
    client.force_login(User.objects.create_superuser("boss", password="unused-password-123"))

    assert "someone&#x27;s run" in client.get("/simulator/runs/").content.decode()


def test_the_list_reads_in_a_constant_number_of_queries(
    shipped_history: None,
    logged_in: Client,
    trader: User,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    request = simulation_request_check(
        instruments=["bitcoin", "ethereum", "litecoin"],
        start=START,
        end=END,
        starting_cash=Decimal(1000),
        criteria=TREND,
    )
    done = simulation_run(simulation=simulation_create(request=request, created_by=trader))
    for n in range(30):
        copy = simulation_create(request=request, created_by=trader, name=f"run {n}")
        Simulation.objects.filter(pk=copy.pk).update(status=RunStatus.DONE, statistics=done.statistics)

    # session, user, the count, the page, the page's instruments
    with django_assert_max_num_queries(5):
        response = logged_in.get("/simulator/runs/")

    assert response.content.decode().count("<tr data-run=") == 31


def test_compare_shows_the_runs_side_by_side(shipped_history: None, logged_in: Client, trader: User) -> None:
    first = run_of(trader, name="trend")
    second = run_of(trader, RSI, name="dips")
    hidden = run_of(User.objects.create_user("other"), name="theirs")

    html = logged_in.get(
        f"/simulator/compare/?ids={first.pk}&ids={second.pk}&ids={hidden.pk}&ids=x"
    ).content.decode()

    assert re.findall(r'<th class="num" data-run="(\d+)">', html) == [str(first.pk), str(second.pk)]
    row = re.search(r'<tr data-key="n_trades">(.*?)</tr>', html, re.S)
    assert row
    assert re.findall(r'<td class="num ">(\d+)</td>', row.group(1)) == [
        str(first.statistics["n_trades"]),
        str(second.statistics["n_trades"]),
    ]
    lines = json_script(html, "compare-data")
    assert [line["id"] for line in lines] == [first.pk, second.pk, "hold-1"]  # one market: one buy and hold
    assert lines[2]["return_pct"][-1] == pytest.approx(
        first.statistics["buy_and_hold_return_ratio"] * 100, abs=1e-3
    )
    assert lines[0]["return_pct"][-1] == pytest.approx(first.statistics["total_return_ratio"] * 100, abs=1e-3)
    assert "theirs" not in html


# Sweeps -----------------------------------------------------------------------------------------------------


def test_a_sweep_runs_from_the_form_to_its_heatmap_and_a_point(
    shipped_history: None,
    logged_in: Client,
    trader: User,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    data = form_data(
        action="sweep",
        sweep_path_1="entry.all[0].left.period",
        sweep_start_1="5",
        sweep_stop_1="15",
        sweep_step_1="5",
        sweep_path_2="stop_loss_ratio",
        sweep_start_2="4",  # percent: 0.04 .. 0.08
        sweep_stop_2="8",
        sweep_step_2="2",
        sweep_statistic="sharpe_ratio",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post("/simulator/", data)

    sweep = Sweep.objects.get()
    assert response["Location"] == f"/simulator/sweeps/{sweep.pk}/"
    assert sweep.axes == [
        {"path": "entry.all[0].left.period", "values": [5.0, 10.0, 15.0]},
        {"path": "stop_loss_ratio", "values": [0.04, 0.06, 0.08]},
    ]
    assert (sweep.statistic, sweep.total, sweep.status, sweep.created_by) == (
        "sharpe_ratio",
        9,
        "done",
        trader,
    )

    html = logged_in.get(response["Location"]).content.decode()

    heatmap = re.search(r'<table id="heatmap".*?</table>', html, re.S)
    assert heatmap
    assert re.findall(r'<th class="num">([^<]*)</th>', heatmap.group(0)) == ["4 %", "6 %", "8 %"]
    assert re.findall(r'<th scope="row">([^<]*)</th>', heatmap.group(0)) == ["5", "10", "15"]
    cells = re.findall(r'data-index="(\d+)"><a href="([^"]+)">([^<]*)</a>', heatmap.group(0))
    assert [int(i) for i, _, _ in cells] == list(range(9))
    point = sweep.points.get(index=4)  # period 10, stop 6 %
    assert cells[4][2] == f"{point.statistics['sharpe_ratio']:,.2f}"
    assert "hsl(" in heatmap.group(0)

    opened = logged_in.get(cells[4][1])

    simulation = Simulation.objects.get(sweep=sweep)
    assert opened["Location"] == f"/simulator/runs/{simulation.pk}/"
    assert simulation.criteria["entry"]["all"][0]["left"]["period"] == 10
    assert simulation.criteria["stop_loss_ratio"] == 0.06
    assert simulation.statistics == point.statistics
    assert simulation.created_by == trader
    assert logged_in.get(cells[4][1])["Location"] == opened["Location"]  # made once


def test_one_axis_is_one_row_of_the_heatmap(
    shipped_history: None,
    logged_in: Client,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    data = form_data(
        action="sweep",
        sweep_path_1="entry.all[0].right.period",
        sweep_start_1="20",
        sweep_stop_1="40",
        sweep_step_1="10",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post("/simulator/", data)

    html = logged_in.get(response["Location"]).content.decode()

    heatmap = re.search(r'<table id="heatmap".*?</table>', html, re.S)
    assert heatmap
    assert heatmap.group(0).count("<tr>") == 2  # the heading and one row
    assert re.findall(r'<th class="num">([^<]*)</th>', heatmap.group(0)) == ["20", "30", "40"]


def test_sweep_errors_are_shown_in_the_sweep_section(shipped_history: None, logged_in: Client) -> None:
    no_axis = logged_in.post("/simulator/", form_data(action="sweep")).content.decode()
    bad_step = logged_in.post(
        "/simulator/",
        form_data(
            action="sweep", sweep_path_1="entry.all[0].left.period", sweep_start_1="5", sweep_stop_1="50"
        ),
    ).content.decode()
    backwards = logged_in.post(
        "/simulator/",
        form_data(
            action="sweep",
            sweep_path_1="entry.all[0].left.period",
            sweep_start_1="50",
            sweep_stop_1="5",
            sweep_step_1="5",
        ),
    ).content.decode()
    zero_period = logged_in.post(
        "/simulator/",
        form_data(
            action="sweep",
            sweep_path_1="entry.all[0].left.period",
            sweep_start_1="0",
            sweep_stop_1="5",
            sweep_step_1="5",
        ),
    ).content.decode()

    assert errors_for(no_axis, "sweep_path_1") == ["choose a field of the criteria to sweep"]
    assert errors_for(bad_step, "sweep_step_1") == ["required"]
    assert errors_for(backwards, "sweep_path_1") == ["needs step &gt; 0 and stop &gt;= start; was 50..5 by 5"]
    assert errors_for(zero_period, "sweep_path_1")[0].startswith(
        "at entry.all[0].left.period=0: entry.all[0].left.period: must be an integer &gt;= 1, was 0"
    )
    assert not Sweep.objects.exists()


def test_a_running_sweep_shows_points_done_and_polls(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    request = simulation_request_check(
        instruments=["bitcoin"], start=START, end=END, starting_cash=Decimal(1000), criteria=TREND
    )
    sweep = sweep_create(
        request=request, axes=[{"path": "stop_loss_ratio", "values": [0.05, 0.1]}], created_by=trader
    )

    page = logged_in.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()
    fragment = logged_in.get(f"/simulator/sweeps/{sweep.pk}/progress/")

    assert "0 of 2 grid points done." in page
    assert f'hx-get="/simulator/sweeps/{sweep.pk}/progress/" hx-trigger="every 500ms"' in page
    assert '<progress max="2" value="0"' in fragment.content.decode()
    assert "HX-Refresh" not in fragment

    Sweep.objects.filter(pk=sweep.pk).update(status=RunStatus.DONE)
    assert logged_in.get(f"/simulator/sweeps/{sweep.pk}/progress/")["HX-Refresh"] == "true"
