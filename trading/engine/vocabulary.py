"""The engine's words, each written once: why a position exits, and the statistics a run reports.

Everything that names an exit reason or a statistic reads it from here: the compiled kernel (exit codes), the
models (``Position.ExitReason`` choices), the live cycle, the API, the simulator's pages, its CSV and
``manage.py simulate``. Pure Python, like the rest of the engine.

- :class:`ExitReason`: one row per reason: the value stored in ``exit_reason`` (models, API, CSV), its integer
  code in compiled code (which has no strings), and its label for people.
- :data:`STATISTICS`: one :class:`Statistic` per figure of :func:`trading.engine.statistics.backtest_statistics`,
  in report order: key, label, unit, which way is better, and whether buy and hold has it too.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: The kernel's code of "no exit" (a trade still open); every :class:`ExitReason` has a code above it.
NO_EXIT = 0


class ExitReason(enum.StrEnum):
    """Why a position closed: the stored value (the member itself is that string), its kernel code and label.

    Members are declared in the order of the models' choices (changing it would change the migrations' state).
    Labels are the ones Django derived for the choices before this table existed, so no migration changes.

    Attributes:
        code: the integer of compiled code (``exit_code`` arrays; :data:`NO_EXIT` is 0), stable: saved trade
            logs do not store it, but the kernel's constants are compiled into Numba's on-disk cache.
        label: for people (``Stop Loss``); lower-cased in running text.
    """

    code: int
    label: str

    def __new__(cls, value: str, code: int, label: str) -> ExitReason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.code = code
        member.label = label
        return member

    SIGNAL = "signal", 4, "Signal"
    STOP_LOSS = "stop_loss", 1, "Stop Loss"
    TAKE_PROFIT = "take_profit", 2, "Take Profit"
    TRAILING_STOP = "trailing_stop", 3, "Trailing Stop"
    MAX_HOLDING = "max_holding", 5, "Max Holding"
    MANUAL = "manual", 7, "Manual"
    END_OF_DATA = "end_of_data", 6, "End Of Data"

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        """``[(value, label), ...]`` in declaration order: a model field's ``choices``."""
        return [(reason.value, reason.label) for reason in cls]

    @classmethod
    def from_code(cls, code: int) -> ExitReason | None:
        """The reason of a kernel code, or None for :data:`NO_EXIT`.

        Raises:
            KeyError: ``code`` is neither :data:`NO_EXIT` nor a reason's code.
        """
        return None if code == NO_EXIT else _BY_CODE[code]


_BY_CODE: dict[int, ExitReason] = {reason.code: reason for reason in ExitReason}


def exit_reason_value(code: int) -> str | None:
    """The stored value (a plain ``str``, ``"stop_loss"``) of a kernel exit code; None for :data:`NO_EXIT`.

    Raises:
        KeyError: ``code`` is neither :data:`NO_EXIT` nor a reason's code.
    """
    return None if code == NO_EXIT else _BY_CODE[code].value


_BY_VALUE: dict[str, ExitReason] = {reason.value: reason for reason in ExitReason}
#: Stored value -> kernel code, for every reason.
EXIT_CODES: dict[str, int] = {reason.value: reason.code for reason in ExitReason}
#: The reasons whose exit happens inside a candle (at a level or the gapped open), and ``end_of_data`` (the
#: last close): the equity curve counts that candle as exposed.
INSIDE_CANDLE_REASONS = (
    ExitReason.STOP_LOSS,
    ExitReason.TAKE_PROFIT,
    ExitReason.TRAILING_STOP,
    ExitReason.END_OF_DATA,
)


def exit_reason_text(value: str | None) -> str:
    """An exit reason as running text (``stop loss``); ``""`` for None or ``""`` (open), the value itself for a
    value no reason has (an old saved run)."""
    if not value:
        return ""
    reason = _BY_VALUE.get(value)
    return value.replace("_", " ") if reason is None else reason.label.lower()


#: How a statistic's value reads: ``ratio`` a fraction (shown in percent), ``number`` a plain number
#: (Sharpe...), ``days``, ``money`` (quote currency), ``count`` (an integer).
Unit = Literal["ratio", "number", "days", "money", "count"]


