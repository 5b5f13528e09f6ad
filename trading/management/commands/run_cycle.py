"""``manage.py run_cycle [--as-of DATE]``: one daily cycle. Today: the collect step (open and close follow)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from barter_site.errors import ApplicationError
from instruments.management.commands._arguments import parse_date
from instruments.sync import sync_data


class Command(BaseCommand):
    help = "Run the daily cycle once: collect candles (sync_data)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="UTC date YYYY-MM-DD the cycle runs for (default: today).")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_date(options["as_of"], option="--as-of") if options["as_of"] else None
        try:
            summary = sync_data(as_of=as_of)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"collect: {summary['status']} (run {summary['run_id']})")
        for result in summary["results"]:
            line = f"  {result['instrument']}: {result['candles_added']} added, {result['candles_updated']} updated"
            if result["error"]:
                line += f"; error: {result['error']}"
            self.stdout.write(line)
