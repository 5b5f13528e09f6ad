"""What a Monte Carlo of a run's trades costs (trading/engine/monte_carlo.py): 1,000 paths of 500 trades, reshuffled
and bootstrapped, warm, in this process; the goal is well under 0.1 s. Also 10,000 paths of 2,000 trades (the
largest the page and the API take).

    .venv/bin/python benchmarks/engine_monte_carlo.py [--repeat 15]

Prints the median and the best of ``--repeat`` runs (after one that imports scipy for the interval).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trading.engine.monte_carlo import monte_carlo_trades  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    for paths, trades, runs in ((1_000, 500, repeat), (10_000, 2_000, 3)):
        returns = np.random.default_rng(1).normal(0.002, 0.03, trades)
        for method in ("reshuffle", "bootstrap"):
            monte_carlo_trades(returns, starting_equity=10_000.0, method=method, paths=paths)
            seconds = []
            for _ in range(runs):
                start = time.perf_counter()
                monte_carlo_trades(returns, starting_equity=10_000.0, method=method, paths=paths)
                seconds.append(time.perf_counter() - start)
            print(
                f"{paths:>6,} paths x {trades:>5,} trades, {method:<9}: median {statistics.median(seconds):.4f} s, "
                f"best {min(seconds):.4f} s"
            )


if __name__ == "__main__":
    main()