@dataclass(frozen=True)
class Statistic:
    """One figure of a run's report.

    Attributes:
        key: its key in the statistics dict (models, API, CSV); the unit is in the name (``_ratio``, ``_days``).
        label: for people.
        unit: see :data:`Unit`.
        higher_is_better: which way is better (a sweep's heatmap turns its colours round when lower is).
        signed: its sign says gain or loss (coloured so).
        buy_and_hold: buy and hold has it too (shown beside the run's).
        ranked: one value of it is better than another, the way ``higher_is_better`` says (the comparison page
            marks the best run); False for figures that describe how a run traded rather than how well (the
            number of trades, the exposure, how long trades lasted, buy and hold's own return).
    """

    key: str
    label: str
    unit: Unit
    higher_is_better: bool = True
    signed: bool = False
    buy_and_hold: bool = False
    ranked: bool = True


#: Every statistic of :func:`trading.engine.statistics.backtest_statistics`, in report order.
STATISTICS: tuple[Statistic, ...] = (
    Statistic("total_return_ratio", "Total return", "ratio", signed=True, buy_and_hold=True),
    Statistic("buy_and_hold_return_ratio", "Buy and hold return", "ratio", signed=True, ranked=False),
    Statistic("cagr_ratio", "CAGR (365-day years)", "ratio", signed=True, buy_and_hold=True),
    Statistic("sharpe_ratio", "Sharpe ratio", "number", buy_and_hold=True),
    Statistic("sortino_ratio", "Sortino ratio", "number", buy_and_hold=True),
    Statistic("max_drawdown_ratio", "Max drawdown", "ratio", higher_is_better=False, buy_and_hold=True),
    Statistic(
        "max_drawdown_duration_days",
        "Max drawdown duration",
        "days",
        higher_is_better=False,
        buy_and_hold=True,
    ),
    Statistic("calmar_ratio", "Calmar ratio", "number", buy_and_hold=True),
    Statistic(
        "volatility_ratio",
        "Volatility (annualised)",
        "ratio",
        higher_is_better=False,
        buy_and_hold=True,
    ),
    Statistic(
        "avg_drawdown_ratio",
        "Average drawdown (per drawdown)",
        "ratio",
        higher_is_better=False,
        buy_and_hold=True,
    ),
    Statistic("n_trades", "Trades", "count", ranked=False),
    Statistic("win_rate_ratio", "Win rate", "ratio"),
    Statistic("profit_factor", "Profit factor", "number"),
    Statistic("expectancy_ratio", "Expectancy (mean P&L % per trade)", "ratio", signed=True),
    Statistic("exposure_ratio", "Exposure", "ratio", buy_and_hold=True, ranked=False),
    Statistic("avg_trade_duration_days", "Average trade duration", "days", ranked=False),
    Statistic("best_trade_ratio", "Best trade", "ratio", signed=True),
    Statistic("worst_trade_ratio", "Worst trade", "ratio", signed=True),
    Statistic("avg_win", "Average win", "money", signed=True),
    Statistic("avg_loss", "Average loss", "money", signed=True),
    Statistic("avg_win_ratio", "Average win (P&L %)", "ratio", signed=True),
    Statistic("avg_loss_ratio", "Average loss (P&L %)", "ratio", signed=True),
    Statistic("largest_win", "Largest win", "money", signed=True),
    Statistic("largest_loss", "Largest loss", "money", signed=True),
    Statistic("max_consecutive_losses", "Longest losing streak (trades)", "count", higher_is_better=False),
    Statistic("max_trade_duration_days", "Longest trade", "days", ranked=False),
    Statistic("sqn", "SQN (System Quality Number)", "number"),
    Statistic("total_fees", "Total fees", "money", higher_is_better=False),
    Statistic("final_equity", "Final equity", "money", buy_and_hold=True),
    # ambiguous_candles: the daily candles of open trades whose stop (the higher of the stop-loss and the
    # trailing level) and take-profit were both inside the candle, its open through neither (docs/criteria.md
    # "Finer candles inside a daily candle"). ambiguous_resolved: those of them that finer candles (1h or 1m)
    # decided; the others took the stop (CRITERIA.md's pessimistic rule).
    Statistic(
        "ambiguous_candles", "Ambiguous candles (stop and take-profit both inside)", "count", ranked=False
    ),
    Statistic("ambiguous_resolved", "Ambiguous candles resolved by finer candles", "count", ranked=False),
)


