"""``manage.py load_shipped_history [--force]``: import the daily history shipped in ``data/history/``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from barter_site.errors import ApplicationError
from instruments.sources.files.shipped import shipped_history_dir, shipped_history_load


class Command(BaseCommand):
    help = (
        "When the database has no candles (or with --force), import the shipped daily history: bitcoin "
        "(Bitstamp, then Binance hourly rolled up to days), ethereum and litecoin (Bitstamp)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Import even when candles exist.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            load = shipped_history_load(force=options["force"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if load.skipped:
            self.stdout.write(
                f"The database already holds {load.candles_before:,} candles; skipped the shipped history "
                f"(pass --force to import it anyway)."
            )
            return
        self.stdout.write(f"Imported the shipped history from {shipped_history_dir()}:")
        for result in load.results:
            if not result.error:
                self.stdout.write(f"  {result.describe()}")
        refused = [result.error for result in load.results if result.error]
        if refused:
            raise CommandError("\n".join(refused))
