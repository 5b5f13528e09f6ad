"""``manage.py sync_close_positions [--as-of DATE] [--instrument ID ...]``: the close step."""

from instruments.management.commands._arguments import StepCommand
from positions.cycle.close import sync_close_positions


class Command(StepCommand):
    help = "Close positions whose exit rules fired through the candle before --as-of."
    service = staticmethod(sync_close_positions)