def best_indices(key: str, values: Sequence[float | int | None]) -> set[int]:
    """Which of ``values`` (one statistic ``key`` of several runs, None where undefined) are the best, the way the
    statistic's ``higher_is_better`` says: every index holding the best finite value; none when the statistic
    is not ``ranked``, when fewer than two values are finite, or when they are all equal (nothing stands out).

    Raises:
        KeyError: ``key`` is no statistic of :data:`STATISTICS`.
    """
    statistic = STATISTIC_BY_KEY[key]
    finite = {
        i: float(v)
        for i, v in enumerate(values)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }
    if not statistic.ranked or len(finite) < 2 or len(set(finite.values())) == 1:
        return set()
    best = max(finite.values()) if statistic.higher_is_better else min(finite.values())
    return {i for i, v in finite.items() if v == best}


#: Key -> :class:`Statistic`.
STATISTIC_BY_KEY: dict[str, Statistic] = {statistic.key: statistic for statistic in STATISTICS}
#: The keys, in report order.
STATISTICS_KEYS: tuple[str, ...] = tuple(statistic.key for statistic in STATISTICS)


def statistics_described() -> str:
    """Every statistic as one line of text (``key: label, unit, higher/lower is better``), for API schemas."""
    return "; ".join(
        f"{s.key}: {s.label}, {s.unit}, {'higher' if s.higher_is_better else 'lower'} is better"
        if s.ranked
        else f"{s.key}: {s.label}, {s.unit}"
        for s in STATISTICS
    )


#: How an ambiguous candle was resolved (:class:`trading.engine.types.AmbiguousCandle`): the exit reason the finer
#: candles decided, or ``pessimistic`` (the stop, taken without finer candles that could tell).
PESSIMISTIC_RESOLUTION = "pessimistic"
RESOLUTIONS = (
    ExitReason.STOP_LOSS.value,
    ExitReason.TRAILING_STOP.value,
    ExitReason.TAKE_PROFIT.value,
    PESSIMISTIC_RESOLUTION,
)


#: The figure shown first and by default (a sweep's heatmap unless another is chosen).
HEADLINE_STATISTIC = "total_return_ratio"


class RiskLimit(enum.StrEnum):
    """Why an entry signal was refused (docs/criteria.md "Risk limits"): the name a run reports, its kernel code
    (:mod:`trading.engine.layout` ``LIMIT_*``) and what it means for people.

    Attributes:
        code: the integer of compiled code (``refused`` arrays), stable (compiled into Numba's cache).
        label: for people, lower-cased in running text.
    """

    code: int
    label: str

    def __new__(cls, value: str, code: int, label: str) -> RiskLimit:
        member = str.__new__(cls, value)
        member._value_ = value
        member.code = code
        member.label = label
        return member

    MAX_OPEN_POSITIONS = "max_open_positions", 1, "the most positions open at once"
    MAX_EXPOSURE = "max_exposure_ratio", 2, "the most of the equity in open positions"
    DAILY_LOSS = "daily_loss_limit_ratio", 3, "the day's loss limit (no entries for the rest of the day)"
    MAX_DRAWDOWN = (
        "max_drawdown_halt_ratio",
        4,
        "the drawdown halt (no entries while the drawdown exceeds it)",
    )
    COOLDOWN = "cooldown_days_after_stop_loss", 5, "the cooldown after a stop-loss on this instrument"
    RISK_STOP = "risk_stop", 6, "no stop to size the risk on (ATR not yet defined, or the stop at or below 0)"

    @classmethod
    def from_code(cls, code: int) -> RiskLimit:
        """The limit of a kernel code (:mod:`trading.engine.layout` ``LIMIT_*``, not ``LIMIT_NONE``).

        Raises:
            KeyError: no limit has ``code``.
        """
        return _LIMIT_BY_CODE[code]


_LIMIT_BY_CODE: dict[int, RiskLimit] = {limit.code: limit for limit in RiskLimit}
