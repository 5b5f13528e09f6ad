"""Deploy winners: propose a portfolio's weights from its members' saved runs, and apply them on confirmation.

The one service behind ``/simulator/deploy/<id>/``. It lives in the simulator, not in ``trading``,
because it reads the simulator's runs (``Simulation``, ``WalkForward``) and ``trading`` must not import the
simulator (import-linter: ``simulator -> trading``). The rules themselves are pure
(:func:`trading.engine.deploy.weights_propose`).

- :func:`deploy_propose`: for each member of the portfolio, the run the user picked (a done ``Simulation`` whose
  ``source_strategy`` is the member's strategy, or a done ``WalkForward`` whose criteria equal the strategy's:
  its out-of-sample statistics and stitched curve); the statistic from the run's statistics, the volatility of
  its curve's daily returns (sample standard deviation,
  :func:`trading.engine.deploy.daily_returns_volatility`). A member without a run keeps its weight ("no run:
  weight unchanged") and is left out of the rule; the rule's members share what the others do not hold,
  ``1 - sum(weights kept)`` (the whole portfolio when every member has a run). Weights are rounded down to the
  weight field's 6 decimal places, so they never add up to more than 1.
- :func:`proposal_token` / :func:`proposal_confirmed`: the page's Confirm button posts a signed token of what
  was shown (the weights it was proposed against and the proposed ones); a confirmation whose recomputed
  proposal differs, or whose token was tampered with, is refused.
- :func:`deploy_apply`: in one transaction with the portfolio's row locked, checks the members' weights are
  still those the proposal was made against, writes the new ones and appends one ``weights_changed`` History
  row with each member's old and new weight, the rule, the statistic and the runs used.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import transaction
from rest_framework import status

from barter_site.errors import ApplicationError
from barter_site.permissions import trade_live_check
from runs.models import History, HistoryKind, Step
from runs.recorder import history_append
from simulator.models import RunStatus, Simulation, WalkForward
from trading.engine.deploy import (
    RULES,
    Candidate,
    DeployRuleError,
    daily_returns_volatility,
    weights_propose,
)
from trading.models import Portfolio, PortfolioStrategy

#: The model permission of applying a proposal (``trade_live`` too when a member trades on an exchange).
CHANGE_PORTFOLIO = "trading.change_portfolio"
#: The weight field's precision (``PortfolioStrategy.weight``: 6 decimal places).
WEIGHT_QUANTUM = Decimal("0.000001")
#: The salt of the Confirm button's signed token (a token of another feature does not pass for one).
TOKEN_SALT = "simulator.deploy.proposal"  # noqa: S105 - a salt, not a secret
#: What a run is called in the forms, the token and the History payload.
SIMULATION = "simulation"
WALK_FORWARD = "walk_forward"

DeployRun = Simulation | WalkForward


class DeployInputError(ApplicationError):
    """The choice of runs, rule, statistic or threshold cannot make a proposal.

    Attributes:
        errors: ``{field: [message, ...]}``: ``run_<member id>``, ``rule``, ``statistic``, ``threshold``,
            ``token``, or ``__all__``.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{field}: {message}" for field, messages in errors.items() for message in messages),
            {"errors": errors},
        )


class DeployStaleError(ApplicationError):
    """The proposal no longer describes the portfolio (its weights, members or runs changed): propose again."""

    http_status = status.HTTP_409_CONFLICT


@dataclass(frozen=True)
class RunUsed:
    """The run a member's figures come from.

    Attributes:
        kind: ``simulation`` or ``walk_forward``.
        id: its primary key.
        label: its name for people (``simulation 12``, or the name it was given).
    """

    kind: str
    id: int
    label: str

    def as_json(self) -> dict[str, Any]:
        """``{"kind", "id", "label"}``."""
        return {"kind": self.kind, "id": self.id, "label": self.label}


@dataclass(frozen=True)
class ProposalRow:
    """One member of the proposal.

    Attributes:
        member_id: the ``PortfolioStrategy`` row.
        strategy_name: the member's strategy.
        execution_backend: the strategy's (``paper`` or ``exchange``), for the ``trade_live`` check.
        current_weight: the weight the proposal was made against (a fraction, 6 decimal places).
        proposed_weight: the weight proposed; the current one for a member without a run.
        statistic_value: the run's statistic (None without a run, or where the run has none).
        volatility: the standard deviation of the run's daily returns, a fraction per day (None without).
        run: the run used, or None ("no run: weight unchanged").
        reason: why this weight, for people.
    """

    member_id: int
    strategy_name: str
    execution_backend: str
    current_weight: Decimal
    proposed_weight: Decimal
    statistic_value: float | None
    volatility: float | None
    run: RunUsed | None
    reason: str

    @property
    def change(self) -> Decimal:
        """``proposed_weight - current_weight``."""
        return self.proposed_weight - self.current_weight


