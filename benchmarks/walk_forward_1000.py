"""How long one walk-forward of 10 folds x 1,000 grid points takes (issue 15: <= 10 s).

    .venv/bin/python benchmarks/walk_forward_1000.py [--database-url postgres://...] [--repeat 3]

The grid is the sweep benchmarks' (SMA fast 5..50 by 5 x slow 20..218 by 2 of the shipped "SMA 20/50 trend"
example, 8 % stop-loss), over every stored BTC day (2014-12-01 .. 2024-04-20, the shipped history: 3,429 days),
rolling windows of 729 train days and 270 test days: 10 folds, each choosing among 1,000 points on its train
window (the sweep kernel) and running the choice on its test window. Timed from the service's checks
(``walk_forward_create``: every grid point's criteria checked) to the saved result (``walk_forward_run``, what the
Celery task and the embedded mode's thread call), in this process: one core.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import DEFAULT_DATABASE_URL, django_setup, example_criteria
from simulator_sweep import AXES


def one_walk_forward() -> tuple[float, int, int]:
    """Create and run the walk-forward; return (seconds, folds, points a fold)."""
    from simulator.models import RunStatus
    from simulator.services.requests import simulation_request_check
    from simulator.services.walk_forwards import walk_forward_create, walk_forward_run

    began = time.perf_counter()
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2014, 12, 1),
        end=date(2024, 4, 20),
        starting_cash=Decimal("10000"),
        criteria=example_criteria(),
    )
    record = walk_forward_create(
        request=request, axes=AXES, train_days=729, test_days=270, statistic="sharpe_ratio", name="benchmark"
    )
    done = walk_forward_run(walk_forward_id=record.pk)
    seconds = time.perf_counter() - began
    if done.status != RunStatus.DONE:
        raise SystemExit(f"the walk-forward failed: {done.error}")
    return seconds, len(done.result["folds"]), int(done.result["trials"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    django_setup(args.database_url)
    from trading.engine.warmup import warm

    warm()  # the compiled engine loaded (a server or worker does it at start)
    runs = [one_walk_forward() for _ in range(args.repeat)]
    _, folds, points = runs[0]
    print(
        f"database: {args.database_url.split('@')[-1]}   cores: {os.cpu_count()}   "
        f"load average (1 min): {os.getloadavg()[0]:.1f}"
    )
    print(f"| measure (median of {args.repeat}) | seconds | goal |")
    print("|---|---|---|")
    print(
        f"| walk-forward, {folds} folds x {points:,} grid points, checks to saved result | "
        f"{statistics.median(r[0] for r in runs):.2f} | <= 10 |"
    )
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
