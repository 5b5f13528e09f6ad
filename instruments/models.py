"""Instruments and their candles."""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Least

from instruments.candles import TIMEFRAMES
from instruments.markets import (
    SUPPORTED_EXCHANGE_IDS,
    ExchangeConfigError,
    exchange_id_validate,
    market_symbol_validate,
)
from instruments.precision import (
    PRICE_DECIMAL_PLACES,
    PRICE_MAX_DIGITS,
    VOLUME_DECIMAL_PLACES,
    VOLUME_MAX_DIGITS,
)


class InstrumentQuerySet(models.QuerySet["Instrument"]):
    """Filters over instruments."""

    def active(self) -> InstrumentQuerySet:
        """Instruments the daily cycle syncs and trades (``is_active``)."""
        return self.filter(is_active=True)


def validate_exchange_id(value: str) -> None:
    """Field validator: ``value`` is empty or a supported ccxt exchange id (the message lists them)."""
    _validate(exchange_id_validate, value)


def validate_market_symbol(value: str) -> None:
    """Field validator: ``value`` is empty or a ccxt spot symbol ``BASE/QUOTE`` such as ``BTC/USDT``."""
    _validate(market_symbol_validate, value)


def _validate(check: Callable[[str], str], value: str) -> None:
    if not value:
        return  # whether the field must be set is the check constraint's and clean()'s business
    try:
        check(value)
    except ExchangeConfigError as exc:
        raise ValidationError(exc.message) from None


class Instrument(models.Model):
    """A coin priced in a quote currency, keyed by its CoinGecko id (symbols are not unique on CoinGecko).

    Its daily candles come from ``candle_source``: CoinGecko (by ``coingecko_id``), or an exchange through ccxt
    (``exchange_id`` and ``market_symbol``, which live order execution uses too).
    """

    class CandleSource(models.TextChoices):
        """Where the collect step and ``backfill`` take the instrument's daily candles from."""

        COINGECKO = "coingecko", "CoinGecko"
        EXCHANGE = "exchange", "Exchange (ccxt)"

    coingecko_id = models.CharField(
        max_length=100, unique=True, help_text="CoinGecko coin id, e.g. 'bitcoin'."
    )
    symbol = models.CharField(max_length=20, help_text="Ticker for people, e.g. 'BTC'. Not unique.")
    name = models.CharField(max_length=100, blank=True)
    quote_currency = models.CharField(
        max_length=10, default="usd", help_text="CoinGecko vs_currency, e.g. 'usd'."
    )
    is_active = models.BooleanField(default=True, help_text="Synced and traded by the daily cycle.")
    candle_source = models.CharField(
        max_length=16,
        choices=CandleSource.choices,
        default=CandleSource.COINGECKO,
        help_text="Where daily candles come from; 'exchange' needs the exchange id and the market symbol.",
    )
    exchange_id = models.CharField(
        max_length=32,
        blank=True,
        default="",
        validators=[validate_exchange_id],
        help_text=f"ccxt exchange id, one of {', '.join(SUPPORTED_EXCHANGE_IDS)}; only with source 'exchange'.",
    )
    market_symbol = models.CharField(
        max_length=41,
        blank=True,
        default="",
        validators=[validate_market_symbol],
        help_text="ccxt unified spot symbol BASE/QUOTE, e.g. 'BTC/USDT'; only with source 'exchange'.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InstrumentQuerySet.as_manager()

    class Meta:
        ordering = ["symbol", "coingecko_id"]
        constraints = [
            # The exchange fields are set exactly when candles come from an exchange, and name a supported
            # exchange: a symbol beside source 'coingecko' would be silently ignored by the collect step, and an
            # exchange source without a market would fail every day.
            models.CheckConstraint(
                condition=(
                    Q(candle_source="exchange", exchange_id__in=SUPPORTED_EXCHANGE_IDS) & ~Q(market_symbol="")
                )
                | Q(candle_source="coingecko", exchange_id="", market_symbol=""),
                name="instrument_exchange_fields_iff_exchange_source",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.symbol} ({self.coingecko_id})"

    def clean(self) -> None:
        """Check that the exchange fields are set exactly when ``candle_source`` is ``exchange``.

        Raises:
            ValidationError: naming the field to fill in or to empty.
        """
        super().clean()
        if self.candle_source == self.CandleSource.EXCHANGE:
            errors = {
                name: f"set {name} when candle source is 'exchange' ({example})"
                for name, example in (
                    ("exchange_id", f"one of {', '.join(SUPPORTED_EXCHANGE_IDS)}"),
                    ("market_symbol", "e.g. 'BTC/USDT'"),
                )
                if not getattr(self, name)
            }
        else:
            errors = {
                name: "leave empty unless candle source is 'exchange'"
                for name in ("exchange_id", "market_symbol")
                if getattr(self, name)
            }
        if errors:
            raise ValidationError(errors)


class Timeframe(models.TextChoices):
    """Candle lengths. The cycle trades ``1d``; ``1h`` and ``1m`` exist for imported data."""

    D1 = "1d", "1 day"
    H1 = "1h", "1 hour"
    M1 = "1m", "1 minute"


assert {t.value for t in Timeframe} == set(TIMEFRAMES)  # noqa: S101 - one list of timeframes


class InstrumentOHLCQuerySet(models.QuerySet["InstrumentOHLC"]):
    """Filters over candles."""

    def for_instrument(self, instrument: Instrument, timeframe: str = Timeframe.D1) -> InstrumentOHLCQuerySet:
        """Candles of one instrument and timeframe."""
        return self.filter(instrument=instrument, timeframe=timeframe)


class InstrumentOHLC(models.Model):
    """One candle: the open, high, low and close of an instrument over ``[open_time, open_time + timeframe)``."""

    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="candles")
    timeframe = models.CharField(max_length=3, choices=Timeframe.choices, default=Timeframe.D1)
    open_time = models.DateTimeField(help_text="Aware UTC start of the candle.")
    open = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    high = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    low = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    close = models.DecimalField(max_digits=PRICE_MAX_DIGITS, decimal_places=PRICE_DECIMAL_PLACES)
    volume = models.DecimalField(
        max_digits=VOLUME_MAX_DIGITS, decimal_places=VOLUME_DECIMAL_PLACES, null=True, blank=True
    )
    source = models.CharField(max_length=128, help_text="Where the candle came from and how it was built.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InstrumentOHLCQuerySet.as_manager()

    class Meta:
        verbose_name = "candle"
        ordering = ["instrument", "timeframe", "open_time"]
        constraints = [
            # Ingestion is an upsert keyed on this: a second sync or import can never add a twin candle.
            models.UniqueConstraint(
                fields=["instrument", "timeframe", "open_time"], name="ohlc_one_candle_per_instrument_time"
            ),
            # The OHLC invariants, so no code path (raw SQL, admin, a bug) can store an impossible candle.
            models.CheckConstraint(
                condition=Q(low__gt=0) & Q(open__gt=0) & Q(close__gt=0) & Q(high__gt=0),
                name="ohlc_prices_positive",
            ),
            models.CheckConstraint(
                condition=Q(low__lte=Least(F("open"), F("close"))), name="ohlc_low_below_body"
            ),
            models.CheckConstraint(
                condition=Q(high__gte=F("open")) & Q(high__gte=F("close")), name="ohlc_high_above_body"
            ),
            models.CheckConstraint(
                condition=Q(volume__isnull=True) | Q(volume__gte=0), name="ohlc_volume_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(timeframe__in=[t.value for t in Timeframe]), name="ohlc_timeframe_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument.symbol} {self.timeframe} {self.open_time:%Y-%m-%d %H:%M}"
