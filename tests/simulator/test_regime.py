"""The simulator's services, API, form and command with operands on another instrument and weekly candles
(issue 16): unknown instruments and short histories refused at the operand's path, and a run of ethereum on
Bitcoin's weekly trend checked against the rule worked out from the stored candles."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from instruments.models import InstrumentOHLC, Timeframe
from simulator.builder.reading import builder_from_criteria
from simulator.models import RunStatus, Simulation, SweepPoint
from simulator.services.requests import SimulationInputError, simulation_request_check
from simulator.services.simulations import simulation_create, simulation_run
from simulator.services.sweeps import sweep_chunks, sweep_create, sweep_point_criteria, sweep_run_in_process
from tests.accounts import STRATEGY_EDITOR, token_client, user_with
from tests.simulator.test_views import errors_for, form_data
from tests.trading.factories import sma_cross_criteria
from trading.engine.criteria import criteria_resolve
from trading.models import Strategy

pytestmark = pytest.mark.django_db

BTC_TREND: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "entry": {
        "left": {"indicator": "close", "instrument": "bitcoin"},
        "op": ">",
        "right": {"indicator": "sma", "period": 10, "instrument": "bitcoin", "timeframe": "1w"},
    },
    "exit": {
        "left": {"indicator": "close", "instrument": "bitcoin"},
        "op": "<",
        "right": {"indicator": "sma", "period": 10, "instrument": "bitcoin", "timeframe": "1w"},
    },
    "fee_rate": 0.001,
}


def with_entry_right(**right: Any) -> dict[str, Any]:
    return {**BTC_TREND, "entry": {**BTC_TREND["entry"], "right": right}}


@pytest.fixture
def api(db: None) -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_user("trader"))
    return client


def body(criteria: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "instruments": ["ethereum"],
        "start": "2018-01-01",
        "end": "2019-12-31",
        "starting_cash": "10000",
        "criteria": criteria,
        **fields,
    }


def test_an_unknown_instrument_is_a_400_at_the_operands_path(shipped_history: None, api: APIClient) -> None:
    criteria = with_entry_right(indicator="sma", period=10, instrument="bitcoinn")
    response = api.post("/api/simulations/", body(criteria), format="json")
    assert response.status_code == 400
    assert response.json()["criteria"] == [
        "entry.right.instrument: unknown instrument 'bitcoinn': no instrument has this CoinGecko id; add it first"
    ]
    assert not Simulation.objects.exists()


def test_a_malformed_timeframe_is_a_400_at_its_path(shipped_history: None, api: APIClient) -> None:
    criteria = with_entry_right(indicator="sma", period=10, instrument="bitcoin", timeframe="4h")
    response = api.post("/api/simulations/", body(criteria), format="json")
    assert response.status_code == 400
    assert response.json()["criteria"] == ["entry.right.timeframe: must be one of 1d, 1w, was '4h'"]


def test_a_weekly_look_back_longer_than_bitcoins_history_is_refused_naming_it(shipped_history: None) -> None:
    stored = InstrumentOHLC.objects.filter(
        instrument__coingecko_id="bitcoin", timeframe=Timeframe.D1, open_time__date__lte=date(2019, 12, 31)
    ).count()
    weeks = stored // 7 + 1  # one week more than stored
    with pytest.raises(SimulationInputError) as caught:
        simulation_request_check(
            instruments=["ethereum"],
            start=date(2018, 1, 1),
            end=date(2019, 12, 31),
            starting_cash="10000",
            criteria=with_entry_right(indicator="sma", period=weeks, instrument="bitcoin", timeframe="1w"),
        )
    assert caught.value.errors == {
        "criteria": [
            f"entry.right.period: must be at most the {stored // 7:,} weeks (7 days each) of the {stored:,} daily "
            f"candles stored for bitcoin up to 2019-12-31; was {weeks:,} weeks ({weeks * 7:,} days)"
        ]
    }
    # the same period in days passes (bitcoin has them), and so does one week less
    for right in (
        {"indicator": "sma", "period": stored, "instrument": "bitcoin"},
        {"indicator": "sma", "period": weeks - 1, "instrument": "bitcoin", "timeframe": "1w"},
    ):
        simulation_request_check(
            instruments=["ethereum"],
            start=date(2018, 1, 1),
            end=date(2019, 12, 31),
            starting_cash="10000",
            criteria=with_entry_right(**right),
        )


def test_the_command_refuses_a_weekly_operand_in_an_hourly_run_and_an_unknown_instrument(
    shipped_history: None, tmp_path: Path
) -> None:
    criteria = tmp_path / "criteria.json"
    arguments = ["--criteria", str(criteria), "--instrument", "bitcoin", "--start", "2023-01-01"]
    criteria.write_text(json.dumps(BTC_TREND))
    with pytest.raises(
        CommandError, match=r"entry\.right\.timeframe: a weekly operand .* needs a run on 1d candles"
    ):
        call_command("simulate", *arguments, "--end", "2023-01-10", "--timeframe", "1h")
    criteria.write_text(json.dumps(with_entry_right(indicator="close", instrument="dogecoin")))
    with pytest.raises(CommandError, match=r"entry\.right\.instrument: unknown instrument 'dogecoin'"):
        call_command("simulate", *arguments, "--end", "2023-01-10")


def test_the_form_shows_an_unknown_instrument_under_the_json_box(
    shipped_history: None, client: Client
) -> None:
    client.force_login(User.objects.create_user("trader"))
    pasted = with_entry_right(indicator="close", instrument="dogecoin")
    response = client.post("/simulator/", form_data(advanced="on", criteria_json=json.dumps(pasted)))
    assert response.status_code == 200
    assert not Simulation.objects.exists()
    assert errors_for(response.content.decode(), "criteria_json") == [
        "entry.right.instrument: unknown instrument &#x27;dogecoin&#x27;: no instrument has this CoinGecko id; add "
        "it first"
    ]


def test_a_strategy_naming_an_unknown_instrument_is_refused_by_the_api(shipped_history: None) -> None:
    api = token_client(user_with("robot", *STRATEGY_EDITOR))
    criteria = {
        **sma_cross_criteria(),
        "entry": with_entry_right(indicator="close", instrument="dogecoin")["entry"],
    }
    response = api.post("/api/strategies/", {"name": "alts", "criteria": criteria}, format="json")
    assert response.status_code == 400
    assert response.json()["criteria"] == [
        "entry.right.instrument: unknown instrument 'dogecoin': no instrument has this CoinGecko id; add it first"
    ]
    assert not Strategy.objects.filter(name="alts").exists()


def _bitcoin_rule() -> dict[date, tuple[float, float | None]]:
    """Bitcoin's close and the SMA of its 10 last complete weekly closes on each day, from the stored candles:
    a week (Monday to Sunday) is complete on its Sunday; its close is that of its last stored day."""
    rows = list(
        InstrumentOHLC.objects.filter(instrument__coingecko_id="bitcoin", timeframe=Timeframe.D1)
        .order_by("open_time")
        .values_list("open_time", "close")
    )
    week_close: dict[date, float] = {}  # Monday -> the close of the week's last stored day
    for opened, close in rows:
        monday = opened.date() - timedelta(days=opened.weekday())
        week_close[monday] = float(close)
    rule = {}
    for opened, close in rows:
        day = opened.date()
        # the complete weeks: those whose Sunday (Monday + 6) is on or before this day
        complete = [c for monday, c in sorted(week_close.items()) if monday + timedelta(days=6) <= day]
        rule[day] = (float(close), sum(complete[-10:]) / 10 if len(complete) >= 10 else None)
    return rule


def test_a_run_on_ethereum_follows_bitcoins_weekly_trend(shipped_history: None) -> None:
    request = simulation_request_check(
        instruments=["ethereum"],
        start=date(2018, 1, 1),
        end=date(2019, 12, 31),
        starting_cash=Decimal(10_000),
        criteria=BTC_TREND,
    )
    simulation = simulation_run(simulation=simulation_create(request=request))
    assert simulation.status == "done", simulation.error
    rule = _bitcoin_rule()
    trades = simulation.trades
    assert len(trades) >= 4
    for trade in trades:
        assert trade["instrument"] == "ethereum"
        signal_day = datetime.fromisoformat(trade["entry_at"]).date() - timedelta(days=1)
        close, sma = rule[signal_day]
        assert sma is not None and close > sma, trade
        if trade["exit_reason"] == "signal":
            exit_day = datetime.fromisoformat(trade["exit_at"]).date() - timedelta(days=1)
            close, sma = rule[exit_day]
            assert sma is not None and close < sma, trade
    # the entries are the days after Bitcoin's close first went above its weekly SMA while flat
    entries = {datetime.fromisoformat(t["entry_at"]).date() for t in trades}
    held = False
    expected = set()
    exits = {datetime.fromisoformat(t["exit_at"]).date() for t in trades if t["exit_reason"] == "signal"}
    day = date(2017, 12, 31)
    while day < date(2019, 12, 31):
        close, sma = rule[day]
        nxt = day + timedelta(days=1)
        if held and nxt in exits:
            held = False
        elif not held and sma is not None and close > sma:
            expected.add(nxt)
            held = True
        day = nxt
    assert entries == expected


def test_the_builder_leaves_such_criteria_to_the_json_box() -> None:
    # the builder has no input for instrument and timeframe: it must not show the criteria without them
    assert not builder_from_criteria(BTC_TREND).representable


def test_a_sweep_over_the_weeks_of_bitcoins_sma_equals_its_single_runs(shipped_history: None) -> None:
    criteria = {
        **BTC_TREND,
        "params": {"weeks": 10},
        "entry": {
            **BTC_TREND["entry"],
            "right": {**BTC_TREND["entry"]["right"], "period": {"param": "weeks"}},
        },
    }

    def request(document: dict[str, Any]) -> Any:
        return simulation_request_check(
            instruments=["ethereum", "litecoin"],
            start=date(2018, 1, 1),
            end=date(2019, 12, 31),
            starting_cash=Decimal(10_000),
            criteria=document,
        )

    sweep = sweep_create(
        request=request(criteria),
        axes=[{"path": "params.weeks", "start": 4, "stop": 16, "step": 4}],
        statistic="sharpe_ratio",
    )
    sweep_run_in_process(sweep_id=sweep.pk, chunks=sweep_chunks(sweep.total, 2))
    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE, sweep.error
    points = list(SweepPoint.objects.filter(sweep=sweep).order_by("index"))
    assert [p.values["params.weeks"] for p in points] == [4.0, 8.0, 12.0, 16.0]
    assert len({p.statistics["final_equity"] for p in points}) == 4  # the period matters
    for point in points:
        resolved = criteria_resolve(
            sweep_point_criteria(sweep.criteria, sweep.axes, [point.values["params.weeks"]])
        )
        single = simulation_run(simulation=simulation_create(request=request(resolved)))
        assert single.status == RunStatus.DONE, single.error
        assert single.statistics == point.statistics, point.values
