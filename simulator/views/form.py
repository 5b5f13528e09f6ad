"""The simulator's form page and its htmx fragments (a new condition row, the criteria JSON, sweep paths).

Views parse the request, call one service or selector and render (style guide rule 1). Every page needs a
logged-in user (``LOGIN_URL`` is the admin login) and shows only that user's runs (all of them to a superuser);
someone else's run is a 404. Form errors are shown next to their fields with status 200, so htmx swaps them in.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from instruments.models import Instrument
from simulator.builder.conversions import (
    COMPARISON_OPTIONS,
    GROUPS,
    INDICATOR_OPTIONS,
    NEW_ROW,
    SIZING_OPTIONS,
    numeric_paths,
)
from simulator.builder.reading import builder_from_criteria
from simulator.builder.rows import condition_row
from simulator.forms import SWEEP_AXES, SimulatorForm
from simulator.launch import TaskQueueUnavailableError, simulation_start, sweep_start, walk_forward_start
from simulator.models import STARTING_CASH_DEFAULT
from simulator.selectors import (
    InstrumentSpan,
    default_selection,
    instrument_spans,
    simulations_for,
)
from simulator.services.inline import SimulatorBusyError
from simulator.services.requests import SimulationInputError
from simulator.services.sweeps import sweep_create
from simulator.services.walk_forwards import walk_forward_create
from trading.engine.indicators import PRICE_FIELDS
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS
from trading.models import Strategy


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that htmx follows as a full page load (``HX-Redirect``), or a plain 302."""
    if _is_htmx(request):
        response = HttpResponse(status=200)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)


def _amount_text(value: Decimal) -> str:
    """A stored amount as the form shows it: ``10000.000000000000000000`` -> ``10000``."""
    return format(value.normalize(), "f")


