"""The data of ``benchmarks/abuse.py``: 20 synthetic instruments with a daily candle on every day the limits
allow, the largest criteria they allow, and an API token."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

FIRST_DAY = date(2009, 1, 3)  # trading.engine.limits.EARLIEST_DAY
INSTRUMENTS = 20  # trading.engine.limits.MAX_INSTRUMENTS
PREFIX = "abuse-"


def largest_criteria() -> dict[str, Any]:
    """Criteria at the limits: 200 comparisons (100 entry, 100 exit) over 400 different indicator series."""
    from trading.engine.limits import MAX_CONDITIONS, MAX_CRITERIA_BYTES, criteria_size_bytes

    def operand(n: int) -> dict[str, Any]:
        kind = n % 8
        period = 2 + n
        if kind == 0:
            return {"indicator": "sma", "period": period}
        if kind == 1:
            return {"indicator": "ema", "period": period}
        if kind == 2:
            return {"indicator": "rsi", "period": period}
        if kind == 3:
            return {"indicator": "atr", "period": period}
        if kind == 4:
            return {"indicator": "bb_upper", "period": period, "stddev": 2}
        if kind == 5:
            return {"indicator": "highest", "period": period}
        if kind == 6:
            return {"indicator": "lowest", "period": period}
        return {"indicator": "macd", "fast": 2 + n // 8, "slow": 3 + n, "signal": 9}

    rows = [
        {"left": operand(2 * i), "op": "crosses_above" if i % 2 else ">", "right": operand(2 * i + 1)}
        for i in range(MAX_CONDITIONS)
    ]
    half = MAX_CONDITIONS // 2
    document = {
        "version": 1,
        "side": "long",
        "entry": {"any": rows[:half]},
        "exit": {"any": rows[half:]},
        "stop_loss_ratio": 0.08,
        "fee_rate": 0.001,
    }
    assert criteria_size_bytes(document) <= MAX_CRITERIA_BYTES  # the largest *allowed*
    return document


def prepare_database(database_url: str, redis_url: str) -> tuple[str, list[str], date]:
    """Migrate, add the synthetic instruments with every daily candle since 2009-01-03, make a user and its API
    token; return ``(token, instrument ids, last day)``."""
    from _django import django_setup

    django_setup(database_url, redis_url)
    from decimal import Decimal

    import numpy as np
    from django.contrib.auth import get_user_model

    from instruments.models import Instrument, InstrumentOHLC, Timeframe

    last = datetime.now(tz=UTC).date() - timedelta(days=1)
    days = (last - FIRST_DAY).days + 1
    ids = []
    rng = np.random.default_rng(11)
    for n in range(INSTRUMENTS):
        instrument, created = Instrument.objects.get_or_create(
            coingecko_id=f"{PREFIX}{n:02d}", defaults={"symbol": f"AB{n:02d}", "name": f"Abuse {n}"}
        )
        ids.append(instrument.coingecko_id)
        if not created and instrument.candles.filter(timeframe=Timeframe.D1).count() == days:
            continue
        instrument.candles.all().delete()
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, days)))
        rows = []
        for i in range(days):
            close = Decimal(f"{closes[i]:.6f}")
            opened = Decimal(f"{(closes[i - 1] if i else closes[0]):.6f}")
            rows.append(
                InstrumentOHLC(
                    instrument=instrument,
                    timeframe=Timeframe.D1,
                    open_time=datetime.combine(
                        FIRST_DAY + timedelta(days=i), datetime.min.time(), tzinfo=UTC
                    ),
                    open=opened,
                    high=max(opened, close) * Decimal("1.01"),
                    low=min(opened, close) * Decimal("0.99"),
                    close=close,
                    volume=Decimal(1000),
                    source="benchmarks/abuse.py synthetic",
                )
            )
        InstrumentOHLC.objects.bulk_create(rows, batch_size=2_000)
    user, _ = get_user_model().objects.get_or_create(username="abuse-benchmark")
    return api_token(user), ids, last


def api_token(user: Any) -> str:
    """A new API token of ``user`` (django-rest-knox: only its digest is stored); returns the key."""
    from barter_site.tokens import api_token_create

    return api_token_create(user=user)[1]
