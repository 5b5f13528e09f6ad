"""``manage.py audit_day [--as-of YYYY-MM-DD] [--strategy NAME ...]``: the daily audit of live against the backtest
(:func:`positions.audit.audit_day`; docs/audit.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.management.commands._arguments import parse_date
from positions.audit import audit_day
from trading.models import Strategy


class Command(BaseCommand):
    help = (
        "Audit each live strategy's day against the engine's backtest over the stored candles (signals missed or "
        "extra, slippage, fees, positions, cash) and store it; default: yesterday (UTC)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of",
            help="The UTC day to audit, YYYY-MM-DD, before today (default: yesterday: after today's close step).",
        )
        parser.add_argument(
            "--strategy",
            action="append",
            dest="strategies",
            metavar="NAME",
            help="Audit this strategy; repeat for several (default: every live strategy).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().date()
        as_of = (
            parse_date(options["as_of"], option="--as-of") if options["as_of"] else today - timedelta(days=1)
        )
        strategies = None
        if options["strategies"]:
            strategies = []
            for name in options["strategies"]:
                strategy = Strategy.objects.filter(name=name).first()
                if strategy is None:
                    known = (
                        ", ".join(Strategy.objects.order_by("name").values_list("name", flat=True)) or "none"
                    )
                    raise CommandError(f"unknown strategy {name!r}; known: {known}")
                strategies.append(strategy)
        try:
            audits = audit_day(as_of=as_of, strategies=strategies)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        if not audits:
            self.stdout.write(
                f"{as_of.isoformat()}: no live strategy to audit (a strategy is live once enabled and its open step "
                "has run)"
            )
        for audit in audits:
            slippage = "no fill" if audit.slippage_bps is None else f"slippage {audit.slippage_bps} bps"
            self.stdout.write(
                f"{audit.strategy.name} {audit.as_of.isoformat()}: {audit.signal_mismatches} signal mismatch(es) "
                f"({len(audit.missed)} missed, {len(audit.extra)} extra), {audit.open_mismatches} open-position "
                f"mismatch(es), {slippage}, fee drift {audit.fee_drift}, cash drift {audit.cash_drift}"
            )
