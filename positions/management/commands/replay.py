"""``manage.py replay (--start DATE --end DATE | --days N) [--strategy NAME] [--skip-existing]``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max

from barter_site.errors import ApplicationError
from instruments.management.commands._arguments import parse_date
from instruments.models import InstrumentOHLC, Timeframe
from positions.cycle.replay import replay, replay_account_prefix
from trading.models import Strategy


class Command(BaseCommand):
    help = (
        "Replay the daily cycle day by day over stored candles into a fresh paper account, and summarise it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--start", help="First day, YYYY-MM-DD.")
        parser.add_argument("--end", help="Last day, YYYY-MM-DD (inclusive).")
        parser.add_argument(
            "--days",
            type=int,
            help="Instead of --start/--end: the N days up to the day after the newest candle.",
        )
        parser.add_argument(
            "--strategy",
            action="append",
            dest="strategies",
            metavar="NAME",
            help="Replay this strategy; repeat for several (default: every enabled strategy).",
        )
        parser.add_argument(
            "--skip-existing",
            action="store_true",
            help="Skip a strategy already replayed over the same days.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        start, end = self._days(options)
        strategies = self._strategies(options["strategies"])
        for strategy in strategies:
            prefix = replay_account_prefix(strategy=strategy, start=start, end=end)
            if options["skip_existing"] and Strategy.objects.filter(name__startswith=prefix).exists():
                self.stdout.write(f"{strategy.name}: already replayed from {start} to {end}; skipped")
                continue
            try:
                result = replay(strategy=strategy, start=start, end=end)
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(
                f"{strategy.name}: {result.days} days replayed into {result.account.name!r}: "
                f"{result.opened} positions opened, {result.closed} closed, {result.still_open} still open; "
                f"cash {result.cash:.2f} of {strategy.starting_cash:.2f} starting"
            )

    def _days(self, options: dict[str, Any]) -> tuple[Any, Any]:
        if options["days"] is not None:
            if options["start"] or options["end"]:
                raise CommandError("give either --days or --start and --end, not both")
            if options["days"] < 1:
                raise CommandError(f"--days must be 1 or more; was {options['days']}")
            newest = InstrumentOHLC.objects.filter(timeframe=Timeframe.D1).aggregate(last=Max("open_time"))[
                "last"
            ]
            if newest is None:
                raise CommandError("no daily candles are stored: run load_shipped_history or sync_data first")
            end = newest.date() + timedelta(days=1)
            return end - timedelta(days=options["days"] - 1), end
        if not options["start"] or not options["end"]:
            raise CommandError("give --start and --end (YYYY-MM-DD), or --days N")
        return parse_date(options["start"], option="--start"), parse_date(options["end"], option="--end")

    def _strategies(self, names: list[str] | None) -> list[Strategy]:
        if not names:
            enabled = list(Strategy.objects.enabled())
            if not enabled:
                raise CommandError(
                    "no enabled strategy to replay: pass --strategy NAME or enable one in the admin"
                )
            return enabled
        found = []
        for name in names:
            strategy = Strategy.objects.filter(name=name).first()
            if strategy is None:
                known = ", ".join(Strategy.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"unknown strategy {name!r}; known: {known}")
            found.append(strategy)
        return found
