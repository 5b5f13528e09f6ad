"""``manage.py import_ohlc PATH... --instrument ID [...]``: import candle files into one instrument."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from barter_site.errors import ApplicationError
from instruments.candles import TIMEFRAMES
from instruments.sources.files.imports import ohlc_import
from instruments.sources.files.reader import FORMATS


class Command(BaseCommand):
    help = (
        "Import candle files (OHLCV CSV, Binance klines, CryptoDataDownload, wide tables, Arrow feather) "
        "into one instrument. A file with an invalid row is refused whole unless --skip-invalid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        timeframes = ", ".join(TIMEFRAMES)
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Candle files, imported in this order.")
        parser.add_argument(
            "--instrument", required=True, metavar="COINGECKO_ID", help="CoinGecko coin id, e.g. bitcoin."
        )
        parser.add_argument("--symbol", default="", help="Ticker when the instrument is created (e.g. BTC).")
        parser.add_argument("--name", default="", help="Display name when the instrument is created.")
        parser.add_argument(
            "--quote-currency",
            default="",
            help="Quote currency when the instrument is created (default: BARTER_QUOTE_CURRENCY, usd).",
        )
        parser.add_argument(
            "--timeframe", default="1d", help=f"Timeframe of the files' candles: {timeframes} (default 1d)."
        )
        parser.add_argument(
            "--format",
            dest="fmt",
            metavar="FORMAT",
            default="auto",
            help=f"auto (default) or one of {', '.join(FORMATS)}.",
        )
        parser.add_argument(
            "--column-prefix", help="Prefix of the instrument's columns in a wide table (BTC)."
        )
        parser.add_argument(
            "--to-timeframe",
            help=f"Roll the candles up into this longer timeframe ({timeframes}) before storing them.",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="Import the valid rows of files that have invalid ones.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            results = ohlc_import(
                paths=options["paths"],
                coingecko_id=options["instrument"],
                symbol=options["symbol"],
                name=options["name"],
                quote_currency=options["quote_currency"],
                timeframe=options["timeframe"],
                fmt=options["fmt"],
                column_prefix=options["column_prefix"],
                to_timeframe=options["to_timeframe"],
                skip_invalid=options["skip_invalid"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        for result in results:
            if result.error:
                continue
            self.stdout.write(result.describe())
            for message in result.messages:
                self.stdout.write(f"  skipped: {message}")
        refused = [result for result in results if result.error]
        if refused:
            raise CommandError("\n".join(result.error for result in refused))
