"""``manage.py sync_data [--as-of DATE] [--instrument ID ...]``: the collect step."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from barter_site.errors import ApplicationError
from instruments.management.commands._arguments import parse_date
from instruments.sync import sync_data


class Command(BaseCommand):
    help = "Add the missing completed daily candles of active instruments from CoinGecko, up to --as-of."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of", help="UTC date YYYY-MM-DD; days before it are collected (default: today)."
        )
        parser.add_argument(
            "--instrument",
            action="append",
            dest="instruments",
            metavar="COINGECKO_ID",
            help="Sync only this instrument; repeat for several (default: every active instrument).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_date(options["as_of"], option="--as-of") if options["as_of"] else None
        try:
            summary = sync_data(as_of=as_of, instruments=options["instruments"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(summary, indent=2))
