"""Precision of every price and volume column, in one place, and the one way to round to it.

``numeric(38, 18)`` holds a BTC price in the hundreds of thousands and a SHIB-sized price of 1e-8 with ten
significant digits alike; PostgreSQL stores it exactly, SQLite as text through Django's converter.
"""

from decimal import ROUND_HALF_EVEN, Context, Decimal

PRICE_MAX_DIGITS = 38
PRICE_DECIMAL_PLACES = 18
VOLUME_MAX_DIGITS = 38
VOLUME_DECIMAL_PLACES = 18

_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_DECIMAL_PLACES)
# Room for every digit of the column: the default context's 28 digits made quantize raise InvalidOperation
# for prices of 1e10 and more (20 integer digits fit the column).
_PRICE_CONTEXT = Context(prec=PRICE_MAX_DIGITS)


def price_quantize(value: Decimal) -> Decimal:
    """Round a price or volume to the stored precision, half to even (IEEE 754's default)."""
    return value.quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN, context=_PRICE_CONTEXT)
