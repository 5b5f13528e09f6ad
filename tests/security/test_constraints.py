"""Database constraints, checked by writes that bypass the services and the models' validation:
``bulk_create``, ``QuerySet.update`` and raw SQL. Each must fail with ``IntegrityError`` on SQLite and on
PostgreSQL (every constraint here exists on both; on PostgreSQL the error names the constraint).

``tests/instruments/test_models.py`` already covers ``Model.save()`` of impossible candles and of a twin
candle; these are the other ways in, and the positions' constraints.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from instruments.models import Instrument, InstrumentOHLC
from positions.models import Position
from tests.instruments.factories import CandleFactory, InstrumentFactory
from tests.trading.factories import PositionFactory, StrategyFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _refused(constraint: str) -> pytest.RaisesExc[IntegrityError]:
    """``pytest.raises`` for an IntegrityError from ``constraint`` (PostgreSQL names it; SQLite may not)."""
    if connection.vendor == "postgresql" or not constraint.startswith(("ohlc_one", "position_one")):
        return pytest.raises(IntegrityError, match=constraint)  # SQLite names a failed CHECK too
    return pytest.raises(IntegrityError, match="UNIQUE constraint failed")  # SQLite names the columns


def _candle(instrument: Instrument, **overrides: object) -> InstrumentOHLC:
    values = {
        "open": Decimal(10),
        "high": Decimal(12),
        "low": Decimal(9),
        "close": Decimal(11),
        "timeframe": "1d",
    }
    return InstrumentOHLC(instrument=instrument, source="t", **{"open_time": T0, **values, **overrides})


def test_bulk_create_of_a_twin_candle_is_refused() -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    InstrumentOHLC.objects.bulk_create([_candle(bitcoin)])
    with _refused("ohlc_one_candle_per_instrument_time"), transaction.atomic():
        InstrumentOHLC.objects.bulk_create([_candle(bitcoin, high=Decimal(13))])
    with _refused("ohlc_one_candle_per_instrument_time"), transaction.atomic():  # twins in one batch
        InstrumentOHLC.objects.bulk_create(
            [_candle(bitcoin, open_time=T0 + timedelta(days=1)) for _ in range(2)]
        )
    assert InstrumentOHLC.objects.count() == 1
    # Another timeframe or another day of the same instrument is a different candle.
    InstrumentOHLC.objects.bulk_create(
        [_candle(bitcoin, timeframe="1h"), _candle(bitcoin, open_time=T0 + timedelta(days=1))]
    )
    assert InstrumentOHLC.objects.count() == 3


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        ({"high": Decimal(8)}, "ohlc_high_above_body"),  # high 8 < low 9 (and below open and close)
        ({"low": Decimal("10.5")}, "ohlc_low_below_body"),  # low 10.5 > open 10
        ({"close": Decimal(13)}, "ohlc_high_above_body"),  # close 13 > high 12
        ({"low": Decimal(0)}, "ohlc_prices_positive"),
        ({"open": Decimal(-1), "low": Decimal(-2)}, "ohlc_prices_positive"),
    ],
)
def test_update_to_an_impossible_candle_is_refused(change: dict[str, Decimal], constraint: str) -> None:
    candle = CandleFactory.create(open=Decimal(10), high=Decimal(12), low=Decimal(9), close=Decimal(11))
    with _refused(constraint), transaction.atomic():
        InstrumentOHLC.objects.filter(pk=candle.pk).update(**change)
    candle.refresh_from_db()
    assert (candle.open, candle.high, candle.low, candle.close) == (
        Decimal(10),
        Decimal(12),
        Decimal(9),
        Decimal(11),
    )


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ((10, 8, 9, 11), "ohlc_high_above_body"),  # high < low
        ((10, 12, 11, 11), "ohlc_low_below_body"),  # low > open
        ((10, 12, 9, 13), "ohlc_high_above_body"),  # close > high
        ((0, 12, -1, 11), "ohlc_prices_positive"),  # open <= 0 (and low below it, so only this check fails)
        ((10, 12, -1, 11), "ohlc_prices_positive"),  # low <= 0
    ],
)
def test_raw_sql_insert_of_an_impossible_candle_is_refused(
    values: tuple[int, int, int, int], constraint: str
) -> None:
    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin")
    table = InstrumentOHLC._meta.db_table
    sql = (
        f"INSERT INTO {table} (instrument_id, timeframe, open_time, open, high, low, close, source, "  # noqa: S608
        "created_at, updated_at) VALUES (%s, '1d', %s, %s, %s, %s, %s, 'raw', %s, %s)"
    )
    with _refused(constraint), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [bitcoin.pk, T0, *(Decimal(v) for v in values), T0, T0])
    assert not InstrumentOHLC.objects.exists()


def test_a_second_open_position_of_a_strategy_and_instrument_is_refused() -> None:
    open_position = PositionFactory.create()
    strategy, instrument = open_position.strategy, open_position.instrument
    twin = PositionFactory.build(strategy=strategy, instrument=instrument)
    with _refused("position_one_open_per_strategy_instrument"), transaction.atomic():
        Position.objects.bulk_create([twin])
    # Reopening a closed one beside the open one, by update, is refused too.
    closed = PositionFactory.create(strategy=strategy, instrument=instrument, closed=True)
    with _refused("position_one_open_per_strategy_instrument"), transaction.atomic():
        Position.objects.filter(pk=closed.pk).update(
            status="open",
            exit_price=None,
            exit_at=None,
            exit_fee=None,
            exit_reason="",
            pnl=None,
            pnl_ratio=None,
        )
    # Closed positions may repeat, and another strategy may hold the same instrument.
    PositionFactory.create(strategy=strategy, instrument=instrument, closed=True)
    PositionFactory.create(strategy=StrategyFactory.create(), instrument=instrument)
    assert Position.objects.open().filter(strategy=strategy, instrument=instrument).count() == 1
    assert Position.objects.count() == 4


@pytest.mark.parametrize("missing", ["exit_price", "exit_at", "exit_fee", "pnl", "pnl_ratio", "exit_reason"])
def test_a_closed_position_without_an_exit_field_is_refused(missing: str) -> None:
    position = PositionFactory.create(closed=True)
    with _refused("position_exit_fields_iff_closed"), transaction.atomic():
        Position.objects.filter(pk=position.pk).update(**{missing: "" if missing == "exit_reason" else None})


def test_closing_by_status_alone_is_refused() -> None:
    position = PositionFactory.create()
    with _refused("position_exit_fields_iff_closed"), transaction.atomic():
        Position.objects.filter(pk=position.pk).update(status="closed")
    with _refused("position_exit_fields_iff_closed"), transaction.atomic():
        Position.objects.bulk_create(
            [
                PositionFactory.build(
                    strategy=StrategyFactory.create(), instrument=position.instrument, status="closed"
                )
            ]
        )


@pytest.mark.parametrize(
    "extra",
    [
        {"exit_price": Decimal(110)},
        {"exit_at": T0},
        {"exit_fee": Decimal("0.1")},
        {"exit_reason": "signal"},
        {"pnl": Decimal(1)},
        {"pnl_ratio": Decimal("0.01")},
    ],
)
def test_an_open_position_with_an_exit_field_is_refused(extra: dict[str, object]) -> None:
    position = PositionFactory.create()
    with _refused("position_exit_fields_iff_closed"), transaction.atomic():
        Position.objects.filter(pk=position.pk).update(**extra)
    position.refresh_from_db()
    assert position.exit_price is None and position.exit_reason == ""