def int_or_none(value: Any) -> int | None:
    """``value`` as an int (a query or form parameter such as ``"12"``), or None when it is not one."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


#: What every template drawing condition rows needs.
ROW_CONTEXT = {
    "indicator_options": INDICATOR_OPTIONS,
    "comparison_options": COMPARISON_OPTIONS,
    "sources": PRICE_FIELDS,
}


def _sweep_context(form: SimulatorForm, *, with_errors: bool = True) -> dict[str, Any]:
    """The sweep section: the numeric fields of the current criteria, and each axis as typed, with its errors
    (``with_errors=False`` leaves the form unvalidated and shows none)."""
    errors: Any = form.errors if with_errors else {}
    paths = numeric_paths(form.criteria_for_paths())
    known = {path for path, _ in paths}
    axes = []
    for n in SWEEP_AXES:
        chosen = str(form[f"sweep_path_{n}"].value() or "")
        parts: list[dict[str, Any]] = [
            {
                "name": f"sweep_{part}_{n}",
                "label": part,
                "value": form[f"sweep_{part}_{n}"].value() or "",
                "errors": errors.get(f"sweep_{part}_{n}", []),
            }
            for part in ("start", "stop", "step")
        ]
        axes.append(
            {
                "n": n,
                "path": chosen if chosen in known else "",
                "path_name": f"sweep_path_{n}",
                "path_errors": errors.get(f"sweep_path_{n}", []),
                "parts": parts,
            }
        )
    return {"sweep_paths": paths, "sweep_axes": axes}


def _form_context(
    request: HttpRequest, form: SimulatorForm, notice: str = "", spans: list[InstrumentSpan] | None = None
) -> dict[str, Any]:
    chosen = form["instruments"].value() or []
    return {
        **ROW_CONTEXT,
        **_sweep_context(form),
        "form": form,
        "builder": form.builder,
        "spans": instrument_spans() if spans is None else spans,
        "chosen_instruments": {str(i) for i in chosen},
        "strategies": Strategy.objects.order_by("name").only("id", "name"),
        "chosen_strategy": form["source_strategy"].value(),
        "sizing_options": SIZING_OPTIONS,
        "statistics": [(statistic.key, statistic.label) for statistic in STATISTICS],
        "sweep_statistic": form["sweep_statistic"].value() or HEADLINE_STATISTIC,
        "json_text": form.json_text(),
        "notice": notice,
    }


def _initial_form(request: HttpRequest, spans: list[InstrumentSpan]) -> tuple[SimulatorForm, str]:
    """The form of a GET: the defaults, or filled from a previous run (``?from=``) or a strategy (``?strategy=``)."""
    ids, start, end = default_selection(spans)
    initial: dict[str, Any] = {
        "instruments": [str(i) for i in ids],
        "start": start,
        "end": end,
        "starting_cash": STARTING_CASH_DEFAULT,
    }
    criteria: Any = None
    notice = ""
    if "from" in request.GET:
        simulation = (
            simulations_for(request.user)
            .prefetch_related(Prefetch("instruments", queryset=Instrument.objects.order_by("symbol", "pk")))
            .filter(pk=int_or_none(request.GET["from"]) or 0)
            .first()
        )
        if simulation is None:
            notice = f"There is no run {request.GET['from']} of yours; the form shows the defaults."
        else:
            criteria = simulation.criteria
            initial.update(
                instruments=[str(i.pk) for i in simulation.instruments.all()],
                start=simulation.start,
                end=simulation.end,
                timeframe=simulation.timeframe,
                starting_cash=_amount_text(simulation.starting_cash),
                name=simulation.name,
                source_strategy=simulation.source_strategy_id,
            )
            notice = f"Filled from run {simulation.pk} ({simulation})."
    elif request.GET.get("strategy"):
        strategy = (
            Strategy.objects.prefetch_related("instruments")
            .filter(pk=int_or_none(request.GET["strategy"]) or 0)
            .first()
        )
        if strategy is None:
            notice = f"There is no strategy {request.GET['strategy']}; the form shows the defaults."
        else:
            criteria = strategy.criteria
            chosen = [str(i.pk) for i in strategy.instruments.all()]
            initial.update(
                instruments=chosen or initial["instruments"],
                starting_cash=_amount_text(strategy.starting_cash),
                name=strategy.name,
                source_strategy=strategy.pk,
            )
            notice = f"Filled from strategy {strategy.name}."
    builder = None if criteria is None else builder_from_criteria(criteria)
    if builder is not None and not builder.representable:
        initial.update(advanced=True, criteria_json=json.dumps(criteria, indent=2))
        notice += (
            " The builder cannot show these criteria (nested groups, or fields it has no input for);"
            " they are in the JSON box, which is used."
        )
    return SimulatorForm(initial=initial, builder=builder), notice.strip()


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def simulator_form(request: HttpRequest) -> HttpResponse:
    """``/simulator/``: the form. GET shows it (``?from=<run id>`` or ``?strategy=<id>`` fill it); POST runs
    the simulation (or, with ``action=sweep``, starts a sweep; with ``action=walk_forward``, a walk-forward of the
    sweep section's grid) and redirects to its page, or shows the form
    again with every error next to its field. An htmx POST gets the form alone, or ``HX-Redirect``."""
    if request.method != "POST":
        spans = instrument_spans()
        form, notice = _initial_form(request, spans)
        return render(request, "simulator/form.html", _form_context(request, form, notice, spans))
    form = SimulatorForm(request.POST)
    if form.is_valid() and form.simulation_request is not None:
        source = form.cleaned_data.get("source_strategy")
        strategy = Strategy.objects.filter(pk=source).first() if source else None
        if form.is_walk_forward:
            try:
                record = walk_forward_create(
                    request=form.simulation_request,
                    axes=form.sweep_axes,
                    constraints=form.sweep_constraint_rules,
                    statistic=form.cleaned_data.get("sweep_statistic") or HEADLINE_STATISTIC,
                    rule=form.cleaned_data.get("wf_rule") or "best",
                    radius=1
                    if form.cleaned_data.get("wf_radius") is None
                    else form.cleaned_data["wf_radius"],
                    anchored=bool(form.cleaned_data.get("wf_anchored")),
                    train_days=form.cleaned_data.get("wf_train_days"),
                    test_days=form.cleaned_data.get("wf_test_days"),
                    step_days=form.cleaned_data.get("wf_step_days"),
                    created_by=request.user,
                    name=form.cleaned_data.get("name") or "",
                )
            except SimulationInputError as exc:
                form.sweep_errors(exc.errors)
            else:
                try:
                    walk_forward_start(walk_forward=record)
                except TaskQueueUnavailableError as exc:
                    return _queue_unavailable(request, form, exc)
                return _redirect(request, reverse("simulator:walk_forward", args=[record.pk]))
        elif form.is_sweep:
            try:
                sweep = sweep_create(
                    request=form.simulation_request,
                    axes=form.sweep_axes,
                    statistic=form.cleaned_data.get("sweep_statistic") or HEADLINE_STATISTIC,
                    created_by=request.user,
                    name=form.cleaned_data.get("name") or "",
                    constraints=form.sweep_constraint_rules,
                )
            except SimulationInputError as exc:
                form.sweep_errors(exc.errors)
            else:
                try:
                    sweep_start(sweep=sweep)
                except TaskQueueUnavailableError as exc:
                    return _queue_unavailable(request, form, exc)
                return _redirect(request, reverse("simulator:sweep", args=[sweep.pk]))
        else:
            try:
                simulation = simulation_start(
                    request=form.simulation_request,
                    created_by=request.user,
                    name=form.cleaned_data.get("name") or "",
                    source_strategy=strategy,
                )
            except (TaskQueueUnavailableError, SimulatorBusyError) as exc:
                return _queue_unavailable(request, form, exc)
            return _redirect(request, reverse("simulator:run", args=[simulation.pk]))
    template = "simulator/_form.html" if _is_htmx(request) else "simulator/form.html"
    return render(request, template, _form_context(request, form))


def _queue_unavailable(
    request: HttpRequest, form: SimulatorForm, exc: TaskQueueUnavailableError | SimulatorBusyError
) -> HttpResponse:
    """The form again, with the queue's error above it: 503 for a plain POST; 200 for htmx, which swaps no
    error response (the message is what the user must see)."""
    form.add_error(None, exc.message)
    if _is_htmx(request):
        return render(request, "simulator/_form.html", _form_context(request, form))
    return render(request, "simulator/form.html", _form_context(request, form), status=503)


@require_safe
@login_required
def condition_row_new(request: HttpRequest) -> HttpResponse:
    """``/simulator/rows/new/?group=entry&entry_next=3``: one new condition row (htmx appends it to the group),
    and the group's next key out of band."""
    group = request.GET.get("group", "")
    key = int_or_none(request.GET.get(f"{group}_next"))
    if group not in GROUPS or key is None or not 0 <= key < 10_000:
        return HttpResponseBadRequest("group must be entry or exit, and <group>_next a number below 10000")
    return render(
        request,
        "simulator/_new_row.html",
        {
            **ROW_CONTEXT,
            "row": condition_row(group, key, NEW_ROW),
            "group": group,
            "next_key": key + 1,
        },
    )


@require_POST
@login_required
def criteria_json(request: HttpRequest) -> HttpResponse:
    """``/simulator/criteria/``: the JSON box filled with the builder's criteria document (htmx, posted form)."""
    form = SimulatorForm(request.POST)
    text = json.dumps(form.builder.to_criteria(), indent=2)
    return render(request, "simulator/_criteria_json.html", {"form": form, "json_text": text})


@require_POST
@login_required
def sweep_paths(request: HttpRequest) -> HttpResponse:
    """``/simulator/sweep-paths/``: the sweep's field selects, listing the numbers of the current criteria and
    keeping what was chosen (htmx, posted form)."""
    return render(request, "simulator/_sweep_axes.html", _sweep_context(SimulatorForm(request.POST)))


@require_POST
@login_required
def builder_param(request: HttpRequest) -> HttpResponse:
    """``/simulator/builder/param/``: make a number field of the builder a named parameter (``make_param``: the
    field's POST name, e.g. ``entry-0-left_period``) and draw the builder again (htmx swaps it into
    ``#criteria-builder``), with the sweep's field selects out of band so they list the new parameter. The rest of
    the form is not checked: errors are for the run."""
    form = SimulatorForm(request.POST)
    form.builder.make_param(str(request.POST.get("make_param", "")))
    return render(
        request,
        "simulator/_builder_param.html",
        {
            **ROW_CONTEXT,
            **_sweep_context(form, with_errors=False),
            "form": form,
            "builder": form.builder,
            "sizing_options": SIZING_OPTIONS,
            "oob": True,
        },
    )
