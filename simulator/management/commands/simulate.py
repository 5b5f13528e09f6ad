"""``manage.py simulate``: run trade criteria over the stored candles of one timeframe (daily by default) and print
what they would have done."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from instruments.management.commands._arguments import parse_date
from simulator.models import STARTING_CASH_DEFAULT, RunStatus
from simulator.services.requests import SimulationInputError, simulation_request_check
from simulator.services.simulations import simulation_create, simulation_run
from trading.engine.vocabulary import STATISTICS_KEYS


class Command(BaseCommand):
    help = (
        "Simulate trade criteria (a CRITERIA.md JSON file) over the stored candles (--timeframe, daily by "
        "default) of one or several instruments sharing one cash balance; print the statistics and the trades "
        "(JSON with --json). The run is saved and shows in the simulator's list."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--criteria", required=True, metavar="FILE", help="Criteria JSON file.")
        parser.add_argument(
            "--instrument",
            action="append",
            dest="instruments",
            required=True,
            metavar="COINGECKO_ID",
            help="An instrument; repeat for several (they share the cash).",
        )
        parser.add_argument("--start", required=True, help="First UTC day, YYYY-MM-DD.")
        parser.add_argument("--end", required=True, help="Last UTC day, YYYY-MM-DD (inclusive).")
        parser.add_argument(
            "--timeframe",
            default="1d",
            help="The stored candles to run over: 1d (default), 1h or 1m; stored for every instrument.",
        )
        parser.add_argument(
            "--cash", default=str(STARTING_CASH_DEFAULT), help="Starting cash (default 10000)."
        )
        parser.add_argument("--name", default="", help="A name for the saved run.")
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["criteria"])
        try:
            criteria = json.loads(path.read_text())
        except OSError as exc:
            raise CommandError(f"--criteria: cannot read {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise CommandError(f"--criteria: {path} is not JSON (line {exc.lineno}: {exc.msg})") from exc
        try:
            cash = Decimal(options["cash"])
        except InvalidOperation:
            raise CommandError(f"--cash must be a number like 10000; was {options['cash']!r}") from None
        try:
            request = simulation_request_check(
                instruments=options["instruments"],
                start=parse_date(options["start"], option="--start"),
                end=parse_date(options["end"], option="--end"),
                timeframe=options["timeframe"],
                starting_cash=cash,
                criteria=criteria,
            )
        except SimulationInputError as exc:
            flags = {"instruments": "--instrument", "starting_cash": "--cash", "criteria": "--criteria"}
            raise CommandError(
                "\n".join(
                    f"{flags.get(field, '--' + field)}: {message}"
                    for field, messages in exc.errors.items()
                    for message in messages
                )
            ) from exc
        simulation = simulation_run(simulation=simulation_create(request=request, name=options["name"]))
        if simulation.status != RunStatus.DONE:
            raise CommandError(f"the simulation failed: {simulation.error}")
        if options["json"]:
            document = {
                "id": simulation.pk,
                "instruments": [i.coingecko_id for i in request.instruments],
                "start": request.start.isoformat(),
                "end": request.end.isoformat(),
                "timeframe": request.timeframe,
                "starting_cash": str(request.starting_cash),
                "statistics": simulation.statistics,
                "trades": simulation.trades,
            }
            self.stdout.write(json.dumps(document, indent=2))
            return
        self.stdout.write(
            f"Simulation {simulation.pk}: {', '.join(i.coingecko_id for i in request.instruments)} "
            f"{request.start} .. {request.end}, {request.timeframe} candles, starting cash {request.starting_cash}"
        )
        coverage = simulation.statistics.get("coverage")
        if coverage:
            self.stdout.write(f"Coverage: {coverage['note']}")
        width = max(len(key) for key in STATISTICS_KEYS)
        for key in STATISTICS_KEYS:
            value = simulation.statistics.get(key)
            shown = "-" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
            self.stdout.write(f"  {key:<{width}}  {shown}")
        self.stdout.write(f"Trades ({len(simulation.trades)}):")
        header = (
            "instrument",
            "entry_at",
            "entry_price",
            "exit_at",
            "exit_price",
            "pnl",
            "pnl_ratio",
            "exit",
        )
        self.stdout.write("  " + "  ".join(header))
        width_at = 10 if request.timeframe == "1d" else 16  # the day, or the day and the minute
        for trade in simulation.trades:
            ratio = trade["pnl_ratio"]
            self.stdout.write(
                "  "
                + "  ".join(
                    [
                        trade["instrument"],
                        (trade["entry_at"] or "")[:width_at],
                        trade["entry_price"] or "",
                        (trade["exit_at"] or "")[:width_at],
                        trade["exit_price"] or "",
                        trade["pnl"] or "",
                        "" if ratio is None else f"{ratio:.4f}",
                        trade["exit_reason"],
                    ]
                )
            )
