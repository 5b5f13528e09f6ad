"""``manage.py run_cycle [--as-of DATE]``: one daily cycle: collect, open, close, in that order."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from barter_site.errors import ApplicationError
from instruments.management.commands._arguments import parse_date
from positions.cycle.daily import run_cycle


class Command(BaseCommand):
    help = (
        "Run the daily cycle once: collect (sync_data), open (sync_new_trades), close (sync_close_positions)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="UTC date YYYY-MM-DD the cycle runs for (default: today).")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_date(options["as_of"], option="--as-of") if options["as_of"] else None
        try:
            summaries = run_cycle(as_of=as_of)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        for summary in summaries:
            self.stdout.write(f"{summary['step']}: {summary['status']} (run {summary['run_id']})")
            for result in summary["results"]:
                self.stdout.write(f"  {_line(result)}")


def _line(result: dict[str, Any]) -> str:
    if "candles_added" in result:
        text = f"{result['instrument']}: {result['candles_added']} added, {result['candles_updated']} updated"
    else:
        text = f"{result['strategy']} / {result['instrument'] or '-'}: {result['action']}"
        if result.get("reason"):
            text += f" ({result['reason']})"
        if result.get("price"):
            text += f" at {result['price']}"
    if result.get("error"):
        text += f"; error: {result['error']}"
    return text
