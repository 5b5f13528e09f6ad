"""``manage.py sync_data [--as-of DATE] [--instrument ID ...]``: the collect step."""

from instruments.collect import sync_data
from instruments.management.commands._arguments import StepCommand


class Command(StepCommand):
    help = "Add the missing completed daily candles of active instruments from CoinGecko, up to --as-of."
    service = staticmethod(sync_data)
