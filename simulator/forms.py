"""The simulator's forms: the run and sweep form around the criteria builder (:mod:`simulator.builder`), and
"save as strategy". Percent in the form, ratios inside (:mod:`simulator.builder.conversions`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from django import forms

from instruments.models import Timeframe
from simulator.builder.conversions import DEFAULT_CRITERIA, SIZING_OPTIONS, path_is_percent
from simulator.builder.reading import builder_from_criteria, builder_from_data
from simulator.builder.rows import Builder
from simulator.display import percent_text
from simulator.models import STARTING_CASH_DEFAULT
from simulator.services.deploy import run_reference
from simulator.services.monte_carlo import DEFAULT_DRAWDOWN_LIMIT_RATIO, MAX_SEED
from simulator.services.requests import SimulationInputError, SimulationRequest, simulation_request_check
from simulator.services.sweeps import sweep_constraints_check
from trading.engine.criteria import SIZING_METHODS
from trading.engine.deploy import RULES as DEPLOY_RULES
from trading.engine.limits import MAX_DEPTH, criteria_limits_check, json_depth
from trading.engine.monte_carlo import DEFAULT_PATHS, MAX_PATHS
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS, STATISTICS_KEYS
from trading.engine.walk_forward import MAX_RADIUS, RULES

# The builder offers the sizing methods without a stop; risk-based sizing ({"method": "risk", "stop": ...}) and
# risk limits are written in the criteria's JSON (docs/criteria.md), which the form runs as it is.
assert {m for m, _ in SIZING_OPTIONS} == set(SIZING_METHODS) - {"risk"}  # noqa: S101 - one list of methods


#: The deepest nesting of objects and lists a pasted criteria document may have: the engine's one limit.
MAX_JSON_DEPTH = MAX_DEPTH


def read_json(text: str) -> tuple[Any, str]:
    """Decode a pasted criteria document.

    Returns:
        ``(document, "")``, or ``(None, problem)`` with a message for the JSON box: where the JSON is malformed,
        or that it nests deeper than :data:`MAX_JSON_DEPTH`.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    except RecursionError:
        return None, f"nested more than {MAX_JSON_DEPTH} levels deep; simplify the criteria"
    if json_depth(document, stop_after=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, f"nested more than {MAX_JSON_DEPTH} levels deep; simplify the criteria"
    return document, ""


SWEEP_AXES = (1, 2)


class SimulatorForm(forms.Form):
    """The simulator form: instruments, dates, timeframe (``1d`` by default; only one stored for every chosen
    instrument is valid), cash, the criteria (builder or JSON box) and the sweep section.

    Bind it to the POST data; :meth:`is_valid` runs the builder and :func:`simulator.services.
    simulation_request_check`, and puts each error next to its field: Django's fields in ``errors``, the
    builder's in ``builder``. When valid, :attr:`simulation_request` is the checked request, and for a sweep
    (``action=sweep``) :attr:`sweep_axes` the axes in the criteria's units and :attr:`sweep_constraint_rules`
    the checked constraints between parameters (``["fast < slow"]``).
    """

    RUN = "run"
    SWEEP = "sweep"
    WALK_FORWARD = "walk_forward"

    name = forms.CharField(max_length=200, required=False)
    instruments = forms.Field(required=False, widget=forms.SelectMultiple)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    timeframe = forms.ChoiceField(choices=Timeframe.choices, required=False, initial=Timeframe.D1)
    starting_cash = forms.DecimalField(required=False, initial=STARTING_CASH_DEFAULT)
    advanced = forms.BooleanField(required=False)
    criteria_json = forms.CharField(required=False, widget=forms.Textarea)
    source_strategy = forms.IntegerField(required=False, widget=forms.HiddenInput)
    action = forms.ChoiceField(
        choices=[(RUN, RUN), (SWEEP, SWEEP), (WALK_FORWARD, WALK_FORWARD)], required=False
    )
    sweep_path_1 = forms.CharField(required=False)
    sweep_start_1 = forms.DecimalField(required=False)
    sweep_stop_1 = forms.DecimalField(required=False)
    sweep_step_1 = forms.DecimalField(required=False)
    sweep_path_2 = forms.CharField(required=False)
    sweep_start_2 = forms.DecimalField(required=False)
    sweep_stop_2 = forms.DecimalField(required=False)
    sweep_step_2 = forms.DecimalField(required=False)
    sweep_constraints = forms.CharField(required=False, max_length=2000, widget=forms.Textarea)
    sweep_statistic = forms.ChoiceField(
        choices=[(key, key) for key in STATISTICS_KEYS], required=False, initial=HEADLINE_STATISTIC
    )

    # The walk-forward's windows and rule (action=walk_forward; the grid is the sweep section's).
    wf_train_days = forms.IntegerField(required=False, min_value=1, initial=365)
    wf_test_days = forms.IntegerField(required=False, min_value=1, initial=90)
    wf_step_days = forms.IntegerField(required=False, min_value=1)
    wf_anchored = forms.BooleanField(required=False)
    wf_rule = forms.ChoiceField(choices=[(rule, rule) for rule in RULES], required=False, initial="best")
    wf_radius = forms.IntegerField(required=False, min_value=0, max_value=MAX_RADIUS, initial=1)

    def __init__(self, data: Any = None, *, builder: Builder | None = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        if builder is None:
            builder = builder_from_data(data) if data is not None else builder_from_criteria(DEFAULT_CRITERIA)
        self.builder = builder
        self.simulation_request: SimulationRequest | None = None
        self.sweep_axes: list[dict[str, Any]] = []
        self.sweep_constraint_rules: list[str] = []

    @property
    def uses_json(self) -> bool:
        """True when the JSON box wins over the builder: the advanced toggle is on and the box is not empty."""
        return bool(self._value("advanced")) and bool(str(self._value("criteria_json") or "").strip())

    def _value(self, name: str) -> Any:
        if self.is_bound:
            return self[name].data
        return self.initial.get(name, self.fields[name].initial)

    def criteria(self) -> tuple[Any, bool]:
        """The criteria document the form asks for, and whether it could be read (a malformed JSON paste is a
        ``criteria_json`` error and gives ``(None, False)``)."""
        if not self.uses_json:
            return self.builder.to_criteria(), True
        document, problem = read_json(str(self._value("criteria_json")))
        if problem:
            self.add_error("criteria_json", problem)
            return None, False
        return document, True

    @property
    def is_sweep(self) -> bool:
        """True when the sweep or the walk-forward button was pressed (both read the sweep section's grid)."""
        return bool(self._value("action") in (self.SWEEP, self.WALK_FORWARD))

    @property
    def is_walk_forward(self) -> bool:
        """True when the walk-forward button was pressed."""
        return bool(self._value("action") == self.WALK_FORWARD)

    def clean(self) -> dict[str, Any]:
        """Check the whole request with the simulator's service and place every problem next to its field."""
        cleaned = super().clean() or {}
        criteria, readable = self.criteria()
        try:
            self.simulation_request = simulation_request_check(
                instruments=[str(i) for i in (cleaned.get("instruments") or []) if str(i).strip()],
                start=cleaned.get("start"),
                end=cleaned.get("end"),
                timeframe=cleaned.get("timeframe") or Timeframe.D1,
                starting_cash=cleaned.get("starting_cash"),
                criteria=criteria if readable else {},
            )
        except SimulationInputError as exc:
            errors = dict(exc.errors)
            if not readable:
                errors.pop("criteria", None)
            self.place_errors(errors)
        if self.is_walk_forward:
            for name in ("wf_train_days", "wf_test_days"):
                if cleaned.get(name) is None and name not in self.errors:
                    self.add_error(name, "required for a walk-forward")
        if self.is_sweep and readable:
            self.sweep_axes = self._axes(criteria)
            try:
                self.sweep_constraint_rules = sweep_constraints_check(
                    criteria, cleaned.get("sweep_constraints") or ""
                )
            except SimulationInputError as exc:
                self.place_errors(exc.errors)
        return cleaned

    def _axes(self, criteria: Any) -> list[dict[str, Any]]:
        axes = []
        for n in SWEEP_AXES:
            path = (self.cleaned_data.get(f"sweep_path_{n}") or "").strip()
            if not path:
                continue
            numbers = {}
            for part in ("start", "stop", "step"):
                name = f"sweep_{part}_{n}"
                value = self.cleaned_data.get(name)
                if value is None:
                    if name not in self.errors:
                        self.add_error(name, "required")
                    continue
                percent = isinstance(criteria, Mapping) and path_is_percent(path, criteria)
                numbers[part] = float(value / 100) if percent else float(value)
            if len(numbers) == 3:
                axes.append({"path": path, **numbers})
        if not axes and "sweep_path_1" not in self.errors:
            self.add_error("sweep_path_1", "choose a field of the criteria to sweep")
        return axes

    def place_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Put a :class:`~simulator.services.SimulationInputError`'s ``errors`` next to their fields.

        ``criteria`` messages go to the builder row or field their path names (or, when the JSON box is used or
        no builder field matches, under the JSON box); ``axes`` and ``statistic`` to the sweep section; a field
        that already shows an error (a date Django could not read) is not given a second one.
        """
        for key, messages in errors.items():
            if key == "criteria":
                left_over = list(messages) if self.uses_json else self.builder.place_errors(list(messages))
                for message in left_over:
                    self.add_error("criteria_json", message)
            elif key == "axes":
                for message in messages:
                    match = re.match(r"^axes\[(\d)\](?:\.\w+)?: (.*)$", message, re.S)
                    n = int(match.group(1)) + 1 if match and int(match.group(1)) < len(SWEEP_AXES) else 1
                    self.add_error(f"sweep_path_{n}", match.group(2) if match else message)
            elif key == "constraints":
                for message in messages:
                    self.add_error("sweep_constraints", message)
            elif key == "statistic":
                for message in messages:
                    self.add_error("sweep_statistic", message)
            elif f"wf_{key}" in self.fields:
                for message in messages:
                    self.add_error(f"wf_{key}", message)
            elif key in self.fields:
                if key not in self.errors:
                    for message in messages:
                        self.add_error(key, message)
            else:
                for message in messages:
                    self.add_error(None, f"{key}: {message}")

    def sweep_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Place the errors of :func:`simulator.services.sweep_create`: a grid point's invalid criteria (the
        base criteria are valid) is a problem of the sweep, shown in its section."""
        rest = {key: value for key, value in errors.items() if key != "criteria"}
        for message in errors.get("criteria", []):
            self.add_error("sweep_path_1", message)
        self.place_errors(rest)

    def json_text(self) -> str:
        """The text of the JSON box: what the user typed, or the builder's document."""
        typed = str(self._value("criteria_json") or "")
        if typed.strip():
            return typed
        return json.dumps(self.builder.to_criteria(), indent=2)

    def criteria_for_paths(self) -> Any:
        """The document whose numbers the sweep section lists (the JSON box's when used and readable)."""
        if self.uses_json:
            document, problem = read_json(str(self._value("criteria_json")))
            if not problem:
                # A document over the limits is refused: listing its numbers would be megabytes of options.
                return {} if criteria_limits_check(document) else document
        return self.builder.to_criteria()


class SaveStrategyForm(forms.Form):
    """The "save as strategy" form of a result page: the new strategy's name."""

    name = forms.CharField(max_length=100)


class MonteCarloForm(forms.Form):
    """The run page's "Monte Carlo of the trades" form (GET, prefix ``mc``): method, paths, seed and the drawdown
    limit in percent (the engine's ``drawdown_limit_ratio`` is :attr:`drawdown_limit_ratio`). Unbound, it holds the
    defaults the page draws with."""

    method = forms.ChoiceField(
        choices=[
            ("reshuffle", "reshuffle (trade order)"),
            ("bootstrap", "bootstrap (draw with replacement)"),
        ],
        initial="reshuffle",
    )
    paths = forms.IntegerField(min_value=1, max_value=MAX_PATHS, initial=DEFAULT_PATHS)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, initial=0)
    drawdown_limit_pct = forms.DecimalField(
        label="Drawdown limit (%)",
        max_digits=8,
        decimal_places=4,
        initial=Decimal(percent_text(DEFAULT_DRAWDOWN_LIMIT_RATIO)),  # 30, not 30.0
        help_text="The chance of a drawdown beyond it.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "mc")
        super().__init__(*args, **kwargs)

    def clean_drawdown_limit_pct(self) -> Decimal:
        value: Decimal = self.cleaned_data["drawdown_limit_pct"]
        if not 0 < value < 100:
            raise forms.ValidationError(f"must be above 0 and below 100 (percent); was {value}")
        return value

    @property
    def parameters(self) -> dict[str, Any]:
        """The engine's keyword arguments: the cleaned data when bound and valid, else the defaults."""
        data = (
            self.cleaned_data
            if self.is_bound
            else {name: field.initial for name, field in self.fields.items()}
        )
        return {
            "method": data["method"],
            "paths": int(data["paths"]),
            "seed": int(data["seed"]),
            "drawdown_limit_ratio": float(data["drawdown_limit_pct"]) / 100,
        }


#: The statistics "Deploy winners" may weigh by: those where higher is better (a winner is above the threshold).
DEPLOY_STATISTICS = [(s.key, s.label) for s in STATISTICS if s.higher_is_better and s.ranked]


class DeployForm(forms.Form):
    """The "Deploy winners" form of a portfolio (``/simulator/deploy/<id>/``): a run per member
    (``run_<member id>``: ``simulation:<id>``, ``walk_forward:<id>``, or empty for "no run: weight unchanged"),
    the rule, the statistic and the threshold; ``token`` is the Confirm button's signed proposal.

    Args:
        data: the POST, or None for the blank form.
        members: the portfolio's members with their strategies, in order.
        offered: member id -> the runs offered for it (:func:`simulator.selectors.deploy_runs_offered`).
    """

    rule = forms.ChoiceField(choices=list(DEPLOY_RULES.items()), initial="winners")
    statistic = forms.ChoiceField(choices=DEPLOY_STATISTICS, initial="sharpe_ratio")
    threshold = forms.FloatField(
        initial=0.0,
        help_text="winners: a member is a winner when its statistic is above this (in the statistic's unit: "
        "0.05 for a 5 % return ratio).",
    )
    token = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(
        self,
        data: Any = None,
        *,
        members: Sequence[Any],
        offered: Mapping[int, Sequence[Any]],
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.members = list(members)
        self.offered = {
            member.pk: {run_reference(run): run for run in offered.get(member.pk, [])}
            for member in self.members
        }
        for member in self.members:
            runs = self.offered[member.pk]
            self.fields[f"run_{member.pk}"] = forms.ChoiceField(
                label=member.strategy.name,
                required=False,
                choices=[("", "no run: weight unchanged")]
                + [(ref, _run_label(run)) for ref, run in runs.items()],
                initial=next(iter(runs), ""),  # the newest simulation of the strategy, when there is one
            )

    def run_fields(self) -> list[tuple[Any, Any]]:
        """``[(member, bound field), ...]`` in the members' order, for the template."""
        return [(member, self[f"run_{member.pk}"]) for member in self.members]

    def runs_chosen(self) -> dict[int, Any]:
        """Member id -> the chosen run (a ``Simulation`` or ``WalkForward`` loaded in full), or None; call after
        :meth:`is_valid`."""
        chosen: dict[int, Any] = {}
        for member in self.members:
            ref = self.cleaned_data.get(f"run_{member.pk}") or ""
            run = self.offered[member.pk].get(ref)
            chosen[member.pk] = None if run is None else type(run).objects.get(pk=run.pk)
        return chosen

    def place_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Put a service's ``{field: [message]}`` (:class:`~simulator.services.deploy.DeployInputError`) on the
        form's fields (``__all__`` and unknown names on the form itself)."""
        for name, messages in errors.items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)


def _run_label(run: Any) -> str:
    kind = "simulation" if run_reference(run).startswith("simulation:") else "walk-forward (out of sample)"
    name = run.name or f"#{run.pk}"
    return f"{kind} {name} ({run.start:%Y-%m-%d} to {run.end:%Y-%m-%d})"
