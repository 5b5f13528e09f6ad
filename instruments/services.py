"""Writes to instruments and candles. The collect step (``sync_data``) lives in ``instruments.collect``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal

from django.db import connection, transaction
from django.utils import timezone

from instruments.candles import Candle
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.precision import decimal_quantize

#: Candles written per statement; keeps each ``IN``/``VALUES`` list well inside SQLite's and PostgreSQL's limits.
UPSERT_BATCH_SIZE = 2_000


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """How many candles an upsert added, changed, and found already stored with the same values."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: UpsertResult) -> UpsertResult:
        return UpsertResult(
            self.added + other.added, self.updated + other.updated, self.unchanged + other.unchanged
        )


def _row_values(candle: Candle) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal | None]:
    volume = None if candle.volume is None else decimal_quantize(candle.volume)
    return (
        decimal_quantize(candle.open),
        decimal_quantize(candle.high),
        decimal_quantize(candle.low),
        decimal_quantize(candle.close),
        volume,
    )


def _same_stored(stored: tuple[object, ...], values: tuple[object, ...]) -> bool:
    if connection.vendor != "sqlite":
        return stored == values
    # SQLite keeps decimals as 15-significant-digit REALs; compare at that precision so re-runs stay no-ops.
    context = Context(prec=15)
    return all(
        a == b if a is None or b is None else context.create_decimal(a) == context.create_decimal(b)  # type: ignore[arg-type]
        for a, b in zip(stored, values, strict=True)
    )


def candles_upsert(
    *, instrument: Instrument, candles: Sequence[Candle], source: str, timeframe: str = Timeframe.D1
) -> UpsertResult:
    """Store candles, adding new ones and updating those whose prices changed, in one transaction.

    The instrument's row is locked (``SELECT ... FOR UPDATE``) for the transaction, so concurrent syncs or
    imports of one instrument take turns and their counts are exact; the unique constraint on
    (instrument, timeframe, open_time) makes a twin candle impossible even without the lock. Prices are
    rounded to the stored precision (:mod:`instruments.precision`) before comparing, so a second run of the
    same data reports everything ``unchanged`` and writes nothing.

    Args:
        instrument: the instrument the candles belong to.
        candles: valid candles of ``timeframe``, any order, open times unique.
        source: where they came from (stored on added and updated rows).
        timeframe: one of :class:`Timeframe`.

    Returns:
        The counts of added, updated and unchanged candles.
    """
    ordered = sorted(candles, key=lambda c: c.open_time)
    total = UpsertResult()
    now = timezone.now()
    with transaction.atomic():
        Instrument.objects.select_for_update().only("pk").get(pk=instrument.pk)
        for start in range(0, len(ordered), UPSERT_BATCH_SIZE):
            batch = ordered[start : start + UPSERT_BATCH_SIZE]
            stored = {
                open_time: values
                for open_time, *values in InstrumentOHLC.objects.filter(
                    instrument=instrument,
                    timeframe=timeframe,
                    open_time__gte=batch[0].open_time,
                    open_time__lte=batch[-1].open_time,
                ).values_list("open_time", "open", "high", "low", "close", "volume")
            }
            rows: list[InstrumentOHLC] = []
            added = updated = 0
            for candle in batch:
                values = _row_values(candle)
                previous = stored.get(candle.open_time)
                if previous is not None and _same_stored(tuple(previous), values):
                    continue
                if previous is None:
                    added += 1
                else:
                    updated += 1
                rows.append(
                    InstrumentOHLC(
                        instrument=instrument,
                        timeframe=timeframe,
                        open_time=candle.open_time,
                        open=values[0],
                        high=values[1],
                        low=values[2],
                        close=values[3],
                        volume=values[4],
                        source=source,
                        created_at=now,
                        updated_at=now,
                    )
                )
            InstrumentOHLC.objects.bulk_create(
                rows,
                update_conflicts=True,
                unique_fields=["instrument", "timeframe", "open_time"],
                update_fields=["open", "high", "low", "close", "volume", "source", "updated_at"],
            )
            total += UpsertResult(added, updated, len(batch) - added - updated)
    return total


def instrument_get_or_create(
    *, coingecko_id: str, symbol: str = "", name: str = "", quote_currency: str = "usd"
) -> tuple[Instrument, bool]:
    """Return the instrument with ``coingecko_id``, creating it (active) when there is none.

    Args:
        coingecko_id: CoinGecko coin id, the key.
        symbol: ticker used when creating; defaults to the upper-cased id.
        name: display name used when creating; defaults to the id.
        quote_currency: CoinGecko vs_currency used when creating.

    Returns:
        ``(instrument, created)``.
    """
    return Instrument.objects.get_or_create(
        coingecko_id=coingecko_id,
        defaults={
            "symbol": (symbol or coingecko_id).upper()[:20],
            "name": name or coingecko_id,
            "quote_currency": quote_currency.lower(),
        },
    )
