"""The strategies and positions API: CRUD without delete, criteria errors with their paths, filters, history,
and query counts that do not grow with the number of rows."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from positions.models import Position
from runs.models import HistoryKind, Step
from runs.recorder import run_start
from tests.accounts import STRATEGY_EDITOR, token_client, user_with
from tests.instruments.factories import InstrumentFactory
from tests.trading.factories import PositionFactory, StrategyFactory, sma_cross_criteria
from trading.models import Strategy

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(db: None) -> APIClient:
    return token_client(user_with("robot", *STRATEGY_EDITOR))


def _queries(call: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200
    return len(captured.captured_queries)


def _criteria_without(key: str) -> dict[str, Any]:
    document = sma_cross_criteria()
    del document[key]
    return document


def _criteria_with_entry(*conditions: dict[str, Any]) -> dict[str, Any]:
    return sma_cross_criteria(entry={"all": list(conditions)})


SMA_CROSS = sma_cross_criteria()["entry"]["all"][0]  # SMA(10) crosses above SMA(20)


def test_no_token_is_401() -> None:
    assert APIClient().get("/api/strategies/").status_code == 401
    assert APIClient().post("/api/strategies/", {}, format="json").status_code == 401
    assert APIClient().get("/api/positions/").status_code == 401


def test_strategies_are_listed_with_cash_and_open_positions(api: APIClient) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    ethereum = InstrumentFactory.create(coingecko_id="ethereum")
    strategy = StrategyFactory.create(name="trend", instruments=[bitcoin, ethereum])
    StrategyFactory.create(name="another")
    PositionFactory.create(
        strategy=strategy, instrument=bitcoin, quantity=Decimal("2"), entry_price=Decimal("100")
    )
    PositionFactory.create(strategy=strategy, instrument=ethereum, closed=True)

    response = api.get("/api/strategies/")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [s["name"] for s in body["results"]] == ["another", "trend"]
    trend = body["results"][1]
    assert sorted(trend["instruments"]) == ["bitcoin", "ethereum"]
    assert trend["open_positions"] == 1
    # 10000 - (2 * 100 + 0.2) - (1 * 100 + 0.1) + (1 * 110 - 0.11) = 9809.59
    assert Decimal(trend["cash"]) == Decimal("9809.59")
    assert trend["starting_cash"] == "10000.000000000000000000"
    assert trend["criteria"] == sma_cross_criteria()
    assert trend["execution_backend"] == "paper"
    assert set(trend) == {
        "id",
        "name",
        "description",
        "criteria",
        "instruments",
        "is_enabled",
        "starting_cash",
        "execution_backend",
        "created_at",
        "updated_at",
        "cash",
        "open_positions",
    }


def test_strategy_list_queries_do_not_grow_with_strategies_and_positions(api: APIClient) -> None:
    def build(n: int) -> None:
        for _ in range(n):
            instrument = InstrumentFactory.create()
            strategy = StrategyFactory.create(instruments=[instrument, InstrumentFactory.create()])
            PositionFactory.create(strategy=strategy, instrument=instrument)
            PositionFactory.create(strategy=strategy, instrument=instrument, closed=True)

    build(1)
    few = _queries(lambda: api.get("/api/strategies/"))
    build(5)
    many = _queries(lambda: api.get("/api/strategies/"))
    # token with its user, the user's other tokens (knox drops expired ones), the user's and its groups'
    # permissions, count, page, the page's instruments, the page's positions
    assert few == many == 8


def test_strategy_detail(api: APIClient) -> None:
    strategy = StrategyFactory.create(name="trend", starting_cash=Decimal("500"))
    PositionFactory.create(strategy=strategy)

    body = api.get(f"/api/strategies/{strategy.pk}/").json()

    assert body["id"] == strategy.pk
    assert body["open_positions"] == 1
    # 500 - (100 + 0.1) = 399.9
    assert Decimal(body["cash"]) == Decimal("399.9")
    assert api.get("/api/strategies/999999/").status_code == 404


def test_create_a_strategy(api: APIClient) -> None:
    InstrumentFactory.create(coingecko_id="bitcoin")
    InstrumentFactory.create(coingecko_id="ethereum")
    body = {
        "name": "trend",
        "description": "sma cross",
        "criteria": sma_cross_criteria(),
        "instruments": ["bitcoin", "ethereum"],
        "starting_cash": "2500",
    }

    response = api.post("/api/strategies/", body, format="json")

    assert response.status_code == 201, response.json()
    created = Strategy.objects.get(name="trend")
    assert response.json()["id"] == created.pk
    assert response.json()["cash"] == "2500.000000000000000000"
    assert response.json()["open_positions"] == 0
    assert created.criteria == sma_cross_criteria()
    assert sorted(created.instruments.values_list("coingecko_id", flat=True)) == ["bitcoin", "ethereum"]
    assert created.starting_cash == Decimal("2500")
    assert created.is_enabled is False


def test_patch_a_strategy(api: APIClient) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    InstrumentFactory.create(coingecko_id="litecoin")
    strategy = StrategyFactory.create(name="trend", instruments=[bitcoin])

    response = api.patch(
        f"/api/strategies/{strategy.pk}/",
        {
            "is_enabled": True,
            "instruments": ["litecoin"],
            "criteria": sma_cross_criteria(stop_loss_ratio=0.05),
        },
        format="json",
    )

    assert response.status_code == 200, response.json()
    strategy.refresh_from_db()
    assert strategy.is_enabled is True
    assert list(strategy.instruments.values_list("coingecko_id", flat=True)) == ["litecoin"]
    assert strategy.criteria["stop_loss_ratio"] == 0.05
    assert response.json()["instruments"] == ["litecoin"]


def test_put_and_delete_are_refused(api: APIClient) -> None:
    strategy = StrategyFactory.create()
    assert api.put(f"/api/strategies/{strategy.pk}/", {}, format="json").status_code == 405
    assert api.delete(f"/api/strategies/{strategy.pk}/").status_code == 405
    assert Strategy.objects.filter(pk=strategy.pk).exists()


@pytest.mark.parametrize(
    ("criteria", "messages"),
    [
        (
            _criteria_with_entry(
                SMA_CROSS,
                {"left": {"indicator": "close"}, "op": ">", "right": {"indicator": "sma", "period": 0}},
            ),
            ["entry.all[1].right.period: must be an integer >= 1, was 0"],
        ),
        (
            _criteria_with_entry(
                {"left": {"indicator": "smma", "period": 5}, "op": ">", "right": {"value": 1}}
            ),
            [
                "entry.all[0].left.indicator: must be one of value, open, high, low, close, volume, sma, ema, rsi, "
                "roc, highest, lowest, atr, bb_upper, bb_middle, bb_lower, macd, macd_signal, macd_hist, was 'smma'"
            ],
        ),
        (
            _criteria_with_entry({"left": {"indicator": "close"}, "op": "=>", "right": {"value": 1}}),
            ["entry.all[0].op: must be one of >, >=, <, <=, crosses_above, crosses_below, was '=>'"],
        ),
        (
            sma_cross_criteria(side="short"),
            ["side: short positions are not supported yet; use long, was 'short'"],
        ),
        (_criteria_without("entry"), ['entry: is required: a condition such as {"all": [...]}']),
        (
            sma_cross_criteria(stop_loss_ratio=1.5, fee_rate=-0.1),
            ["stop_loss_ratio: must be > 0 and < 1, was 1.5", "fee_rate: must be >= 0 and < 0.1, was -0.1"],
        ),
        ("not an object", ["criteria must be a JSON object, was 'not an object'"]),
    ],
    ids=[
        "period-0",
        "unknown-indicator",
        "unknown-op",
        "short-side",
        "no-entry",
        "two-problems",
        "not-object",
    ],
)
def test_bad_criteria_are_400_with_one_message_per_problem_and_its_path(
    api: APIClient, criteria: dict[str, Any] | str, messages: list[str]
) -> None:
    body = {"name": "bad", "criteria": criteria}

    created = api.post("/api/strategies/", body, format="json")
    strategy = StrategyFactory.create()
    patched = api.patch(
        f"/api/strategies/{strategy.pk}/", {"criteria": copy.deepcopy(criteria)}, format="json"
    )

    assert created.status_code == 400
    assert created.json() == {"criteria": messages}
    assert patched.status_code == 400
    assert patched.json() == {"criteria": messages}
    assert not Strategy.objects.filter(name="bad").exists()
    strategy.refresh_from_db()
    assert strategy.criteria == sma_cross_criteria()


def test_unknown_instrument_is_400(api: APIClient) -> None:
    InstrumentFactory.create(coingecko_id="bitcoin")
    body = {"name": "trend", "criteria": sma_cross_criteria(), "instruments": ["bitcoin", "dogecoin"]}

    response = api.post("/api/strategies/", body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "instruments": [
            "unknown instrument 'dogecoin': use the CoinGecko id of a stored instrument (GET /api/instruments/)"
        ]
    }
    assert not Strategy.objects.exists()


def test_an_instrument_id_with_a_nul_character_is_400_not_a_database_error(api: APIClient) -> None:
    # PostgreSQL text cannot hold NUL: the lookup itself would raise DataError (found by schemathesis)
    body = {"name": "trend", "criteria": sma_cross_criteria(), "instruments": ["bit\x00coin"]}

    response = api.post("/api/strategies/", body, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "instruments": ["unknown instrument 'bit\\x00coin': a CoinGecko id has no NUL character"]
    }
    assert not Strategy.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"starting_cash": "0"}, "starting_cash", "must be > 0, was 0"),
        ({"starting_cash": "-5"}, "starting_cash", "must be > 0, was -5"),
        ({"execution_backend": "binance"}, "execution_backend", '"binance" is not a valid choice.'),
        ({"name": "taken"}, "name", "strategy with this name already exists."),
    ],
)
def test_other_bad_fields_are_400(api: APIClient, body: dict[str, str], field: str, message: str) -> None:
    StrategyFactory.create(name="taken")
    response = api.post(
        "/api/strategies/", {"name": "new", "criteria": sma_cross_criteria(), **body}, format="json"
    )
    assert response.status_code == 400
    assert response.json()[field] == [message]


def test_positions_are_listed_newest_first_with_pnl(api: APIClient) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    strategy = StrategyFactory.create(name="trend")
    older = PositionFactory.create(strategy=strategy, instrument=bitcoin, closed=True)
    newer = PositionFactory.create(strategy=strategy, instrument=bitcoin)

    body = api.get("/api/positions/").json()

    assert [p["id"] for p in body["results"]] == [newer.pk, older.pk]
    closed = body["results"][1]
    assert closed["strategy"] == strategy.pk
    assert closed["strategy_name"] == "trend"
    assert closed["instrument"] == "bitcoin"
    assert closed["status"] == "closed"
    assert closed["exit_reason"] == "signal"
    # (110 - 0.11) - (100 + 0.1) = 9.79; 9.79 / 100.1 = 0.0978021978...
    assert Decimal(closed["pnl"]) == Decimal("9.79")
    assert closed["pnl_ratio"].startswith("0.0978021978")
    assert body["results"][0]["pnl"] is None
    assert body["results"][0]["exit_price"] is None


def test_positions_filters(api: APIClient) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    ethereum = InstrumentFactory.create(coingecko_id="ethereum")
    trend = StrategyFactory.create(name="trend")
    revert = StrategyFactory.create(name="revert")
    a = PositionFactory.create(strategy=trend, instrument=bitcoin)
    b = PositionFactory.create(strategy=trend, instrument=ethereum, closed=True)
    c = PositionFactory.create(strategy=revert, instrument=bitcoin, closed=True)

    def ids(query: str) -> set[int]:
        response = api.get(f"/api/positions/?{query}")
        assert response.status_code == 200, response.json()
        return {p["id"] for p in response.json()["results"]}

    assert ids("") == {a.pk, b.pk, c.pk}
    assert ids("status=open") == {a.pk}
    assert ids("status=closed") == {b.pk, c.pk}
    assert ids(f"strategy={trend.pk}") == {a.pk, b.pk}
    assert ids("strategy=revert") == {c.pk}
    assert ids("instrument=bitcoin") == {a.pk, c.pk}
    assert ids("strategy=trend&instrument=bitcoin&status=open") == {a.pk}
    assert ids("status=open&instrument=ethereum") == set()


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("status=opened", "status", '"opened" is not a valid choice.'),
        ("strategy=nope", "strategy", "unknown strategy 'nope': give a strategy's id or its name"),
        ("strategy=999999", "strategy", "unknown strategy '999999': give a strategy's id or its name"),
        (
            "instrument=dogecoin",
            "instrument",
            "unknown instrument 'dogecoin': give a stored instrument's CoinGecko id (GET /api/instruments/)",
        ),
        (
            "instruments=bitcoin",
            "instruments",
            "unknown field; expected one of instrument, page, status, strategy",
        ),
    ],
)
def test_bad_positions_filters_are_400(api: APIClient, query: str, field: str, message: str) -> None:
    response = api.get(f"/api/positions/?{query}")
    assert response.status_code == 400
    assert response.json() == {field: [message]}


def test_position_list_queries_do_not_grow(api: APIClient) -> None:
    strategy = StrategyFactory.create(name="trend")
    PositionFactory.create(strategy=strategy)
    few = _queries(lambda: api.get("/api/positions/?strategy=trend&status=open"))
    for _ in range(6):
        PositionFactory.create(strategy=strategy)
        PositionFactory.create(closed=True)
    many = _queries(lambda: api.get("/api/positions/?strategy=trend&status=open"))
    # token with its user, the strategy's id, count, page (strategy and instrument joined)
    assert few == many == 7  # 3 of them per request: knox's sweep of expired tokens, the user's permissions
    assert _queries(lambda: api.get("/api/positions/")) == 6


def test_position_detail_includes_its_history_oldest_first(
    api: APIClient, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    position = PositionFactory.create(instrument=bitcoin)
    other = PositionFactory.create()
    run = run_start(step=Step.OPEN, params={})
    run.event(HistoryKind.ORDER, instrument=bitcoin, position=position, message="buy 1 BTC")
    run.event(HistoryKind.FILL, instrument=bitcoin, position=position, message="bought 1 BTC at 100")
    run.event(HistoryKind.POSITION_OPENED, instrument=bitcoin, position=position, message="opened BTC")
    run.event(HistoryKind.POSITION_OPENED, position=other, message="another position")

    # token with its user, the user's other tokens, the user's and its groups' permissions, the position, its
    # history
    with django_assert_num_queries(6):
        response = api.get(f"/api/positions/{position.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == position.pk
    assert body["status"] == Position.Status.OPEN
    assert [h["message"] for h in body["history"]] == ["buy 1 BTC", "bought 1 BTC at 100", "opened BTC"]
    assert [h["kind"] for h in body["history"]] == ["order", "fill", "position_opened"]
    assert body["history"][0]["instrument"] == "bitcoin"
    assert "history" not in api.get("/api/positions/").json()["results"][0]


def test_schema_documents_strategies_and_positions(api: APIClient) -> None:
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert set(paths["/api/strategies/"]) >= {"get", "post"}
    assert set(paths["/api/strategies/{id}/"]) >= {"get", "patch"}
    assert "delete" not in paths["/api/strategies/{id}/"]
    assert "put" not in paths["/api/strategies/{id}/"]
    assert "/api/positions/" in paths
    assert "/api/positions/{id}/" in paths
