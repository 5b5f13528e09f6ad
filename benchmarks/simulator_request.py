"""How long one simulator request takes end to end: the form POST for five years of daily BTC candles, and the
result page it redirects to (issue 4's goal: median <= 150 ms on PostgreSQL).

    .venv/bin/python benchmarks/simulator_request.py [--database-url postgres://...] [--repeat 30]

Each request goes through Django's whole stack in this process (middleware, session login, the form, the
database reads of every stored BTC candle, the engine, saving the run, rendering the result page with its chart
data), with Django's test client instead of a socket. The criteria are an SMA 20/50 crossover with an 8 %
stop-loss, 2019-04-21 .. 2024-04-20 (the last five years of the shipped history).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _django import DEFAULT_DATABASE_URL, django_setup, example_criteria


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    django_setup(args.database_url)

    from django.contrib.auth.models import User
    from django.test import Client

    from instruments.models import Instrument

    user, _ = User.objects.get_or_create(username="benchmark", defaults={"is_staff": True})
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    form = {
        "instruments": [str(Instrument.objects.get(coingecko_id="bitcoin").pk)],
        "start": "2019-04-21",
        "end": "2024-04-20",
        "starting_cash": "10000",
        "advanced": "on",
        "criteria_json": json.dumps(example_criteria()),
        "action": "run",
    }
    posts, pages, totals = [], [], []
    for n in range(args.repeat + 3):
        began = time.perf_counter()
        answer = client.post("/simulator/", form)
        posted = time.perf_counter()
        if answer.status_code != 302:
            raise SystemExit(f"the form answered {answer.status_code}, not a redirect to the result")
        page = client.get(answer["Location"])
        done = time.perf_counter()
        if page.status_code != 200 or b'id="chart-equity"' not in page.content:
            raise SystemExit(f"the result page answered {page.status_code} without its charts")
        if n >= 3:  # the first requests warm the caches and load the compiled engine
            posts.append(posted - began)
            pages.append(done - posted)
            totals.append(done - began)
    from simulator.models import Simulation

    last = Simulation.objects.latest("pk")
    print(
        f"database: {args.database_url.split('@')[-1]}   requests: {args.repeat}   "
        f"candles in the range: {len(last.equity_curve['time'])}   trades: {last.statistics['n_trades']}"
    )
    print("| measure | median ms | p90 ms | goal |")
    print("|---|---|---|---|")
    for name, values, goal in (
        ("form POST (checks, candles, engine, save)", posts, ""),
        ("result page GET (read, chart data, render)", pages, ""),
        ("one request of the form, end to end (POST + result page)", totals, "<= 150"),
    ):
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(f"| {name} | {statistics.median(values) * 1000:.0f} | {p90 * 1000:.0f} | {goal} |")


if __name__ == "__main__":
    main()