@dataclass(frozen=True)
class Proposal:
    """Weights proposed for a portfolio's members, beside the ones they have.

    Attributes:
        portfolio_id: the portfolio.
        rule: one of :data:`trading.engine.deploy.RULES`.
        statistic: the statistic's key (``sharpe_ratio``).
        threshold: the ``winners`` rule's threshold, in the statistic's unit.
        budget: what the rule's members share: 1 minus the weights of the members without a run.
        rows: one per member, in the members' order.
    """

    portfolio_id: int
    rule: str
    statistic: str
    threshold: float
    budget: Decimal
    rows: tuple[ProposalRow, ...]

    @property
    def current_total(self) -> Decimal:
        """The current weights' sum."""
        return sum((row.current_weight for row in self.rows), Decimal(0))

    @property
    def proposed_total(self) -> Decimal:
        """The proposed weights' sum (at most 1)."""
        return sum((row.proposed_weight for row in self.rows), Decimal(0))


def run_reference(run: DeployRun) -> str:
    """A run as the form's choices and the token write it: ``simulation:12``, ``walk_forward:3``."""
    return f"{SIMULATION if isinstance(run, Simulation) else WALK_FORWARD}:{run.pk}"


def _run_used(run: DeployRun) -> RunUsed:
    if isinstance(run, Simulation):
        return RunUsed(SIMULATION, run.pk, run.name or f"simulation {run.pk}")
    return RunUsed(WALK_FORWARD, run.pk, run.name or f"walk-forward {run.pk}")


def _run_figures(run: DeployRun, statistic: str) -> tuple[float | None, float | None]:
    """The run's ``statistic`` and the volatility of its daily returns: a simulation's own statistics and curve,
    a walk-forward's out-of-sample statistics and stitched out-of-sample curve."""
    if isinstance(run, Simulation):
        statistics, curve = run.statistics or {}, run.equity_curve or {}
    else:
        result = run.result or {}
        statistics = (result.get("statistics") or {}).get("out_of_sample") or {}
        curve = result.get("curve") or {}
    value = statistics.get(statistic)
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    times, equity = curve.get("time") or [], curve.get("equity") or []
    volatility = daily_returns_volatility(times, equity) if len(times) == len(equity) else None
    return number, volatility


def _run_problem(run: DeployRun, member: PortfolioStrategy) -> str:
    """Why ``run`` cannot stand for ``member`` ("" when it can)."""
    name = member.strategy.name
    if run.status != RunStatus.DONE:
        return f"{_run_used(run).label} is {run.status}, not done: pick a finished run"
    if isinstance(run, Simulation) and run.source_strategy_id != member.strategy_id:
        return f"{_run_used(run).label} is not a run of strategy {name!r}: pick one made from it"
    if isinstance(run, WalkForward) and run.criteria != member.strategy.criteria:
        return f"{_run_used(run).label} does not walk forward the criteria of strategy {name!r}"
    return ""


def weight_rounded(value: float) -> Decimal:
    """A rule's float weight as the weight field's Decimal, rounded down to 6 decimal places (so weights that
    add up to 1 as floats never add up to more than 1 here).

    Args:
        value: a fraction in [0, 1].
    """
    # Through its shortest repr, never Decimal(float): the binary expansion of 1/3 is not 0.333...
    return Decimal(repr(value)).quantize(WEIGHT_QUANTUM, rounding=ROUND_DOWN)


def portfolio_members(portfolio: Portfolio) -> list[PortfolioStrategy]:
    """The members with their strategies, in entry order (one query)."""
    return list(portfolio.members.select_related("strategy").order_by("order", "strategy__name", "pk"))


