"""The sweep pages: the list of sweeps beside the runs, and a sweep's results (any statistic re-colours the heatmap
without running again, the table of the best points, grey "no trades" cells)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from pytest_django import DjangoAssertNumQueries, DjangoCaptureOnCommitCallbacks

from instruments.models import Instrument
from simulator.models import RunStatus, Sweep, SweepPoint
from tests.instruments.factories import InstrumentFactory
from tests.simulator.test_views import errors_for, form_data
from tests.trading.factories import sma_cross_criteria

pytestmark = pytest.mark.django_db


def _sweep(user: User, instrument: Instrument, statistics: list[dict[str, Any]], **fields: Any) -> Sweep:
    """A finished one-axis sweep over ``entry.all[0].left.period`` = 5, 10, ... whose points have ``statistics``."""
    values = [5 * (i + 1) for i in range(len(statistics))]
    sweep = Sweep.objects.create(
        created_by=user,
        start=date(2020, 1, 1),
        end=date(2020, 12, 31),
        starting_cash=Decimal(10000),
        criteria=sma_cross_criteria(),
        axes=[{"path": "entry.all[0].left.period", "values": values}],
        statistic=fields.pop("statistic", "total_return_ratio"),
        status=fields.pop("status", RunStatus.DONE),
        total=len(statistics),
        **fields,
    )
    sweep.instruments.add(instrument)
    SweepPoint.objects.bulk_create(
        SweepPoint(sweep=sweep, index=i, values={"entry.all[0].left.period": v}, statistics=s)
        for i, (v, s) in enumerate(zip(values, statistics, strict=True))
    )
    return sweep


def _point(total_return: float, sharpe: float | None, drawdown: float, trades: int) -> dict[str, Any]:
    return {
        "total_return_ratio": total_return,
        "sharpe_ratio": sharpe,
        "max_drawdown_ratio": drawdown,
        "n_trades": trades,
    }


@pytest.fixture
def trader() -> User:
    return User.objects.create_user("trader")


@pytest.fixture
def client(trader: User) -> Client:
    client = Client()
    client.force_login(trader)
    return client


@pytest.fixture
def bitcoin() -> Instrument:
    return InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")


def _cells(html: str) -> dict[int, tuple[str, str, str]]:
    """The heatmap's cells: index -> (class, style, text)."""
    found = re.findall(
        r'<td class="([^"]*)" style="([^"]*)" title="[^"]*" data-index="(\d+)"><a [^>]*>([^<]*)</a></td>',
        html,
    )
    return {int(index): (css, style, text) for css, style, index, text in found}


def test_the_sweep_list_shows_each_sweep_with_its_points_status_and_best_value(
    client: Client, trader: User, bitcoin: Instrument
) -> None:
    done = _sweep(trader, bitcoin, [_point(0.1, 1.0, 0.2, 3), _point(0.35, 0.5, 0.3, 4)], name="fast")
    running = _sweep(
        trader,
        bitcoin,
        [_point(-0.2, -1.0, 0.4, 2)],
        name="slow",
        status=RunStatus.RUNNING,
        statistic="max_drawdown_ratio",
    )
    running.total = 4
    running.save(update_fields=["total"])
    _sweep(User.objects.create_user("other"), bitcoin, [_point(9.0, 9.0, 0.0, 1)], name="not mine")

    html = client.get("/simulator/sweeps/").content.decode()

    rows = re.findall(r'<tr data-sweep="(\d+)">(.*?)</tr>', html, re.S)
    assert [int(pk) for pk, _ in rows] == [running.pk, done.pk]  # newest first, mine only
    slow, fast = (row for _, row in rows)
    assert "slow" in slow and "BTC" in slow and "2020-01-01 to 2020-12-31" in slow
    assert "1 of 4" in slow and ">running<" in slow and "Max drawdown" in slow
    assert "40.00 %" in slow  # the lowest drawdown is the best: its only point
    assert ">2<" in fast and ">done<" in fast and "35.00 %" in fast  # the highest return
    assert "<code>entry.all[0].left.period</code>" in fast
    assert 'href="/simulator/sweeps/"' in html  # the subnav links the list


