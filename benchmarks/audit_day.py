"""How long the daily audit takes: 5 strategies x 3 instruments x 1 year of live days (issue 17: run daily).

    .venv/bin/python benchmarks/audit_day.py [--repeat 5] [--database-url postgres://...]

Sets up a database of its own (``barter_bench_audit``) with the shipped daily history (Bitstamp BTC, ETH, LTC), and
five enabled paper strategies on all three, live since 2019-01-01: an open-step claim per instrument and day of 2019
(:class:`positions.models.StrategyStep`) and their positions as the engine traded them (each strategy's backtest
over 2019 written as positions, which is what the replayed cycle makes: tests/trading/test_parity.py). Then it
times :func:`positions.audit.audit_day` for 2019-12-30: each strategy's backtest over the year from its first live
day, its positions, the day's candles, the rows written. The first call of the process (the engine's compiled code
loaded from its cache) and the median of ``--repeat`` more (the same day again: the rows are updated).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import django_setup

FIRST, AS_OF = date(2019, 1, 1), date(2019, 12, 30)
COINS = ["bitcoin", "ethereum", "litecoin"]


def _criteria(n: int) -> dict[str, object]:
    """Five strategies of different kinds: RSI with take-profit and holding limit, SMA cross with stop, breakouts."""
    rsi = {"indicator": "rsi", "period": 14}
    sma20, sma50 = {"indicator": "sma", "period": 20}, {"indicator": "sma", "period": 50}
    close = {"indicator": "close"}
    kinds: list[dict[str, object]] = [
        {
            "entry": {"left": rsi, "op": "<", "right": {"value": 35}},
            "take_profit_ratio": 0.06,
            "max_holding_days": 7,
        },
        {
            "entry": {"left": rsi, "op": "<", "right": {"value": 45}},
            "exit": {"left": rsi, "op": ">", "right": {"value": 60}},
            "stop_loss_ratio": 0.04,
        },
        {
            "entry": {"left": sma20, "op": "crosses_above", "right": sma50},
            "exit": {"left": sma20, "op": "crosses_below", "right": sma50},
            "stop_loss_ratio": 0.08,
        },
        {
            "entry": {
                "left": close,
                "op": ">",
                "right": {"indicator": "highest", "period": 20, "source": "high", "shift": 1},
            },
            "trailing_stop_ratio": 0.1,
        },
        {
            "entry": {
                "left": close,
                "op": ">",
                "right": {"indicator": "highest", "period": 10, "source": "high", "shift": 1},
            },
            "exit": {
                "left": close,
                "op": "<",
                "right": {"indicator": "lowest", "period": 10, "source": "low", "shift": 1},
            },
        },
    ]
    return {
        "version": 1,
        "side": "long",
        "exit": None,
        "fee_rate": 0.001,
        "slippage_ratio": 0.0005,
        "sizing": {"method": "equity_fraction", "value": 0.3},
        **kinds[n],
    }


def _setup() -> list[Any]:
    from instruments.models import Instrument
    from positions.models import Position, StrategyAudit, StrategyStep
    from runs.models import Step
    from trading.backtests import backtest_stored, instrument_key
    from trading.models import Strategy
    from trading.selectors import from_seconds, to_decimal

    old = Strategy.objects.filter(name__startswith="bench-audit-")
    StrategyAudit.objects.filter(strategy__in=old).delete()
    StrategyStep.objects.filter(strategy__in=old).delete()
    Position.objects.filter(strategy__in=old).delete()
    old.delete()
    instruments = list(Instrument.objects.filter(coingecko_id__in=COINS))
    keyed = {instrument_key(i): i for i in instruments}
    strategies = []
    positions = 0
    for n in range(5):
        strategy = Strategy.objects.create(
            name=f"bench-audit-{n}", criteria=_criteria(n), starting_cash=Decimal(10_000), is_enabled=True
        )
        strategy.instruments.set(instruments)
        run_id = uuid.uuid4()
        StrategyStep.objects.bulk_create(
            StrategyStep(
                strategy=strategy,
                step=Step.OPEN,
                as_of=FIRST + timedelta(days=d),
                instrument=i,
                run_id=run_id,
            )
            for d in range((AS_OF - FIRST).days + 2)
            for i in instruments
        )
        result = backtest_stored(
            criteria=strategy.parsed_criteria(), instruments=instruments, start=FIRST, end=AS_OF + timedelta(days=1),
            starting_cash=10_000.0,
        )  # fmt: skip
        for trade in result.trades:
            closed = trade.exit_time_seconds is not None
            exit_price, exit_fee = trade.exit_price or 0.0, trade.exit_fee or 0.0
            pnl, pnl_ratio = trade.pnl or 0.0, trade.pnl_ratio or 0.0
            Position.objects.create(
                strategy=strategy,
                instrument=keyed[trade.symbol],
                status="closed" if closed else "open",
                quantity=to_decimal(trade.quantity),
                entry_price=to_decimal(trade.entry_price),
                entry_at=from_seconds(trade.entry_time_seconds),
                entry_fee=to_decimal(trade.entry_fee),
                exit_price=to_decimal(exit_price) if closed else None,
                exit_at=from_seconds(trade.exit_time_seconds or 0) if closed else None,
                exit_fee=to_decimal(exit_fee) if closed else None,
                exit_reason=trade.exit_reason or "",
                pnl=to_decimal(pnl) if closed else None,
                pnl_ratio=to_decimal(pnl_ratio) if closed else None,
            )
            positions += 1
        strategies.append(strategy)
    print(f"5 strategies x 3 instruments, live {FIRST} .. {AS_OF}: {positions} positions")
    return strategies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/barter_bench_audit")
    args = parser.parse_args()
    django_setup(args.database_url)
    strategies = _setup()
    from positions.audit import audit_day

    started = time.perf_counter()
    audits = audit_day(as_of=AS_OF, strategies=strategies)
    first = time.perf_counter() - started
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        audit_day(as_of=AS_OF, strategies=strategies)
        times.append(time.perf_counter() - started)
    mismatches = sum(a.signal_mismatches + a.open_mismatches for a in audits)
    print(f"audit_day({AS_OF}): {len(audits)} strategies audited, {mismatches} mismatches")
    print(
        f"first call of the process: {first:.3f} s; warm median of {args.repeat}: {statistics.median(times):.3f} s"
    )


if __name__ == "__main__":
    main()