def deploy_propose(
    *,
    portfolio: Portfolio,
    runs: Mapping[int, DeployRun | None],
    rule: str,
    statistic: str,
    threshold: float = 0.0,
) -> Proposal:
    """Propose the members' weights by ``rule`` from the runs picked for them (see the module's docstring).

    Args:
        portfolio: the portfolio.
        runs: member id (``PortfolioStrategy.pk``) -> its run, or None / missing for "no run: weight unchanged".
        rule: ``winners``, ``proportional`` or ``inverse_volatility``.
        statistic: a key of :data:`trading.engine.vocabulary.STATISTICS` where higher is better.
        threshold: ``winners``: a winner's statistic is above it.

    Returns:
        The proposal; nothing is written.

    Raises:
        DeployInputError: a run that is not done or not of its member's strategy (under ``run_<member id>``),
            a member id not of the portfolio, no member with a run, or a rule, statistic or threshold the
            rule cannot use.
    """
    members = portfolio_members(portfolio)
    by_id = {member.pk: member for member in members}
    errors: dict[str, list[str]] = {}
    strangers = sorted(set(runs) - set(by_id))
    if strangers:
        errors["__all__"] = [f"members {strangers} are not of portfolio {portfolio.name!r}"]
    for member in members:
        run = runs.get(member.pk)
        problem = "" if run is None else _run_problem(run, member)
        if problem:
            errors[f"run_{member.pk}"] = [problem]
    with_run = [member for member in members if runs.get(member.pk) is not None]
    if not with_run and not errors:
        errors["__all__"] = ["pick a run for at least one member: the rule needs something to weigh"]
    if errors:
        raise DeployInputError(errors)
    kept = sum((member.weight for member in members if runs.get(member.pk) is None), Decimal(0))
    budget = max(Decimal(1) - kept, Decimal(0))
    figures = {member.pk: _run_figures(runs[member.pk], statistic) for member in with_run}  # type: ignore[arg-type]
    candidates = [Candidate(member.strategy.name, *figures[member.pk]) for member in with_run]
    try:
        proposed = weights_propose(candidates, rule, statistic, threshold=threshold, budget=float(budget))
    except DeployRuleError as exc:
        field = str(exc).split(" ", 1)[0]  # the message starts with what was wrong
        field = field if field in ("rule", "statistic", "threshold") else "__all__"
        raise DeployInputError({field: [str(exc)]}) from exc
    answer = {member.pk: weight for member, weight in zip(with_run, proposed, strict=True)}
    rows = []
    for member in members:
        run = runs.get(member.pk)
        if run is None:
            rows.append(
                ProposalRow(
                    member_id=member.pk,
                    strategy_name=member.strategy.name,
                    execution_backend=member.strategy.execution_backend,
                    current_weight=member.weight,
                    proposed_weight=member.weight,
                    statistic_value=None,
                    volatility=None,
                    run=None,
                    reason="no run: weight unchanged",
                )
            )
            continue
        value, volatility = figures[member.pk]
        rows.append(
            ProposalRow(
                member_id=member.pk,
                strategy_name=member.strategy.name,
                execution_backend=member.strategy.execution_backend,
                current_weight=member.weight,
                proposed_weight=weight_rounded(answer[member.pk].weight),
                statistic_value=value,
                volatility=volatility,
                run=_run_used(run),
                reason=answer[member.pk].reason,
            )
        )
    return Proposal(
        portfolio_id=portfolio.pk,
        rule=rule,
        statistic=statistic,
        threshold=float(threshold),
        budget=budget,
        rows=tuple(rows),
    )


def _token_document(proposal: Proposal) -> dict[str, Any]:
    return {
        "portfolio": proposal.portfolio_id,
        "rule": proposal.rule,
        "statistic": proposal.statistic,
        "threshold": repr(proposal.threshold),
        "runs": {str(r.member_id): None if r.run is None else [r.run.kind, r.run.id] for r in proposal.rows},
        "proposed": {str(r.member_id): str(r.proposed_weight) for r in proposal.rows},
        "current": {str(r.member_id): str(r.current_weight) for r in proposal.rows},
    }


def proposal_token(proposal: Proposal) -> str:
    """The Confirm button's token: what the proposal was made from and against, signed with the site's secret
    (``django.core.signing``), so a confirmation cannot change the weights it is checked against."""
    return signing.dumps(_token_document(proposal), salt=TOKEN_SALT, compress=True)


