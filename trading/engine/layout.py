"""The layout shared by the compiled engine: integer codes, the ``rules`` vector's positions, and the columns of
the trade log that :func:`trading.engine.loop.run_boundaries` returns.

Compiled code has no ``None`` and no strings, so (conventions of every compiled module of the engine):

- an absent price level or ratio is NaN;
- exit reasons are integer codes, those of :class:`trading.engine.vocabulary.ExitReason` (``NO_EXIT`` while a
  trade is open);
- prices and amounts are float64 quote currency, quantities base units, times int64 seconds since 1970-01-01 UTC.

Numba reads these module-level integers as compile-time constants, so naming them costs nothing at run time.
Instrument state and market arrays are described in :mod:`trading.engine.boundary`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

from trading.engine.vocabulary import NO_EXIT, ExitReason

__all__ = ["NO_EXIT"]

#: Exit reason codes (:class:`~trading.engine.vocabulary.ExitReason` ``.code``), as plain ints for Numba.
STOP_LOSS_CODE: int = ExitReason.STOP_LOSS.code
TAKE_PROFIT_CODE: int = ExitReason.TAKE_PROFIT.code
TRAILING_STOP_CODE: int = ExitReason.TRAILING_STOP.code
SIGNAL_CODE: int = ExitReason.SIGNAL.code
MAX_HOLDING_CODE: int = ExitReason.MAX_HOLDING.code
END_OF_DATA_CODE: int = ExitReason.END_OF_DATA.code
MANUAL_CODE: int = ExitReason.MANUAL.code

#: How the risk exits of an ambiguous daily candle were decided (the stop and the take-profit both inside it, the
#: open through neither): ``AMBIGUITY_NONE`` the candle was not ambiguous, ``AMBIGUITY_PESSIMISTIC`` the stop was
#: taken without finer candles to tell (or a finer candle held both levels too); otherwise the exit code of the
#: level the finer candles crossed first (``STOP_LOSS_CODE``, ``TAKE_PROFIT_CODE`` or ``TRAILING_STOP_CODE``).
AMBIGUITY_NONE = -1
AMBIGUITY_PESSIMISTIC = 0

#: Sizing method codes (CRITERIA.md "Sizing"; ``SIZING_RISK`` is docs/criteria.md's risk-based sizing).
SIZING_EQUITY_FRACTION = 0
SIZING_FIXED_QUOTE = 1
SIZING_RISK = 2

#: Why an entry signal did not enter (the refusals a run reports, docs/criteria.md "Risk limits"); 0: it was
#: not refused by a limit. The names are :data:`trading.engine.vocabulary.LIMIT_NAMES`.
LIMIT_NONE = 0
LIMIT_MAX_OPEN_POSITIONS = 1
LIMIT_MAX_EXPOSURE = 2
LIMIT_DAILY_LOSS = 3
LIMIT_MAX_DRAWDOWN = 4
LIMIT_COOLDOWN = 5
LIMIT_RISK_STOP = 6

# Positions in a run's limit state (float64, shape (LIMIT_STATE_SIZE,)), which :func:`trading.engine.boundary.
# limits_at_boundary` carries from one boundary to the next (the live cycle keeps it in the database). Days are
# days since 1970-01-01 UTC, times seconds; NaN where not yet known (a fresh account), -1 where not halted.
STATE_DAY = 0
STATE_DAY_START_EQUITY = 1
STATE_LAST_EQUITY = 2
STATE_HALT_DAY = 3
STATE_PEAK_EQUITY = 4
STATE_DRAWDOWN_HALT_SECONDS = 5
LIMIT_STATE_SIZE = 6

# Columns of a run's refusals log (int64, shape (r, 3)): every entry signal a risk limit refused.
REFUSAL_BOUNDARY_SECONDS = 0
REFUSAL_SLOT = 1
REFUSAL_LIMIT = 2
REFUSAL_COLUMNS = 3
# Columns of a run's halts log (int64, shape (h, 4)): the boundary a halt began or ended at, its limit,
# whether it began (1) or ended (0), and the book whose halt it is (-1: the whole account's); and of its float
# companion (float64, shape (h, 2)): the equity then and the level it was measured against (the day's starting
# equity, or the peak), quote currency.
HALT_INT_BOUNDARY_SECONDS = 0
HALT_INT_LIMIT = 1
HALT_INT_BEGAN = 2
HALT_INT_BOOK = 3
HALT_INT_COLUMNS = 4
HALT_FLOAT_EQUITY = 0
HALT_FLOAT_REFERENCE = 1
HALT_FLOAT_COLUMNS = 2

#: Entries that would spend less than this fraction of equity are skipped: what is left after spending "all"
#: the cash is rounding dust (float in the backtest, Decimal live), not money to open a position with.
MIN_SPEND_RATIO = 1e-6

# Positions in the ``rules`` vector (float64, shape (RULES_SIZE,)): a strategy's parameters in compiled code.
RULE_STOP_LOSS_RATIO = 0
RULE_TAKE_PROFIT_RATIO = 1
RULE_TRAILING_STOP_RATIO = 2
RULE_MAX_HOLDING_SECONDS = 3
RULE_SIZING_METHOD = 4
RULE_SIZING_VALUE = 5
RULE_FEE_RATE = 6
RULE_SLIPPAGE_RATIO = 7
#: Entries are refused while the equity at a boundary is at or below this, quote currency (NaN: never): the
#: account is ruined (``RUIN_TOLERANCE_RATIO`` of the starting cash, :mod:`trading.engine.types`; what is left is
#: float rounding, not money).
RULE_RUIN_EQUITY = 8
#: Risk-based sizing with an ATR stop: the stop is this many ATRs (``t_atr``) below the fill (NaN: the stop-loss).
RULE_SIZING_ATR_MULTIPLE = 9
#: Risk limits (docs/criteria.md "Risk limits"), NaN where the criteria set none.
RULE_MAX_OPEN_POSITIONS = 10
RULE_MAX_EXPOSURE_RATIO = 11
RULE_DAILY_LOSS_LIMIT_RATIO = 12
RULE_MAX_DRAWDOWN_HALT_RATIO = 13
RULE_DRAWDOWN_RESUME_SECONDS = 14
RULE_COOLDOWN_SECONDS = 15
RULES_SIZE = 16

# Columns of the trade log's ``ints`` array (int64, shape (m, 5)).
INT_SLOT = 0
INT_ENTRY_INDEX = 1
INT_ENTRY_TIME_SECONDS = 2
INT_EXIT_INDEX = 3
INT_EXIT_TIME_SECONDS = 4
INT_COLUMNS = 5
# Columns of the trade log's ``floats`` array (float64, shape (m, 10)); NaN where absent.
FLOAT_ENTRY_PRICE = 0
FLOAT_QUANTITY = 1
FLOAT_ENTRY_FEE = 2
FLOAT_STOP_LOSS_PRICE = 3
FLOAT_TAKE_PROFIT_PRICE = 4
FLOAT_TRAILING_STOP_PRICE = 5
FLOAT_EXIT_PRICE = 6
FLOAT_EXIT_FEE = 7
FLOAT_PNL = 8
FLOAT_PNL_RATIO = 9
FLOAT_COLUMNS = 10
# Columns of the ambiguous candles' ``ints`` array (int64, shape (a, 3)) and ``floats`` array (float64, (a, 2)).
AMBIGUOUS_INT_SLOT = 0
AMBIGUOUS_INT_OPEN_TIME_SECONDS = 1
AMBIGUOUS_INT_RESOLUTION = 2
AMBIGUOUS_INT_COLUMNS = 3
AMBIGUOUS_FLOAT_STOP = 0
AMBIGUOUS_FLOAT_TAKE_PROFIT = 1
AMBIGUOUS_FLOAT_COLUMNS = 2

#: Options of the functions of one boundary, which the backtest calls once a candle: compiled without Numba's
#: reference counting (its option ``_nrt``), they cost nanoseconds instead of the ~300 ns that counting the
#: references of some 25 array arguments adds to each call. They allocate nothing, which is what it requires.
WITHOUT_REFCOUNTS: dict[str, Any] = {"cache": True, "_nrt": False}

_Function = TypeVar("_Function", bound=Callable[..., Any])


def njit_without_refcounts(function: _Function) -> _Function:
    """Compile ``function`` with :data:`WITHOUT_REFCOUNTS` (``numba.njit(cache=True, _nrt=False)``).

    The same as writing the decorator out; this keeps the function's type for mypy, since Numba's type hints do
    not know the ``_nrt`` option.
    """
    return cast(_Function, njit(**WITHOUT_REFCOUNTS)(function))
