"""Pages of portfolio runs under ``/simulator/portfolios/`` (issue 16, docs/portfolios.md): the form (saved
strategies with a weight each, in percent, or a saved portfolio to fill it), a run's page (the account's curve
beside buy and hold, the members' attribution, the correlation of their daily returns, the statistics, what the
risk limits refused), and the list.

As the simulator's other pages: a logged-in user, each seeing their own runs (all of them for a superuser);
another's run is a 404. Form errors are shown next to their fields (a member's next to its weight).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from instruments.models import Instrument
from simulator.display import quote_currency
from simulator.launch import TaskQueueUnavailableError, portfolio_simulation_start
from simulator.models import STARTING_CASH_DEFAULT, PortfolioSimulation
from simulator.portfolio_presenters import (
    correlation_rows,
    halt_rows,
    headline,
    member_rows,
    portfolio_chart,
    refusal_rows,
)
from simulator.presenters import statistics_rows
from simulator.selectors import (
    default_selection,
    instrument_spans,
    portfolio_simulations_for,
    portfolio_simulations_listed,
)
from simulator.services.inline import SimulatorBusyError
from simulator.services.portfolios import portfolio_request_check
from simulator.services.requests import SimulationInputError
from simulator.views.form import _amount_text, int_or_none
from simulator.views.results import RUNS_PER_PAGE
from trading.models import Portfolio, Strategy

#: ``strategies[2].weight: message`` -> the member's index and the message.
MEMBER_PATH = re.compile(r"^strategies\[(\d+)\]\.\w+: (.*)$", re.DOTALL)


class PortfolioRunForm(forms.Form):
    """The fields of the portfolio form besides the members' weights (``weight_<strategy id>``, in percent)."""

    name = forms.CharField(max_length=200, required=False)
    portfolio = forms.IntegerField(required=False, widget=forms.HiddenInput)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    starting_cash = forms.DecimalField(max_digits=38, decimal_places=18, required=False)
    limits = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))


def _strategy_rows(
    order: list[int], weights: dict[int, str], errors: dict[int, list[str]]
) -> list[dict[str, Any]]:
    """Every saved strategy as a row of the form: those in ``order`` first (a portfolio's members, or the posted
    order), then the others by name; each with its weight as typed (percent) and its errors."""
    strategies = list(Strategy.objects.prefetch_related("instruments").order_by("name"))
    rank = {pk: n for n, pk in enumerate(order)}
    strategies.sort(key=lambda s: (rank.get(s.pk, len(rank)), s.name))
    return [
        {
            "strategy": strategy,
            "instruments": ", ".join(
                i.symbol for i in sorted(strategy.instruments.all(), key=lambda i: i.symbol)
            ),
            "weight": weights.get(strategy.pk, ""),
            "errors": errors.get(strategy.pk, []),
            "error_for": f"weight_{strategy.pk}",
        }
        for strategy in strategies
    ]


def _context(
    form: PortfolioRunForm,
    rows: list[dict[str, Any]],
    member_errors: list[str] | None = None,
    notice: str = "",
) -> dict[str, Any]:
    return {
        "form": form,
        "rows": rows,
        "member_errors": member_errors or [],
        "portfolios": Portfolio.objects.order_by("name").only("id", "name"),
        "notice": notice,
    }


