"""``manage.py load_example_strategies [--enable]``: create or update the shipped example strategies."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from trading.examples import EXAMPLE_INSTRUMENTS, example_strategies_load


class Command(BaseCommand):
    help = (
        "Create or update the example strategies (by name) and link them to the stored instruments among "
        f"{', '.join(EXAMPLE_INSTRUMENTS)}. Idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--enable",
            action="store_true",
            help="Enable them (the daily cycle trades them). Without it new ones are created disabled.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        strategies = example_strategies_load(enable=options["enable"])
        for strategy in strategies:
            instruments = (
                ", ".join(i.coingecko_id for i in strategy.instruments.all()) or "no instruments yet"
            )
            state = "enabled" if strategy.is_enabled else "disabled"
            self.stdout.write(f"{strategy.name}: {state}; {instruments}")
