"""The collect step: ``sync_data`` adds the missing completed daily candles of every active instrument.

The API endpoint, the management command, the Celery task and the admin action all call :func:`sync_data`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from barter_site.days import as_of_validate
from barter_site.errors import ApplicationError, database_gone
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from instruments.services import candles_upsert
from instruments.sources.coingecko import coingecko_client_from_settings
from instruments.sources.coingecko.client import CoinGeckoClient
from instruments.sources.coingecko.daily import DailyFetch, fetch_daily_candles
from instruments.sources.exchange import daily as exchange_daily
from instruments.sources.exchange.client import exchange_client
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


def sync_window(*, as_of: date, backfill_days: int) -> list[date]:
    """Return the days the collect step keeps complete for ``as_of``: the ``backfill_days`` days before it.

    Days are added up to the last one completed before ``as_of`` (``as_of`` itself is not included).
    """
    return [as_of - timedelta(days=n) for n in range(backfill_days, 0, -1)]


def days_missing(instrument: Instrument, *, as_of: date) -> list[date]:
    """Return the days of the window before ``as_of`` that have no daily candle, oldest first.

    The window is the ``BARTER_BACKFILL_DAYS`` days before ``as_of``. Once an instrument has candles, days
    before its first one are not asked for again: they precede the coin's data (a listing day is partial),
    so asking every day would only spend the rate limit.
    """
    window = sync_window(as_of=as_of, backfill_days=settings.BARTER_BACKFILL_DAYS)
    daily = InstrumentOHLC.objects.for_instrument(instrument, Timeframe.D1)
    first = daily.order_by("open_time").values_list("open_time", flat=True).first()
    stored = set(
        daily.filter(open_time__date__gte=window[0], open_time__date__lte=window[-1]).values_list(
            "open_time__date", flat=True
        )
    )
    return [d for d in window if d not in stored and (first is None or d >= first.date())]


def instruments_resolve(coingecko_ids: Sequence[str] | None) -> list[Instrument]:
    """Return the instruments named by CoinGecko id, or every active instrument when ``coingecko_ids`` is None.

    Raises:
        ApplicationError: (field ``instruments``) some ids are unknown; the message lists them and the known ones.
    """
    if coingecko_ids is None:
        return list(Instrument.objects.active().order_by("coingecko_id"))
    found = {i.coingecko_id: i for i in Instrument.objects.filter(coingecko_id__in=coingecko_ids)}
    unknown = [c for c in coingecko_ids if c not in found]
    if unknown:
        known = ", ".join(Instrument.objects.order_by("coingecko_id").values_list("coingecko_id", flat=True))
        raise ApplicationError(
            f"unknown instrument(s) {', '.join(map(repr, unknown))}: use CoinGecko coin ids of instruments "
            f"in the database ({known or 'none yet: add one in the admin or with import_ohlc'})",
            extra={"field": "instruments"},
        )
    return [found[c] for c in sorted(set(coingecko_ids))]


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

    Each instrument's candles come from its ``candle_source``: CoinGecko, or its exchange through ccxt
    (:mod:`instruments.sources.exchange`: ``exchange_id`` and ``market_symbol``, source ``exchange:<id>``), for
    the same window of missing days.

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
        instrument: the instrument; ``candle_source`` ``exchange`` uses its ``exchange_id`` and ``market_symbol``.
        days: UTC days wanted, oldest first.
        client: the CoinGecko client (ignored for exchanges; made from settings when None and needed).
        page_limit: candles per exchange request (default: the exchange's maximum).

    Raises:
        ApplicationError: the source's error (``CoinGeckoError``, ``ExchangeApiError``), with ``retryable``.
    """
    now = timezone.now()
    if instrument.candle_source == Instrument.CandleSource.EXCHANGE:
        stored = InstrumentOHLC.objects.for_instrument(instrument, Timeframe.D1)
        first = stored.order_by("open_time").values_list("open_time", flat=True).first()
        return exchange_daily.fetch_daily_candles(
            exchange_client(instrument.exchange_id),
            market_symbol=instrument.market_symbol,
            days=days,
            now=now,
            limit=page_limit,
            known_from=first.date() if first else None,
        )
    return fetch_daily_candles(
        client or coingecko_client_from_settings(),
        coin_id=instrument.coingecko_id,
        vs_currency=instrument.quote_currency,
        days=days,
        now=now,
    )


def _source_name(instrument: Instrument) -> str:
    if instrument.candle_source == Instrument.CandleSource.EXCHANGE:
        return f"{instrument.exchange_id} ({instrument.market_symbol})"
    return "CoinGecko"


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
        result.error = (
            f"{_source_name(instrument)} had no complete data for {len(fetched.unavailable)} day(s): "
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
