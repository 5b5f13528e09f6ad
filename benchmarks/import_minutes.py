"""Print how fast ``import_ohlc`` reads, validates, rolls up and stores one-minute Binance klines.

Usage (from the repository root, with the project's virtual environment):

    .venv/bin/python benchmarks/import_minutes.py ../shared/data/minute/binance_btcusdt_1m_2024 [--days 366]
        [--database-url sqlite:////tmp/bench.sqlite3 | postgres://postgres@127.0.0.1:5432/bench]

The database is created (or emptied) for the run; never point it at a database you keep.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="folder of BTCUSDT-1m-YYYY-MM-DD.csv files")
    parser.add_argument("--days", type=int, default=366, help="how many daily files to import (default all)")
    parser.add_argument(
        "--database-url", default="", help="throwaway database (default: a temporary SQLite file)"
    )
    args = parser.parse_args()

    files = sorted(args.folder.glob("*.csv"))[: args.days]
    if not files:
        sys.exit(f"no CSV files in {args.folder}")
    scratch = tempfile.mkdtemp(prefix="barter-bench-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{scratch}/bench.sqlite3"
    os.environ["DJANGO_SETTINGS_MODULE"] = "barter_site.settings.local"
    os.environ.setdefault("DJANGO_DEBUG", "false")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

    import django

    django.setup()
    from django.core.management import call_command

    from instruments.models import Instrument, InstrumentOHLC
    from instruments.sources.files.imports import ohlc_import

    call_command("migrate", "--noinput", verbosity=0)
    if args.database_url:
        call_command("flush", "--noinput", verbosity=0)

    rows = 0
    figures: list[tuple[str, float, int]] = []
    for label, to_timeframe, coin in (
        ("rolled up to 1d", "1d", "bench-daily"),
        ("stored as 1m (first import)", None, "bench-minutes"),
        ("stored as 1m (second import, unchanged)", None, "bench-minutes"),
    ):
        started = time.perf_counter()
        results = ohlc_import(paths=files, coingecko_id=coin, timeframe="1m", to_timeframe=to_timeframe)
        seconds = time.perf_counter() - started
        rows = sum(r.rows_read for r in results)
        figures.append((label, seconds, sum(r.added for r in results)))

    print(f"{len(files)} files, {rows:,} one-minute rows, database {django.db.connection.vendor}")
    print(f"{'step':42} {'seconds':>8} {'rows/s':>10} {'candles added':>14}")
    for label, seconds, added in figures:
        print(f"{label:42} {seconds:8.2f} {rows / seconds:10,.0f} {added:14,}")
    stored = InstrumentOHLC.objects.filter(instrument__in=Instrument.objects.all()).count()
    print(f"candles stored in all: {stored:,}")


if __name__ == "__main__":
    main()
