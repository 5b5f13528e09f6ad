"""The simulator over any stored timeframe (issue 13): an hourly run of the shipped bitcoin is the engine's backtest
of its hourly candles; the form, the API and ``manage.py simulate`` take ``timeframe`` and refuse one that is not
stored with an error of that field; a long curve is kept downsampled for display."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.selectors import candles_float
from simulator.models import Simulation
from simulator.services.requests import SimulationInputError, run_bounds, simulation_request_check
from simulator.services.simulations import (
    MAX_CURVE_POINTS,
    curve_points,
    simulation_create,
    simulation_run,
)
from tests.simulator.test_views import errors_for, form_data
from tests.trading.factories import sma_cross_criteria
from trading.engine.backtest import backtest
from trading.engine.criteria import criteria_parse
from trading.engine.types import CandleArrays
from trading.selectors import to_seconds

pytestmark = pytest.mark.django_db

HOURLY = sma_cross_criteria(stop_loss_ratio=0.02, take_profit_ratio=0.04, max_holding_days=3)


def _run(start: date, end: date, timeframe: str, criteria: dict[str, Any] = HOURLY) -> Simulation:
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=start,
        end=end,
        starting_cash="10000",
        criteria=criteria,
        timeframe=timeframe,
    )
    return simulation_run(simulation=simulation_create(request=request))


def test_the_shipped_history_stores_bitcoins_binance_hours_as_1h_candles(shipped_history: None) -> None:
    hours = InstrumentOHLC.objects.filter(instrument__coingecko_id="bitcoin", timeframe=Timeframe.H1)

    # The feather's 58,419 hours to 2024-04-21 14:00, then the 2024 file's 6,105 more to 2024-12-31 23:00.
    assert hours.count() == 58_419 + 6_105
    assert hours.earliest("open_time").open_time == datetime(2017, 8, 17, 4, tzinfo=UTC)
    assert hours.latest("open_time").open_time == datetime(2024, 12, 31, 23, tzinfo=UTC)
    assert set(hours.values_list("source", flat=True)) == {
        "file:BTC_USDT-1h.feather",
        "file:BTCUSDT-1h-2024-04-21_2024-12-31.csv",
    }


def test_an_hourly_run_of_shipped_bitcoin_is_the_engines_backtest_of_its_hourly_candles(
    shipped_history: None,
) -> None:
    start, end = date(2023, 1, 1), date(2023, 3, 31)

    simulation = _run(start, end, "1h")

    assert simulation.status == "done", simulation.error
    assert simulation.timeframe == "1h"
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")
    columns = candles_float(bitcoin, before=datetime(2023, 4, 1, tzinfo=UTC), timeframe="1h")
    first, last = run_bounds(start, end, "1h")
    assert (first, last) == (datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 3, 31, 23, tzinfo=UTC))
    expected = backtest(
        criteria=criteria_parse(HOURLY),
        instruments=[
            CandleArrays(
                "BTC",
                columns.open_time,
                columns.open,
                columns.high,
                columns.low,
                columns.close,
                columns.volume,
            )
        ],
        start_time_seconds=to_seconds(first),
        end_time_seconds=to_seconds(last),
        starting_cash=10000.0,
        candle_seconds=3600,
        close_at_end=True,
    )
    trades = simulation.trades
    assert len(trades) == len(expected.trades) > 10
    for saved, trade in zip(trades, expected.trades, strict=True):
        assert datetime.fromisoformat(saved["entry_at"]).timestamp() == trade.entry_time_seconds
        assert datetime.fromisoformat(saved["exit_at"]).timestamp() == trade.exit_time_seconds
        assert float(saved["entry_price"]) == pytest.approx(trade.entry_price, rel=1e-12)
        assert float(saved["exit_price"]) == pytest.approx(trade.exit_price, rel=1e-12)
        assert saved["exit_reason"] == trade.exit_reason
    assert simulation.statistics["final_equity"] == expected.statistics["final_equity"]
    assert {
        k: v for k, v in simulation.statistics.items() if k not in ("coverage", "ambiguous", "ruined_at")
    } == expected.statistics
    assert (
        simulation.statistics["ambiguous"] == [] and simulation.statistics["ruined_at"] is None
    )  # no one-minute candles stored: nothing finer than an hour
    # Hourly: 90 days of 24 boundaries; entries and exits at hours, not only at midnights.
    assert len(simulation.equity_curve["time"]) == 90 * 24
    assert {datetime.fromisoformat(t["entry_at"]).hour for t in trades} != {0}
    # max_holding_days stays days: no trade is held more than 3 days (72 hours) plus the candle of its exit.
    assert all(
        datetime.fromisoformat(t["exit_at"]) - datetime.fromisoformat(t["entry_at"]) <= timedelta(hours=73)
        for t in trades
    )
    assert simulation.statistics["avg_trade_duration_days"] < 3.05


def test_a_daily_run_is_unchanged_by_the_timeframe_default(shipped_history: None) -> None:
    default = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2019, 1, 1),
        end=date(2019, 12, 31),
        starting_cash="10000",
        criteria=HOURLY,
    )
    daily = _run(date(2019, 1, 1), date(2019, 12, 31), "1d")

    assert default.timeframe == "1d"
    assert daily.timeframe == "1d" and len(daily.equity_curve["time"]) == 365
    assert "step" not in daily.equity_curve


def test_a_timeframe_not_stored_for_every_instrument_is_an_error_of_timeframe(shipped_history: None) -> None:
    with pytest.raises(SimulationInputError) as raised:
        simulation_request_check(
            instruments=["bitcoin", "ethereum"],
            start=date(2019, 1, 1),
            end=date(2019, 6, 30),
            starting_cash="10000",
            criteria=HOURLY,
            timeframe="1h",
        )

    assert raised.value.errors == {
        "timeframe": [
            "1h candles are not stored for ethereum (bitcoin has 1d, 1h; ethereum has 1d); choose a stored "
            "timeframe or import the candles (manage.py import_ohlc)"
        ]
    }


def test_a_long_curve_is_kept_downsampled_and_the_statistics_are_of_the_full_one(
    shipped_history: None,
) -> None:
    # 2021-01-01 .. 2022-12-31 hourly: 17,520 candles, more than MAX_CURVE_POINTS.
    simulation = _run(date(2021, 1, 1), date(2022, 12, 31), "1h")

    curve = simulation.equity_curve
    assert curve["candles"] == 17_520 and curve["step"] == 2
    assert len(curve["time"]) <= MAX_CURVE_POINTS
    assert curve["equity"][-1] == pytest.approx(simulation.statistics["final_equity"], abs=1e-6)
    assert max(curve["drawdown_ratio"]) == pytest.approx(
        simulation.statistics["max_drawdown_ratio"], abs=1e-9
    )
    assert curve["time"][-1] == to_seconds(datetime(2022, 12, 31, 23, tzinfo=UTC))


def test_curve_points_keep_every_step_th_the_last_and_the_deepest() -> None:
    drawdown = np.zeros(25)
    drawdown[7] = 0.5

    assert curve_points(10, drawdown[:10], most=10).tolist() == list(range(10))
    assert curve_points(25, drawdown, most=10).tolist() == [0, 4, 7, 8, 12, 16, 20, 24]


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("trader"))
    return client


BODY: dict[str, Any] = {
    "instruments": ["bitcoin"],
    "start": "2023-01-01",
    "end": "2023-01-31",
    "criteria": HOURLY,
}


def test_the_api_runs_an_hourly_simulation_and_says_its_timeframe(
    shipped_history: None, api: APIClient
) -> None:
    response = api.post("/api/simulations/", {**BODY, "timeframe": "1h"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "done" and body["timeframe"] == "1h"
    assert len(body["equity_curve"]["time"]) == 31 * 24
    listed = api.get("/api/simulations/").json()
    assert [run["timeframe"] for run in listed["results"]] == ["1h"]
    assert api.post("/api/simulations/", BODY, format="json").json()["timeframe"] == "1d"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**BODY, "timeframe": "1m"}, "1m candles are not stored for bitcoin (bitcoin has 1d, 1h)"),
        ({**BODY, "timeframe": "5m"}, "is not a valid choice"),
        ({**BODY, "instruments": ["ethereum"], "timeframe": "1h"}, "1h candles are not stored for ethereum"),
    ],
)
def test_the_api_refuses_an_unstored_timeframe_with_400(
    shipped_history: None, api: APIClient, body: dict[str, Any], message: str
) -> None:
    response = api.post("/api/simulations/", body, format="json")

    assert response.status_code == 400
    errors = response.json()
    assert list(errors) == ["timeframe"] and message in errors["timeframe"][0], errors
    assert not Simulation.objects.exists()


@pytest.fixture
def logged_in(client: Client) -> Client:
    client.force_login(User.objects.create_user("trader"))
    return client


def test_the_form_runs_an_hourly_simulation_and_its_page_says_so(
    shipped_history: None, logged_in: Client
) -> None:
    form = logged_in.get("/simulator/").content.decode()
    assert '<select name="timeframe" id="id_timeframe">' in form
    assert 'data-timeframes="1d 1h"' in form  # bitcoin's option lists what it has

    response = logged_in.post("/simulator/", form_data(start="2023-01-01", end="2023-02-28", timeframe="1h"))

    simulation = Simulation.objects.get()
    assert response.status_code == 302 and simulation.timeframe == "1h"
    assert len(simulation.equity_curve["time"]) == 59 * 24
    page = logged_in.get(response["Location"]).content.decode()
    assert 'data-timeframe="1h"' in page and "1 hour candles (1h)" in page
    assert "BTC: hourly candles, entries and exits" in page
    again = logged_in.get(f"/simulator/?from={simulation.pk}").content.decode()
    assert '<option value="1h" selected>' in again


def test_the_form_shows_an_unstored_timeframe_next_to_its_field(
    shipped_history: None, logged_in: Client
) -> None:
    response = logged_in.post("/simulator/", form_data(timeframe="1m"))

    html = response.content.decode()
    assert response.status_code == 200 and not Simulation.objects.exists()
    assert errors_for(html, "timeframe") == [
        "1m candles are not stored for bitcoin (bitcoin has 1d, 1h); choose a stored timeframe or import the "
        "candles (manage.py import_ohlc)"
    ]


def test_the_command_takes_a_timeframe_and_says_what_is_stored(shipped_history: None, tmp_path: Path) -> None:
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps(HOURLY))
    arguments = ["--criteria", str(criteria), "--instrument", "bitcoin", "--start", "2023-01-01"]
    out = StringIO()

    call_command("simulate", *arguments, "--end", "2023-01-10", "--timeframe", "1h", "--json", stdout=out)

    document = json.loads(out.getvalue())
    assert document["timeframe"] == "1h"
    assert Simulation.objects.get(pk=document["id"]).timeframe == "1h"
    with pytest.raises(
        CommandError, match=r"--timeframe: 1m candles are not stored for bitcoin \(bitcoin has 1d, 1h\)"
    ):
        call_command("simulate", *arguments, "--end", "2023-01-10", "--timeframe", "1m")
