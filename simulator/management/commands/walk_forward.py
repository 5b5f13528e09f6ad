"""``manage.py walk_forward``: a walk-forward analysis (issue 15, docs/walk_forward.md) run here, saved, and its
folds and overall figures printed."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from instruments.management.commands._arguments import parse_date
from simulator.models import STARTING_CASH_DEFAULT, RunStatus
from simulator.services.requests import SimulationInputError, simulation_request_check
from simulator.services.walk_forwards import walk_forward_create, walk_forward_run
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS_KEYS
from trading.engine.walk_forward import RULES

#: The request's fields -> this command's options, for the error messages.
FLAGS = {
    "instruments": "--instrument",
    "starting_cash": "--cash",
    "criteria": "--criteria",
    "axes": "--axes",
    "constraints": "--constraint",
    "train_days": "--train-days",
    "test_days": "--test-days",
    "step_days": "--step-days",
}


def _json_argument(text: str, option: str) -> Any:
    """``text`` as JSON, or the JSON in the file it names."""
    source = text
    if not text.lstrip().startswith(("[", "{")):
        try:
            source = Path(text).read_text()
        except OSError as exc:
            raise CommandError(
                f"{option}: cannot read {text}: {exc.strerror}; give JSON or a JSON file"
            ) from exc
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{option}: not JSON (line {exc.lineno}: {exc.msg})") from exc


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class Command(BaseCommand):
    help = (
        "Walk-forward analysis: in each fold, evaluate the grid (--axes, as a sweep's) on the train window, choose "
        "a point (--rule best or plateau), run it on the test window that follows; print each fold and the "
        "stitched out-of-sample figures beside the in-sample ones (JSON with --json). The walk-forward is saved "
        "and shows on the simulator's walk-forward page."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--criteria", required=True, metavar="FILE", help="Base criteria JSON file.")
        parser.add_argument(
            "--axes",
            required=True,
            help='One or two axes as JSON (or a JSON file), e.g. [{"path": "params.fast", "values": [5, 10, 20]}]',
        )
        parser.add_argument(
            "--constraint",
            action="append",
            dest="constraints",
            default=[],
            help='e.g. "fast < slow"; repeat.',
        )
        parser.add_argument(
            "--instrument", action="append", dest="instruments", required=True, metavar="COINGECKO_ID"
        )
        parser.add_argument("--start", required=True, help="First UTC day, YYYY-MM-DD.")
        parser.add_argument("--end", required=True, help="Last UTC day, YYYY-MM-DD (inclusive).")
        parser.add_argument(
            "--cash", default=str(STARTING_CASH_DEFAULT), help="Starting cash (default 10000)."
        )
        parser.add_argument("--train-days", type=int, required=True, help="Days of each train window.")
        parser.add_argument("--test-days", type=int, required=True, help="Days of each test window.")
        parser.add_argument(
            "--step-days", type=int, default=None, help="Days between folds (default test days)."
        )
        parser.add_argument(
            "--anchored", action="store_true", help="Train windows start at --start and grow."
        )
        parser.add_argument("--rule", default="best", choices=RULES, help="best (default) or plateau.")
        parser.add_argument("--radius", type=int, default=1, help="The plateau's grid steps on each side.")
        parser.add_argument(
            "--statistic",
            default=HEADLINE_STATISTIC,
            choices=STATISTICS_KEYS,
            help="The statistic chosen by.",
        )
        parser.add_argument("--name", default="")
        parser.add_argument("--json", action="store_true", help="Print the result document as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        criteria = _json_argument(options["criteria"], "--criteria")
        axes = _json_argument(options["axes"], "--axes")
        try:
            cash = Decimal(options["cash"])
        except InvalidOperation:
            raise CommandError(f"--cash must be a number like 10000; was {options['cash']!r}") from None
        try:
            request = simulation_request_check(
                instruments=options["instruments"],
                start=parse_date(options["start"], option="--start"),
                end=parse_date(options["end"], option="--end"),
                starting_cash=cash,
                criteria=criteria,
            )
            record = walk_forward_create(
                request=request,
                axes=axes,
                constraints=options["constraints"],
                statistic=options["statistic"],
                rule=options["rule"],
                radius=options["radius"],
                anchored=options["anchored"],
                train_days=options["train_days"],
                test_days=options["test_days"],
                step_days=options["step_days"],
                name=options["name"],
            )
        except SimulationInputError as exc:
            raise CommandError(
                "\n".join(
                    f"{FLAGS.get(field, '--' + field.replace('_', '-'))}: {message}"
                    for field, messages in exc.errors.items()
                    for message in messages
                )
            ) from exc
        record = walk_forward_run(walk_forward_id=record.pk)
        if record.status != RunStatus.DONE:
            raise CommandError(f"the walk-forward failed: {record.error}")
        result = record.result
        if options["json"]:
            self.stdout.write(json.dumps({"id": record.pk, **result}, indent=2))
            return
        kind = "anchored" if record.anchored else "rolling"
        self.stdout.write(
            f"Walk-forward {record.pk}: {', '.join(i.coingecko_id for i in request.instruments)} "
            f"{record.start} .. {record.end}, {kind}, train {record.train_days} d, test {record.test_days} d, "
            f"step {record.step_days} d, rule {record.rule}"
            + (f" (radius {record.radius})" if record.rule == "plateau" else "")
            + f" on {record.statistic}"
        )
        self.stdout.write(
            "  fold  train                     test                      chosen  IS statistic  OOS return  WFE"
        )
        for fold in result["folds"]:
            chosen = ", ".join(f"{path}={value:g}" for path, value in fold["chosen"].items())
            self.stdout.write(
                f"  {fold['index'] + 1:>4}  {fold['train']['start']} .. {fold['train']['end']}  "
                f"{fold['test']['start']} .. {fold['test']['end']}  {chosen}  "
                f"{_shown(fold['in_sample_statistic'])}  "
                f"{_shown(fold['out_of_sample_statistics'].get('total_return_ratio'))}  {_shown(fold['efficiency'])}"
            )
        self.stdout.write(f"Walk-forward efficiency (overall): {_shown(result['efficiency'])}")
        self.stdout.write("Statistics: in-sample (mean over folds)  out-of-sample (stitched)")
        width = max(len(key) for key in STATISTICS_KEYS)
        for key in STATISTICS_KEYS:
            self.stdout.write(
                f"  {key:<{width}}  {_shown(result['statistics']['in_sample'].get(key)):>12}  "
                f"{_shown(result['statistics']['out_of_sample'].get(key)):>12}"
            )
        self.stdout.write("Parameter stability:")
        for row in result["stability"]:
            values = ", ".join(f"{v:g}" for v in row["values"])
            self.stdout.write(
                f"  {row['path']}: {values} ({row['distinct']} distinct, {row['changes']} changes, "
                f"range {row['range_ratio']:.0%} of the axis)"
            )