def _initial(request: HttpRequest) -> tuple[PortfolioRunForm, list[dict[str, Any]], str]:
    """The form of a GET: the newest data's last five years and 10,000, or filled from a saved portfolio
    (``?portfolio=<id>``: its members' weights, starting cash and limits)."""
    _, start, end = default_selection(instrument_spans())
    initial: dict[str, Any] = {"start": start, "end": end, "starting_cash": STARTING_CASH_DEFAULT}
    order: list[int] = []
    weights: dict[int, str] = {}
    notice = ""
    asked = request.GET.get("portfolio")
    if asked:
        portfolio = Portfolio.objects.filter(pk=int_or_none(asked) or 0).first()
        if portfolio is None:
            notice = f"There is no portfolio {asked}; the form shows the defaults."
        else:
            for member in portfolio.members.select_related("strategy").order_by("order", "strategy__name"):
                order.append(member.strategy_id)
                weights[member.strategy_id] = format((member.weight * 100).normalize(), "f")
            initial.update(
                portfolio=portfolio.pk,
                name=portfolio.name,
                starting_cash=_amount_text(portfolio.starting_cash),
                limits=json.dumps(portfolio.limits, indent=2) if portfolio.limits else "",
            )
            notice = f"Filled from portfolio {portfolio.name}."
    return PortfolioRunForm(initial=initial), _strategy_rows(order, weights, {}), notice


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def portfolio_form(request: HttpRequest) -> HttpResponse:
    """``/simulator/portfolios/new/``: the form. GET shows it (``?portfolio=<id>`` fills it from a saved
    portfolio); POST runs the portfolio and redirects to its page, or shows the form again with every error next
    to its field (a member's next to its weight)."""
    if request.method != "POST":
        form, rows, notice = _initial(request)
        return render(request, "simulator/portfolio_form.html", _context(form, rows, notice=notice))
    form = PortfolioRunForm(request.POST)
    order = [pk for pk in (int_or_none(v) for v in request.POST.getlist("strategy")) if pk is not None]
    typed = {pk: str(request.POST.get(f"weight_{pk}", "")).strip() for pk in order}
    row_errors: dict[int, list[str]] = {}
    members: list[dict[str, Any]] = []
    for pk in order:
        text = typed[pk]
        if not text:
            continue
        try:
            weight_pct = Decimal(text)
        except InvalidOperation:
            weight_pct = None
        if weight_pct is None or not weight_pct.is_finite() or not 0 <= weight_pct <= 100:
            row_errors.setdefault(pk, []).append(f"must be a percent from 0 to 100; was {text!r}")
            continue
        members.append({"strategy": pk, "weight": str(weight_pct / 100)})
    limits: Any = None
    form_valid = form.is_valid()
    if form_valid:
        text = (form.cleaned_data.get("limits") or "").strip()
        try:
            limits = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            form.add_error("limits", f'must be a JSON object like {{"max_open_positions": 3}}: {exc}')
    member_errors: list[str] = []
    # Checked even when a weight box is wrong, so every problem is shown at once (the dates, cash and limits too).
    if form.is_valid():
        data = form.cleaned_data
        try:
            checked = portfolio_request_check(
                strategies=members,
                start=data.get("start"),
                end=data.get("end"),
                starting_cash=data.get("starting_cash"),
                limits=limits,
                filled_from=Portfolio.objects.filter(pk=data.get("portfolio") or 0).first(),
            )
        except SimulationInputError as exc:
            # With a wrong weight box the members were not all read: their errors wait for a corrected form.
            errors = {k: v for k, v in exc.errors.items() if not (row_errors and k == "strategies")}
            member_errors = _show_errors(form, errors, members, row_errors)
        else:
            if row_errors:
                rows = _strategy_rows(order, typed, row_errors)
                return render(request, "simulator/portfolio_form.html", _context(form, rows, member_errors))
            try:
                record = portfolio_simulation_start(
                    request=checked, created_by=request.user, name=data.get("name") or ""
                )
            except (TaskQueueUnavailableError, SimulatorBusyError) as exc:
                form.add_error(None, exc.message)
                rows = _strategy_rows(order, typed, row_errors)
                return render(request, "simulator/portfolio_form.html", _context(form, rows), status=503)
            return HttpResponseRedirect(reverse("simulator:portfolio", args=[record.pk]))
    rows = _strategy_rows(order, typed, row_errors)
    return render(request, "simulator/portfolio_form.html", _context(form, rows, member_errors))


def _show_errors(
    form: PortfolioRunForm,
    errors: dict[str, list[str]],
    members: list[dict[str, Any]],
    row_errors: dict[int, list[str]],
) -> list[str]:
    """Put the service's field errors next to their fields: a member's (``strategies[i]...``) on its row, the
    others on the form's field of that name (or above the form); returns the errors about the members as a whole
    (the weights' sum, none chosen), shown above the strategies."""
    general = []
    for field, messages in errors.items():
        for message in messages:
            if field == "strategies":
                found = MEMBER_PATH.match(message)
                if found and int(found[1]) < len(members):
                    row_errors.setdefault(members[int(found[1])]["strategy"], []).append(found[2])
                else:
                    general.append(message)
            elif field in form.fields:
                form.add_error(field, message)
            else:
                form.add_error(None, f"{field}: {message}")
    return general


def _record(request: HttpRequest, pk: int) -> PortfolioSimulation:
    found = portfolio_simulations_for(request.user).filter(pk=pk).first()
    if found is None:
        raise Http404(f"no portfolio run {pk}")
    return found


def _currency(record: PortfolioSimulation) -> str:
    ids = {c for member in record.members for c in member.get("instruments", [])}
    return quote_currency(Instrument.objects.filter(coingecko_id__in=ids))


@require_safe
@login_required
def portfolio_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/portfolios/<id>/``: progress while it runs; then the account's equity curve beside buy and
    hold (and its drawdown), the members (weight, P&L, return on budget, exposure, drawdown contribution, trades),
    the correlation of their daily returns, the account's statistics, and what the risk limits refused and
    halted."""
    record = _record(request, pk)
    currency = _currency(record)
    done = record.status == "done"
    context = {
        "run": record,
        "finished": record.is_finished,
        "currency": currency,
        "members": member_rows(record),
        "headline": headline(record, currency) if done else [],
        "correlation": correlation_rows(record),
        "statistics": statistics_rows(record, currency) if done else [],
        "refusals": refusal_rows(record),
        "refusals_total": (record.limits_report or {}).get("refusals_total", 0),
        "halts": halt_rows(record, currency),
        "chart": portfolio_chart(record),
        "curve": record.equity_curve or {},
        "coverage_note": ((record.statistics or {}).get("coverage") or {}).get("note", ""),
        "limits_text": json.dumps(record.limits) if record.limits else "",
    }
    return render(request, "simulator/portfolio.html", context)


@require_safe
@login_required
def portfolio_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/portfolios/<id>/progress/``: the run's progress (htmx polls it); ``HX-Refresh`` once
    finished."""
    record = _record(request, pk)
    response = render(request, "simulator/_portfolio_progress.html", {"run": record})
    if record.is_finished:
        response["HX-Refresh"] = "true"
    return response


@require_safe
@login_required
def portfolio_list(request: HttpRequest) -> HttpResponse:
    """``/simulator/portfolios/``: the user's portfolio runs, newest first, 50 a page."""
    page = Paginator(portfolio_simulations_listed(request.user), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "simulator/portfolios.html", {"page": page, "runs": page.object_list})
