"""Pages of saved runs under ``/simulator/``: one run (statistics, charts, trades, CSV, save as strategy), the
list, the comparison, and a sweep's heatmap with its grid points.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST, require_safe

from barter_site.permissions import DELETE_SIMULATION, DELETE_SWEEP
from instruments.models import Timeframe
from simulator.api import csv_response
from simulator.charts import chart_indicator_lines
from simulator.display import quote_currency, statistic_label, statistic_text
from simulator.forms import MonteCarloForm, SaveStrategyForm
from simulator.models import RunStatus, Simulation, Sweep, SweepPoint, WalkForward
from simulator.monte_carlo_presenters import monte_carlo_section
from simulator.presenters import (
    BREAKDOWN_COLUMNS,
    MONTH_NAMES,
    TRADE_COLUMNS,
    TRADES_PER_PAGE,
    Cell,
    candle_charts,
    chart_data,
    compare_chart_data,
    compare_differences,
    compare_markets,
    compare_rows,
    criteria_words_of,
    heatmap_cells_html,
    listed_runs,
    monthly_table,
    point_has_no_trades,
    ruin_text,
    statistics_rows,
    sweep_heatmap,
    trade_breakdowns,
    trade_rows,
    trade_seconds,
)
from simulator.selectors import (
    chart_bar_seconds,
    simulation_candles,
    simulation_for_page,
    simulations_compared,
    simulations_for,
    simulations_listed,
    sweep_best_values,
    sweep_points,
    sweeps_for,
    sweeps_listed,
    walk_forwards_for,
    walk_forwards_listed,
)
from simulator.services.deletion import SimulatorWorkInProgressError, simulation_delete, sweep_delete
from simulator.services.requests import SimulationInputError
from simulator.services.simulations import (
    candles_load,
    simulation_equity_csv,
    simulation_to_strategy,
    simulation_trades_csv,
)
from simulator.services.sweeps import sweep_point_simulation
from simulator.sweep_presenters import (
    TOP_POINTS,
    axis_names,
    listed_sweeps,
    robustness_view,
    statistic_or_default,
    top_point_columns,
    top_points,
)
from simulator.views.form import int_or_none
from simulator.walk_forward_presenters import efficiency_text, fold_rows, overall_rows, walk_forward_chart
from trading.engine.vocabulary import STATISTICS

#: How the result page names the bars of its candle charts, by length in seconds.
TIMEFRAME_BARS = {60: "1-minute", 3_600: "hourly", 4 * 3_600: "4-hour", 86_400: "daily", 604_800: "weekly"}

#: Runs on one page of the list.
RUNS_PER_PAGE = 50


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


def _trade_row_html(trade: dict[str, Any], cells: list[Cell]) -> SafeString:
    """A row of the trades table: its cells (:func:`_cells_html`), and the trade's instrument, entry and exit
    times (seconds; exit empty while open) for the click that shows the trade on its chart."""
    entry, exit_ = (trade_seconds(trade.get(key)) for key in ("entry_at", "exit_at"))
    return format_html(
        '<tr data-trade data-symbol="{}" data-entry-time="{}" data-exit-time="{}" tabindex="0">{}</tr>',
        trade.get("symbol") or "",
        "" if entry is None else entry,
        "" if exit_ is None else exit_,
        _cells_html(cells),
    )


def _run_context(
    simulation: Simulation,
    save_form: SaveStrategyForm,
    trades_page_number: str | None = None,
    monte_carlo_form: MonteCarloForm | None = None,
) -> dict[str, Any]:
    """The run page's context; its trades table and chart markers are those of page ``trades_page_number`` of
    :data:`TRADES_PER_PAGE` trades (the first for a missing or unreadable number, the last past the end); its Monte
    Carlo section draws with ``monte_carlo_form``'s parameters (the defaults when None or unbound)."""
    instruments = list(simulation.instruments.all())
    currency = quote_currency(instruments)
    context: dict[str, Any] = {
        "simulation": simulation,
        "instruments": instruments,
        "currency": currency,
        "save_form": save_form,
        "criteria_words": criteria_words_of(simulation.criteria, currency=currency),
    }
    if simulation.status == RunStatus.DONE:
        trades_page = Paginator(simulation.trades, TRADES_PER_PAGE).get_page(trades_page_number)
        bar = chart_bar_seconds(start=simulation.start, end=simulation.end, timeframe=simulation.timeframe)
        # An hourly or minute run keeps its rolled-up chart bars (simulator.services.simulations.stored_chart_bars).
        candles = (simulation.equity_curve or {}).get("chart_candles") or simulation_candles(
            instruments=instruments,
            start=simulation.start,
            end=simulation.end,
            timeframe=simulation.timeframe,
        )
        shown_trades = list(trades_page.object_list)
        indicators = (simulation.equity_curve or {}).get("chart_indicators")
        if indicators is None and simulation.timeframe == Timeframe.D1:
            # A daily run saved before its lines were kept: its candles are few, compute them now.
            indicators = chart_indicator_lines(
                criteria=simulation.criteria,
                candles=candles_load(instruments, simulation.end, simulation.timeframe),
                start=simulation.start,
                end=simulation.end,
                bar_seconds=bar,
            )
        chart = chart_data(
            simulation=simulation,
            candles=candles,
            bar_seconds=bar,
            trades=shown_trades,
            indicators=indicators,
        )
        context.update(
            statistics=statistics_rows(simulation, currency),
            trade_columns=TRADE_COLUMNS,
            trades=[
                _trade_row_html(trade, row)
                for trade, row in zip(shown_trades, trade_rows(simulation, shown_trades), strict=True)
            ],
            trades_page=trades_page,
            n_trades=(simulation.statistics or {}).get("n_trades", 0),
            ruin=ruin_text(simulation),
            chart=chart,
            chart_bar=TIMEFRAME_BARS.get(bar, f"{bar // 3600}-hour"),
            symbols=[i.symbol for i in instruments],
            candle_charts=candle_charts(chart),
            breakdowns=trade_breakdowns(simulation),
            breakdown_columns=BREAKDOWN_COLUMNS,
            monthly=monthly_table(simulation),
            month_names=MONTH_NAMES,
            monte_carlo=monte_carlo_section(simulation, monte_carlo_form or MonteCarloForm(), currency),
        )
    return context


