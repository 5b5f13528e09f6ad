"""Text for people, with its unit, written once: statistics, prices, quantities, numbers and percent.

Amounts in saved runs are decimal strings and ratios fractions (:class:`simulator.models.Simulation`); these
helpers turn them into text with their unit (percent for people), for the pages, the heatmap and the form. What a
statistic is (label, unit, which way is better) comes from :data:`trading.engine.vocabulary.STATISTICS`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from instruments.models import Instrument
from trading.engine.vocabulary import STATISTIC_BY_KEY

DASH = "\u2014"


def statistic_text(key: str, value: Any, currency: str = "") -> str:
    """A statistic as people read it: fractions in percent (0.1234 -> ``12.34 %``), Sharpe, Sortino, Calmar and
    the profit factor as plain numbers, ``_days`` in days, money with its currency; None (undefined) as a dash.

    Args:
        key: one of :data:`trading.engine.vocabulary.STATISTICS_KEYS`.
        value: the engine's value (a fraction for ``_ratio`` keys).
        currency: the quote currency's code for money (``USD``).
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    statistic = STATISTIC_BY_KEY.get(key)
    unit = "ratio" if statistic is None else statistic.unit
    if unit == "count":
        return f"{int(value):,}"
    number = float(value)
    if unit == "number":
        return f"{number:,.2f}"
    if unit == "days":
        return f"{number:,.1f} days"
    if unit == "money":
        return f"{number:,.2f} {currency}".rstrip()
    return f"{number * 100:,.2f} %"


def statistic_label(key: str) -> str:
    """A statistic's name for people (:data:`trading.engine.vocabulary.STATISTICS`); the key when unknown."""
    statistic = STATISTIC_BY_KEY.get(key)
    return key if statistic is None else statistic.label


def lower_is_better(key: str) -> bool:
    """True for a statistic where less is better (a heatmap's colours turn round for it)."""
    statistic = STATISTIC_BY_KEY.get(key)
    return statistic is not None and not statistic.higher_is_better


def statistic_class(key: str, value: Any) -> str:
    """``gain``/``loss`` for a signed statistic's sign, else ``""``."""
    statistic = STATISTIC_BY_KEY.get(key)
    if statistic is None or not statistic.signed or value is None:
        return ""
    return "gain" if value > 0 else "loss" if value < 0 else ""


def price_text(value: Any) -> str:
    """A price or amount: two decimals with separators from 1 up, six significant digits below (0.000123456)."""
    if value is None or value == "":
        return DASH
    number = float(value)
    if abs(number) >= 1 or number == 0:
        return f"{number:,.2f}"
    return f"{number:.6g}"


def quantity_text(value: Any) -> str:
    """A quantity in base units, to eight decimals without trailing zeros."""
    if value is None or value == "":
        return DASH
    try:
        number = Decimal(str(value)).quantize(Decimal("1e-8"))
    except InvalidOperation:
        return str(value)
    text = format(number.normalize(), "f")
    return text if "." in text or abs(number) < 1000 else f"{number:,.0f}"


def decimal_or_zero(value: Any) -> Decimal:
    """A saved amount (decimal string or number) as a ``Decimal``; 0 for None, ``""`` or text that is no number."""
    try:
        return Decimal(str(value)) if value not in (None, "") else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def quote_currency(instruments: Iterable[Instrument]) -> str:
    """The quote currency code of a run's instruments (``USD``), several joined with ``/``."""
    return "/".join(sorted({i.quote_currency.upper() for i in instruments}))


def number_text(value: Any) -> str:
    """A number as the form shows it: 10 -> ``"10"``, 2.0 -> ``"2"``, 1e-07 -> ``"0.0000001"``; None -> ``""``."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return format(Decimal(repr(value)).normalize(), "f")


def percent_text(ratio: Any) -> str:
    """A fraction as the percent the form shows: 0.05 -> ``"5"``, 0.001 -> ``"0.1"``; None -> ``""``."""
    if ratio is None:
        return ""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float):
        return str(ratio)
    return format((Decimal(repr(float(ratio))) * 100).normalize(), "f")
