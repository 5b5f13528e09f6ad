"""The collect step: ``sync_data`` adds the missing completed daily candles of every active instrument, and
``candles_backfill`` every missing day of one instrument since a start day.

The API endpoint, the management command, the Celery task and the admin action all call :func:`sync_data`;
``manage.py backfill`` calls :func:`candles_backfill`. Both fetch each instrument from its candle source
(:mod:`instruments.sources.registry`) in :func:`instrument_sync`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from barter_site.days import as_of_validate
from barter_site.errors import ApplicationError, database_gone
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.selectors import days_missing, instruments_resolve
from instruments.services import candles_upsert
from instruments.sources.base import DailyFetch
from instruments.sources.coingecko import coingecko_client_from_settings
from instruments.sources.coingecko.client import CoinGeckoClient
from instruments.sources.registry import CANDLE_SOURCES, candle_source_for
from runs.locked import run_locked
from runs.locks import run_scope
from runs.models import HistoryKind, Step
from runs.recorder import RunRecorder, run_status

logger = logging.getLogger(__name__)


@dataclass
class InstrumentSyncResult:
    """What the collect step did for one instrument (one item of the summary's ``results``)."""

    instrument: str
    candles_added: int = 0
    candles_updated: int = 0
    days_missing: int = 0
    error: str | None = None


def sync_data(
    *,
    as_of: date | None = None,
    instruments: Sequence[str] | None = None,
    client: CoinGeckoClient | None = None,
) -> dict[str, Any]:
    """Add the missing completed daily candles, up to the day before ``as_of``, of each instrument.

    Each instrument is fetched outside any transaction and written in its own transaction
    (:func:`~instruments.services.candles_upsert`), so one failure neither stops the others nor leaves half a
    day written; running it twice adds nothing. Every run is recorded in ``History``: ``run_started``, one
    ``candles_synced`` event per instrument that got candles, an ``error`` event per failure (and per day
    the source could not supply), and ``run_finished`` with the summary returned here.

    Each instrument's candles come from its ``candle_source`` (:mod:`instruments.sources.registry`): CoinGecko,
    or its exchange through ccxt (:mod:`instruments.sources.exchange`: ``exchange_id`` and ``market_symbol``,
    source ``exchange:<id>``), for the same window of missing days.

    The run holds the run lock of (collect, ``as_of``, scope) throughout (:func:`runs.locked.run_locked`);
    the scope is ``all`` without ``instruments``, else the sorted CoinGecko ids. A run of the same lock that
    never finished (killed, or its database went away) is marked ``interrupted`` by this one, whose own
    upserts then add the days it left missing.

    Args:
        as_of: the run's day (UTC date); days before it are collected. Default: today UTC.
        instruments: CoinGecko ids to sync; default: every active instrument.
        client: the CoinGecko client; default: one made from settings. Exchanges use
            :func:`~instruments.sources.exchange.client.exchange_client`.

    Returns:
        ``{"run_id", "step": "collect", "status", "started_at", "finished_at", "as_of", "results": [
        {"instrument", "candles_added", "candles_updated", "days_missing", "error"}], "errors": [...]}``.

    Raises:
        ApplicationError: ``as_of`` in the future or unknown instruments (nothing is recorded then).
        RunInProgressError: (409) another collect run of the same day and scope holds the lock; nothing is
            recorded, and its ``extra["run_id"]`` names that run.
        DatabaseUnavailableError: (503) the database dropped the connection mid-run; the instruments
            committed before are kept, and the next run marks this one ``interrupted``.
    """
    now = timezone.now()
    as_of = as_of_validate(as_of or now.date(), now=now)
    targets = instruments_resolve(instruments)
    client = client or coingecko_client_from_settings()
    with run_locked(
        step=Step.COLLECT,
        as_of=as_of,
        scope=run_scope(instruments=None if instruments is None else [i.coingecko_id for i in targets]),
        params={"as_of": as_of.isoformat(), "instruments": [i.coingecko_id for i in targets]},
    ) as recorder:
        results = [instrument_sync(recorder, client, instrument, as_of=as_of) for instrument in targets]
        status = run_status(
            errors=sum(1 for r in results if r.error),
            succeeded=sum(1 for r in results if not r.error or r.candles_added or r.candles_updated),
        )
        return recorder.finish(
            status=status, summary={"as_of": as_of.isoformat(), "results": [asdict(r) for r in results]}
        )


def fetch_instrument_days(
    instrument: Instrument, *, days: list[date], client: CoinGeckoClient | None, page_limit: int | None = None
) -> DailyFetch:
    """Fetch the completed daily candles of ``days`` from the instrument's ``candle_source``.

    Args:
        instrument: the instrument; its source (:func:`~instruments.sources.registry.candle_source_for`)
            reads the fields that name it there.
        days: UTC days wanted, oldest first.
        client: the CoinGecko client (ignored by other sources; made from settings when None and needed).
        page_limit: candles per exchange request (default: the exchange's maximum).

    Raises:
        ApplicationError: the source's error (``CoinGeckoError``, ``ExchangeApiError``), with ``retryable``.
    """
    return candle_source_for(instrument).fetch(
        instrument, days=days, now=timezone.now(), client=client, page_limit=page_limit
    )


def instrument_sync(
    recorder: RunRecorder,
    client: CoinGeckoClient | None,
    instrument: Instrument,
    *,
    as_of: date,
    days: list[date] | None = None,
    page_limit: int | None = None,
) -> InstrumentSyncResult:
    """Collect one instrument within a run: fetch its missing days from its source and upsert them.

    A failure of the source or the data is recorded as an ``error`` event of ``recorder``'s run and returned in
    the result; nothing of the instrument is written then. Used by :func:`sync_data` and by the backfill.

    Args:
        recorder: the collect run (held under its run lock).
        client: the CoinGecko client, or None to make one from settings when the source needs it.
        instrument: what to collect.
        as_of: the run's day (UTC).
        days: the UTC days wanted; default: the days missing from the window before ``as_of``.
        page_limit: candles per exchange request (default: the exchange's maximum).

    Raises:
        DatabaseDriverError: the database connection was lost (the run cannot go on; see ``database_gone``).
    """
    result = InstrumentSyncResult(instrument=instrument.coingecko_id)
    missing = days_missing(instrument, as_of=as_of) if days is None else days
    if not missing:
        return result
    try:
        fetched = fetch_instrument_days(instrument, days=missing, client=client, page_limit=page_limit)
        upserted = candles_upsert(
            instrument=instrument, candles=fetched.candles, source=fetched.source, timeframe=Timeframe.D1
        )
    except Exception as exc:
        if database_gone(exc):
            raise  # run_locked turns it into DatabaseUnavailableError: nothing more can be recorded
        if isinstance(exc, ApplicationError):
            message, details = exc.message, exc.extra
        else:
            logger.exception("collect: unexpected error for %s", instrument.coingecko_id)
            message, details = f"internal error {type(exc).__name__}: {exc}", {}
        result.error = message
        result.days_missing = len(missing)
        recorder.event(
            HistoryKind.ERROR,
            instrument=instrument,
            message=message,
            payload={
                "error": type(exc).__name__,
                "retryable": getattr(exc, "retryable", False),
                **details,
                "days_missing": len(missing),
                "kept": "no candle of this instrument was written",
            },
        )
        return result
    result.candles_added, result.candles_updated = upserted.added, upserted.updated
    if fetched.candles:
        recorder.event(
            HistoryKind.CANDLES_SYNCED,
            instrument=instrument,
            message=f"{upserted.added} added, {upserted.updated} updated from {fetched.source}",
            payload={
                "candles_added": upserted.added,
                "candles_updated": upserted.updated,
                "first_day": fetched.candles[0].open_time.date().isoformat(),
                "last_day": fetched.candles[-1].open_time.date().isoformat(),
                "source": fetched.source,
                "requests": fetched.requests,
            },
        )
    if fetched.unavailable:
        result.days_missing = len(fetched.unavailable)
        listed = ", ".join(d.isoformat() for d in fetched.unavailable[:10])
        more = f" and {len(fetched.unavailable) - 10} more" if len(fetched.unavailable) > 10 else ""
        source_name = candle_source_for(instrument).describe(instrument)
        result.error = (
            f"{source_name} had no complete data for {len(fetched.unavailable)} day(s): "
            f"{listed}{more}; the next run tries them again"
        )
        recorder.event(
            HistoryKind.ERROR,
            instrument=instrument,
            message=result.error,
            payload={
                "days_unavailable": [d.isoformat() for d in fetched.unavailable],
                "kept": "complete days only",
            },
        )
    return result


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
        The collect run's summary (:func:`sync_data`'s shape) with ``since``, ``source``,
        ``days_requested`` (days missing before the run) and ``note``.

    Raises:
        ApplicationError: unknown instrument, a source that is not the instrument's, ``since`` not before today
            (fields ``instruments``, ``source``, ``since``); nothing is recorded then.
        RunInProgressError: a collect run of this instrument holds the lock.
    """
    if source not in CANDLE_SOURCES:
        raise ApplicationError(
            f"source must be one of {', '.join(CANDLE_SOURCES)}; was {source!r}", extra={"field": "source"}
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
    reach = CANDLE_SOURCES[source].reach(today)
    if reach is not None and since < reach[0]:
        first_day, note = reach
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
                "source": CANDLE_SOURCES[source].label(instrument),
                "days_requested": len(missing),
                "note": note,
                "results": [asdict(result)],
            },
        )
