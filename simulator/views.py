"""Pages of the simulator: the form, a run's result, the list and comparison of runs, sweeps.

Views parse the request, call one service or selector and render (style guide rule 1). Every page needs a
logged-in user (``LOGIN_URL`` is the admin login) and shows only that user's runs (all of them to a superuser);
someone else's run is a 404. Form errors are shown next to their fields with status 200, so htmx swaps them in.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from instruments.models import Instrument
from simulator.api import csv_response
from simulator.builder.conversions import (
    COMPARISON_OPTIONS,
    GROUPS,
    INDICATOR_OPTIONS,
    NEW_ROW,
    SIZING_OPTIONS,
    numeric_paths,
)
from simulator.builder.rows import builder_from_criteria, condition_row
from simulator.display import quote_currency, statistic_label
from simulator.forms import SWEEP_AXES, SaveStrategyForm, SimulatorForm
from simulator.launch import TaskQueueUnavailableError, simulation_start, sweep_start
from simulator.models import STARTING_CASH_DEFAULT, RunStatus, Simulation, Sweep, SweepPoint
from simulator.presenters import (
    TRADE_COLUMNS,
    Cell,
    chart_data,
    compare_chart_data,
    compare_rows,
    listed_runs,
    statistics_rows,
    sweep_heatmap,
    trade_rows,
)
from simulator.selectors import (
    InstrumentSpan,
    default_selection,
    instrument_spans,
    simulation_candles,
    simulation_for_page,
    simulations_compared,
    simulations_for,
    simulations_listed,
    sweeps_for,
)
from simulator.services.inline import SimulatorBusyError
from simulator.services.requests import SimulationInputError
from simulator.services.simulations import (
    simulation_equity_csv,
    simulation_to_strategy,
    simulation_trades_csv,
)
from simulator.services.sweeps import sweep_create, sweep_point_simulation
from trading.engine.indicators import PRICE_FIELDS
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS
from trading.models import Strategy

#: Runs on one page of the list.
RUNS_PER_PAGE = 50


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


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


# The form --------------------------------------------------------------------------------------------------


#: What every template drawing condition rows needs.
ROW_CONTEXT = {
    "indicator_options": INDICATOR_OPTIONS,
    "comparison_options": COMPARISON_OPTIONS,
    "sources": PRICE_FIELDS,
}


def _sweep_context(form: SimulatorForm) -> dict[str, Any]:
    """The sweep section: the numeric fields of the current criteria, and each axis as typed, with its errors."""
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
                "errors": form.errors.get(f"sweep_{part}_{n}", []),
            }
            for part in ("start", "stop", "step")
        ]
        axes.append(
            {
                "n": n,
                "path": chosen if chosen in known else "",
                "path_name": f"sweep_path_{n}",
                "path_errors": form.errors.get(f"sweep_path_{n}", []),
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
            .filter(pk=_int(request.GET["from"]) or 0)
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
                starting_cash=_amount_text(simulation.starting_cash),
                name=simulation.name,
                source_strategy=simulation.source_strategy_id,
            )
            notice = f"Filled from run {simulation.pk} ({simulation})."
    elif request.GET.get("strategy"):
        strategy = (
            Strategy.objects.prefetch_related("instruments")
            .filter(pk=_int(request.GET["strategy"]) or 0)
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
    the simulation (or, with ``action=sweep``, starts a sweep) and redirects to its page, or shows the form
    again with every error next to its field. An htmx POST gets the form alone, or ``HX-Redirect``."""
    if request.method != "POST":
        spans = instrument_spans()
        form, notice = _initial_form(request, spans)
        return render(request, "simulator/form.html", _form_context(request, form, notice, spans))
    form = SimulatorForm(request.POST)
    if form.is_valid() and form.simulation_request is not None:
        source = form.cleaned_data.get("source_strategy")
        strategy = Strategy.objects.filter(pk=source).first() if source else None
        if form.is_sweep:
            try:
                sweep = sweep_create(
                    request=form.simulation_request,
                    axes=form.sweep_axes,
                    statistic=form.cleaned_data.get("sweep_statistic") or HEADLINE_STATISTIC,
                    created_by=request.user,
                    name=form.cleaned_data.get("name") or "",
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
    key = _int(request.GET.get(f"{group}_next"))
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


# One run ---------------------------------------------------------------------------------------------------


def _simulation(request: HttpRequest, pk: int) -> Simulation:
    try:
        return simulation_for_page(user=request.user, pk=pk)
    except Simulation.DoesNotExist as exc:
        raise Http404(f"no run {pk}") from exc


def _cells_html(cells: list[Cell]) -> SafeString:
    """A table row's cells as escaped HTML: a run can have hundreds of trades, and one string a row renders
    many times faster than a template loop over every cell."""
    return format_html_join(
        "", '<td class="{}" data-sort="{}">{}</td>', ((c.css, c.sort, c.text) for c in cells)
    )


def _run_context(simulation: Simulation, save_form: SaveStrategyForm) -> dict[str, Any]:
    instruments = list(simulation.instruments.all())
    currency = quote_currency(instruments)
    context: dict[str, Any] = {
        "simulation": simulation,
        "instruments": instruments,
        "currency": currency,
        "save_form": save_form,
    }
    if simulation.status == RunStatus.DONE:
        candles = simulation_candles(instruments=instruments, start=simulation.start, end=simulation.end)
        context.update(
            statistics=statistics_rows(simulation, currency),
            trade_columns=TRADE_COLUMNS,
            trades=[_cells_html(row) for row in trade_rows(simulation)],
            n_trades=(simulation.statistics or {}).get("n_trades", 0),
            chart=chart_data(simulation=simulation, candles=candles),
            symbols=[i.symbol for i in instruments],
        )
    return context


@require_safe
@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/runs/<id>/``: statistics beside buy and hold, the charts, the trades; a progress bar while a
    queued run is pending or running; the error of a failed run."""
    simulation = _simulation(request, pk)
    form = SaveStrategyForm(initial={"name": simulation.name})
    return render(request, "simulator/run.html", _run_context(simulation, form))


@require_safe
@login_required
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/runs/<id>/progress/``: the progress bar (htmx polls it every 500 ms); once the run has finished,
    ``HX-Refresh`` reloads the page to show the result."""
    simulation = get_object_or_404(
        simulations_for(request.user).only("id", "status", "progress_ratio", "error"), pk=pk
    )
    response = render(request, "simulator/_run_progress.html", {"simulation": simulation})
    if simulation.is_finished:
        response["HX-Refresh"] = "true"
    return response


@require_safe
@login_required
def run_trades_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/runs/<id>/trades.csv``: the trades as CSV."""
    simulation = get_object_or_404(simulations_for(request.user), pk=pk)
    return csv_response(simulation_trades_csv(simulation), f"simulation-{simulation.pk}-trades.csv")


@require_safe
@login_required
def run_equity_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/runs/<id>/equity.csv``: the equity curve, buy and hold and drawdown as CSV."""
    simulation = get_object_or_404(simulations_for(request.user), pk=pk)
    return csv_response(simulation_equity_csv(simulation), f"simulation-{simulation.pk}-equity.csv")


@require_POST
@login_required
@permission_required("trading.add_strategy", raise_exception=True)
def run_save_strategy(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /simulator/runs/<id>/strategy/``: save the run's criteria as a new, disabled strategy; a taken
    name is an error on the form. Needs ``trading.add_strategy`` (403 without; the run page then shows no form).
    The strategy is a paper one, so ``trade_live`` is not needed."""
    simulation = _simulation(request, pk)
    form = SaveStrategyForm(request.POST)
    if form.is_valid():
        try:
            strategy = simulation_to_strategy(simulation=simulation, name=form.cleaned_data["name"])
        except SimulationInputError as exc:
            for key, errors in exc.errors.items():
                for message in errors:
                    form.add_error("name" if key == "name" else None, message)
        else:
            messages.success(
                request,
                format_html(
                    'Saved as strategy <a href="{}">{}</a> (disabled; enable it in the admin to trade it).',
                    reverse("admin:trading_strategy_change", args=[strategy.pk]),
                    strategy.name,
                ),
            )
            return HttpResponseRedirect(reverse("simulator:run", args=[simulation.pk]))
    return render(request, "simulator/run.html", _run_context(simulation, form))


# Lists -----------------------------------------------------------------------------------------------------


@require_safe
@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    """``/simulator/runs/``: the user's runs, newest first, 50 a page, with checkboxes to compare them."""
    page = Paginator(simulations_listed(request.user), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "simulator/runs.html", {"page": page, "runs": listed_runs(page.object_list)})


@require_safe
@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    """``/simulator/compare/?ids=1&ids=2``: the runs' statistics side by side and their equity on one chart
    (as the return on each run's starting cash)."""
    ids = [i for i in (_int(v) for v in request.GET.getlist("ids")) if i is not None]
    simulations = simulations_compared(user=request.user, ids=ids)
    return render(
        request,
        "simulator/compare.html",
        {
            "simulations": simulations,
            "rows": compare_rows(simulations),
            "chart": compare_chart_data(simulations),
        },
    )


# Sweeps ----------------------------------------------------------------------------------------------------


def _sweep(request: HttpRequest, pk: int) -> Sweep:
    return get_object_or_404(sweeps_for(request.user).prefetch_related("instruments"), pk=pk)


def _sweep_page_context(sweep: Sweep) -> dict[str, Any]:
    finished = sweep.is_finished
    return {
        "sweep": sweep,
        "done": sweep.points.count(),
        "finished": finished,
        "heatmap": sweep_heatmap(sweep) if finished else None,
        "point_base": reverse("simulator:sweep_point", args=[sweep.pk, 0]).removesuffix("0/"),
        "statistic_label": statistic_label(sweep.statistic),
    }


@require_safe
@login_required
def sweep_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/sweeps/<id>/``: a progress bar while the grid runs, then the heatmap of its statistic, each
    cell a link to that grid point's run."""
    return render(request, "simulator/sweep.html", _sweep_page_context(_sweep(request, pk)))


@require_safe
@login_required
def sweep_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/sweeps/<id>/progress/``: grid points done of the total (htmx polls it); ``HX-Refresh`` once
    the sweep has finished."""
    sweep = get_object_or_404(sweeps_for(request.user), pk=pk)
    context = {"sweep": sweep, "done": sweep.points.count()}
    response = render(request, "simulator/_sweep_progress.html", context)
    if sweep.is_finished:
        response["HX-Refresh"] = "true"
    return response


@require_safe
@login_required
def sweep_point(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """``/simulator/sweeps/<id>/points/<index>/``: the full run of one grid point (made the first time it is
    asked for, owned by the sweep's owner), by redirect."""
    sweep = _sweep(request, pk)
    point = get_object_or_404(SweepPoint, sweep=sweep, index=index)
    simulation = sweep_point_simulation(point=point, created_by=sweep.created_by or request.user)
    return HttpResponseRedirect(reverse("simulator:run", args=[simulation.pk]))
