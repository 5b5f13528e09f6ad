"""How long the simulator takes over a year of one-minute candles (issue 13's goal: median < 5 s).

    .venv/bin/python benchmarks/simulator_minutes.py [../shared/data/minute/binance_btcusdt_1m_2024]
        [--database-url postgres://postgres@127.0.0.1:5432/barter_bench] [--repeat 3]

Imports one year of Binance BTCUSDT one-minute klines (one CSV a day) into PostgreSQL as ``1m`` candles of the
instrument ``bench-btc-minutes`` (once: a database that already holds them is reused), then times the
simulator's own path for one run, as a worker runs it after the form or the API: the request's checks
(:func:`simulator.services.requests.simulation_request_check`), saving the run, reading every candle from the
database, the engine, the statistics and saving the results (:func:`simulator.services.simulations.
simulation_run`). The criteria: SMA 10/30 cross, 2 % stop-loss, 4 % take-profit, no fee or slippage.
One untimed run first (numba's compiled code from its cache), then the median of ``--repeat``.

The database (default ``BENCH_DATABASE_URL``) is created when missing; use a throwaway one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import DEFAULT_DATABASE_URL, django_setup, minutes_import

ROOT = Path(__file__).resolve().parent.parent
COIN = "bench-btc-minutes"


def criteria() -> dict[str, Any]:
    """SMA 10/30 cross with a 2 % stop-loss and a 4 % take-profit, all the equity on an entry, no costs."""
    from trading.engine.examples import sma_cross_criteria

    return {
        **sma_cross_criteria(fast_period=10, slow_period=30),
        "stop_loss_ratio": 0.02,
        "take_profit_ratio": 0.04,
        "trailing_stop_ratio": None,
        "max_holding_days": None,
        "sizing": {"method": "equity_fraction", "value": 1.0},
        # No costs: at 0.1 % a side the year's thousands of minute trades eat the whole account (the equity
        # reaches 0 and the run fails), which is not what this measures.
        "fee_rate": 0.0,
        "slippage_ratio": 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        default=Path("../shared/data/minute/binance_btcusdt_1m_2024"),
        help="folder of BTCUSDT-1m-YYYY-MM-DD.csv files (default ../shared/data/minute/binance_btcusdt_1m_2024)",
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        sys.exit("--database-url must be a PostgreSQL URL (a throwaway database)")
    django_setup(args.database_url, shipped_history=False)
    stored, import_seconds = minutes_import(args.folder, COIN)
    imported = "" if import_seconds is None else f" (imported in {import_seconds:.1f} s)"

    from instruments.models import InstrumentOHLC
    from simulator.services.requests import simulation_request_check
    from simulator.services.simulations import simulation_create, simulation_run

    first = (
        InstrumentOHLC.objects.filter(instrument__coingecko_id=COIN).earliest("open_time").open_time.date()
    )
    last = InstrumentOHLC.objects.filter(instrument__coingecko_id=COIN).latest("open_time").open_time.date()
    start, end = max(first, date(2024, 1, 1)), min(last, date(2024, 12, 31))

    def run() -> tuple[float, Any]:
        began = time.perf_counter()
        request = simulation_request_check(
            instruments=[COIN],
            start=start,
            end=end,
            starting_cash="10000",
            criteria=criteria(),
            timeframe="1m",
        )
        simulation = simulation_run(simulation=simulation_create(request=request, name="benchmark 1m"))
        seconds = time.perf_counter() - began
        if simulation.status != "done":
            sys.exit(f"the run failed: {simulation.error}")
        return seconds, simulation

    run()  # numba's compiled code from its cache, the database's pages warm
    timings = []
    for _ in range(args.repeat):
        seconds, simulation = run()
        timings.append(seconds)
    statistics_ = simulation.statistics
    curve = simulation.equity_curve
    size = len(str(curve)) / 1e6

    print(f"{stored:,} one-minute candles stored{imported}; run {start} .. {end}, database PostgreSQL")
    print(
        f"trades {statistics_['n_trades']}, final equity {statistics_['final_equity']:.2f}, "
        f"curve kept {len(curve['time']):,} of {curve.get('candles', len(curve['time'])):,} points "
        f"({size:.1f} MB of JSON)"
    )
    print(f"{'measure':58} {'seconds':>8} {'goal':>6}")
    print(
        f"{'one 1m run: checks, read, engine, statistics, save (median)':58} "
        f"{statistics.median(timings):8.2f} {'< 5':>6}"
    )
    print(f"{'  slowest of ' + str(args.repeat):58} {max(timings):8.2f}")
    print(f"{'  of which read, engine, statistics (duration_seconds)':58} {simulation.duration_seconds:8.2f}")


if __name__ == "__main__":
    main()
