"""``manage.py sync_new_trades [--as-of DATE] [--instrument ID ...]``: the open step."""

from instruments.management.commands._arguments import StepCommand
from positions.cycle.open import sync_new_trades


class Command(StepCommand):
    help = "Open positions where enabled strategies' entry criteria held on the candle before --as-of."
    service = staticmethod(sync_new_trades)