def proposal_confirmed(*, proposal: Proposal, token: str) -> Proposal:
    """The proposal as it was shown: ``proposal`` (made again from the confirmation's choices) with the current
    weights of the token, the ones the user saw and :func:`deploy_apply` must still find.

    Args:
        proposal: :func:`deploy_propose` of the confirmation's runs, rule, statistic and threshold.
        token: :func:`proposal_token` of the proposal shown.

    Raises:
        DeployInputError: the token is not one of ours (``token``).
        DeployStaleError: the proposal made again differs from the one shown (its members, runs or proposed
            weights changed: a run's results, a member added or removed).
    """
    try:
        shown = signing.loads(token, salt=TOKEN_SALT)
    except signing.BadSignature as exc:
        raise DeployInputError(
            {"token": ["the confirmation is not valid (altered?): propose again"]}
        ) from exc
    again = _token_document(proposal)
    same = all(
        shown.get(key) == again[key] for key in ("portfolio", "rule", "statistic", "threshold", "runs")
    )
    if not same or shown.get("proposed") != again["proposed"]:
        raise DeployStaleError(
            "the members, their runs or the proposed weights changed since the proposal; propose again",
            {"portfolio": proposal.portfolio_id},
        )
    current = shown["current"]
    rows = tuple(
        dataclasses.replace(r, current_weight=Decimal(current[str(r.member_id)])) for r in proposal.rows
    )
    return dataclasses.replace(proposal, rows=rows)


def deploy_apply(*, portfolio: Portfolio, proposal: Proposal, user: Any) -> History:
    """Write the proposed weights and record the change, if the weights are still those the proposal was made
    against.

    One transaction: the portfolio's row is locked (``select_for_update``, as every writer of its members'
    weights must: a second confirmation waits, then finds the weights changed), the members' weights compared
    with the proposal's current ones, the new ones written, and one ``weights_changed`` History row appended
    (step ``deploy``), whose payload is ``{"portfolio": {"id", "name"}, "user", "rule", "statistic",
    "threshold", "budget", "members": [{"member_id", "strategy", "old_weight", "new_weight", "run",
    "statistic_value", "volatility", "reason"}], "runs": [{"member_id", "kind", "id", "label"}]}`` (weights as
    decimal strings).

    Args:
        portfolio: the portfolio.
        proposal: :func:`deploy_propose`'s (through :func:`proposal_confirmed` from a page).
        user: who applies it: needs ``trading.change_portfolio``, and ``trading.trade_live`` when a member
            trades on an exchange.

    Returns:
        The History row.

    Raises:
        django.core.exceptions.PermissionDenied: a permission is missing.
        DeployStaleError: the proposal is of another portfolio, or the members or their weights changed since
            ("the weights changed since the proposal; propose again").
    """
    if not user.has_perm(CHANGE_PORTFOLIO):
        raise PermissionDenied(
            f"changing the weights of a portfolio needs the permission {CHANGE_PORTFOLIO!r}"
        )
    if proposal.portfolio_id != portfolio.pk:
        raise DeployStaleError(f"the proposal is of portfolio {proposal.portfolio_id}, not of {portfolio.pk}")
    with transaction.atomic():
        locked = Portfolio.objects.select_for_update().get(pk=portfolio.pk)
        members = portfolio_members(locked)
        trade_live_check(
            user,
            backends=[member.strategy.execution_backend for member in members],
            what=f"changing the weights of portfolio {locked.name!r}",
        )
        stored = {member.pk: member.weight for member in members}
        if stored != {row.member_id: row.current_weight for row in proposal.rows}:
            raise DeployStaleError(
                "the weights changed since the proposal; propose again", {"portfolio": locked.pk}
            )
        new = {row.member_id: row.proposed_weight for row in proposal.rows}
        for member in members:
            if member.weight != new[member.pk]:
                member.weight = new[member.pk]
                member.save(update_fields=["weight"])
        locked.save(update_fields=["updated_at"])
        changes = ", ".join(
            f"{row.strategy_name} {row.current_weight.normalize():f} -> {row.proposed_weight.normalize():f}"
            for row in proposal.rows
        )
        return history_append(
            uuid.uuid4(),
            Step.DEPLOY,
            HistoryKind.WEIGHTS_CHANGED,
            message=f"portfolio {locked.name!r}: {changes} ({RULES[proposal.rule].split(':')[0]} by "
            f"{proposal.statistic}; by {user.get_username()})",
            payload={
                "portfolio": {"id": locked.pk, "name": locked.name},
                "user": user.get_username(),
                "rule": proposal.rule,
                "statistic": proposal.statistic,
                "threshold": proposal.threshold,
                "budget": str(proposal.budget),
                "members": [
                    {
                        "member_id": row.member_id,
                        "strategy": row.strategy_name,
                        "old_weight": str(row.current_weight),
                        "new_weight": str(row.proposed_weight),
                        "run": None if row.run is None else row.run.as_json(),
                        "statistic_value": row.statistic_value,
                        "volatility": row.volatility,
                        "reason": row.reason,
                    }
                    for row in proposal.rows
                ],
                "runs": [
                    {"member_id": row.member_id, **row.run.as_json()} for row in proposal.rows if row.run
                ],
            },
        )
