"""The simulator's bar magnifier (docs/criteria.md "Finer candles inside a daily candle"): stored 1h or 1m
candles decide a daily candle whose stop and take-profit are both inside; the run keeps, returns and shows each
such candle with its resolution."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from simulator.services.magnifier import finer_candles_load
from tests.instruments.factories import InstrumentFactory

pytestmark = pytest.mark.django_db

DAY1, DAY2, DAY3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)
CRITERIA: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "entry": {"all": [{"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}]},
    "stop_loss_ratio": 0.02,
    "take_profit_ratio": 0.02,
    "fee_rate": 0.0,
}


def at(day: date, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour, minutes=minute)


def store(instrument: Instrument, timeframe: str, moment: datetime, ohlc: tuple[str, str, str, str]) -> None:
    o, h, lo, c = (Decimal(v) for v in ohlc)
    InstrumentOHLC.objects.create(
        instrument=instrument,
        timeframe=timeframe,
        open_time=moment,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=Decimal(1),
        source="test",
    )


@pytest.fixture
def bitcoin(db: None) -> Instrument:
    """Daily candles of 1 to 3 March 2024; 2 March holds both 98 and 102 (the levels of an entry at its open,
    100), and its hours reach 102.5 before 97: the take-profit first."""
    instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    store(instrument, Timeframe.D1, at(DAY1), ("100", "101", "99", "100"))
    store(instrument, Timeframe.D1, at(DAY2), ("100", "103", "97", "99"))
    store(instrument, Timeframe.D1, at(DAY3), ("99", "100", "98.5", "99.5"))
    store(instrument, Timeframe.H1, at(DAY2, 0), ("100", "102.5", "99.5", "102"))
    store(instrument, Timeframe.H1, at(DAY2, 1), ("102", "103", "97", "99"))
    return instrument


def test_stored_hours_resolve_an_ambiguous_day_and_the_run_keeps_returns_and_shows_it(
    bitcoin: Instrument,
) -> None:
    user = User.objects.create_user("trader")
    api = APIClient()
    api.force_authenticate(user)
    body = {"instruments": ["bitcoin"], "start": "2024-03-02", "end": "2024-03-03", "starting_cash": "1000"}

    response = api.post("/api/simulations/", {**body, "criteria": CRITERIA}, format="json")

    assert response.status_code == 201, response.json()
    result = response.json()
    assert result["ambiguous"] == [
        {
            "day": "2024-03-02",
            "instrument": "bitcoin",
            "symbol": "BTC",
            "stop_price": "98",
            "take_profit_price": "102",
            "resolution": "take_profit",
        }
    ]
    assert result["statistics"]["ambiguous_candles"] == 1
    assert result["statistics"]["ambiguous_resolved"] == 1
    first = result["trades"][0]
    assert (first["exit_reason"], Decimal(first["exit_price"])) == ("take_profit", Decimal(102))
    assert api.get(f"/api/simulations/{result['id']}/").json()["ambiguous"] == result["ambiguous"]

    page = Client()
    page.force_login(user)
    html = page.get(f"/simulator/runs/{result['id']}/").content.decode()
    assert 'id="ambiguous"' in html
    assert 'data-day="2024-03-02" data-resolution="take_profit"' in html


def test_without_finer_candles_the_ambiguous_day_takes_the_stop_and_says_so(bitcoin: Instrument) -> None:
    InstrumentOHLC.objects.filter(timeframe=Timeframe.H1).delete()
    api = APIClient()
    api.force_authenticate(User.objects.create_user("trader"))
    body = {"instruments": ["bitcoin"], "start": "2024-03-02", "end": "2024-03-03", "starting_cash": "1000"}

    result = api.post("/api/simulations/", {**body, "criteria": CRITERIA}, format="json").json()

    [ambiguous] = result["ambiguous"]
    assert ambiguous["resolution"] == "pessimistic"
    assert (result["statistics"]["ambiguous_candles"], result["statistics"]["ambiguous_resolved"]) == (1, 0)
    assert result["trades"][0]["exit_reason"] == "stop_loss"


def test_each_day_uses_the_finest_candles_stored_for_it(bitcoin: Instrument) -> None:
    # 2 March gets minutes too: they replace its hours; 3 March has hours only, which stay; 4 March is not in
    # the run.
    store(bitcoin, Timeframe.M1, at(DAY2, 0, 0), ("100", "100", "97.5", "98"))
    store(bitcoin, Timeframe.M1, at(DAY2, 0, 1), ("98", "102.5", "98", "102"))
    store(bitcoin, Timeframe.H1, at(DAY3, 5), ("99", "100", "98.5", "99.5"))
    store(bitcoin, Timeframe.H1, at(DAY3 + timedelta(days=1), 0), ("99", "100", "98.5", "99.5"))

    finer = finer_candles_load([bitcoin], DAY2, DAY3)["BTC"]

    assert finer.open_time_seconds.tolist() == [
        int(at(DAY2, 0, 0).timestamp()),
        int(at(DAY2, 0, 1).timestamp()),
        int(at(DAY3, 5).timestamp()),
    ]
    assert finer.low.tolist() == [97.5, 98.0, 98.5]
    assert finer_candles_load([bitcoin], DAY1, DAY1) == {}
