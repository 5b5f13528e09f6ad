"""``manage.py replay --start DATE --end DATE [--strategy NAME]``: the daily cycle replayed over stored history."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from barter_site.errors import ApplicationError
from instruments.management.commands._arguments import parse_date
from trading.models import Strategy
from trading.replay import replay


class Command(BaseCommand):
    help = (
        "Replay the daily cycle day by day over stored candles into a fresh paper account, and summarise it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", required=True, help="First day, YYYY-MM-DD.")
        parser.add_argument("--end", required=True, help="Last day, YYYY-MM-DD (inclusive).")
        parser.add_argument(
            "--strategy",
            action="append",
            dest="strategies",
            metavar="NAME",
            help="Replay this strategy; repeat for several (default: every enabled strategy).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        start = parse_date(options["start"], option="--start")
        end = parse_date(options["end"], option="--end")
        if options["strategies"]:
            strategies = []
            for name in options["strategies"]:
                found = Strategy.objects.filter(name=name).first()
                if found is None:
                    known = ", ".join(Strategy.objects.values_list("name", flat=True)) or "none"
                    raise CommandError(f"unknown strategy {name!r}; known: {known}")
                strategies.append(found)
        else:
            strategies = list(Strategy.objects.enabled())
            if not strategies:
                raise CommandError(
                    "no enabled strategy to replay: pass --strategy NAME or enable one in the admin"
                )
        for strategy in strategies:
            try:
                result = replay(strategy=strategy, start=start, end=end)
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            starting = strategy.starting_cash
            self.stdout.write(
                f"{strategy.name}: {result.days} days replayed into {result.account.name!r}: "
                f"{result.opened} positions opened, {result.closed} closed, {result.still_open} still open; "
                f"cash {result.cash:.2f} of {starting:.2f} starting"
            )
