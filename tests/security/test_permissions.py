"""Regression tests of issue 11, items 1 and 5: who may change a real-money strategy and run the steps, and no
backend switch while positions are open. Each reproduces the attack or the careless change that today's main
let through (there the API checked only that a token was valid, and the backend switch was not checked).

Also run on PostgreSQL (``DATABASE_URL=postgres://...``): the rule of item 5 locks the strategy's row.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from positions.models import Position
from runs.models import History
from tests.accounts import VIEW_ALL, token_client, user_with
from tests.fakes.coingecko import FakeCoinGecko
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.trading.factories import PositionFactory, StrategyFactory, sma_cross_criteria
from trading.models import Strategy

pytestmark = pytest.mark.django_db

#: The attack's criteria: enter whenever a candle closed above zero, i.e. every day.
ALWAYS = sma_cross_criteria(
    entry={"all": [{"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}]}
)
EDITOR = (*VIEW_ALL, "trading.add_strategy", "trading.change_strategy")


def _exchange_strategy(**fields: Any) -> Strategy:
    """A staff-made strategy trading real money on Binance."""
    strategy: Strategy = StrategyFactory.create(
        name=fields.pop("name", "live"), execution_backend="exchange", exchange_id="binance", **fields
    )
    return strategy


def _admin_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _admin_form(strategy: Strategy, **overrides: Any) -> dict[str, Any]:
    """The admin change form of ``strategy`` as a browser posts it, with ``overrides``."""
    data: dict[str, Any] = {
        "name": strategy.name,
        "description": strategy.description,
        "criteria": json.dumps(strategy.criteria),
        "instruments": [i.pk for i in strategy.instruments.all()],
        "starting_cash": str(strategy.starting_cash),
        "execution_backend": strategy.execution_backend,
        "exchange_id": strategy.exchange_id,
        "trading_enabled": "on",
    }
    data.update(overrides)
    return data


# Item 1: the API --------------------------------------------------------------------------------------------


def test_a_plain_token_cannot_take_over_an_exchange_strategy() -> None:
    live = _exchange_strategy(instruments=[InstrumentFactory.create(coingecko_id="bitcoin")])
    attacker = token_client(user_with("mallory"))

    response = attacker.patch(
        f"/api/strategies/{live.pk}/",
        {"criteria": ALWAYS, "is_enabled": True, "starting_cash": "1000000"},
        format="json",
    )

    assert response.status_code == 403
    live.refresh_from_db()
    assert (live.is_enabled, live.starting_cash, live.criteria) == (
        False,
        Decimal("10000"),
        sma_cross_criteria(),
    )


def test_without_run_steps_the_open_step_is_403_and_nothing_asks_for_a_price(
    fake_coingecko: FakeCoinGecko,
) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    CandleFactory.create_batch(30, instrument=bitcoin)
    StrategyFactory.create(name="always", criteria=ALWAYS, is_enabled=True, instruments=[bitcoin])
    # Every read permission, and strategy edits too: still not the steps.
    reader = token_client(user_with("mallory", *EDITOR))

    for step in ("sync_data", "sync_new_trades", "sync_close_positions"):
        response = reader.post(f"/api/{step}", {}, format="json")
        assert response.status_code == 403, step
        assert "trading.run_steps" in response.json()["detail"]

    assert fake_coingecko.seen == []  # no candle, no price: nothing reached CoinGecko (nor an exchange)
    assert not History.objects.exists()  # no run was even started
    assert not Position.objects.exists()


def test_change_strategy_without_trade_live_cannot_enable_or_edit_an_exchange_strategy() -> None:
    live = _exchange_strategy()
    editor = token_client(user_with("editor", *EDITOR))

    assert editor.patch(f"/api/strategies/{live.pk}/", {"is_enabled": True}, format="json").status_code == 403
    assert editor.patch(f"/api/strategies/{live.pk}/", {"description": "x"}, format="json").status_code == 403
    # Moving it to paper is a change of a live strategy too.
    switch = editor.patch(f"/api/strategies/{live.pk}/", {"execution_backend": "paper"}, format="json")
    assert switch.status_code == 403
    live.refresh_from_db()
    assert (live.is_enabled, live.description, live.execution_backend) == (
        False,
        "made by a test",
        "exchange",
    )
    # Reading it is not a change.
    assert editor.get(f"/api/strategies/{live.pk}/").status_code == 200


def test_change_strategy_without_trade_live_cannot_switch_a_backend_to_exchange() -> None:
    paper = StrategyFactory.create(
        name="paper", exchange_id="binance"
    )  # an exchange account set, still on paper
    editor = token_client(user_with("editor", *EDITOR))

    response = editor.patch(f"/api/strategies/{paper.pk}/", {"execution_backend": "exchange"}, format="json")

    assert response.status_code == 403
    assert "trading.trade_live" in response.json()["detail"]
    paper.refresh_from_db()
    assert paper.execution_backend == "paper"
    # The same edit of a paper strategy without the switch is allowed.
    assert (
        editor.patch(f"/api/strategies/{paper.pk}/", {"is_enabled": True}, format="json").status_code == 200
    )


def test_with_trade_live_the_exchange_strategy_can_be_changed() -> None:
    live = _exchange_strategy()
    trader = token_client(user_with("trader", *EDITOR, "trading.trade_live"))

    response = trader.patch(f"/api/strategies/{live.pk}/", {"is_enabled": True}, format="json")

    assert response.status_code == 200
    live.refresh_from_db()
    assert live.is_enabled


# Item 1: the admin ------------------------------------------------------------------------------------------


def test_admin_change_strategy_without_trade_live_sees_an_exchange_strategy_read_only() -> None:
    live = _exchange_strategy(instruments=[InstrumentFactory.create()])
    staff = _admin_client(user_with("staff", *EDITOR, is_staff=True))
    url = f"/admin/trading/strategy/{live.pk}/change/"

    page = staff.get(url)
    posted = staff.post(url, _admin_form(live, is_enabled="on", starting_cash="1000000"))

    assert page.status_code == 200 and b'name="starting_cash"' not in page.content  # a view, no form
    assert posted.status_code == 403
    live.refresh_from_db()
    assert (live.is_enabled, live.starting_cash) == (False, Decimal("10000"))


@pytest.mark.parametrize("action", ["enable", "disable"])
def test_admin_enable_and_disable_of_an_exchange_strategy_need_trade_live(action: str) -> None:
    live = _exchange_strategy(is_enabled=action == "disable")
    staff = _admin_client(user_with("staff", *EDITOR, is_staff=True))

    response = staff.post(
        "/admin/trading/strategy/", {"action": action, "_selected_action": [live.pk], "index": 0}
    )

    assert response.status_code == 403
    live.refresh_from_db()
    assert live.is_enabled is (action == "disable")


def test_admin_switch_to_exchange_needs_trade_live_and_says_so_under_the_field() -> None:
    paper = StrategyFactory.create(
        name="paper", exchange_id="binance", instruments=[InstrumentFactory.create()]
    )
    staff = _admin_client(user_with("staff", *EDITOR, is_staff=True))

    response = staff.post(
        f"/admin/trading/strategy/{paper.pk}/change/", _admin_form(paper, execution_backend="exchange")
    )

    assert response.status_code == 200
    assert "trading.trade_live" in str(response.context["adminform"].form.errors["execution_backend"])
    paper.refresh_from_db()
    assert paper.execution_backend == "paper"


def test_admin_close_now_of_an_exchange_position_needs_trade_live(fake_coingecko: FakeCoinGecko) -> None:
    position = PositionFactory.create(strategy=_exchange_strategy())
    staff = _admin_client(
        user_with("staff", "positions.view_position", "positions.change_position", is_staff=True)
    )

    response = staff.post(
        "/admin/positions/position/", {"action": "close_now", "_selected_action": [position.pk], "index": 0}
    )

    assert response.status_code == 403
    position.refresh_from_db()
    assert position.status == Position.Status.OPEN
    assert fake_coingecko.seen == []


def test_admin_sync_now_needs_change_instrument(monkeypatch: pytest.MonkeyPatch) -> None:
    import instruments.admin

    synced: list[Any] = []

    def sync_data(**kwargs: Any) -> dict[str, Any]:
        synced.append(kwargs)
        return {"results": []}

    monkeypatch.setattr(instruments.admin, "sync_data", sync_data)
    instrument = InstrumentFactory.create(coingecko_id="bitcoin")
    viewer = _admin_client(user_with("viewer", "instruments.view_instrument", is_staff=True))

    response = viewer.post(
        "/admin/instruments/instrument/",
        {"action": "sync_now", "_selected_action": [instrument.pk], "index": 0},
    )

    assert response.status_code in (200, 302)  # Django's "no action selected": the action is not offered
    assert synced == []


def test_save_as_strategy_needs_add_strategy(shipped_history: None) -> None:
    from simulator.models import RunStatus, Simulation

    user = user_with("trader")
    simulation = Simulation.objects.create(
        created_by=user,
        start="2020-01-01",
        end="2020-02-01",
        starting_cash=Decimal(1000),
        criteria=sma_cross_criteria(),
        status=RunStatus.DONE,
    )
    client = _admin_client(user)

    response = client.post(f"/simulator/runs/{simulation.pk}/strategy/", {"name": "mine"})

    assert response.status_code == 403
    assert not Strategy.objects.filter(name="mine").exists()


# Item 5: no backend switch while positions are open --------------------------------------------------------


def test_api_refuses_switching_to_exchange_while_paper_positions_are_open() -> None:
    paper = StrategyFactory.create(name="paper", exchange_id="binance")
    held = PositionFactory.create(strategy=paper)
    trader = token_client(user_with("trader", *EDITOR, "trading.trade_live"))

    response = trader.patch(f"/api/strategies/{paper.pk}/", {"execution_backend": "exchange"}, format="json")

    assert response.status_code == 400
    (message,) = response.json()["execution_backend"]
    assert f"while 1 position(s) are open (ids {held.pk})" in message
    paper.refresh_from_db()
    assert paper.execution_backend == "paper"
    # Once the position is closed, the switch is accepted.
    Position.objects.filter(pk=held.pk).update(
        status=Position.Status.CLOSED,
        exit_price=Decimal("110"),
        exit_at=held.entry_at,
        exit_fee=Decimal("0.11"),
        exit_reason=Position.ExitReason.MANUAL,
        pnl=Decimal("9.79"),
        pnl_ratio=Decimal("0.0978"),
    )
    response = trader.patch(f"/api/strategies/{paper.pk}/", {"execution_backend": "exchange"}, format="json")
    assert response.status_code == 200, response.json()


def test_api_refuses_switching_an_exchange_strategy_to_paper_while_positions_are_open() -> None:
    live = _exchange_strategy()
    PositionFactory.create(strategy=live)
    trader = token_client(user_with("trader", *EDITOR, "trading.trade_live"))

    response = trader.patch(f"/api/strategies/{live.pk}/", {"execution_backend": "paper"}, format="json")

    assert response.status_code == 400
    assert "from 'exchange' to 'paper'" in response.json()["execution_backend"][0]


def test_admin_refuses_switching_to_exchange_while_paper_positions_are_open_next_to_the_field() -> None:
    paper = StrategyFactory.create(
        name="paper", exchange_id="binance", instruments=[InstrumentFactory.create()]
    )
    held = PositionFactory.create(strategy=paper)
    boss = _admin_client(user_with("boss", is_staff=True, is_superuser=True))

    response = boss.post(
        f"/admin/trading/strategy/{paper.pk}/change/", _admin_form(paper, execution_backend="exchange")
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["execution_backend"]
    assert f"while 1 position(s) are open (ids {held.pk})" in errors["execution_backend"][0]
    paper.refresh_from_db()
    assert paper.execution_backend == "paper"
