"""Sweeps over named parameters with constraints between them (issue 14): a fast x slow crossover sweep on the
shipped BTC history moves entry and exit together, skips the cells where fast >= slow, and each cell it runs equals
the single run of its resolved criteria."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from instruments.models import Instrument
from simulator.builder.conversions import numeric_paths, path_is_percent
from simulator.forms import SimulatorForm
from simulator.models import RunStatus, SweepPoint
from simulator.presenters import sweep_heatmap
from simulator.services.requests import SimulationInputError, simulation_request_check
from simulator.services.simulations import simulation_create, simulation_run
from simulator.services.sweeps import (
    sweep_axes_check,
    sweep_chunks,
    sweep_constraints_check,
    sweep_create,
    sweep_point_criteria,
    sweep_points_save,
    sweep_run_in_process,
)
from tests.accounts import user_with
from trading.engine.criteria import criteria_resolve

pytestmark = pytest.mark.django_db


def sma(period: Any) -> dict[str, Any]:
    return {"indicator": "sma", "period": period}


CROSSOVER: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "params": {"fast": 10, "slow": 50},
    "entry": {
        "all": [{"left": sma({"param": "fast"}), "op": "crosses_above", "right": sma({"param": "slow"})}]
    },
    "exit": {
        "any": [{"left": sma({"param": "fast"}), "op": "crosses_below", "right": sma({"param": "slow"})}]
    },
    "stop_loss_ratio": 0.08,
    "fee_rate": 0.001,
}

AXES = [
    {"path": "params.fast", "start": 5, "stop": 50, "step": 5},
    {"path": "params.slow", "start": 20, "stop": 200, "step": 20},
]


def request_for(criteria: dict[str, Any] = CROSSOVER) -> Any:
    return simulation_request_check(
        instruments=["bitcoin"],
        start=date(2018, 1, 1),
        end=date(2023, 12, 31),
        starting_cash=Decimal("10000"),
        criteria=criteria,
    )


def test_the_fast_slow_sweep_skips_fast_at_or_above_slow_and_each_cell_is_its_own_single_run(
    shipped_history: None,
) -> None:
    sweep = sweep_create(
        request=request_for(), axes=AXES, constraints="fast < slow", statistic="sharpe_ratio"
    )
    assert sweep.total == 100
    assert sweep.constraints == ["fast < slow"]

    sweep_run_in_process(sweep_id=sweep.pk, chunks=sweep_chunks(sweep.total, 2))

    sweep.refresh_from_db()
    assert sweep.status == RunStatus.DONE, sweep.error
    points = list(SweepPoint.objects.filter(sweep=sweep).order_by("index"))
    assert len(points) == 100
    skipped = {(p.values["params.fast"], p.values["params.slow"]) for p in points if p.skipped}
    # fast 5..50 by 5, slow 20..200 by 20: fast >= slow only at slow 20 (fast 20..50) and slow 40 (fast 40..50).
    expected = {(float(f), float(s)) for f in range(5, 55, 5) for s in range(20, 220, 20) if f >= s}
    assert skipped == expected
    assert len(expected) == 10
    for point in points:
        if point.skipped:
            assert point.skipped == "fast >= slow"
            assert point.statistics == {}
            assert point.error == ""

    ran = [p for p in points if not p.skipped]
    assert len({p.statistics["n_trades"] for p in ran}) > 5  # the parameters matter
    for point in ran:
        fast, slow = point.values["params.fast"], point.values["params.slow"]
        resolved = criteria_resolve(sweep_point_criteria(sweep.criteria, sweep.axes, [fast, slow]))
        # Both SMAs of the exit moved with the entry's: one axis moves every field that refers to it.
        assert [o["period"] for o in (*resolved["entry"]["all"][0].values(),) if isinstance(o, dict)] == [
            int(fast),
            int(slow),
        ]
        assert resolved["exit"]["any"][0]["left"]["period"] == int(fast)
        assert resolved["exit"]["any"][0]["right"]["period"] == int(slow)
        assert "params" not in resolved
        single = simulation_run(simulation=simulation_create(request=request_for(resolved)))
        assert single.status == RunStatus.DONE, single.error
        assert single.statistics == point.statistics, (fast, slow)

    heatmap = sweep_heatmap(sweep)
    cells = [cell for _, row in heatmap.rows for cell in row]
    assert [c.index for c in cells if c.skipped] == [p.index for p in points if p.skipped]
    assert all(c.text == "skipped" and c.title.endswith("skipped: fast >= slow") for c in cells if c.skipped)
    assert heatmap.best is not None and not heatmap.best.skipped


def test_the_sweep_page_shows_skipped_cells_without_a_link(shipped_history: None) -> None:
    user = user_with("trader")
    sweep = sweep_create(
        request=request_for(),
        axes=[{"path": "params.fast", "values": [10, 60]}, {"path": "params.slow", "values": [50]}],
        constraints=["fast < slow"],
        created_by=user,
    )
    sweep_run_in_process(sweep_id=sweep.pk, chunks=[(0, 2)])
    client = Client()
    client.force_login(user)

    page = client.get(f"/simulator/sweeps/{sweep.pk}/").content.decode()

    assert (
        '<td class="num skipped" title="params.fast = 60, params.slow = 50: skipped: fast &gt;= slow"' in page
    )
    assert f'href="/simulator/sweeps/{sweep.pk}/points/1/"' not in page
    assert f'href="/simulator/sweeps/{sweep.pk}/points/0/"' in page
    assert "constraints: <code>fast &lt; slow</code>" in page
    assert client.get(f"/simulator/sweeps/{sweep.pk}/points/1/").status_code == 404


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        (
            "fast << slow",
            "'fast << slow' is not <parameter> <op> <parameter or number>, with op one of <, <=, >, >=",
        ),
        ("fast = slow", "'fast = slow' is not <parameter> <op> <parameter or number>"),
        ("fast < slwo", "'fast < slwo': unknown parameter slwo; the parameters are fast, slow"),
        ("fats < 30, fast < slow", "'fats < 30': unknown parameter fats; the parameters are fast, slow"),
        (["fast <"], "'fast <' is not <parameter> <op>"),
        (42, "must be text such as 'fast < slow' or a list of such texts"),
    ],
)
def test_bad_constraints_say_what_is_wrong(constraints: Any, message: str) -> None:
    with pytest.raises(SimulationInputError) as raised:
        sweep_constraints_check(CROSSOVER, constraints)

    assert any(message in m for m in raised.value.errors["constraints"]), raised.value.errors


def test_constraints_are_normalised_and_compare_with_numbers() -> None:
    assert sweep_constraints_check(CROSSOVER, "fast<slow\n slow >= 30 , \n") == ["fast < slow", "slow >= 30"]
    assert sweep_constraints_check(CROSSOVER, ["fast <= 2.5e1"]) == ["fast <= 2.5e1"]
    assert sweep_constraints_check(CROSSOVER, "") == []


def test_a_grid_that_breaks_the_constraints_everywhere_is_refused() -> None:
    with pytest.raises(SimulationInputError) as raised:
        sweep_axes_check(CROSSOVER, [{"path": "params.fast", "values": [60, 70]}], ["fast < slow"])

    assert raised.value.errors == {"constraints": ["every grid point breaks fast < slow: nothing would run"]}


def test_skipped_points_are_not_checked_and_checked_points_name_the_parameter() -> None:
    # fast 0 would be refused, but fast >= 1 skips it: the grid is accepted.
    axes = [{"path": "params.fast", "values": [0, 10]}]
    assert sweep_axes_check(CROSSOVER, axes, ["fast >= 1"]) == [
        {"path": "params.fast", "values": [0.0, 10.0]}
    ]
    with pytest.raises(SimulationInputError) as raised:
        sweep_axes_check(CROSSOVER, axes)
    assert (
        'entry.all[0].left.period: parameter "fast" is 0; must be an integer >= 1'
        in raised.value.errors["criteria"][0]
    )


def test_a_raw_path_still_sweeps_and_a_field_a_parameter_holds_points_to_the_parameter() -> None:
    assert sweep_axes_check(CROSSOVER, [{"path": "stop_loss_ratio", "values": [0.05]}]) == [
        {"path": "stop_loss_ratio", "values": [0.05]}
    ]
    with pytest.raises(SimulationInputError) as raised:
        sweep_axes_check(CROSSOVER, [{"path": "entry.all[0].left.period", "values": [5]}])
    assert raised.value.errors == {
        "axes": ["axes[0].path: 'entry.all[0].left.period' refers to the parameter fast; sweep params.fast"]
    }


def test_the_axis_choices_list_parameters_first() -> None:
    document = {
        **CROSSOVER,
        "params": {**CROSSOVER["params"], "stop": 0.08},
        "stop_loss_ratio": {"param": "stop"},
    }

    paths = numeric_paths(document)

    assert paths[:3] == [
        ("params.fast", "fast (parameter)"),
        ("params.slow", "slow (parameter)"),
        ("params.stop", "stop (parameter, %)"),
    ]
    assert "entry.all[0].left.period" not in dict(paths)  # a parameter holds it
    assert ("fee_rate", "fee_rate (%)") in paths
    assert path_is_percent("params.stop", document) and not path_is_percent("params.fast", document)


def form_data(bitcoin: Instrument, **changes: str) -> dict[str, str]:
    return {
        "instruments": str(bitcoin.pk),
        "start": "2018-01-01",
        "end": "2023-12-31",
        "starting_cash": "10000",
        "advanced": "on",
        "criteria_json": json.dumps(CROSSOVER),
        "action": "sweep",
        "sweep_path_1": "params.fast",
        "sweep_start_1": "5",
        "sweep_stop_1": "50",
        "sweep_step_1": "5",
        "sweep_path_2": "params.slow",
        "sweep_start_2": "20",
        "sweep_stop_2": "200",
        "sweep_step_2": "20",
        "sweep_statistic": "sharpe_ratio",
        **changes,
    }


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ("fast <> slow", "'fast <> slow' is not <parameter> <op> <parameter or number>"),
        ("fast < slowest", "'fast < slowest': unknown parameter slowest; the parameters are fast, slow"),
        ("fast > 1000", "every grid point breaks fast > 1000: nothing would run"),
    ],
)
def test_the_form_puts_constraint_errors_next_to_the_constraints(
    shipped_history: None, constraints: str, message: str
) -> None:
    user = user_with("trader")
    client = Client()
    client.force_login(user)
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")

    response = client.post("/simulator/", form_data(bitcoin, sweep_constraints=constraints))

    assert response.status_code == 200
    page = response.content.decode()
    errors = page.split('data-error-for="sweep_constraints"', 1)[1].split("</ul>", 1)[0]
    assert message.replace("'", "&#x27;").replace(">", "&gt;").replace("<", "&lt;") in errors
    form = SimulatorForm(form_data(bitcoin, sweep_constraints=constraints))
    assert not form.is_valid() or constraints == "fast > 1000"  # the last one is found by the service


def test_saving_points_twice_keeps_the_first_and_adds_the_new(shipped_history: None) -> None:
    # Two runs of one chunk (a retried task beside the first): the points saved first stay as they are.
    sweep = sweep_create(request=request_for(), axes=AXES, statistic="sharpe_ratio")

    def point(index: int, note: str) -> SweepPoint:
        return SweepPoint(sweep=sweep, index=index, values={"params.fast": 5.0}, statistics={"note": note})

    assert sweep_points_save([point(0, "first"), point(1, "first")]) == 2
    assert sweep_points_save([point(1, "second"), point(2, "second")]) == 2
    saved = {p.index: p.statistics["note"] for p in SweepPoint.objects.filter(sweep=sweep)}
    assert saved == {0: "first", 1: "first", 2: "second"}