@require_safe
@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/runs/<id>/``: statistics beside buy and hold, the charts, the trades; a progress bar while a
    queued run is pending or running; the error of a failed run. The Monte Carlo of the trades draws with the
    ``mc-method``, ``mc-paths``, ``mc-seed`` and ``mc-drawdown_limit_pct`` query parameters when any is given (a bad
    one is an error next to its field), else with the defaults."""
    simulation = _simulation(request, pk)
    form = SaveStrategyForm(initial={"name": simulation.name})
    asked = any(key.startswith("mc-") for key in request.GET)
    monte_carlo_form = MonteCarloForm(request.GET) if asked else MonteCarloForm()
    return render(
        request,
        "simulator/run.html",
        _run_context(simulation, form, request.GET.get("trades_page"), monte_carlo_form),
    )


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


@require_POST
@login_required
@permission_required(DELETE_SIMULATION, raise_exception=True)
def run_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /simulator/runs/<id>/delete/``: delete the run (the page's Delete button, behind a confirmation
    step), then show the list. Needs ``simulator.delete_simulation`` (403 without), then the run must be one's
    own (404); a run still pending or running is refused with the reason, on its page. GET is 405."""
    simulation = _simulation(request, pk)
    try:
        simulation_delete(simulation=simulation)
    except SimulatorWorkInProgressError as exc:
        messages.error(request, f"Not deleted: {exc.message}.")
        return HttpResponseRedirect(reverse("simulator:run", args=[simulation.pk]))
    messages.success(request, f"Deleted {simulation}.")
    return HttpResponseRedirect(reverse("simulator:runs"))


