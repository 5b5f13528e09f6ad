"""The simulator's services: one engine with the live cycle, input checks, queued runs, sweeps, saving."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from positions.cycle.replay import replay
from positions.models import Position
from simulator.launch import simulation_start, sweep_start
from simulator.models import RunStatus, Simulation, SweepPoint
from simulator.services.requests import SimulationInputError, SimulationRequest, simulation_request_check
from simulator.services.simulations import (
    simulation_create,
    simulation_equity_csv,
    simulation_run,
    simulation_to_strategy,
    simulation_trades_csv,
)
from simulator.services.sweeps import criteria_with, sweep_axes_check, sweep_create, sweep_point_simulation
from tests.trading.factories import sma_cross_criteria
from trading.models import Strategy
from trading.selectors import to_decimal

pytestmark = pytest.mark.django_db

TREND = sma_cross_criteria(stop_loss_ratio=0.06, take_profit_ratio=0.25, trailing_stop_ratio=0.12)


def request_for(**overrides: Any) -> SimulationRequest:
    arguments: dict[str, Any] = {
        "instruments": ["bitcoin"],
        "start": date(2019, 1, 1),
        "end": date(2019, 12, 31),
        "starting_cash": Decimal("10000"),
        "criteria": TREND,
        **overrides,
    }
    return simulation_request_check(**arguments)


def test_a_simulation_makes_the_trades_the_live_cycle_makes_replayed_day_by_day(
    shipped_history: None,
) -> None:
    """One engine: the daily cycle replayed over the dates opens and closes what the simulator reports (the
    simulator then closes what is still open at the end, as end_of_data)."""
    start, end = date(2019, 3, 1), date(2019, 9, 30)
    simulation = simulation_start(
        request=request_for(instruments=["bitcoin", "ethereum"], start=start, end=end)
    )
    strategy = Strategy.objects.create(name="trend", criteria=TREND, starting_cash=Decimal("10000"))
    strategy.instruments.set(Instrument.objects.filter(coingecko_id__in=["bitcoin", "ethereum"]))

    positions = list(
        Position.objects.for_strategy(replay(strategy=strategy, start=start, end=end).account)
        .select_related("instrument")
        .order_by("entry_at", "instrument__symbol")
    )

    assert simulation.status == RunStatus.DONE
    assert len(positions) == len(simulation.trades) >= 4
    for position, trade in zip(positions, simulation.trades, strict=True):
        assert trade["instrument"] == position.instrument.coingecko_id
        assert trade["entry_at"] == position.entry_at.isoformat().replace("+00:00", "Z")
        assert Decimal(trade["entry_price"]) == to_decimal(float(position.entry_price)).normalize()
        assert Decimal(trade["quantity"]).quantize(Decimal("1e-12")) == position.quantity.quantize(
            Decimal("1e-12")
        )
        if position.status == "open":
            assert trade["exit_reason"] == "end_of_data"
            continue
        assert trade["exit_reason"] == position.exit_reason
        assert position.exit_at is not None and position.exit_price is not None
        assert trade["exit_at"] == position.exit_at.isoformat().replace("+00:00", "Z")
        assert Decimal(trade["exit_price"]).quantize(Decimal("1e-9")) == position.exit_price.quantize(
            Decimal("1e-9")
        )
    reasons = {t["exit_reason"] for t in simulation.trades}
    assert len(reasons) >= 2, reasons


def test_results_are_saved_with_statistics_curves_and_units(shipped_history: None) -> None:
    simulation = simulation_start(request=request_for())

    simulation.refresh_from_db()
    statistics = simulation.statistics
    curve = simulation.equity_curve
    # 365 daily boundaries from 2019-01-01 to 2019-12-31, values at each day's close.
    assert len(curve["time"]) == len(curve["equity"]) == len(curve["buy_and_hold"]) == 365
    assert curve["time"][0] == 1546300800  # 2019-01-01T00:00:00Z
    assert statistics["n_trades"] == len(simulation.trades)
    assert statistics["final_equity"] == pytest.approx(curve["equity"][-1])
    assert statistics["total_return_ratio"] == pytest.approx(curve["equity"][-1] / 10_000 - 1)
    assert max(curve["drawdown_ratio"]) == pytest.approx(statistics["max_drawdown_ratio"])
    assert all(0 <= d <= 1 for d in curve["drawdown_ratio"])
    # pnl of each trade: exit_price * quantity - exit_fee - (entry_price * quantity + entry_fee).
    for trade in simulation.trades:
        quantity = Decimal(trade["quantity"])
        pnl = (
            Decimal(trade["exit_price"]) * quantity
            - Decimal(trade["exit_fee"])
            - (Decimal(trade["entry_price"]) * quantity + Decimal(trade["entry_fee"]))
        )
        assert float(pnl) == pytest.approx(float(trade["pnl"]), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"instruments": []}, "instruments", "choose at least one instrument"),
        ({"instruments": ["nope"]}, "instruments", "unknown instrument(s): nope"),
        ({"end": date(2018, 12, 31)}, "end", "must be on or after start (2019-01-01); was 2018-12-31"),
        ({"start": None}, "start", "required"),
        ({"starting_cash": Decimal("0")}, "starting_cash", "must be > 0"),
        ({"starting_cash": "ten"}, "starting_cash", "must be a number; was 'ten'"),
        ({"start": date(2025, 1, 1), "end": date(2025, 2, 1)}, "start", "has candles up to 2024-12-31 only"),
        (
            {"criteria": sma_cross_criteria(stop_loss_ratio=1.5)},
            "criteria",
            "stop_loss_ratio: must be > 0 and < 1, was 1.5",
        ),
    ],
)
def test_bad_requests_name_the_field(
    shipped_history: None, overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(SimulationInputError) as raised:
        request_for(**overrides)

    assert field in raised.value.errors, raised.value.errors
    assert any(message in m for m in raised.value.errors[field]), raised.value.errors


def test_every_problem_is_reported_at_once(shipped_history: None) -> None:
    with pytest.raises(SimulationInputError) as raised:
        request_for(instruments=[], end=date(2018, 1, 1), starting_cash=-1, criteria={"version": 2})

    assert set(raised.value.errors) == {"instruments", "end", "starting_cash", "criteria"}


def test_a_large_run_goes_to_a_task_and_reports_progress(
    shipped_history: None,
    settings: Settings,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    settings.BARTER_SIMULATOR_INLINE_CANDLES = 10  # everything is "large"

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        simulation = simulation_start(request=request_for())
    assert simulation.status == RunStatus.PENDING and simulation.trades == []
    assert len(callbacks) == 1

    callbacks[0]()  # the queued task, run eagerly (no broker in tests)

    simulation.refresh_from_db()
    assert simulation.status == RunStatus.DONE
    assert simulation.progress_ratio == 1.0
    assert simulation.statistics["n_trades"] == len(simulation.trades) > 0


def test_a_run_of_many_indicators_goes_to_a_task_even_over_few_candles(
    shipped_history: None,
    settings: Settings,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    """What a run costs is candles x series (4 OHLC + each distinct indicator), not candles alone."""
    request = request_for()
    candles = InstrumentOHLC.objects.filter(
        instrument__in=request.instruments,
        timeframe=Timeframe.D1,
        open_time__lt=datetime(2020, 1, 1, tzinfo=UTC),
    ).count()
    assert candles > 0
    # TREND compares SMA(10) with SMA(20), entry and exit: 2 distinct indicator series, 6 series in all.
    settings.BARTER_SIMULATOR_INLINE_CANDLE_SERIES = candles * 6
    inline = simulation_start(request=request)
    assert inline.status == RunStatus.DONE

    heavier = sma_cross_criteria(
        entry={
            "all": [
                *TREND["entry"]["all"],
                {"left": {"indicator": "ema", "period": 30}, "op": ">", "right": {"value": 0}},
            ]
        }
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = simulation_start(request=request_for(criteria=heavier))
    assert queued.status == RunStatus.PENDING and len(callbacks) == 1


def test_running_a_finished_simulation_again_changes_nothing(shipped_history: None) -> None:
    simulation = simulation_start(request=request_for())
    before = (simulation.statistics, simulation.trades, simulation.duration_seconds)

    again = simulation_run(simulation=Simulation.objects.get(pk=simulation.pk))

    assert (again.statistics, again.trades, again.duration_seconds) == before


def test_csv_downloads_hold_every_trade_and_every_candle(shipped_history: None) -> None:
    simulation = simulation_start(request=request_for())

    trades = simulation_trades_csv(simulation).splitlines()
    equity = simulation_equity_csv(simulation).splitlines()

    assert trades[0].split(",")[:4] == ["instrument", "symbol", "entry_at", "entry_price"]
    assert len(trades) == 1 + simulation.statistics["n_trades"]
    assert equity[0] == "time,equity,buy_and_hold,drawdown_ratio"
    assert len(equity) == 1 + 365
    assert equity[1].startswith("2019-01-01T00:00:00Z,")


def test_save_as_strategy_makes_a_disabled_strategy_and_refuses_a_taken_name(shipped_history: None) -> None:
    simulation = simulation_start(request=request_for(instruments=["bitcoin", "litecoin"]))

    strategy = simulation_to_strategy(simulation=simulation, name="From the simulator")

    assert strategy.is_enabled is False
    assert strategy.criteria == TREND
    assert strategy.starting_cash == Decimal("10000")
    assert set(strategy.instruments.values_list("coingecko_id", flat=True)) == {"bitcoin", "litecoin"}
    with pytest.raises(SimulationInputError, match="exists; choose another name"):
        simulation_to_strategy(simulation=simulation, name="From the simulator")


def test_criteria_with_sets_a_path_and_keeps_integers() -> None:
    changed = criteria_with(TREND, "entry.all[0].left.period", 15.0)

    assert changed["entry"]["all"][0]["left"]["period"] == 15
    assert isinstance(changed["entry"]["all"][0]["left"]["period"], int)
    assert TREND["entry"]["all"][0]["left"]["period"] == 10  # the original is untouched
    assert criteria_with(TREND, "stop_loss_ratio", 0.03)["stop_loss_ratio"] == 0.03


@pytest.mark.parametrize(
    ("axes", "field", "message"),
    [
        ([], "axes", "give one or two axes"),
        ([{"path": "entry.all[5].left.period", "values": [1]}], "axes", "is not a field of the criteria"),
        ([{"path": "side", "values": [1]}], "axes", "is 'long', not a number"),
        ([{"path": "stop_loss_ratio", "start": 0.1, "stop": 0.01, "step": 0.01}], "axes", "stop >= start"),
        ([{"path": "entry.all[0].left.period", "start": 0, "stop": 10, "step": 5}], "criteria", "must be"),
    ],
)
def test_bad_sweep_axes_are_refused(axes: list[dict[str, Any]], field: str, message: str) -> None:
    with pytest.raises(SimulationInputError) as raised:
        sweep_axes_check(TREND, axes)

    assert any(message in m for m in raised.value.errors[field]), raised.value.errors


def test_a_sweep_fans_out_and_each_point_equals_its_own_simulation(
    shipped_history: None, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    axes = [
        {"path": "entry.all[0].left.period", "start": 5, "stop": 15, "step": 5},
        {"path": "stop_loss_ratio", "values": [0.04, 0.08]},
    ]
    sweep = sweep_create(request=request_for(), axes=axes, statistic="sharpe_ratio")
    assert sweep.total == 6

    with django_capture_on_commit_callbacks(execute=True):
        sweep_start(sweep=sweep)

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE, sweep.error
    points = list(SweepPoint.objects.filter(sweep=sweep).order_by("index"))
    assert [p.values for p in points][:2] == [
        {"entry.all[0].left.period": 5.0, "stop_loss_ratio": 0.04},
        {"entry.all[0].left.period": 5.0, "stop_loss_ratio": 0.08},
    ]
    assert len({json.dumps(p.statistics, sort_keys=True) for p in points}) > 1  # the parameters matter

    simulation = sweep_point_simulation(point=points[3])
    again = sweep_point_simulation(point=SweepPoint.objects.get(pk=points[3].pk))

    assert again.pk == simulation.pk  # made once
    assert simulation.criteria["entry"]["all"][0]["left"]["period"] == 10
    assert simulation.criteria["stop_loss_ratio"] == 0.08
    # The point keeps its returns' moments besides (for the sweep's robustness, issue 15): not a statistic.
    assert simulation.statistics == points[3].statistics
    assert not Simulation.objects.listed().filter(pk=simulation.pk).exists()  # sweep points stay off the list


def test_simulate_command_prints_json_and_saves_the_run(shipped_history: None, tmp_path: Path) -> None:
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps(TREND))
    out = StringIO()

    call_command(
        "simulate",
        "--criteria",
        str(criteria),
        "--instrument",
        "bitcoin",
        "--start",
        "2019-01-01",
        "--end",
        "2019-12-31",
        "--json",
        stdout=out,
    )

    document = json.loads(out.getvalue())
    saved = Simulation.objects.get(pk=document["id"])
    assert document["statistics"] == saved.statistics
    assert len(document["trades"]) == document["statistics"]["n_trades"] > 0
    text = StringIO()
    call_command(
        "simulate",
        "--criteria",
        str(criteria),
        "--instrument",
        "bitcoin",
        "--start",
        "2019-01-01",
        "--end",
        "2019-12-31",
        stdout=text,
    )
    assert "sharpe_ratio" in text.getvalue() and "Trades (" in text.getvalue()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--start", "2019-13-01"], "--start must be a date like 2024-01-31"),
        (["--end", "2018-01-01"], "--end: must be on or after start"),
        (["--cash", "lots"], "--cash must be a number"),
        (["--instrument", "nope"], "--instrument: unknown instrument(s): nope"),
    ],
)
def test_simulate_command_errors_say_what_to_fix(
    shipped_history: None, tmp_path: Path, arguments: list[str], message: str
) -> None:
    criteria = tmp_path / "criteria.json"
    criteria.write_text(json.dumps(TREND))
    base = {
        "--criteria": str(criteria),
        "--instrument": "bitcoin",
        "--start": "2019-01-01",
        "--end": "2019-06-30",
    }
    base.update(dict(zip(arguments[::2], arguments[1::2], strict=True)))

    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("simulate", *[x for pair in base.items() for x in pair])


def test_simulate_command_refuses_a_criteria_file_that_is_not_json(
    shipped_history: None, tmp_path: Path
) -> None:
    criteria = tmp_path / "criteria.json"
    criteria.write_text("{not json")

    with pytest.raises(CommandError, match="is not JSON"):
        call_command(
            "simulate",
            "--criteria",
            str(criteria),
            "--instrument",
            "bitcoin",
            "--start",
            "2019-01-01",
            "--end",
            "2019-02-01",
        )


def test_pending_simulations_are_created_with_their_inputs(shipped_history: None) -> None:
    request = request_for(instruments=["litecoin", "bitcoin"])

    simulation = simulation_create(request=request, name="x")

    assert simulation.status == RunStatus.PENDING
    assert [i.coingecko_id for i in simulation.instruments.order_by("symbol")] == ["bitcoin", "litecoin"]
