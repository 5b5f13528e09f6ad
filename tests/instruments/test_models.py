"""Database constraints (tested by writes that bypass the services), upserts, and History's append-only rule."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.utils import DatabaseError

from instruments.candles import Candle
from instruments.models import InstrumentOHLC
from instruments.services import candles_upsert
from runs.models import History, Step
from runs.recorder import run_start
from tests.instruments.factories import CandleFactory, InstrumentFactory

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def raw_candle(**overrides: object) -> InstrumentOHLC:
    values: dict[str, object] = {
        "open": Decimal(10),
        "high": Decimal(12),
        "low": Decimal(9),
        "close": Decimal(11),
        "timeframe": "1d",
    }
    return InstrumentOHLC(
        instrument=InstrumentFactory.create(coingecko_id="bitcoin"),
        open_time=T0,
        source="t",
        **{**values, **overrides},
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"high": Decimal(8)}, "ohlc_high_above_body"),  # high below open, close and low
        ({"low": Decimal("10.5")}, "ohlc_low_below_body"),  # low above open
        ({"low": Decimal(0)}, "ohlc_prices_positive"),
        ({"open": Decimal(-1), "low": Decimal(-2)}, "ohlc_prices_positive"),
        ({"volume": Decimal(-1)}, "ohlc_volume_not_negative"),
        ({"timeframe": "5m"}, "ohlc_timeframe_known"),
    ],
)
def test_impossible_candles_are_refused_by_the_database(
    overrides: dict[str, object], constraint: str
) -> None:
    expected = constraint if connection.vendor == "postgresql" else "CHECK"
    with pytest.raises(IntegrityError, match=expected), transaction.atomic():
        raw_candle(**overrides).save()
    assert not InstrumentOHLC.objects.exists()


@pytest.mark.django_db
def test_a_twin_candle_is_refused_by_the_database() -> None:
    raw_candle().save()
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_candle().save()


@pytest.mark.django_db
def test_upsert_adds_then_updates_then_does_nothing() -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    day = [
        Candle(T0 + timedelta(days=n), Decimal(10), Decimal(12), Decimal(9), Decimal(11)) for n in range(3)
    ]
    first = candles_upsert(instrument=bitcoin, candles=day, source="a")
    assert (first.added, first.updated, first.unchanged) == (3, 0, 0)
    changed = [*day[:2], Candle(day[2].open_time, Decimal(10), Decimal(13), Decimal(9), Decimal(11))]
    result = candles_upsert(instrument=bitcoin, candles=changed, source="b")
    assert (result.added, result.updated, result.unchanged) == (0, 1, 2)
    assert InstrumentOHLC.objects.get(open_time=day[2].open_time).high == Decimal(13)
    assert list(InstrumentOHLC.objects.values_list("source", flat=True)) == ["a", "a", "b"]
    again = candles_upsert(instrument=bitcoin, candles=changed, source="b")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)


@pytest.mark.django_db
def test_history_rows_cannot_be_updated() -> None:
    run_start(step=Step.COLLECT, params={})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        History.objects.update(message="rewritten")


@pytest.mark.postgres
@pytest.mark.django_db
def test_history_rows_cannot_be_deleted_on_postgres() -> None:
    run_start(step=Step.COLLECT, params={})
    with pytest.raises(DatabaseError, match="append-only: DELETE refused"), transaction.atomic():
        History.objects.all().delete()


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgres_constraint_names_and_exact_decimals() -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="shiba-inu")
    tiny = Decimal("0.000012345678901234")  # SHIB-sized, 18 decimal places: kept exactly in numeric(38, 18)
    huge = Decimal("98765432109876543210.123456789012345678")
    CandleFactory.create(instrument=bitcoin, open=tiny, close=tiny, high=tiny, low=tiny, volume=huge)
    stored = InstrumentOHLC.objects.get(instrument=bitcoin)
    assert stored.open == tiny and stored.volume == huge


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_upserts_of_one_instrument_never_double_a_candle() -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    days = [
        Candle(T0 + timedelta(days=n), Decimal(10), Decimal(12), Decimal(9), Decimal(11)) for n in range(400)
    ]
    results = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        try:
            barrier.wait()
            results.append(candles_upsert(instrument=bitcoin, candles=days, source="race"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert InstrumentOHLC.objects.count() == 400
    # The instrument lock makes the six runs take turns: exactly one adds, the others find everything stored.
    assert sorted(r.added for r in results) == [0, 0, 0, 0, 0, 400]
    assert sum(r.unchanged for r in results) == 5 * 400
