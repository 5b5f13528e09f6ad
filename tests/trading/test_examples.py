"""The shipped example strategies and ``manage.py load_example_strategies``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command

from tests.instruments.factories import InstrumentFactory
from tests.trading.factories import StrategyFactory
from trading.engine.criteria import criteria_parse
from trading.examples import EXAMPLE_STRATEGIES, example_strategies_load
from trading.models import Strategy

pytestmark = pytest.mark.django_db

NAMES = ["SMA 20/50 trend", "RSI(14) mean reversion", "20-day breakout"]


# dict[str, Any]: the type trading.examples.EXAMPLE_STRATEGIES declares for its JSON documents
@pytest.mark.parametrize("spec", EXAMPLE_STRATEGIES, ids=lambda spec: spec["name"])
def test_every_example_is_valid_criteria_with_the_shipped_costs(spec: dict[str, Any]) -> None:
    criteria = criteria_parse(spec["criteria"])
    assert criteria.fee_rate == 0.001
    assert criteria.slippage_ratio == 0.0005
    assert criteria.side == "long"


def test_the_examples_say_what_they_trade() -> None:
    sma, rsi, breakout = (criteria_parse(spec["criteria"]) for spec in EXAMPLE_STRATEGIES)
    assert [spec["name"] for spec in EXAMPLE_STRATEGIES] == NAMES
    assert (sma.stop_loss_ratio, sma.sizing.value, sma.exit is not None) == (0.08, 1.0, True)
    assert (rsi.take_profit_ratio, rsi.stop_loss_ratio, rsi.sizing.value) == (0.10, 0.10, 0.5)
    assert (breakout.trailing_stop_ratio, breakout.max_holding_days, breakout.exit) == (0.10, 60, None)
    assert breakout.sizing.value == 0.5
    [right] = [op for op in breakout.operands() if op.indicator == "highest"]
    assert (right.param("period"), right.param("source"), right.shift) == (20, "high", 1)


def test_load_creates_three_disabled_strategies_linked_to_the_stored_example_instruments() -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    litecoin = InstrumentFactory.create(coingecko_id="litecoin")
    InstrumentFactory.create(coingecko_id="dogecoin")

    loaded = example_strategies_load(enable=False)

    assert [s.name for s in loaded] == NAMES
    for strategy in Strategy.objects.all():
        assert strategy.is_enabled is False
        assert strategy.starting_cash == Decimal("10000")
        assert strategy.execution_backend == "paper"
        assert set(strategy.instruments.all()) == {bitcoin, litecoin}
        strategy.parsed_criteria()


def test_load_is_idempotent_and_writes_nothing_the_second_time() -> None:
    InstrumentFactory.create(coingecko_id="ethereum")
    example_strategies_load(enable=False)
    before = {s.name: s.updated_at for s in Strategy.objects.all()}

    example_strategies_load(enable=False)

    assert Strategy.objects.count() == 3
    assert {s.name: s.updated_at for s in Strategy.objects.all()} == before
    assert all(s.instruments.count() == 1 for s in Strategy.objects.all())


def test_load_restores_the_shipped_criteria_links_new_instruments_and_keeps_the_enabled_state() -> None:
    example_strategies_load(enable=False)  # no instruments stored yet
    trend = Strategy.objects.get(name="SMA 20/50 trend")
    trend.criteria = {**trend.criteria, "stop_loss_ratio": 0.2}
    trend.is_enabled = True
    trend.save()
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")

    example_strategies_load(enable=False)

    trend.refresh_from_db()
    assert trend.criteria["stop_loss_ratio"] == 0.08
    assert trend.is_enabled is True
    assert list(trend.instruments.all()) == [bitcoin]


def test_the_command_enables_with_enable(capsys: pytest.CaptureFixture[str]) -> None:
    InstrumentFactory.create(coingecko_id="bitcoin")
    StrategyFactory.create(name="mine")

    call_command("load_example_strategies")
    assert not Strategy.objects.enabled().exists()
    call_command("load_example_strategies", "--enable")

    assert sorted(Strategy.objects.enabled().values_list("name", flat=True)) == sorted(NAMES)
    assert Strategy.objects.count() == 4
    assert not Strategy.objects.get(name="mine").is_enabled
    out = capsys.readouterr().out
    assert "SMA 20/50 trend: disabled; bitcoin" in out
    assert "SMA 20/50 trend: enabled; bitcoin" in out
