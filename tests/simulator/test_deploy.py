"""Deploy winners (issue 16): proposals from real saved runs, the stale check, apply with its one History row,
and the page's permissions (``simulator.services.deploy``, ``simulator.views.deploy``)."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.test import Client

from runs.models import History, HistoryKind, Step
from simulator.models import RunStatus, Simulation, WalkForward
from simulator.services.deploy import (
    DeployInputError,
    DeployStaleError,
    deploy_apply,
    deploy_propose,
    proposal_confirmed,
    proposal_token,
)
from tests.accounts import user_with
from tests.trading.factories import StrategyFactory, sma_cross_criteria
from trading.models import Portfolio, PortfolioStrategy, Strategy

pytestmark = pytest.mark.django_db

DAY = 86_400
START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
#: Returns +10 %, -10 %, +10 %: sample std sqrt(12) / 30 (worked in tests/trading/engine/test_deploy.py).
SWINGING = [100.0, 110.0, 99.0, 108.9]
#: Returns +5 %, -5 %, +5 %: half as volatile, sqrt(12) / 60.
CALMER = [100.0, 105.0, 99.75, 104.7375]


def _curve(equity: list[float]) -> dict[str, Any]:
    return {"time": [START + DAY * i for i in range(len(equity))], "equity": equity}


def _simulation(
    strategy: Strategy | None,
    user: User | None,
    *,
    sharpe: float | None,
    equity: list[float] = SWINGING,
    status: str = RunStatus.DONE,
) -> Simulation:
    return Simulation.objects.create(
        created_by=user,
        start=date(2024, 1, 1),
        end=date(2024, 1, 4),
        starting_cash=Decimal(100),
        criteria=sma_cross_criteria(),
        source_strategy=strategy,
        status=status,
        statistics={"sharpe_ratio": sharpe, "total_return_ratio": equity[-1] / 100 - 1},
        equity_curve=_curve(equity),
    )


def _walk_forward(
    strategy: Strategy, user: User | None, *, sharpe: float, equity: list[float]
) -> WalkForward:
    return WalkForward.objects.create(
        created_by=user,
        start=date(2024, 1, 1),
        end=date(2024, 3, 1),
        starting_cash=Decimal(100),
        criteria=strategy.criteria,
        axes=[{"path": "stop_loss_ratio", "values": [0.05]}],
        train_days=20,
        test_days=10,
        step_days=10,
        status=RunStatus.DONE,
        result={
            "statistics": {"out_of_sample": {"sharpe_ratio": sharpe}, "in_sample": {"sharpe_ratio": 9.0}},
            "curve": _curve(equity),
        },
    )


def _portfolio(*weights: str, backends: tuple[str, ...] = ()) -> tuple[Portfolio, list[PortfolioStrategy]]:
    portfolio = Portfolio.objects.create(name="core")
    members = []
    for i, weight in enumerate(weights):
        backend = backends[i] if i < len(backends) else "paper"
        strategy = StrategyFactory.create(
            name="abcdefgh"[i],
            criteria=sma_cross_criteria(stop_loss_ratio=0.01 * (i + 1)),  # each its own criteria
            execution_backend=backend,
            exchange_id="binance" if backend == "exchange" else "",
        )
        members.append(
            PortfolioStrategy.objects.create(
                portfolio=portfolio, strategy=strategy, weight=Decimal(weight), order=i
            )
        )
    return portfolio, members


def _weights(portfolio: Portfolio) -> list[Decimal]:
    return list(portfolio.members.order_by("order").values_list("weight", flat=True))


# -- proposing -------------------------------------------------------------------------------------------------


def test_winners_by_sharpe_from_two_simulations() -> None:
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    runs = {a.pk: _simulation(a.strategy, None, sharpe=1.2), b.pk: _simulation(b.strategy, None, sharpe=-0.4)}

    proposal = deploy_propose(portfolio=portfolio, runs=runs, rule="winners", statistic="sharpe_ratio")

    rows = {row.strategy_name: row for row in proposal.rows}
    assert [r.strategy_name for r in proposal.rows] == ["a", "b"]
    # a's Sharpe 1.2 > 0 wins the whole portfolio, b's -0.4 loses.
    assert (rows["a"].current_weight, rows["a"].proposed_weight) == (Decimal("0.5"), Decimal(1))
    assert (rows["b"].current_weight, rows["b"].proposed_weight) == (Decimal("0.5"), Decimal(0))
    assert rows["a"].change == Decimal("0.5") and rows["b"].change == Decimal("-0.5")
    assert rows["a"].statistic_value == 1.2 and rows["b"].statistic_value == -0.4
    assert rows["a"].volatility == pytest.approx(math.sqrt(12) / 30)
    assert "winner" in rows["a"].reason and "loser" in rows["b"].reason
    assert rows["a"].run is not None and rows["a"].run.kind == "simulation"
    assert Portfolio.objects.get().members.get(pk=a.pk).weight == Decimal("0.5")  # nothing written


def test_a_member_without_a_run_keeps_its_weight_and_the_others_share_the_rest() -> None:
    portfolio, (a, b, _c) = _portfolio("0.3", "0.5", "0.2")
    runs = {a.pk: _simulation(a.strategy, None, sharpe=0.8), b.pk: _simulation(b.strategy, None, sharpe=-1.0)}

    proposal = deploy_propose(portfolio=portfolio, runs=runs, rule="winners", statistic="sharpe_ratio")

    # c (no run) keeps 0.2; a and b share 1 - 0.2 = 0.8, all of it to the one winner a.
    assert proposal.budget == Decimal("0.8")
    assert [r.proposed_weight for r in proposal.rows] == [Decimal("0.8"), Decimal(0), Decimal("0.2")]
    assert proposal.rows[2].reason == "no run: weight unchanged" and proposal.rows[2].run is None
    assert proposal.proposed_total == Decimal(1)


def test_inverse_volatility_with_a_walk_forward_out_of_sample() -> None:
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    runs: dict[int, Simulation | WalkForward | None] = {
        a.pk: _simulation(a.strategy, None, sharpe=1.0, equity=SWINGING),
        b.pk: _walk_forward(b.strategy, None, sharpe=0.7, equity=CALMER),
    }

    proposal = deploy_propose(
        portfolio=portfolio, runs=runs, rule="inverse_volatility", statistic="sharpe_ratio"
    )

    # 1 / (sqrt(12)/30) : 1 / (sqrt(12)/60) = 1 : 2, so 1/3 and 2/3, rounded down to 6 places.
    assert [r.proposed_weight for r in proposal.rows] == [Decimal("0.333333"), Decimal("0.666666")]
    assert proposal.rows[1].statistic_value == 0.7  # the out-of-sample Sharpe, not the in-sample 9
    assert proposal.rows[1].volatility == pytest.approx(math.sqrt(12) / 60)
    assert proposal.rows[1].run is not None and proposal.rows[1].run.kind == "walk_forward"


def test_proportional_to_the_total_return() -> None:
    portfolio, (a, b) = _portfolio("0", "0")
    # Total returns 8.9 % (SWINGING) and 4.7375 % (CALMER): shares 8.9 / 13.6375 and 4.7375 / 13.6375.
    runs = {
        a.pk: _simulation(a.strategy, None, sharpe=1.0, equity=SWINGING),
        b.pk: _simulation(b.strategy, None, sharpe=1.0, equity=CALMER),
    }

    proposal = deploy_propose(
        portfolio=portfolio, runs=runs, rule="proportional", statistic="total_return_ratio"
    )

    assert [r.proposed_weight for r in proposal.rows] == [Decimal("0.652612"), Decimal("0.347387")]


def test_runs_that_cannot_stand_for_their_member_are_refused_by_field() -> None:
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    of_b = _simulation(b.strategy, None, sharpe=1.0)
    running = _simulation(b.strategy, None, sharpe=1.0, status=RunStatus.RUNNING)

    with pytest.raises(DeployInputError) as caught:
        deploy_propose(
            portfolio=portfolio, runs={a.pk: of_b, b.pk: running}, rule="winners", statistic="sharpe_ratio"
        )

    assert "not a run of strategy 'a'" in caught.value.errors[f"run_{a.pk}"][0]
    assert "running, not done" in caught.value.errors[f"run_{b.pk}"][0]
    with pytest.raises(DeployInputError) as nothing:
        deploy_propose(portfolio=portfolio, runs={}, rule="winners", statistic="sharpe_ratio")
    assert "at least one member" in nothing.value.errors["__all__"][0]
    with pytest.raises(DeployInputError) as lower:
        deploy_propose(
            portfolio=portfolio, runs={a.pk: _simulation(a.strategy, None, sharpe=1)}, rule="winners",
            statistic="max_drawdown_ratio",
        )  # fmt: skip
    assert "higher is better" in lower.value.errors["statistic"][0]


# -- applying --------------------------------------------------------------------------------------------------


def test_apply_writes_the_weights_and_exactly_one_history_row() -> None:
    user = user_with("editor", "trading.change_portfolio")
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    ra, rb = _simulation(a.strategy, user, sharpe=1.2), _simulation(b.strategy, user, sharpe=-0.4)
    proposal = deploy_propose(
        portfolio=portfolio, runs={a.pk: ra, b.pk: rb}, rule="winners", statistic="sharpe_ratio"
    )
    before = History.objects.count()

    history = deploy_apply(portfolio=portfolio, proposal=proposal, user=user)

    assert _weights(portfolio) == [Decimal(1), Decimal(0)]
    assert History.objects.count() == before + 1
    assert (history.kind, history.step) == (HistoryKind.WEIGHTS_CHANGED, Step.DEPLOY)
    stored = History.objects.get(pk=history.pk).payload
    assert stored["portfolio"] == {"id": portfolio.pk, "name": "core"}
    assert (
        stored["rule"] == "winners" and stored["statistic"] == "sharpe_ratio" and stored["user"] == "editor"
    )
    assert [
        (m["strategy"], Decimal(m["old_weight"]), Decimal(m["new_weight"])) for m in stored["members"]
    ] == [
        ("a", Decimal("0.5"), Decimal(1)),
        ("b", Decimal("0.5"), Decimal(0)),
    ]
    assert [(r["member_id"], r["kind"], r["id"]) for r in stored["runs"]] == [
        (a.pk, "simulation", ra.pk),
        (b.pk, "simulation", rb.pk),
    ]
    assert "a 0.5 -> 1, b 0.5 -> 0" in history.message


def test_a_stale_proposal_is_refused_and_changes_nothing() -> None:
    user = user_with("editor", "trading.change_portfolio")
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    runs = {a.pk: _simulation(a.strategy, user, sharpe=1.2), b.pk: _simulation(b.strategy, user, sharpe=-0.4)}
    proposal = deploy_propose(portfolio=portfolio, runs=runs, rule="winners", statistic="sharpe_ratio")
    PortfolioStrategy.objects.filter(pk=b.pk).update(weight=Decimal("0.4"))  # someone changed it meanwhile
    before = History.objects.count()

    with pytest.raises(DeployStaleError, match="the weights changed since the proposal; propose again"):
        deploy_apply(portfolio=portfolio, proposal=proposal, user=user)

    assert _weights(portfolio) == [Decimal("0.5"), Decimal("0.4")]
    assert History.objects.count() == before


def test_apply_needs_change_portfolio_and_trade_live_for_an_exchange_member() -> None:
    portfolio, (a, b) = _portfolio("0.5", "0.5", backends=("paper", "exchange"))
    runs = {a.pk: _simulation(a.strategy, None, sharpe=1.2), b.pk: _simulation(b.strategy, None, sharpe=-0.4)}
    proposal = deploy_propose(portfolio=portfolio, runs=runs, rule="winners", statistic="sharpe_ratio")

    with pytest.raises(PermissionDenied, match="change_portfolio"):
        deploy_apply(
            portfolio=portfolio, proposal=proposal, user=user_with("viewer", "trading.view_portfolio")
        )
    with pytest.raises(PermissionDenied, match="trade_live"):
        deploy_apply(
            portfolio=portfolio, proposal=proposal, user=user_with("paper", "trading.change_portfolio")
        )
    assert _weights(portfolio) == [Decimal("0.5"), Decimal("0.5")]
    live = user_with("live", "trading.change_portfolio", "trading.trade_live")
    deploy_apply(portfolio=portfolio, proposal=proposal, user=live)
    assert _weights(portfolio) == [Decimal(1), Decimal(0)]


def test_the_token_carries_the_weights_shown_and_refuses_another_proposal() -> None:
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    runs = {a.pk: _simulation(a.strategy, None, sharpe=1.2), b.pk: _simulation(b.strategy, None, sharpe=0.3)}
    shown = deploy_propose(portfolio=portfolio, runs=runs, rule="winners", statistic="sharpe_ratio")
    token = proposal_token(shown)
    PortfolioStrategy.objects.filter(pk=b.pk).update(weight=Decimal("0.4"))
    again = deploy_propose(portfolio=portfolio, runs=runs, rule="winners", statistic="sharpe_ratio")
    assert again.rows[1].current_weight == Decimal("0.4")

    confirmed = proposal_confirmed(proposal=again, token=token)

    # The weights the user saw, which deploy_apply will not find any more.
    assert [r.current_weight for r in confirmed.rows] == [Decimal("0.5"), Decimal("0.5")]
    other = deploy_propose(portfolio=portfolio, runs=runs, rule="proportional", statistic="sharpe_ratio")
    with pytest.raises(DeployStaleError, match="propose again"):
        proposal_confirmed(proposal=other, token=token)
    with pytest.raises(DeployInputError) as altered:
        proposal_confirmed(proposal=again, token=token[:-2] + "xx")
    assert "token" in altered.value.errors


# -- the page --------------------------------------------------------------------------------------------------


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _propose(client: Client, portfolio: Portfolio, runs: dict[int, Simulation], **fields: Any) -> Any:
    data = {"rule": "winners", "statistic": "sharpe_ratio", "threshold": "0", **fields}
    data.update({f"run_{member_id}": f"simulation:{run.pk}" for member_id, run in runs.items()})
    return client.post(f"/simulator/deploy/{portfolio.pk}/", data)


def _confirm_data(html: str) -> dict[str, str]:
    form = re.search(r'<form[^>]*id="deploy-confirm-form".*?</form>', html, re.S)
    assert form is not None, "no Confirm form on the page"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form[0]))


def test_the_page_proposes_for_a_viewer_but_only_a_changer_may_confirm() -> None:
    viewer = user_with("viewer", "trading.view_portfolio")
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    runs = {
        a.pk: _simulation(a.strategy, viewer, sharpe=1.2),
        b.pk: _simulation(b.strategy, viewer, sharpe=-0.4),
    }
    client = _client(viewer)

    assert client.get(f"/simulator/deploy/{portfolio.pk}/").status_code == 200
    response = _propose(client, portfolio, runs)

    html = response.content.decode()
    assert response.status_code == 200
    assert re.search(
        r'data-strategy="a">.*?data-field="proposed">1<.*?data-field="change">\+0.5<', html, re.S
    )
    assert re.search(r'data-strategy="b">.*?data-field="proposed">0<.*?data-field="change">-0.5<', html, re.S)
    assert 'id="deploy-confirm-form"' not in html and "trading.change_portfolio" in html
    confirm = client.post(f"/simulator/deploy/{portfolio.pk}/confirm/", {"rule": "winners"})
    assert confirm.status_code == 403
    assert _weights(portfolio) == [Decimal("0.5"), Decimal("0.5")]


def test_the_page_needs_view_portfolio() -> None:
    portfolio, _ = _portfolio("0.5", "0.5")
    client = _client(user_with("nobody"))

    assert client.get(f"/simulator/deploy/{portfolio.pk}/").status_code == 403
    assert client.post(f"/simulator/deploy/{portfolio.pk}/", {}).status_code == 403


def test_confirm_applies_then_a_second_confirm_is_stale() -> None:
    editor = user_with("editor", "trading.view_portfolio", "trading.change_portfolio")
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    runs = {
        a.pk: _simulation(a.strategy, editor, sharpe=1.2),
        b.pk: _simulation(b.strategy, editor, sharpe=-0.4),
    }
    client = _client(editor)
    data = _confirm_data(_propose(client, portfolio, runs).content.decode())

    applied = client.post(f"/simulator/deploy/{portfolio.pk}/confirm/", data, follow=True)

    assert applied.redirect_chain == [(f"/simulator/deploy/{portfolio.pk}/", 302)]
    assert "Weights of core changed: a 0.5 -&gt; 1, b 0.5 -&gt; 0" in applied.content.decode()
    assert _weights(portfolio) == [Decimal(1), Decimal(0)]
    assert History.objects.filter(kind=HistoryKind.WEIGHTS_CHANGED).count() == 1
    # The same Confirm again: the weights are no longer the ones it was proposed against.
    again = client.post(f"/simulator/deploy/{portfolio.pk}/confirm/", data)
    assert again.status_code == 200
    assert "the weights changed since the proposal; propose again" in again.content.decode()
    assert History.objects.filter(kind=HistoryKind.WEIGHTS_CHANGED).count() == 1


def test_confirm_of_an_exchange_member_needs_trade_live() -> None:
    editor = user_with("editor", "trading.view_portfolio", "trading.change_portfolio")
    portfolio, (a, b) = _portfolio("0.5", "0.5", backends=("paper", "exchange"))
    runs = {
        a.pk: _simulation(a.strategy, editor, sharpe=1.2),
        b.pk: _simulation(b.strategy, editor, sharpe=-0.4),
    }
    client = _client(editor)
    page = _propose(client, portfolio, runs).content.decode()
    assert 'id="deploy-confirm-form"' not in page and "trading.trade_live" in page
    data = {"rule": "winners", "statistic": "sharpe_ratio", "threshold": "0", "token": "x"}

    assert client.post(f"/simulator/deploy/{portfolio.pk}/confirm/", data).status_code == 403
    assert _weights(portfolio) == [Decimal("0.5"), Decimal("0.5")]


def test_form_errors_are_shown_by_their_field() -> None:
    viewer = user_with("viewer", "trading.view_portfolio")
    portfolio, (a, b) = _portfolio("0.5", "0.5")
    runs = {a.pk: _simulation(a.strategy, viewer, sharpe=1.2)}
    other = _simulation(b.strategy, user_with("other"), sharpe=1.0)
    client = _client(viewer)

    bad = _propose(client, portfolio, runs, threshold="lots", statistic="max_drawdown_ratio")
    foreign = client.post(
        f"/simulator/deploy/{portfolio.pk}/",
        {
            "rule": "winners",
            "statistic": "sharpe_ratio",
            "threshold": "0",
            f"run_{b.pk}": f"simulation:{other.pk}",
        },
    )

    html = bad.content.decode()
    assert re.search(r'data-error-for="threshold"><li>Enter a number', html)
    assert re.search(r'data-error-for="statistic"><li>Select a valid choice', html)
    assert re.search(rf'data-error-for="run_{b.pk}"><li>Select a valid choice', foreign.content.decode())
    assert 'id="deploy-table"' not in html
