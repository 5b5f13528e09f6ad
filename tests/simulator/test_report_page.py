"""The run page's report (issue 14): the new statistics, the trades' duration, MAE, MFE and cumulative P&L (page,
CSV, API), the breakdowns by exit reason and instrument, and the monthly returns; a run saved before they existed
still shows (a dash, or figures computed from its stored curve)."""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from instruments.models import InstrumentOHLC, Timeframe
from simulator.display import statistic_text
from simulator.launch import sweep_start
from simulator.models import RunStatus, Simulation
from simulator.presenters import TRADE_COLUMNS, duration_text
from simulator.services.requests import simulation_request_check
from simulator.services.sweeps import sweep_create
from tests.simulator.test_views import END, START, TREND, bitcoin, run_of
from trading.engine.vocabulary import STATISTICS_KEYS

pytestmark = pytest.mark.django_db

NEW_TRADE_KEYS = ("duration_days", "mae_ratio", "mfe_ratio", "cumulative_pnl")
NEW_STATISTICS = (
    "volatility_ratio",
    "avg_drawdown_ratio",
    "sqn",
    "avg_win",
    "avg_loss",
    "avg_win_ratio",
    "avg_loss_ratio",
    "largest_win",
    "largest_loss",
    "max_consecutive_losses",
    "max_trade_duration_days",
)


@pytest.fixture
def trader(db: None) -> User:
    return User.objects.create_user("trader")


@pytest.fixture
def logged_in(client: Client, trader: User) -> Client:
    client.force_login(trader)
    return client