@require_POST
@login_required
@permission_required(DELETE_SWEEP, raise_exception=True)
def sweep_delete_view(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /simulator/sweeps/<id>/delete/``: delete the sweep, its grid points and the runs opened from them
    (:func:`simulator.services.deletion.sweep_delete`), then show the list of sweeps. Needs
    ``simulator.delete_sweep`` (403), then the sweep must be one's own (404); one still running is refused."""
    sweep = _sweep(request, pk)
    try:
        deleted = sweep_delete(sweep=sweep)
    except SimulatorWorkInProgressError as exc:
        messages.error(request, f"Not deleted: {exc.message}.")
        return HttpResponseRedirect(reverse("simulator:sweep", args=[sweep.pk]))
    messages.success(
        request,
        f"Deleted {sweep}: {deleted.points} grid point{pluralize(deleted.points)} and "
        f"{deleted.simulations} run{pluralize(deleted.simulations)} opened from them.",
    )
    return HttpResponseRedirect(reverse("simulator:sweeps"))


@require_safe
@login_required
def run_list(request: HttpRequest) -> HttpResponse:
    """``/simulator/runs/``: the user's runs, newest first, 50 a page, with checkboxes to compare them."""
    page = Paginator(simulations_listed(request.user), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "simulator/runs.html", {"page": page, "runs": listed_runs(page.object_list)})


@require_safe
@login_required
def run_compare(request: HttpRequest) -> HttpResponse:
    """``/simulator/compare/?ids=1&ids=2``: the runs' statistics side by side, the best of each marked, buy and
    hold beside them, what differs between their inputs and criteria, and their equity on one chart (as the
    return on each run's starting cash, buy and hold's dashed)."""
    ids = [i for i in (int_or_none(v) for v in request.GET.getlist("ids")) if i is not None]
    simulations = simulations_compared(user=request.user, ids=ids)
    markets = compare_markets(simulations)
    return render(
        request,
        "simulator/compare.html",
        {
            "simulations": simulations,
            "markets": markets,
            "rows": compare_rows(simulations, markets),
            "differences": compare_differences(simulations),
            "words": [
                criteria_words_of(s.criteria, currency=quote_currency(s.instruments.all()))
                for s in simulations
            ],
            "chart": compare_chart_data(simulations, markets),
        },
    )


def _sweep(request: HttpRequest, pk: int) -> Sweep:
    return get_object_or_404(sweeps_for(request.user).prefetch_related("instruments"), pk=pk)


def _sweep_progress_context(sweep: Sweep) -> dict[str, Any]:
    """The progress fragment's context: points done, and the best value of the sweep's statistic so far."""
    best = sweep_best_values([sweep]).get(sweep.pk)
    return {
        "sweep": sweep,
        "done": sweep.points.count(),
        "progress_label": statistic_label(sweep.statistic),
        "best_so_far": None
        if best is None
        else statistic_text(sweep.statistic, best, quote_currency(sweep.instruments.all())),
    }


def _sweep_page_context(sweep: Sweep, asked: str | None = None) -> dict[str, Any]:
    """The sweep page's context: progress while it runs; once finished, the heatmap and the table of the best
    points by the statistic ``asked`` (``?statistic=``; the sweep's own when missing or unknown)."""
    finished = sweep.is_finished
    key = statistic_or_default(sweep, asked)
    context: dict[str, Any] = {
        **_sweep_progress_context(sweep),
        "finished": finished,
        "heatmap": None,
        "point_base": reverse("simulator:sweep_point", args=[sweep.pk, 0]).removesuffix("0/"),
        "statistic": key,
        "statistic_label": statistic_label(key),
        "statistics": [(statistic.key, statistic.label) for statistic in STATISTICS],
    }
    if finished:
        # Only the statistics the page shows: the heatmap's, the table's, and whether a point traded.
        points = sweep_points(
            sweep, keys=[key, "n_trades", *(column for column, _ in top_point_columns(key))]
        )
        heatmap = sweep_heatmap(sweep, key, points)
        context.update(
            heatmap=heatmap,
            heatmap_rows=[
                (label, heatmap_cells_html(cells, context["point_base"])) for label, cells in heatmap.rows
            ],
            top=top_points(sweep, points, key),
            top_columns=top_point_columns(key),
            axis_names=axis_names(sweep),
            top_limit=TOP_POINTS,
            no_trades=sum(1 for p in points if point_has_no_trades(p)),
            robustness=robustness_view(sweep),
        )
    return context


@require_safe
@login_required
def sweep_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/sweeps/<id>/``: a progress bar while the grid runs, then the heatmap of a statistic
    (``?statistic=``, any of the report's: every point keeps them all, nothing runs again) and the table of the
    best points by it, each cell and line a link to that grid point's run."""
    sweep = _sweep(request, pk)
    return render(request, "simulator/sweep.html", _sweep_page_context(sweep, request.GET.get("statistic")))


@require_safe
@login_required
def sweep_list(request: HttpRequest) -> HttpResponse:
    """``/simulator/sweeps/``: the user's sweeps, newest first, 50 a page: name, instruments, dates, grid points
    done of the total, status and the best value of each one's statistic."""
    page = Paginator(sweeps_listed(request.user), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    lines = listed_sweeps(page.object_list, sweep_best_values(list(page.object_list)))
    return render(request, "simulator/sweeps.html", {"page": page, "sweeps": lines})


@require_safe
@login_required
def sweep_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/sweeps/<id>/progress/``: grid points done of the total (htmx polls it); ``HX-Refresh`` once
    the sweep has finished."""
    sweep = get_object_or_404(sweeps_for(request.user).prefetch_related("instruments"), pk=pk)
    render_context = _sweep_progress_context(sweep)
    response = render(request, "simulator/_sweep_progress.html", render_context)
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
    if point.skipped:
        raise Http404(f"grid point {index} was skipped ({point.skipped}): it has no run")
    simulation = sweep_point_simulation(point=point, created_by=sweep.created_by or request.user)
    return HttpResponseRedirect(reverse("simulator:run", args=[simulation.pk]))


def _walk_forward(request: HttpRequest, pk: int) -> WalkForward:
    return get_object_or_404(walk_forwards_for(request.user).prefetch_related("instruments"), pk=pk)


@require_safe
@login_required
def walk_forward_list(request: HttpRequest) -> HttpResponse:
    """``/simulator/walk-forwards/``: the user's walk-forwards, newest first, 50 a page, and how to start one
    (the simulator form's sweep section, button "Run walk-forward")."""
    page = Paginator(walk_forwards_listed(request.user), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "simulator/walk_forwards.html", {"page": page, "walk_forwards": page.object_list})


@require_safe
@login_required
def walk_forward_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/walk-forwards/<id>/``: progress while it runs; then the stitched out-of-sample equity curve,
    the folds (windows, chosen parameters, in-sample statistic, out-of-sample return, WFE), the overall
    in-sample and out-of-sample statistics side by side, and the parameters' stability."""
    record = _walk_forward(request, pk)
    currency = quote_currency(record.instruments.all())
    result = record.result or {}
    context = {
        "walk_forward": record,
        "finished": record.is_finished,
        "statistic_label": statistic_label(record.statistic),
        "folds": fold_rows(record, currency),
        "overall": overall_rows(record, currency),
        "efficiency": efficiency_text(result.get("efficiency")),
        "deflated_sharpe": result.get("deflated_sharpe"),
        "stability": result.get("stability") or [],
        "chart": walk_forward_chart(record),
        "curve": result.get("curve") or {},
        "coverage_note": (result.get("coverage") or {}).get("note", ""),
    }
    return render(request, "simulator/walk_forward.html", context)


@require_safe
@login_required
def walk_forward_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/walk-forwards/<id>/progress/``: folds done (htmx polls it); ``HX-Refresh`` once finished."""
    record = _walk_forward(request, pk)
    response = render(request, "simulator/_walk_forward_progress.html", {"walk_forward": record})
    if record.is_finished:
        response["HX-Refresh"] = "true"
    return response