def test_the_sweep_list_reads_a_page_in_a_fixed_number_of_queries(
    client: Client, trader: User, bitcoin: Instrument, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    for n in range(3):
        _sweep(
            trader, bitcoin, [_point(0.1 * n, 1.0, 0.2, 3)], statistic=("sharpe_ratio", "cagr_ratio")[n % 2]
        )
    # session, user, count, the page, its instruments, one best-value query per statistic (2)
    with django_assert_num_queries(7):
        client.get("/simulator/sweeps/")
    for _ in range(5):
        _sweep(trader, bitcoin, [_point(0.1, 1.0, 0.2, 3)], statistic="sharpe_ratio")
    with django_assert_num_queries(7):
        client.get("/simulator/sweeps/")


def test_no_sweeps_yet_says_how_to_start_one(client: Client) -> None:
    html = client.get("/simulator/sweeps/").content.decode()

    assert "No sweeps yet" in html and 'href="/simulator/"' in html


def test_a_point_without_trades_is_grey_and_says_so_and_is_not_the_worst(
    client: Client, trader: User, bitcoin: Instrument
) -> None:
    sweep = _sweep(
        trader,
        bitcoin,
        [_point(-0.1, -0.5, 0.3, 4), _point(0.0, None, 0.0, 0), _point(0.2, 1.5, 0.1, 5)],
    )

    html = client.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()

    cells = _cells(html)
    assert cells[1] == ("num no-trades", "background: #eceff1", "no trades")
    assert cells[0][1] == "background: hsl(0, 65%, 80%)"  # the worst that traded is red
    assert cells[2][1] == "background: hsl(120, 65%, 80%)"  # the best is green
    assert "made no trade" in html and "1 of them" in html


def test_choosing_another_statistic_recolours_the_heatmap_without_running_again(
    client: Client, trader: User, bitcoin: Instrument
) -> None:
    sweep = _sweep(
        trader,
        bitcoin,
        [_point(0.3, 0.2, 0.5, 4), _point(0.1, 1.2, 0.1, 6), _point(0.2, 0.7, 0.3, 5)],
    )
    saved = list(SweepPoint.objects.filter(sweep=sweep).values_list("statistics", flat=True))

    by_return = client.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()
    by_drawdown = client.get(
        f"/simulator/sweeps/{sweep.pk}/", {"statistic": "max_drawdown_ratio"}
    ).content.decode()
    unknown = client.get(f"/simulator/sweeps/{sweep.pk}/", {"statistic": "luck"})

    assert 'data-statistic="total_return_ratio"' in by_return
    assert _cells(by_return)[0][1] == "background: hsl(120, 65%, 80%)"  # 30 % return: best
    assert 'data-statistic="max_drawdown_ratio"' in by_drawdown
    assert 'option value="max_drawdown_ratio" selected' in by_drawdown
    cells = _cells(by_drawdown)
    assert [cells[i][2] for i in range(3)] == ["50.00 %", "10.00 %", "30.00 %"]
    assert cells[0][1] == "background: hsl(0, 65%, 80%)"  # 50 % drawdown: worst
    assert cells[1][1] == "background: hsl(120, 65%, 80%)"  # 10 %: best (less is better)
    assert "Best Max drawdown" in by_drawdown
    assert unknown.status_code == 200 and 'data-statistic="total_return_ratio"' in unknown.content.decode()
    assert list(SweepPoint.objects.filter(sweep=sweep).values_list("statistics", flat=True)) == saved
    assert Sweep.objects.get(pk=sweep.pk).status == RunStatus.DONE


def test_the_best_points_table_ranks_twenty_by_the_chosen_statistic_with_parameters_and_links(
    client: Client, trader: User, bitcoin: Instrument
) -> None:
    # 25 points; Sharpe rises with the index except that every fifth made no trade (and has no rank).
    statistics = [
        _point(0.01 * i, None if i % 5 == 4 else 0.1 * i, 0.2, 0 if i % 5 == 4 else 3) for i in range(25)
    ]
    sweep = _sweep(trader, bitcoin, statistics)

    html = client.get(f"/simulator/sweeps/{sweep.pk}/", {"statistic": "sharpe_ratio"}).content.decode()

    table = re.search(r'<table id="top-points"(.*?)</table>', html, re.S)
    assert table is not None
    body = table.group(1)
    indexes = [int(i) for i in re.findall(r'<tr data-index="(\d+)">', body)]
    traded = [i for i in range(25) if i % 5 != 4]
    assert indexes == sorted(traded, reverse=True)[:20]
    assert "data-sortable" in table.group(0)
    headings = re.findall(r'data-key="(\w+)"', body)
    assert headings[0] == "sharpe_ratio" and "total_return_ratio" in headings and "n_trades" in headings
    first = re.search(r'<tr data-index="23">(.*?)</tr>', body, re.S)
    assert first is not None
    assert ">120<" in first.group(1)  # entry.all[0].left.period of point 23: 5 * 24
    assert ">2.30<" in first.group(1)  # its Sharpe ratio
    assert f'href="/simulator/sweeps/{sweep.pk}/points/23/"' in first.group(1)


def test_a_sweep_over_hourly_candles_is_refused_next_to_the_timeframe_by_the_shared_check(
    shipped_history: None, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    """The form and ``POST /api/sweeps/`` share the check in ``sweep_create``: one message, nothing saved."""
    client = Client()
    client.force_login(User.objects.create_user("hourly"))
    data = form_data(
        action="sweep",
        timeframe="1h",
        sweep_path_1="entry.all[0].left.period",
        sweep_start_1="5",
        sweep_stop_1="15",
        sweep_step_1="5",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/simulator/", data)

    assert response.status_code == 200
    assert errors_for(response.content.decode(), "timeframe") == [
        "a sweep runs over daily candles only; choose 1d, or run once"
    ]
    assert not Sweep.objects.exists()


def test_the_best_value_of_the_list_leaves_out_points_without_trades(
    client: Client, trader: User, bitcoin: Instrument
) -> None:
    # Every point that traded lost; the one without trades has a return of 0, which is no result.
    _sweep(
        trader, bitcoin, [_point(-0.1, -0.5, 0.3, 4), _point(0.0, None, 0.0, 0), _point(-0.3, -1.0, 0.5, 2)]
    )

    html = client.get("/simulator/sweeps/").content.decode()

    assert re.findall(r'data-sort="(-?[\d.]+)">(-?[\d.]+ %)</td>', html) == [("-0.1", "-10.00 %")]


def test_a_running_sweep_shows_its_progress_and_best_value_so_far(
    client: Client, trader: User, bitcoin: Instrument
) -> None:
    sweep = _sweep(
        trader, bitcoin, [_point(0.1, 1.0, 0.2, 3), _point(0.35, 0.5, 0.3, 4)], status=RunStatus.RUNNING
    )
    sweep.total = 8
    sweep.save(update_fields=["total"])

    page = client.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()
    fragment = client.get(f"/simulator/sweeps/{sweep.pk}/progress/")

    for html in (page, fragment.content.decode()):
        assert "2 of 8 grid points done." in html
        assert '<progress max="8" value="2"' in html
        assert "Best Total return so far: 35.00 %" in html
    assert 'id="heatmap"' not in page
    assert "HX-Refresh" not in fragment