def _moment(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_trades_carry_duration_excursions_and_cumulative_pnl(shipped_history: None, trader: User) -> None:
    simulation = run_of(trader)
    trades = simulation.trades
    assert len(trades) > 3 and all(set(NEW_TRADE_KEYS) <= set(t) for t in trades)
    running = Decimal(0)
    for trade in trades:  # one instrument: one position at a time, so exit order is the table's order
        running += Decimal(trade["pnl"])
        assert Decimal(trade["cumulative_pnl"]) == pytest.approx(running, abs=Decimal("1e-6"))
        span = _moment(trade["exit_at"]) - _moment(trade["entry_at"])
        assert trade["duration_days"] == span / timedelta(days=1)
        assert trade["mae_ratio"] <= 0.0 <= trade["mfe_ratio"]
    # MAE and MFE again from the stored daily candles (the database, not the engine's arrays), for a trade closed
    # by its signal (exit at an open: the candles from the entry day to the day before the exit, and the exit
    # day's open) and for one closed inside a candle by a stop or take-profit (the same, with the fill)
    for reason in ("signal", "stop_loss", "take_profit"):
        trade = next((t for t in trades if t["exit_reason"] == reason), None)
        if trade is None:
            continue
        entry, exit_ = _moment(trade["entry_at"]), _moment(trade["exit_at"])
        held = InstrumentOHLC.objects.filter(
            instrument=bitcoin(), timeframe=Timeframe.D1, open_time__gte=entry, open_time__lt=exit_
        )
        exit_open = InstrumentOHLC.objects.get(
            instrument=bitcoin(), timeframe=Timeframe.D1, open_time=exit_
        ).open
        entry_price, exit_price = Decimal(trade["entry_price"]), Decimal(trade["exit_price"])
        low = min([*(c.low for c in held), exit_open, entry_price, exit_price])
        high = max([*(c.high for c in held), exit_open, entry_price, exit_price])
        assert trade["mae_ratio"] == pytest.approx(float(low / entry_price - 1), rel=1e-9, abs=1e-12)
        assert trade["mfe_ratio"] == pytest.approx(float(high / entry_price - 1), rel=1e-9, abs=1e-12)


def test_the_trades_csv_has_the_new_columns(shipped_history: None, logged_in: Client, trader: User) -> None:
    simulation = run_of(trader)
    response = logged_in.get(f"/simulator/runs/{simulation.pk}/trades.csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == len(simulation.trades)
    first, stored = rows[0], simulation.trades[0]
    for key in NEW_TRADE_KEYS:
        assert first[key] == str(stored[key])


def _table(html: str, table_id: str) -> str:
    found = re.search(rf'<table id="{table_id}".*?</table>', html, re.S)
    assert found, table_id
    return found.group(0)


def test_the_run_page_shows_the_new_figures_breakdowns_and_monthly_returns(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    simulation = run_of(trader)
    statistics = simulation.statistics
    html = logged_in.get(f"/simulator/runs/{simulation.pk}/").content.decode()

    assert re.findall(r'<tr data-key="(\w+)">', html) == list(STATISTICS_KEYS)
    for key in NEW_STATISTICS:
        assert key in statistics
    row = re.search(r'<tr data-key="sqn">.*?data-field="value">([^<]*)<', html, re.S)
    assert row and row.group(1) == f"{statistics['sqn']:,.2f}"
    row = re.search(r'<tr data-key="largest_loss">.*?data-field="value">([^<]*)<', html, re.S)
    assert row and row.group(1) == f"{statistics['largest_loss']:,.2f} USD"

    trades = _table(html, "trades")
    headings = re.findall(r'<button type="button" class="sort">([^<]*)</button>', trades)
    assert headings == [label.replace("&", "&amp;") for label, _ in TRADE_COLUMNS]
    first = simulation.trades[0]
    assert f">{duration_text(first['duration_days'])}</td>" in trades
    assert f">{first['mae_ratio'] * 100:,.2f} %</td>" in trades

    by_reason = _table(html, "breakdown-exit-reason")
    counts = [int(n) for n in re.findall(r'<td class="num" data-sort="(\d+)">', by_reason)]
    assert sum(counts) == statistics["n_trades"]
    assert set(re.findall(r'data-group="(\w+)"', by_reason)) == {t["exit_reason"] for t in simulation.trades}
    by_instrument = _table(html, "breakdown-instrument")
    assert re.findall(r'data-group="(\w+)"', by_instrument) == ["BTC"]
    # the cells' sort values: trades, win rate, total P&L, average P&L %, time in market
    cells = re.findall(r'<td class="[^"]*" data-sort="([^"]*)">', by_instrument)
    assert int(cells[0]) == statistics["n_trades"]
    assert float(cells[1]) == pytest.approx(statistics["win_rate_ratio"])
    assert float(cells[2]) == pytest.approx(float(sum(Decimal(t["pnl"]) for t in simulation.trades)))
    assert float(cells[3]) == pytest.approx(statistics["expectancy_ratio"])

    monthly = _table(html, "monthly-returns")
    assert re.findall(r'<tr data-year="(\d+)">', monthly) == ["2018", "2019"]
    stored = simulation.equity_curve["monthly_returns"]
    compounded = math.prod(1 + (r["year_ratio"] or 0.0) for r in stored)
    assert compounded == pytest.approx(1 + statistics["total_return_ratio"], rel=1e-9)
    january = stored[0]["months"][0]
    assert f">{january * 100:,.1f} %</td>" in monthly
    assert ('class="num loss"' if january < 0 else 'class="num gain"') in monthly


def _as_if_saved_before_issue_14(simulation: Simulation) -> None:
    statistics = {k: v for k, v in simulation.statistics.items() if k not in NEW_STATISTICS}
    trades = [{k: v for k, v in t.items() if k not in NEW_TRADE_KEYS} for t in simulation.trades]
    curve = {k: v for k, v in simulation.equity_curve.items() if k != "monthly_returns"}
    Simulation.objects.filter(pk=simulation.pk).update(
        statistics=statistics, trades=trades, equity_curve=curve
    )


def test_a_run_saved_before_the_new_figures_shows_them_absent(
    shipped_history: None, logged_in: Client, trader: User
) -> None:
    simulation = run_of(trader)
    kept = simulation.equity_curve["monthly_returns"]
    _as_if_saved_before_issue_14(simulation)

    response = logged_in.get(f"/simulator/runs/{simulation.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    row = re.search(r'<tr data-key="sqn">.*?data-field="value">([^<]*)<', html, re.S)
    assert row and row.group(1) == "\u2014"
    assert "\u2014</td>" in _table(html, "trades")
    # monthly returns from the stored curve (a daily run keeps every point: the same figures)
    monthly = _table(html, "monthly-returns")
    assert re.findall(r'<tr data-year="(\d+)">', monthly) == ["2018", "2019"]
    assert f">{kept[1]['year_ratio'] * 100:,.1f} %</td>" in monthly
    assert "saved before monthly returns were kept" in html

    body: dict[str, Any] = logged_in.get(f"/api/simulations/{simulation.pk}/").json()
    assert body["monthly_returns"] is None
    assert "mae_ratio" not in body["trades"][0]
    assert logged_in.get(f"/simulator/runs/{simulation.pk}/trades.csv").status_code == 200


def test_the_api_detail_has_the_new_figures(shipped_history: None, logged_in: Client, trader: User) -> None:
    simulation = run_of(trader, TREND)
    body: dict[str, Any] = logged_in.get(f"/api/simulations/{simulation.pk}/").json()
    assert all(key in body["statistics"] for key in NEW_STATISTICS)
    assert [r["year"] for r in body["monthly_returns"]] == [2018, 2019]
    assert all(set(NEW_TRADE_KEYS) <= set(t) for t in body["trades"])
    listed = logged_in.get("/api/simulations/").json()
    results = listed["results"] if isinstance(listed, dict) else listed
    assert "monthly_returns" not in results[0]  # the list stays a summary


@pytest.mark.parametrize("statistic", ["sqn", "max_consecutive_losses", "avg_drawdown_ratio"])
def test_a_sweep_can_show_a_new_statistic(
    shipped_history: None,
    logged_in: Client,
    trader: User,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    statistic: str,
) -> None:
    """The sweep's statistic choices come from the vocabulary: the new figures can be chosen and are shown."""
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=START,
        end=END,
        starting_cash=Decimal("10000"),
        criteria=TREND,
    )
    sweep = sweep_create(
        request=request,
        axes=[{"path": "stop_loss_ratio", "values": [0.05, 0.1]}],
        statistic=statistic,
        created_by=trader,
    )
    with django_capture_on_commit_callbacks(execute=True):
        sweep_start(sweep=sweep)

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE, sweep.error
    html = logged_in.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()
    heatmap = _table(html, "heatmap")
    values = [p.statistics[statistic] for p in sweep.points.order_by("index")]
    shown = re.findall(r'data-index="\d+"><a href="[^"]+">([^<]*)</a>', heatmap)
    assert shown == [statistic_text(statistic, v) for v in values]
    assert all(v is not None for v in values)
