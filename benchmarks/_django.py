"""Set up Django for a benchmark on a database of its own, with the shipped daily history loaded."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/barter_bench"


def ensure_postgres_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` when it does not exist."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit((parts.scheme.replace("postgres", "postgresql"), parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')  # the name comes from the operator's own URL


def django_setup(database_url: str, redis_url: str = "", *, shipped_history: bool = True) -> None:
    """Point Django at ``database_url`` (and Celery at ``redis_url``, in-process when empty), migrate, and (unless
    ``shipped_history`` is False) load the shipped history when the database has no candles."""
    if database_url.startswith("postgres"):
        ensure_postgres_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "barter_site.settings.local"
    os.environ["DJANGO_DEBUG"] = "False"
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    if shipped_history:
        call_command("load_shipped_history", verbosity=0)


def minutes_import(folder: Path, coingecko_id: str) -> tuple[int, float | None]:
    """Store a folder of Binance one-minute kline CSVs as the ``1m`` candles of ``coingecko_id`` (symbol BTCM)
    unless 500,000 or more are stored already (after :func:`django_setup`).

    Returns:
        ``(stored, seconds)``: the 1m candles stored now, and the seconds the import took (None when nothing was
        imported).

    Raises:
        SystemExit: the folder holds no CSV file, or the import refused a file (its message).
    """
    from instruments.models import InstrumentOHLC, Timeframe
    from instruments.sources.files.imports import ohlc_import

    def stored() -> int:
        return InstrumentOHLC.objects.filter(
            instrument__coingecko_id=coingecko_id, timeframe=Timeframe.M1
        ).count()

    if stored() >= 500_000:
        return stored(), None
    files = sorted(folder.glob("*.csv"))
    if not files:
        sys.exit(f"no CSV files in {folder}")
    began = time.perf_counter()
    results = ohlc_import(
        paths=files, coingecko_id=coingecko_id, symbol="BTCM", name="BTCUSDT minutes", timeframe="1m"
    )
    refused = [r.error for r in results if r.error]
    if refused:
        sys.exit("import refused: " + refused[0])
    return stored(), time.perf_counter() - began


def example_criteria() -> dict[str, Any]:
    """The shipped example "SMA 20/50 trend" (``trading/examples.py``): SMA 20/50 crossover, 8 % stop-loss."""
    from trading.examples import EXAMPLE_STRATEGIES

    (example,) = [e for e in EXAMPLE_STRATEGIES if e["name"] == "SMA 20/50 trend"]
    criteria: dict[str, Any] = example["criteria"]
    return criteria
