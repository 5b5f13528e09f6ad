"""How large and how slow the result page of a year of one-minute candles is (issue 13: < 1 MB, < 1 s).

    .venv/bin/python benchmarks/run_page_minutes.py [../shared/data/minute/binance_btcusdt_1m_2024]
        [--database-url postgres://postgres@127.0.0.1:5432/barter_bench] [--repeat 3] [--fee-rate 0.001]

Imports the year of Binance BTCUSDT one-minute klines as :mod:`simulator_minutes` does (once; a database that
already holds them is reused), runs SMA 10/30 cross, 2 % stop-loss, 4 % take-profit (:func:`simulator_minutes.
criteria`; ``--fee-rate`` and ``--slippage-ratio`` add costs: at 0.1 % a side the account is ruined), then fetches
the run's page (``/simulator/runs/<id>/``) and its API detail (``/api/simulations/<id>/``) through Django's test
client: bytes, and the median seconds of ``--repeat`` fetches after one untimed one.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import DEFAULT_DATABASE_URL, django_setup, minutes_import
from simulator_minutes import COIN, criteria

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "folder", nargs="?", type=Path, default=Path("../shared/data/minute/binance_btcusdt_1m_2024")
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fee-rate", type=float, default=0.0)
    parser.add_argument("--slippage-ratio", type=float, default=0.0)
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        sys.exit("--database-url must be a PostgreSQL URL (a throwaway database)")

    django_setup(args.database_url, shipped_history=False)
    minutes_import(args.folder, COIN)

    from django.contrib.auth.models import User
    from django.test import Client

    from simulator.services.requests import simulation_request_check
    from simulator.services.simulations import simulation_create, simulation_run

    user, _ = User.objects.get_or_create(username="benchmark", defaults={"is_staff": True})
    request = simulation_request_check(
        instruments=[COIN],
        start=date(2024, 1, 1),
        end=date(2024, 12, 31),
        starting_cash="10000",
        criteria={**criteria(), "fee_rate": args.fee_rate, "slippage_ratio": args.slippage_ratio},
        timeframe="1m",
    )
    simulation = simulation_run(
        simulation=simulation_create(request=request, name="page 1m", created_by=user)
    )
    if simulation.status != "done":
        sys.exit(f"the run failed: {simulation.error}")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    print(
        f"run {simulation.pk}: {simulation.statistics['n_trades']:,} trades, final equity "
        f"{simulation.statistics['final_equity']:.6g}, fee {args.fee_rate}, slippage {args.slippage_ratio}"
    )
    print(f"{'page':34} {'bytes':>11} {'seconds (median)':>17}")
    for path in (f"/simulator/runs/{simulation.pk}/", f"/api/simulations/{simulation.pk}/"):
        timings = []
        for n in range(args.repeat + 1):
            began = time.perf_counter()
            answer = client.get(path)
            if n:
                timings.append(time.perf_counter() - began)
        if answer.status_code != 200:
            sys.exit(f"{path} answered {answer.status_code}")
        print(f"{path:34} {len(answer.content):11,} {statistics.median(timings):17.3f}")


if __name__ == "__main__":
    main()
