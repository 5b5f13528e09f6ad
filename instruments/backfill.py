"""Backfill: every missing completed day of one instrument from a start day, as one collect run.

``manage.py backfill`` calls :func:`candles_backfill`. It is the collect step (:mod:`instruments.sync`) with a
longer window: the same fetch per source, the same upsert, the same ``History`` events and the same run lock
(collect, today, the instrument), so it never runs beside a collect of the same instrument.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from barter_site.errors import ApplicationError
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.sync import instrument_sync, instruments_resolve
from runs.locked import run_locked
from runs.locks import run_scope
from runs.models import Step
from runs.recorder import run_status

SOURCES = ("exchange", "coingecko")


def candles_backfill(
    *, coingecko_id: str, source: str, since: date, page_limit: int | None = None
) -> dict[str, Any]:
    """Fetch and store every completed day from ``since`` to yesterday (UTC) that the instrument lacks.

    Days already stored are not asked for. The exchange source pages through ccxt (``page_limit`` candles per
    request); CoinGecko's Demo plan reaches back ``BARTER_BACKFILL_DAYS`` (365) days only, so older days are
    left out and the summary's ``note`` says so (paid plans are asked for every day).

    Args:
        coingecko_id: the instrument's key (its CoinGecko id), as in ``sync_data --instrument``.
        source: ``exchange`` or ``coingecko``; must be the instrument's ``candle_source``.
        since: first UTC day wanted.
        page_limit: candles per exchange request (default: the exchange's maximum).

    Returns:
        The collect run's summary (:func:`instruments.sync.sync_data`'s shape) with ``since``, ``source``,
        ``days_requested`` (days missing before the run) and ``note``.

    Raises:
        ApplicationError: unknown instrument, a source that is not the instrument's, ``since`` not before today
            (fields ``instruments``, ``source``, ``since``); nothing is recorded then.
        RunInProgressError: a collect run of this instrument holds the lock.
    """
    if source not in SOURCES:
        raise ApplicationError(
            f"source must be one of {', '.join(SOURCES)}; was {source!r}", extra={"field": "source"}
        )
    (instrument,) = instruments_resolve([coingecko_id])
    if instrument.candle_source != source:
        raise ApplicationError(
            f"instrument {coingecko_id!r} takes its candles from {instrument.candle_source!r}, not {source!r}: "
            f"use --source {instrument.candle_source}, or change its candle source in the admin (an exchange "
            "source needs exchange_id and market_symbol)",
            extra={"field": "source"},
        )
    today = timezone.now().date()
    if since >= today:
        raise ApplicationError(
            f"since must be before today ({today.isoformat()} UTC): only completed days are stored; was "
            f"{since.isoformat()}",
            extra={"field": "since"},
        )
    note = ""
    first_day = since
    if source == "coingecko" and settings.COINGECKO_API_PLAN != "pro":
        reach = today - timedelta(days=settings.BARTER_BACKFILL_DAYS)
        if since < reach:
            first_day = reach
            note = (
                f"CoinGecko's Demo plan reaches back {settings.BARTER_BACKFILL_DAYS} days: days before "
                f"{reach.isoformat()} were not asked for; use an exchange source for older history"
            )
    stored = set(
        InstrumentOHLC.objects.for_instrument(instrument, Timeframe.D1)
        .filter(open_time__date__gte=first_day)
        .values_list("open_time__date", flat=True)
    )
    wanted = [first_day + timedelta(days=n) for n in range((today - first_day).days)]
    missing = [d for d in wanted if d not in stored]
    with run_locked(
        step=Step.COLLECT,
        as_of=today,
        scope=run_scope(instruments=[coingecko_id]),
        params={
            "as_of": today.isoformat(),
            "instruments": [coingecko_id],
            "backfill": {"since": since.isoformat(), "source": source},
        },
    ) as recorder:
        result = instrument_sync(recorder, None, instrument, as_of=today, days=missing, page_limit=page_limit)
        status = run_status(
            errors=1 if result.error else 0,
            succeeded=1 if not result.error or result.candles_added or result.candles_updated else 0,
        )
        return recorder.finish(
            status=status,
            summary={
                "as_of": today.isoformat(),
                "since": since.isoformat(),
                "source": _source_label(instrument),
                "days_requested": len(missing),
                "note": note,
                "results": [asdict(result)],
            },
        )


def _source_label(instrument: Instrument) -> str:
    if instrument.candle_source == Instrument.CandleSource.EXCHANGE:
        return f"exchange:{instrument.exchange_id}"
    return "coingecko"
