"""The "Deploy winners" page of a portfolio: ``/simulator/deploy/<id>/``.

A simulator page rather than an admin view: the runs it weighs are the user's own simulator runs (each user sees
only theirs), its table is the simulator's, and the portfolio's admin change page links here. The work is
:mod:`simulator.services.deploy`'s; this module parses the form, checks permissions and renders.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods, require_POST

from barter_site.permissions import may_trade_live, may_view, trade_live_check
from simulator.display import DASH, statistic_label, statistic_text
from simulator.forms import DeployForm
from simulator.selectors import deploy_runs_offered
from simulator.services.deploy import (
    CHANGE_PORTFOLIO,
    DeployInputError,
    DeployStaleError,
    Proposal,
    deploy_apply,
    deploy_propose,
    portfolio_members,
    proposal_confirmed,
    proposal_token,
)
from trading.engine.deploy import RULES
from trading.models import Portfolio, PortfolioStrategy


def weight_text(weight: Decimal) -> str:
    """A weight as a plain fraction without trailing zeros: ``0.500000`` -> ``0.5``, ``1.000000`` -> ``1``."""
    return format(weight.normalize(), "f") if weight else "0"


def change_text(change: Decimal) -> str:
    """A change of weight with its sign: ``+0.5``, ``-0.25``, ``0``."""
    return "0" if not change else ("+" if change > 0 else "-") + weight_text(abs(change))


def _rows(proposal: Proposal) -> list[dict[str, Any]]:
    """The proposal's table: one dict of texts per member."""
    return [
        {
            "member_id": row.member_id,
            "strategy": row.strategy_name,
            "backend": row.execution_backend,
            "run": "" if row.run is None else row.run.label,
            "current": weight_text(row.current_weight),
            "proposed": weight_text(row.proposed_weight),
            "change": change_text(row.change),
            "change_sign": (row.change > 0) - (row.change < 0),
            "statistic": statistic_text(proposal.statistic, row.statistic_value) if row.run else DASH,
            "volatility": DASH if row.volatility is None else f"{row.volatility * 100:.2f} %",
            "reason": row.reason,
        }
        for row in proposal.rows
    ]


def _page(
    request: HttpRequest,
    portfolio: Portfolio,
    members: list[PortfolioStrategy],
    form: DeployForm,
    proposal: Proposal | None = None,
) -> HttpResponse:
    backends = [member.strategy.execution_backend for member in members]
    context = {
        "portfolio": portfolio,
        "members": [(member, weight_text(member.weight)) for member in members],
        "current_total": weight_text(sum((m.weight for m in members), Decimal(0))),
        "form": form,
        "rule_text": "" if proposal is None else RULES[proposal.rule],
        "proposal": proposal,
        "rows": [] if proposal is None else _rows(proposal),
        "statistic_label": "" if proposal is None else statistic_label(proposal.statistic),
        "token": "" if proposal is None else proposal_token(proposal),
        "may_apply": request.user.has_perm(CHANGE_PORTFOLIO)
        and may_trade_live(request.user, backends=backends),
        "live": "exchange" in backends,
    }
    return render(request, "simulator/deploy.html", context)


def _portfolio(request: HttpRequest, pk: int) -> tuple[Portfolio, list[PortfolioStrategy], DeployForm]:
    """The portfolio (404), its members, and the form bound to the POST (unbound for a GET)."""
    portfolio = get_object_or_404(Portfolio, pk=pk)
    members = portfolio_members(portfolio)
    offered = deploy_runs_offered(user=request.user, members=members)
    data = request.POST if request.method == "POST" else None
    return portfolio, members, DeployForm(data, members=members, offered=offered)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def portfolio_deploy(request: HttpRequest, pk: int) -> HttpResponse:
    """``/simulator/deploy/<id>/``: the members and their weights, and the form (a run per member,
    the rule, the statistic, the threshold); its POST ("Propose") shows the proposed weights beside the current
    ones, with a Confirm button for who may apply them. Needs ``trading.view_portfolio`` (or
    ``change_portfolio``; 403 without). Nothing is written here."""
    if not may_view(request.user, Portfolio):
        raise PermissionDenied("proposing weights needs the permission 'trading.view_portfolio'")
    portfolio, members, form = _portfolio(request, pk)
    proposal = None
    if form.is_bound and form.is_valid():
        try:
            proposal = deploy_propose(
                portfolio=portfolio,
                runs=form.runs_chosen(),
                rule=form.cleaned_data["rule"],
                statistic=form.cleaned_data["statistic"],
                threshold=form.cleaned_data["threshold"],
            )
        except DeployInputError as exc:
            form.place_errors(exc.errors)
    return _page(request, portfolio, members, form, proposal)


@require_POST
@login_required
@permission_required(CHANGE_PORTFOLIO, raise_exception=True)
def portfolio_deploy_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """``POST /simulator/deploy/<id>/confirm/``: the Confirm button: the proposal is made again from
    the posted choices, checked against the signed token of the one shown, and applied
    (:func:`simulator.services.deploy.deploy_apply`); then the page again with a success message linking to the
    History row. Needs ``trading.change_portfolio`` (403), and ``trading.trade_live`` when a member trades on an
    exchange (403); a stale proposal ("the weights changed since the proposal") is an error on the page."""
    portfolio, members, form = _portfolio(request, pk)
    trade_live_check(
        request.user,
        backends=[member.strategy.execution_backend for member in members],
        what=f"changing the weights of portfolio {portfolio.name!r}",
    )
    if form.is_valid():
        try:
            proposal = deploy_propose(
                portfolio=portfolio,
                runs=form.runs_chosen(),
                rule=form.cleaned_data["rule"],
                statistic=form.cleaned_data["statistic"],
                threshold=form.cleaned_data["threshold"],
            )
            confirmed = proposal_confirmed(proposal=proposal, token=form.cleaned_data["token"])
            history = deploy_apply(portfolio=portfolio, proposal=confirmed, user=request.user)
        except DeployInputError as exc:
            form.place_errors(exc.errors)
        except DeployStaleError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                format_html(
                    'Weights of {} changed: {}. Recorded in <a href="{}" id="deploy-history">History</a>.',
                    portfolio.name,
                    ", ".join(
                        f"{m['strategy']} {weight_text(Decimal(m['old_weight']))} -> "
                        f"{weight_text(Decimal(m['new_weight']))}"
                        for m in history.payload["members"]
                    ),
                    reverse("admin:runs_history_change", args=[history.pk]),
                ),
            )
            return HttpResponseRedirect(reverse("simulator:portfolio_deploy", args=[portfolio.pk]))
    return _page(request, portfolio, members, form)
