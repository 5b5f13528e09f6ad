"""Argument parsing shared by the management commands, and the one command shape of the cycle's steps."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from barter_site.errors import ApplicationError


def parse_date(value: str, *, option: str) -> date:
    """Parse ``YYYY-MM-DD`` or raise a ``CommandError`` that names the option and the expected format."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date like 2024-01-31 (YYYY-MM-DD); was {value!r}") from None


class StepCommand(BaseCommand):
    """``manage.py <step> [--as-of DATE] [--instrument ID ...]``: run one cycle step and print its summary as JSON.

    Subclasses set ``service`` (``sync_data``, ``sync_new_trades`` or ``sync_close_positions``).
    """

    service: Callable[..., dict[str, Any]]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="UTC date YYYY-MM-DD the step runs for (default: today).")
        parser.add_argument(
            "--instrument",
            action="append",
            dest="instruments",
            metavar="COINGECKO_ID",
            help="Only this instrument; repeat for several (default: all).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = parse_date(options["as_of"], option="--as-of") if options["as_of"] else None
        try:
            summary = type(self).service(as_of=as_of, instruments=options["instruments"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(summary, indent=2))
