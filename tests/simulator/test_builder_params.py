"""Named parameters through every place that shows or transforms a criteria document: the simulator's builder
(both ways, "make this a parameter", renaming), the admin's JSON, the strategies API and a strategy's parsed
criteria (what the live cycle runs)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from simulator.builder.reading import builder_from_criteria, builder_from_data
from simulator.builder.rows import Builder
from tests.accounts import STRATEGY_EDITOR, token_client, user_with
from tests.instruments.factories import InstrumentFactory
from tests.trading.factories import StrategyFactory
from trading.engine.criteria import criteria_parse, criteria_resolve
from trading.models import Strategy

pytestmark = pytest.mark.django_db


def sma(period: Any) -> dict[str, Any]:
    return {"indicator": "sma", "period": period}


PARAMETERISED: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "params": {"fast": 10, "slow": 50, "stop": 0.08},
    "entry": {
        "all": [{"left": sma({"param": "fast"}), "op": "crosses_above", "right": sma({"param": "slow"})}]
    },
    "exit": {
        "any": [{"left": sma({"param": "fast"}), "op": "crosses_below", "right": sma({"param": "slow"})}]
    },
    "stop_loss_ratio": {"param": "stop"},
    "take_profit_ratio": None,
    "trailing_stop_ratio": None,
    "max_holding_days": None,
    "sizing": {"method": "equity_fraction", "value": 1.0},
    "fee_rate": 0.001,
    "slippage_ratio": 0.0,
}


def as_post(builder: Builder) -> dict[str, str]:
    """What the browser posts for a builder as the form draws it: every input of every row and parameter."""
    data = dict(builder.fields)
    for group, rows in builder.rows.items():
        data[f"{group}_next"] = str(builder.next_keys[group])
        for row in rows:
            data[f"{row.prefix}-op"] = row.op
            for operand in (row.left, row.right):
                data[f"{operand.prefix}indicator"] = operand.indicator
                for field in operand.inputs():
                    data[field.input_name] = field.value
    for n, param in enumerate(builder.params):
        data.update(
            {f"param-{n}-name": param.name, f"param-{n}-value": param.value, f"param-{n}-old": param.old}
        )
    data[f"param-{len(builder.params)}-name"] = ""  # the empty "new parameter" row
    data[f"param-{len(builder.params)}-value"] = ""
    return data


def test_a_document_with_parameters_round_trips_through_the_builder() -> None:
    builder = builder_from_criteria(copy.deepcopy(PARAMETERISED))

    assert builder.representable
    # The fields a parameter controls show its name; the percent field too.
    assert builder.entry_rows[0].left.values["period"] == "$fast"
    assert builder.exit_rows[0].right.values["period"] == "$slow"
    assert builder.fields["stop_loss_pct"] == "$stop"
    assert [(p.name, p.value) for p in builder.params] == [("fast", "10"), ("slow", "50"), ("stop", "0.08")]
    normalised = criteria_parse(PARAMETERISED).document
    assert builder.to_criteria() == normalised
    assert builder_from_data(as_post(builder)).to_criteria() == normalised


def test_make_this_a_parameter_then_share_it_and_rename_it() -> None:
    builder = builder_from_criteria(criteria_resolve(PARAMETERISED))
    assert builder.params == []

    assert builder.make_param("entry-0-left_period") == "sma_period"
    assert builder.make_param("entry-0-right_period") == "sma_period_2"
    assert builder.make_param("stop_loss_pct") == "stop_loss"  # 8 % in the form: the parameter holds 0.08
    assert builder.make_param("entry-0-left_period") == "sma_period"  # already one: nothing new
    assert builder.make_param("entry-0-left_source") is None  # not a number field
    assert builder.make_param("take_profit_pct") is None  # empty: nothing to start from
    assert builder.errors["take_profit_pct"] == ["type a number first, then make it a parameter"]
    builder.errors.clear()

    data = as_post(builder)
    assert data["entry-0-left_period"] == "$sma_period"
    assert data["stop_loss_pct"] == "$stop_loss"
    # The exit picks the same parameters; the user renames them to fast and slow in their rows.
    data["exit-0-left_period"], data["exit-0-right_period"] = "$sma_period", "$sma_period_2"
    data["param-0-name"], data["param-1-name"] = "fast", "slow"

    document = builder_from_data(data).to_criteria()

    assert document["params"] == {"fast": 10, "slow": 50, "stop_loss": 0.08}
    assert document["entry"]["all"][0]["left"]["period"] == {"param": "fast"}
    assert document["exit"]["any"][0]["right"]["period"] == {"param": "slow"}
    assert document["stop_loss_ratio"] == {"param": "stop_loss"}
    assert criteria_parse(document) == criteria_parse(PARAMETERISED)


def test_parameter_errors_are_shown_on_the_fields_and_the_parameter_rows() -> None:
    builder = builder_from_criteria(copy.deepcopy(PARAMETERISED))
    data = as_post(builder)
    data["param-0-value"] = "0"  # fast 0
    data["param-3-name"], data["param-3-value"] = "unused", "3"
    builder = builder_from_data(data)

    left_over = builder.place_errors(
        [f"{path}: {message}" for path, message in _errors(builder.to_criteria())]
    )

    assert left_over == []
    assert [p.errors for p in builder.params if p.name == "unused"] == [
        ['is never used; refer to it as {"param": "unused"} or remove it']
    ]
    # Unused is reported first (the parameters are wrong); once it is removed, fast 0 is reported on the fields.
    del data["param-3-name"], data["param-3-value"]
    builder = builder_from_data(data)
    builder.place_errors([f"{path}: {message}" for path, message in _errors(builder.to_criteria())])
    assert builder.entry_rows[0].left.errors == {"period": ['parameter "fast" is 0; must be an integer >= 1']}
    assert builder.exit_rows[0].left.errors == {"period": ['parameter "fast" is 0; must be an integer >= 1']}


def _errors(document: dict[str, Any]) -> list[tuple[str, str]]:
    from trading.engine.criteria import CriteriaError

    with pytest.raises(CriteriaError) as raised:
        criteria_parse(document)
    return raised.value.errors


def test_the_make_parameter_button_redraws_the_builder_and_the_sweep_fields() -> None:
    client = Client()
    client.force_login(user_with("trader"))
    data = as_post(builder_from_criteria(criteria_resolve(PARAMETERISED)))

    page = client.post(
        "/simulator/builder/param/", {**data, "make_param": "entry-0-left_period"}
    ).content.decode()

    assert 'name="param-0-name" value="sma_period"' in page
    assert 'name="param-0-value" value="10"' in page
    assert 'name="entry-0-left_period" value="$sma_period"' in page
    assert '<option value="$sma_period"></option>' in page  # other fields can pick it
    assert 'id="sweep-axes" hx-swap-oob="true"' in page
    assert '<option value="params.sma_period">sma_period (parameter)</option>' in page
    assert 'class="errors"' not in page  # the rest of the form is not checked while editing


def test_the_form_page_draws_a_parameterised_run_in_the_builder(
    client: Client, django_user_model: type[User]
) -> None:
    client.force_login(user_with("trader"))
    strategy = StrategyFactory.create(criteria=copy.deepcopy(PARAMETERISED))

    page = client.get(f"/simulator/?strategy={strategy.pk}").content.decode()

    assert "The builder cannot show these criteria" not in page
    assert 'name="entry-0-left_period" value="$fast"' in page
    assert 'name="stop_loss_pct" id="id_stop_loss_pct" value="$stop"' in page
    assert '<option value="params.fast">fast (parameter)</option>' in page
    assert '<option value="params.stop">stop (parameter, %)</option>' in page


def test_the_admin_shows_the_parameters_after_the_side_and_saves_them(client: Client) -> None:
    client.force_login(User.objects.create_superuser("boss", password="unused-password-123"))
    strategy = StrategyFactory.create(criteria=copy.deepcopy(PARAMETERISED))

    html = client.get(f"/admin/trading/strategy/{strategy.pk}/change/").content.decode()

    assert "&quot;side&quot;: &quot;long&quot;,\n  &quot;params&quot;: {\n    &quot;fast&quot;: 10," in html
    assert "&quot;period&quot;: {\n" in html and "&quot;param&quot;: &quot;fast&quot;" in html


def test_the_strategies_api_takes_parameters_and_names_their_errors() -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    api = token_client(user_with("editor", *STRATEGY_EDITOR))
    body = {"name": "crossover", "criteria": PARAMETERISED, "instruments": [bitcoin.coingecko_id]}

    created = api.post("/api/strategies/", body, format="json")

    assert created.status_code == 201, created.json()
    assert created.json()["criteria"]["params"] == {"fast": 10, "slow": 50, "stop": 0.08}
    strategy = Strategy.objects.get(name="crossover")
    # What the live cycle runs: the parsed criteria, with the parameters substituted.
    assert strategy.parsed_criteria() == criteria_parse(criteria_resolve(PARAMETERISED))
    bad = json.loads(json.dumps(PARAMETERISED))
    bad["entry"]["all"][0]["right"]["period"] = {"param": "slwo"}
    refused = api.post("/api/strategies/", {**body, "name": "typo", "criteria": bad}, format="json")
    assert refused.status_code == 400
    assert refused.json()["criteria"] == [
        'entry.all[0].right.period: unknown parameter "slwo"; the parameters are fast, slow, stop'
    ]
