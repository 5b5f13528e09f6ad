"""The engine's backtest over the stored candles of a strategy (or a portfolio's members), as the live cycle would
have traded the same days: the one path the parity tests (tests/trading/test_parity.py) and the daily audit
(:mod:`positions.audit`) build a backtest from the database by.

The daily cycle trades at the boundaries ``start .. end`` (each day's 00:00 UTC): entries and signal exits at the
open of the day, from the candles before it; the risk exits of a candle settled at the next boundary. The backtest
here runs those boundaries with every stored candle (indicators warm up before ``start``), the finer candles of
those days where a candle can be ambiguous (the bar magnifier, as the close step reads them) and the candles of
the other instruments the criteria name. A trade still open at ``end`` is reported open (no ``end_of_data`` close),
as the replayed cycle leaves it.

Instruments are keyed as the live open step keys them (:func:`instrument_key`: the ticker, then the id), so two
instruments sharing a ticker stay apart and the entries of one boundary are made in the live cycle's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from instruments.models import Instrument
from trading.engine.backtest import BacktestResult, backtest
from trading.engine.criteria import Criteria, Limits, criteria_instruments
from trading.engine.magnifier import uses_finer_candles
from trading.engine.portfolio import PortfolioBook, PortfolioResult, portfolio_backtest
from trading.engine.types import CandleArrays
from trading.selectors import candles_before, finer_candles, reference_candles, to_seconds

#: Later than any stored candle: "every candle" for :func:`trading.selectors.candles_before`.
_EVERYTHING = datetime(2100, 1, 1, tzinfo=UTC)


def instrument_key(instrument: Instrument) -> str:
    """The engine's key of an instrument: its ticker, then its id (``"BTC\\x00000000000042"``).

    The same key the live open step gives (:func:`positions.cycle.open._key`): tickers are not unique, the id makes
    the key unique, and ``\\x00`` sorts before any character of a ticker, so the keys sort as the tickers do.
    """
    return f"{instrument.symbol}\x00{instrument.pk:012d}"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


@dataclass(frozen=True)
class StoredBook:
    """One strategy's part of a backtest from the database: its criteria, instruments and (in a portfolio) weight."""

    name: str
    criteria: Criteria
    instruments: Sequence[Instrument]
    weight: float = 1.0


def _book_inputs(
    criteria: Criteria, instruments: Sequence[Instrument], start: date, end: date
) -> tuple[list[CandleArrays], dict[str, CandleArrays]]:
    """Every stored daily candle of each instrument (keyed by :func:`instrument_key`) and, when ``criteria`` can
    meet an ambiguous candle, the finer candles of the days ``start - 1 .. end`` (the last candle whose risk exits
    the boundary ``end`` settles is the day before it; the days before ``start`` are never traded)."""
    candles = [replace(candles_before(i, _EVERYTHING), symbol=instrument_key(i)) for i in instruments]
    finer: dict[str, CandleArrays] = {}
    if uses_finer_candles(criteria):
        for instrument in instruments:
            found = finer_candles(instrument, _midnight(start - timedelta(days=1)), _midnight(end))
            if found is not None:
                finer[instrument_key(instrument)] = replace(found, symbol=instrument_key(instrument))
    return candles, finer


def backtest_stored(
    *,
    criteria: Criteria,
    instruments: Sequence[Instrument],
    start: date,
    end: date,
    starting_cash: float,
) -> BacktestResult:
    """Backtest ``criteria`` over the stored candles of ``instruments`` at the daily boundaries ``start .. end``.

    What the daily cycle replayed over the same days does (``manage.py replay``: the open and close steps of each
    day, filling at the stored open): its trades are the replay's, trade for trade (tests/trading/test_parity.py).

    Args:
        criteria: parsed criteria.
        instruments: the strategy's instruments (at least one).
        start, end: the first and last boundary (UTC days); ``end >= start``. A trade is entered at the boundary
            of a day, from the candles before it; the risk exits inside the candle of ``end - 1`` are the last
            settled.
        starting_cash: quote currency, > 0.

    Returns:
        The engine's :class:`~trading.engine.backtest.BacktestResult`; its trades' ``symbol`` is
        :func:`instrument_key` of their instrument.

    Raises:
        ValueError: as :func:`trading.engine.backtest.backtest` (``end`` before ``start``...).
    """
    candles, finer = _book_inputs(criteria, instruments, start, end)
    return backtest(
        criteria=criteria,
        instruments=candles,
        start_time_seconds=to_seconds(_midnight(start)),
        end_time_seconds=to_seconds(_midnight(end)),
        starting_cash=float(starting_cash),
        finer=finer or None,
        references=reference_candles(criteria_instruments(criteria), _EVERYTHING) or None,
    )


def portfolio_backtest_stored(
    *,
    books: Sequence[StoredBook],
    limits: Limits | None,
    start: date,
    end: date,
    starting_cash: float,
) -> PortfolioResult:
    """The portfolio backtest (:func:`trading.engine.portfolio.portfolio_backtest`) of ``books`` (in member order)
    over the stored candles, at the daily boundaries ``start .. end``, as :func:`backtest_stored` for one.

    Returns:
        The engine's :class:`~trading.engine.portfolio.PortfolioResult`; each book's trades are keyed by
        :func:`instrument_key`.

    Raises:
        ValueError: as :func:`trading.engine.portfolio.portfolio_backtest`.
    """
    engine_books = []
    finer: dict[str, CandleArrays] = {}
    named: set[str] = set()
    for book in books:
        candles, found = _book_inputs(book.criteria, book.instruments, start, end)
        finer.update(found)
        named |= set(criteria_instruments(book.criteria))
        engine_books.append(PortfolioBook(book.name, book.criteria, candles, book.weight))
    return portfolio_backtest(
        books=engine_books,
        start_time_seconds=to_seconds(_midnight(start)),
        end_time_seconds=to_seconds(_midnight(end)),
        starting_cash=float(starting_cash),
        limits=limits,
        finer=finer or None,
        references=reference_candles(named, _EVERYTHING) or None,
    )
