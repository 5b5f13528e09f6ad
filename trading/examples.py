"""The example strategies Barter ships, as data, and the service that loads them.

Each is a criteria document (``../shared/CRITERIA.md``, format version 1) with its name and description. They
are not a data migration: the instruments they trade come from ``load_shipped_history``, which runs after
``migrate``, so ``manage.py load_example_strategies`` loads them (``make run`` calls it with ``--enable``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from instruments.models import Instrument
from trading.engine.criteria import criteria_parse
from trading.engine.examples import sma_cross_criteria
from trading.models import Strategy
from trading.strategies import strategies_set_enabled

#: The instruments the examples trade, by CoinGecko id; those not stored yet are skipped.
EXAMPLE_INSTRUMENTS = ("bitcoin", "ethereum", "litecoin")
#: Starting cash of each example's paper account, quote currency.
EXAMPLE_STARTING_CASH = Decimal("10000")

_COSTS: dict[str, Any] = {"fee_rate": 0.001, "slippage_ratio": 0.0005}

#: ``[{"name", "description", "criteria"}, ...]``. Ratios are fractions: 0.08 means 8 %.
EXAMPLE_STRATEGIES: list[dict[str, Any]] = [
    {
        "name": "SMA 20/50 trend",
        "description": (
            "Trend following: buy when the 20-day SMA crosses above the 50-day SMA, sell when it crosses back "
            "below; 8 % stop-loss. Spends all of the account's equity on an entry."
        ),
        "criteria": {
            **sma_cross_criteria(fast_period=20, slow_period=50),
            "stop_loss_ratio": 0.08,
            "take_profit_ratio": None,
            "trailing_stop_ratio": None,
            "max_holding_days": None,
            "sizing": {"method": "equity_fraction", "value": 1.0},
            **_COSTS,
        },
    },
    {
        "name": "RSI(14) mean reversion",
        "description": (
            "Mean reversion: buy when the 14-day RSI (Wilder) falls below 30, sell when it rises above 55; "
            "10 % take-profit and 10 % stop-loss. Spends half of the account's equity on an entry."
        ),
        "criteria": {
            "version": 1,
            "side": "long",
            "entry": {
                "all": [{"left": {"indicator": "rsi", "period": 14}, "op": "<", "right": {"value": 30}}]
            },
            "exit": {
                "any": [{"left": {"indicator": "rsi", "period": 14}, "op": ">", "right": {"value": 55}}]
            },
            "stop_loss_ratio": 0.10,
            "take_profit_ratio": 0.10,
            "trailing_stop_ratio": None,
            "max_holding_days": None,
            "sizing": {"method": "equity_fraction", "value": 0.5},
            **_COSTS,
        },
    },
    {
        "name": "20-day breakout",
        "description": (
            "Breakout: buy when the close rises above the highest high of the 20 candles before it; a 10 % "
            "trailing stop, and out after 60 days at the latest. Spends half of the account's equity on an entry."
        ),
        "criteria": {
            "version": 1,
            "side": "long",
            "entry": {
                "all": [
                    {
                        "left": {"indicator": "close"},
                        "op": ">",
                        "right": {"indicator": "highest", "period": 20, "source": "high", "shift": 1},
                    }
                ]
            },
            "exit": None,
            "stop_loss_ratio": None,
            "take_profit_ratio": None,
            "trailing_stop_ratio": 0.10,
            "max_holding_days": 60,
            "sizing": {"method": "equity_fraction", "value": 0.5},
            **_COSTS,
        },
    },
]


@transaction.atomic
def example_strategies_load(*, enable: bool) -> list[Strategy]:
    """Create or update the example strategies by name and link them to the stored example instruments.

    Idempotent: a second call writes nothing. An existing example whose description, criteria or starting cash
    differ from the shipped ones gets them back; instruments are added, never removed, so ones linked by hand
    stay.

    Args:
        enable: enable every example. False creates new ones disabled and leaves existing ones as they are.

    Returns:
        The example strategies, in :data:`EXAMPLE_STRATEGIES` order, with ``instruments`` prefetched.

    Raises:
        CriteriaError: a shipped criteria document is invalid (a defect; the tests guard against it).
    """
    instruments = list(Instrument.objects.filter(coingecko_id__in=EXAMPLE_INSTRUMENTS))
    names = [spec["name"] for spec in EXAMPLE_STRATEGIES]
    existing = {s.name: s for s in Strategy.objects.select_for_update().filter(name__in=names)}
    for spec in EXAMPLE_STRATEGIES:
        criteria_parse(spec["criteria"])
        shipped = {
            "description": spec["description"],
            "criteria": spec["criteria"],
            "starting_cash": EXAMPLE_STARTING_CASH,
        }
        strategy = existing.get(spec["name"])
        if strategy is None:
            strategy = Strategy.objects.create(name=spec["name"], is_enabled=enable, **shipped)
        else:
            changed = [name for name, value in shipped.items() if getattr(strategy, name) != value]
            if changed:
                for name in changed:
                    setattr(strategy, name, shipped[name])
                strategy.save(update_fields=[*changed, "updated_at"])
        strategy.instruments.add(*instruments)
    examples = Strategy.objects.filter(name__in=names)
    if enable:
        strategies_set_enabled(strategies=examples, is_enabled=True)
    by_name = {s.name: s for s in examples.prefetch_related("instruments")}
    return [by_name[name] for name in names]
