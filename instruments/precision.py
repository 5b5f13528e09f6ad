"""Precision of every price, quantity, amount, ratio and volume column, in one place, and the one way to round.

Each constant is named for what its column holds: ``PRICE_`` (quote currency per base unit), ``QUANTITY_``
(base units), ``AMOUNT_`` (quote currency: cash, fees, P&L), ``RATIO_`` (a fraction: 0.05 is 5 %), ``VOLUME_``
(a candle's traded volume). They are all the same today; a column can change its own without touching others.

``numeric(38, 18)`` holds a BTC price in the hundreds of thousands and a SHIB-sized price of 1e-8 with ten
significant digits alike; PostgreSQL stores it exactly, SQLite as text through Django's converter.
"""

from decimal import ROUND_HALF_EVEN, Context, Decimal

PRICE_MAX_DIGITS = 38
PRICE_DECIMAL_PLACES = 18
VOLUME_MAX_DIGITS = 38
VOLUME_DECIMAL_PLACES = 18
QUANTITY_MAX_DIGITS = 38
QUANTITY_DECIMAL_PLACES = 18
AMOUNT_MAX_DIGITS = 38
AMOUNT_DECIMAL_PLACES = 18
RATIO_MAX_DIGITS = 38
RATIO_DECIMAL_PLACES = 18

_PRICE_QUANTUM = Decimal(1).scaleb(-PRICE_DECIMAL_PLACES)
# Room for every digit of the column: the default context's 28 digits made quantize raise InvalidOperation
# for prices of 1e10 and more (20 integer digits fit the column).
_PRICE_CONTEXT = Context(prec=PRICE_MAX_DIGITS)


def decimal_quantize(value: Decimal) -> Decimal:
    """Round a price, quantity, amount, ratio or volume to the stored precision (``numeric(38, 18)``, the same
    for every decimal column today), half to even (IEEE 754's default)."""
    return value.quantize(_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN, context=_PRICE_CONTEXT)
