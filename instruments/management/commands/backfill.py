"""``manage.py backfill --instrument ID --source {exchange,coingecko} --since YYYY-MM-DD``: years of daily candles."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from barter_site.errors import ApplicationError
from instruments.collect import candles_backfill
from instruments.management.commands._arguments import parse_date
from instruments.sources.registry import CANDLE_SOURCES


class Command(BaseCommand):
    help = (
        "Add every missing completed daily candle of one instrument from --since to yesterday (UTC), from its "
        "exchange (in pages, through ccxt) or from CoinGecko (365 days back on the Demo plan). Recorded in "
        "History as a collect run; prints a summary line per instrument, then the summary as JSON."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--instrument",
            required=True,
            metavar="COINGECKO_ID",
            help="The instrument's CoinGecko id, e.g. bitcoin.",
        )
        parser.add_argument(
            "--source", required=True, help=f"{' or '.join(CANDLE_SOURCES)}: the instrument's candle source."
        )
        parser.add_argument("--since", required=True, help="First UTC day wanted, YYYY-MM-DD.")
        parser.add_argument(
            "--page-limit",
            type=int,
            default=None,
            help="Candles per exchange request (default: the exchange's maximum, 1000; bitget 200).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["source"] not in CANDLE_SOURCES:
            raise CommandError(
                f"--source must be one of {', '.join(CANDLE_SOURCES)}; was {options['source']!r}"
            )
        since = parse_date(options["since"], option="--since")
        page_limit = options["page_limit"]
        if page_limit is not None and not 1 <= page_limit <= 1000:
            raise CommandError(f"--page-limit must be between 1 and 1000; was {page_limit}")
        try:
            summary = candles_backfill(
                coingecko_id=options["instrument"],
                source=options["source"],
                since=since,
                page_limit=page_limit,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        for result in summary["results"]:
            line = (
                f"{result['instrument']} from {summary['source']} since {summary['since']}: "
                f"{summary['days_requested']} day(s) missing, {result['candles_added']} added, "
                f"{result['candles_updated']} updated"
            )
            if result["error"]:
                line += f"; error: {result['error']}"
            self.stdout.write(line)
        if summary["note"]:
            self.stdout.write(summary["note"])
        self.stdout.write(json.dumps(summary, indent=2))
