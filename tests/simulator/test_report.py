"""Issue 14, the report: the criteria's indicators on the candle chart, volume, the criteria in words, compare's
marks, buy and hold and criteria differences, and deleting runs and sweeps (pages and API)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.test import Client

from instruments.models import Instrument, InstrumentOHLC
from simulator.charts import MAX_CHART_LINES, chart_indicator_lines, chart_operands, operand_pane
from simulator.launch import simulation_start
from simulator.models import RunStatus, Simulation, Sweep, SweepPoint
from simulator.presenters import compare_differences, criteria_leaves
from simulator.selectors import chart_bars
from simulator.services.requests import simulation_request_check
from tests.accounts import permissions, token_client
from tests.simulator.candles import bitcoin_days
from tests.trading.factories import sma_cross_criteria
from trading.engine.criteria import criteria_parse
from trading.engine.types import SECONDS_PER_DAY, CandleArrays
from trading.engine.vocabulary import best_indices

pytestmark = pytest.mark.django_db

START, END = date(2018, 1, 1), date(2019, 6, 30)


@pytest.fixture
def trader(db: None) -> User:
    return User.objects.create_user("trader")


@pytest.fixture
def logged_in(client: Client, trader: User) -> Client:
    client.force_login(trader)
    return client


def _run(user: User, criteria: dict[str, Any] | None = None, **request: Any) -> Simulation:
    arguments = {
        "instruments": ["bitcoin"],
        "start": START,
        "end": END,
        "starting_cash": Decimal("10000"),
        "criteria": criteria or sma_cross_criteria(),
        **request,
    }
    return simulation_start(request=simulation_request_check(**arguments), created_by=user)


def _json_script(html: str, element_id: str) -> Any:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


def _rolling_mean(values: np.ndarray, period: int) -> np.ndarray:
    """SMA computed here, independently of TA-Lib: NaN for the first period - 1 values."""
    out = np.full(values.shape, np.nan)
    sums = np.cumsum(np.r_[0.0, values])
    out[period - 1 :] = (sums[period:] - sums[:-period]) / period
    return out


# The charts' data -----------------------------------------------------------------------------------------


def test_the_run_page_draws_the_criterias_smas_over_the_candles_with_the_engines_values(
    logged_in: Client, trader: User
) -> None:
    bitcoin_days()
    simulation = _run(trader)

    html = logged_in.get(f"/simulator/runs/{simulation.pk}/").content.decode()

    data = _json_script(html, "chart-data")
    candles = data["candles"]["BTC"]
    found = data["indicators"]["BTC"]
    assert [line["label"] for line in found["lines"]] == ["SMA(10)", "SMA(20)"]
    assert {line["pane"] for line in found["lines"]} == {"price"}
    assert found["time"] == [c["time"] for c in candles]  # one value per bar of the chart
    # every stored close up to the end (the warm-up before the start included), SMA by hand
    closes = np.asarray(
        InstrumentOHLC.objects.filter(instrument__symbol="BTC", open_time__date__lte=END)
        .order_by("open_time")
        .values_list("close", flat=True),
        dtype=np.float64,
    )
    first = len(closes) - len(candles)
    for line, period in zip(found["lines"], (10, 20), strict=True):
        expected = _rolling_mean(closes, period)[first:]
        assert line["values"] == pytest.approx(expected.tolist(), rel=1e-7)
    assert None not in found["lines"][1]["values"]  # warmed up on the candles before the start
    assert all(c["volume"] == 1.0 for c in candles)
    # the legend names the lines and the markers; the log scale has its toggle
    legend = re.search(r'<ul class="legend chart-legend" id="legend-BTC".*?</ul>', html, re.S)
    assert legend
    assert 'data-line="SMA(10)"' in legend.group(0) and 'data-line="SMA(20)"' in legend.group(0)
    assert "exit with a loss" in legend.group(0) and "volume" in legend.group(0)
    assert 'id="log-scale"' in html
    # the criteria in words at the top
    words = re.search(r'<p class="criteria-words" id="run-criteria"[^>]*>(.*?)</p>', html, re.S)
    assert words
    assert (
        "Enter long when SMA(10) crosses above SMA(20); exit when SMA(10) crosses below SMA(20)"
        in words.group(1)
    )
    assert "an 8 % stop-loss" in words.group(1)
    # each trade row says its instrument and times, for the click that shows it on the chart
    first_trade = simulation.trades[0]
    entry = int(datetime.fromisoformat(first_trade["entry_at"].replace("Z", "+00:00")).timestamp())
    assert f'<tr data-trade data-symbol="BTC" data-entry-time="{entry}"' in html


def test_oscillators_go_to_panes_below_and_runs_saved_before_the_lines_get_them_on_the_page(
    logged_in: Client, trader: User
) -> None:
    bitcoin_days()
    rsi = {
        "version": 1,
        "side": "long",
        "entry": {
            "all": [
                {"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 45}},
                {"left": {"indicator": "close"}, "op": ">", "right": {"indicator": "bb_lower", "period": 20}},
            ]
        },
        "exit": {"left": {"indicator": "macd"}, "op": "crosses_below", "right": {"indicator": "macd_signal"}},
    }
    simulation = _run(trader, rsi)
    stored = simulation.equity_curve.pop("chart_indicators")
    Simulation.objects.filter(pk=simulation.pk).update(equity_curve=simulation.equity_curve)

    html = logged_in.get(f"/simulator/runs/{simulation.pk}/").content.decode()

    lines = _json_script(html, "chart-data")["indicators"]["BTC"]["lines"]
    assert [(line["label"], line["pane"]) for line in lines] == [
        ("RSI(14)", "rsi"),
        ("lower Bollinger band(20, 2)", "price"),
        ("MACD(12, 26, 9)", "macd"),
        ("MACD signal(12, 26, 9)", "macd"),
    ]
    # computed on the page for a daily run without them: the same as kept at run time
    assert [line["values"] for line in lines] == [line["values"] for line in stored["BTC"]["lines"]]
    assert "chart-panes-2" in html and "Below the candles: RSI (0-100), MACD (price)." in html


def _candles(closes: list[float], volumes: list[float], seconds: int = 3_600) -> CandleArrays:
    close = np.asarray(closes, dtype=np.float64)
    return CandleArrays(
        symbol="X",
        open_time_seconds=np.arange(close.shape[0], dtype=np.int64) * seconds,
        open=close,
        high=close + 1,
        low=close - 1,
        close=close,
        volume=np.asarray(volumes, dtype=np.float64),
    )


def test_rolled_up_bars_take_the_indicator_at_their_last_candle_and_sum_known_volumes() -> None:
    # 48 hourly candles = 2 daily bars; SMA(2) at the last hour of each day: (c22 + c23) / 2, (c46 + c47) / 2
    closes = [float(100 + n) for n in range(48)]
    volumes = [1.0] * 24 + [np.nan] * 24
    candles = _candles(closes, volumes)
    criteria = sma_cross_criteria(
        entry={"left": {"indicator": "sma", "period": 2}, "op": ">", "right": {"value": 1}}
    )

    found = chart_indicator_lines(
        criteria=criteria, candles=[candles], start=date(1970, 1, 1), end=date(1970, 1, 2), bar_seconds=86_400
    )
    bars = chart_bars(
        candles.open_time_seconds,
        candles.open,
        candles.high,
        candles.low,
        candles.close,
        86_400,
        candles.volume,
    )

    assert found["X"]["time"] == [0, SECONDS_PER_DAY]
    sma2 = next(line for line in found["X"]["lines"] if line["label"] == "SMA(2)")
    assert sma2["values"] == [(122 + 123) / 2, (146 + 147) / 2]
    assert [b["volume"] for b in bars] == [24.0, None]  # a bar with no known volume has none
    assert [(b["open"], b["close"], b["high"], b["low"]) for b in bars] == [
        (100, 123, 124, 99),
        (124, 147, 148, 123),
    ]


def test_which_operands_are_drawn_and_where() -> None:
    many = [
        {"left": {"indicator": "sma", "period": p}, "op": ">", "right": {"indicator": "close"}}
        for p in range(2, 30)
    ]
    criteria = {"version": 1, "side": "long", "entry": {"all": many}}

    operands = chart_operands(criteria)

    assert len(operands) == MAX_CHART_LINES  # the close itself is the candles: not a line
    parsed = criteria_parse(
        {
            "version": 1,
            "side": "long",
            "entry": {
                "all": [
                    {
                        "left": {"indicator": "sma", "period": 5, "source": "volume"},
                        "op": ">",
                        "right": {"indicator": "close", "shift": 1},
                    },
                    {
                        "left": {"indicator": "highest", "period": 20},
                        "op": ">",
                        "right": {"indicator": "atr", "period": 14},
                    },
                    {"left": {"indicator": "roc", "period": 3}, "op": ">", "right": {"value": 0}},
                ]
            },
        }
    )
    assert [operand_pane(o) for o in parsed.operands()] == ["volume", "price", "price", "atr", "roc"]
    assert chart_operands({"version": 1, "side": "long", "entry": {"bad": 1}}) == []


# Compare ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "values", "best"),
    [
        ("total_return_ratio", [0.1, 0.3, None, 0.3], {1, 3}),  # higher is better, ties both marked
        ("max_drawdown_ratio", [0.2, 0.1, 0.4], {1}),  # lower is better
        ("total_fees", [12.5, 3.0], {1}),
        ("n_trades", [3, 9], set()),  # says how a run traded, not how well
        ("sharpe_ratio", [1.2, 1.2], set()),  # all equal: nothing stands out
        ("sharpe_ratio", [1.2, None], set()),  # one value: nothing to compare
        ("sharpe_ratio", [float("nan"), 0.5, -1.0], {1}),
    ],
)
def test_the_best_value_of_a_statistic_follows_its_direction(
    key: str, values: list[float | None], best: set[int]
) -> None:
    assert best_indices(key, values) == best


def test_compare_marks_the_best_shows_buy_and_hold_and_what_differs(logged_in: Client, trader: User) -> None:
    bitcoin_days()
    tight = _run(trader, sma_cross_criteria(stop_loss_ratio=0.01))
    loose = _run(trader, sma_cross_criteria(stop_loss_ratio=0.2, take_profit_ratio=0.5))

    html = logged_in.get(f"/simulator/compare/?ids={tight.pk}&ids={loose.pk}").content.decode()

    returns = [s.statistics["total_return_ratio"] for s in (tight, loose)]
    assert returns[0] != returns[1]
    row = re.search(r'<tr data-key="total_return_ratio">(.*?)</tr>', html, re.S)
    assert row
    cells = re.findall(r"<td class=\"([^\"]*)\"", row.group(1))
    winner = returns.index(max(returns))
    assert ["best" in c.split() for c in cells[:2]] == [i == winner for i in range(2)]
    assert "hold" in cells[2].split() and len(cells) == 3  # one market: one buy and hold column
    trades_row = re.search(r'<tr data-key="n_trades">(.*?)</tr>', html, re.S)
    assert trades_row and "best" not in trades_row.group(1)
    differences = re.findall(r'<tr data-difference="([^"]+)">', html)
    assert differences == ["stop_loss_ratio", "take_profit_ratio"]
    assert "Enter long when SMA(10) crosses above SMA(20)" in html
    chart = _json_script(html, "compare-data")
    assert [line["hold"] for line in chart] == [False, False, True]


def test_criteria_differences_ignore_written_out_defaults_and_name_missing_fields(trader: User) -> None:
    bitcoin_days()
    a = _run(trader, sma_cross_criteria())
    written = sma_cross_criteria()
    written["entry"]["all"][0]["left"]["source"] = "close"  # the default, written out
    written["exit"] = None
    b = _run(trader, written, end=date(2019, 3, 31))

    found = dict(compare_differences([a, b]))

    assert found["dates"] == ["2018-01-01 to 2019-06-30", "2018-01-01 to 2019-03-31"]
    assert "entry.all[0].left.source" not in found
    assert found["exit"] == ["—", "null"]
    assert found["exit.any[0].op"] == ['"crosses_below"', "—"]
    assert criteria_leaves({"version": 1})["fee_rate"] == 0.001


# Delete -------------------------------------------------------------------------------------------------------


def _saved_run(owner: User, status: str = RunStatus.DONE, sweep: Sweep | None = None) -> Simulation:
    instrument = Instrument.objects.first() or bitcoin_days(40)
    simulation = Simulation.objects.create(
        created_by=owner,
        start=date(2017, 6, 1),
        end=date(2017, 7, 1),
        starting_cash=Decimal(10000),
        criteria=sma_cross_criteria(),
        status=status,
        sweep=sweep,
        equity_curve={
            "time": [int(datetime(2017, 6, 1, tzinfo=UTC).timestamp())],
            "equity": [10000.0],
            "buy_and_hold": [10000.0],
            "drawdown_ratio": [0.0],
        },
    )
    simulation.instruments.add(instrument)
    return simulation


def _saved_sweep(owner: User, status: str = RunStatus.DONE) -> Sweep:
    return Sweep.objects.create(
        created_by=owner,
        start=date(2017, 6, 1),
        end=date(2017, 7, 1),
        starting_cash=Decimal(10000),
        criteria=sma_cross_criteria(),
        axes=[{"path": "stop_loss_ratio", "values": [0.05, 0.1]}],
        status=status,
        total=2,
    )


def test_deleting_a_run_needs_the_permission_then_ones_own_run(client: Client, trader: User) -> None:
    other = User.objects.create_user("other")
    mine, theirs = _saved_run(trader), _saved_run(other)
    client.force_login(trader)
    url = f"/simulator/runs/{mine.pk}/delete/"

    assert client.post(url).status_code == 403  # no permission: not even one's own
    trader.user_permissions.add(*permissions("simulator.delete_simulation"))
    assert client.get(url).status_code == 405  # GET never deletes
    assert client.post(f"/simulator/runs/{theirs.pk}/delete/").status_code == 404
    assert client.post("/simulator/runs/999999/delete/").status_code == 404
    page = client.get(f"/simulator/runs/{mine.pk}/").content.decode()
    assert f'action="/simulator/runs/{mine.pk}/delete/"' in page and "csrfmiddlewaretoken" in page

    response = client.post(url, follow=True)

    assert response.redirect_chain == [("/simulator/runs/", 302)]
    assert f"Deleted simulation {mine.pk}." in response.content.decode()
    assert list(Simulation.objects.all()) == [theirs]


def test_the_run_page_says_which_permission_deleting_needs(logged_in: Client, trader: User) -> None:
    run = _saved_run(trader)

    page = logged_in.get(f"/simulator/runs/{run.pk}/").content.decode()

    assert 'id="delete-refused"' in page and "simulator.delete_simulation" in page
    assert "delete-confirm" not in page


def test_a_run_still_going_on_is_not_deleted_and_says_why(logged_in: Client, trader: User) -> None:
    trader.user_permissions.add(*permissions("simulator.delete_simulation"))
    running = _saved_run(trader, status=RunStatus.RUNNING)

    response = logged_in.post(f"/simulator/runs/{running.pk}/delete/", follow=True)

    assert response.redirect_chain == [(f"/simulator/runs/{running.pk}/", 302)]
    assert f"Not deleted: run {running.pk} is still running" in response.content.decode()
    assert Simulation.objects.filter(pk=running.pk).exists()


def test_the_api_deletes_a_run_with_the_permission_only(trader: User) -> None:
    other = User.objects.create_user("other")
    mine, running, theirs = _saved_run(trader), _saved_run(trader, RunStatus.PENDING), _saved_run(other)
    api = token_client(trader)

    assert api.delete(f"/api/simulations/{mine.pk}/").status_code == 403
    trader.user_permissions.add(*permissions("simulator.delete_simulation"))
    assert api.delete(f"/api/simulations/{theirs.pk}/").status_code == 404
    assert api.delete("/api/simulations/999999/").status_code == 404
    refused = api.delete(f"/api/simulations/{running.pk}/")
    assert refused.status_code == 409
    assert refused.json()["error"] == "SimulatorWorkInProgressError"
    assert "is still pending" in refused.json()["message"]

    assert api.delete(f"/api/simulations/{mine.pk}/").status_code == 204
    assert set(Simulation.objects.all()) == {running, theirs}


def test_deleting_a_sweep_deletes_its_points_and_the_runs_that_belong_only_to_it(
    logged_in: Client, trader: User
) -> None:
    sweep = _saved_sweep(trader)
    opened = _saved_run(trader, sweep=sweep)  # a point opened as a full run: it belongs to the sweep
    listed = _saved_run(trader)  # a run of its own that a point points at: kept
    SweepPoint.objects.create(sweep=sweep, index=0, values={"stop_loss_ratio": 0.05}, simulation=opened)
    SweepPoint.objects.create(sweep=sweep, index=1, values={"stop_loss_ratio": 0.1}, simulation=listed)
    url = f"/simulator/sweeps/{sweep.pk}/delete/"

    assert logged_in.post(url).status_code == 403
    trader.user_permissions.add(*permissions("simulator.delete_sweep"))
    assert logged_in.get(url).status_code == 405
    response = logged_in.post(url, follow=True)

    assert response.redirect_chain == [("/simulator/sweeps/", 302)]
    assert "2 grid points and 1 run opened from them" in response.content.decode()
    assert not Sweep.objects.exists() and not SweepPoint.objects.exists()
    assert list(Simulation.objects.all()) == [listed]


def test_a_running_sweep_is_not_deleted(logged_in: Client, trader: User) -> None:
    trader.user_permissions.add(*permissions("simulator.delete_sweep"))
    sweep = _saved_sweep(trader, status=RunStatus.RUNNING)

    response = logged_in.post(f"/simulator/sweeps/{sweep.pk}/delete/", follow=True)

    assert f"Not deleted: sweep {sweep.pk} is still running" in response.content.decode()
    assert Sweep.objects.filter(pk=sweep.pk).exists()


def test_the_api_deletes_a_sweep_with_the_permission_only(trader: User) -> None:
    other = User.objects.create_user("other")
    mine, running = _saved_sweep(trader), _saved_sweep(trader, status=RunStatus.RUNNING)
    theirs = _saved_sweep(other)
    opened = _saved_run(trader, sweep=mine)
    SweepPoint.objects.create(sweep=mine, index=0, values={"stop_loss_ratio": 0.05}, simulation=opened)
    api = token_client(trader)

    assert api.delete(f"/api/sweeps/{mine.pk}/").status_code == 403
    trader.user_permissions.add(*permissions("simulator.delete_sweep"))
    assert api.delete(f"/api/sweeps/{theirs.pk}/").status_code == 404
    assert api.delete("/api/sweeps/999999/").status_code == 404
    refused = api.delete(f"/api/sweeps/{running.pk}/")
    assert refused.status_code == 409
    assert "is still running" in refused.json()["message"]

    assert api.delete(f"/api/sweeps/{mine.pk}/").status_code == 204
    assert set(Sweep.objects.all()) == {running, theirs}
    assert not SweepPoint.objects.exists() and not Simulation.objects.filter(pk=opened.pk).exists()
