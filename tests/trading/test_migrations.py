"""Migration ``trading.0004_strategystep_instrument``: a claim of a whole strategy becomes one per instrument."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import StateApps

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("trading", "0003_strategy_permissions")]
AFTER = [("trading", "0004_strategystep_instrument")]


def migrate(targets: list[tuple[str, str]]) -> StateApps:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def test_a_strategy_claim_becomes_one_claim_per_instrument_and_back() -> None:
    apps = migrate(BEFORE)
    try:
        Instrument = apps.get_model("instruments", "Instrument")
        Strategy = apps.get_model("trading", "Strategy")
        StrategyStep = apps.get_model("trading", "StrategyStep")
        btc = Instrument.objects.create(coingecko_id="bitcoin", symbol="BTC", name="Bitcoin")
        eth = Instrument.objects.create(coingecko_id="ethereum", symbol="ETH", name="Ethereum")
        both = Strategy.objects.create(name="both", criteria={})
        both.instruments.set([btc, eth])
        empty = Strategy.objects.create(name="empty", criteria={})
        day, run = date(2024, 1, 11), uuid.uuid4()
        StrategyStep.objects.create(strategy=both, step="open", as_of=day, run_id=run)
        StrategyStep.objects.create(strategy=both, step="close", as_of=day, run_id=run)
        StrategyStep.objects.create(strategy=empty, step="open", as_of=day, run_id=run)

        apps = migrate(AFTER)
        StrategyStep = apps.get_model("trading", "StrategyStep")
        rows = sorted(
            StrategyStep.objects.values_list(
                "strategy__name", "step", "as_of", "instrument__coingecko_id", "run_id"
            )
        )
        assert rows == [
            ("both", "close", day, "bitcoin", run),
            ("both", "close", day, "ethereum", run),
            ("both", "open", day, "bitcoin", run),
            ("both", "open", day, "ethereum", run),
        ]  # the strategy without instruments had nothing to handle

        apps = migrate(BEFORE)
        StrategyStep = apps.get_model("trading", "StrategyStep")
        assert sorted(StrategyStep.objects.values_list("strategy__name", "step", "as_of")) == [
            ("both", "close", day),
            ("both", "open", day),
        ]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
