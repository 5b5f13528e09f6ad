"""Monte Carlo of a saved run's trades (issue 15): the stored trade rows turned into the engine's returns, and the
engine's :func:`trading.engine.monte_carlo.monte_carlo_trades` run over them.

The equity before each trade's exit is the run's starting cash plus the realised P&L of the trades closed before
it (the stored rows' ``pnl``, in exit order), not the stored equity curve: that curve marks open positions to
market and may be downsampled, while the realised path is exact and is what compounding the returns gives back
(:func:`trading.engine.monte_carlo.trade_returns`). Its last value is the starting cash plus every closed trade's
P&L: the run's final equity when all its trades were closed (a run closes what is open at its end).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from barter_site.errors import ApplicationError
from simulator.models import Simulation
from trading.engine.monte_carlo import MAX_PATH_TRADES, MonteCarloResult, monte_carlo_trades, trade_returns

#: The largest seed the page and the API take (numpy takes any int >= 0; 2**32 - 1 is plenty and fits a form).
MAX_SEED = 2**32 - 1

#: The drawdown limit asked about when none is given, a fraction (30 %).
DEFAULT_DRAWDOWN_LIMIT_RATIO = 0.3

#: The fewest closed trades a Monte Carlo of the trades is drawn for: one trade has one order.
MIN_TRADES = 2


class MonteCarloNotEnoughTradesError(ApplicationError):
    """The run has fewer than :data:`MIN_TRADES` closed trades (or has not finished): nothing to reshuffle. The
    API answers 409: the request is fine, the run cannot answer it."""

    http_status = 409


class MonteCarloInputError(ApplicationError):
    """A parameter the engine refuses for this run (too many paths for its number of trades, a stored trade it
    cannot read). ``extra["field"]`` names the parameter, so the API answers DRF's 400 field-error shape."""


@dataclass(frozen=True)
class ClosedTrades:
    """A run's closed trades in exit order.

    Attributes:
        pnl: shape (n,), float64, quote currency, each trade's P&L net of fees.
        starting_equity: the run's starting cash, quote currency, > 0.
    """

    pnl: np.ndarray
    starting_equity: float

    @property
    def n_trades(self) -> int:
        """Number of closed trades."""
        return int(self.pnl.size)


def _exit_order_key(item: tuple[int, dict[str, Any]]) -> tuple[datetime, int]:
    index, row = item
    return datetime.fromisoformat(str(row["exit_at"]).replace("Z", "+00:00")), index


def simulation_closed_trades(simulation: Simulation) -> ClosedTrades:
    """The closed trades of a saved run (rows with an ``exit_at`` and a ``pnl``), in exit order; trades that exit
    at the same time keep their stored (entry) order, as :func:`trading.engine.report.cumulative_pnl` does.

    Raises:
        MonteCarloInputError: a stored row whose ``pnl`` or ``exit_at`` cannot be read (field ``trades``).
    """
    try:
        closed = sorted(
            (
                (index, row)
                for index, row in enumerate(simulation.trades or [])
                if row.get("exit_at") and row.get("pnl") is not None
            ),
            key=_exit_order_key,
        )
        # Decimal strings in the database; the engine's float64 once, here.
        pnl = np.array([float(Decimal(str(row["pnl"]))) for _, row in closed], dtype=np.float64)
    except (ValueError, InvalidOperation, TypeError) as exc:
        raise MonteCarloInputError(
            f"run {simulation.pk} has a stored trade whose pnl or exit_at cannot be read ({exc})",
            {"field": "trades"},
        ) from exc
    return ClosedTrades(pnl=pnl, starting_equity=float(simulation.starting_cash))


def simulation_monte_carlo(
    *, simulation: Simulation, method: str, paths: int, seed: int, drawdown_limit_ratio: float
) -> MonteCarloResult:
    """Draw ``paths`` Monte Carlo paths of the run's closed trades (:func:`trading.engine.monte_carlo.
    monte_carlo_trades`; the arguments as there, ``drawdown_limit_ratio`` a fraction).

    Raises:
        MonteCarloNotEnoughTradesError: fewer than :data:`MIN_TRADES` closed trades.
        MonteCarloInputError: ``paths`` times the trades is over the engine's limit (field ``paths``), or the
            trades cannot be read (field ``trades``) or the engine refuses another parameter (its field).
    """
    trades = simulation_closed_trades(simulation)
    if trades.n_trades < MIN_TRADES:
        raise MonteCarloNotEnoughTradesError(
            f"a Monte Carlo of the trades needs at least {MIN_TRADES} closed trades; run {simulation.pk} has "
            f"{trades.n_trades} (status {simulation.status})",
            {"n_trades": trades.n_trades},
        )
    if paths * trades.n_trades > MAX_PATH_TRADES:
        raise MonteCarloInputError(
            f"at most {MAX_PATH_TRADES // trades.n_trades:,} paths for this run's {trades.n_trades:,} trades "
            f"(paths times trades at most {MAX_PATH_TRADES:,}); was {paths:,}",
            {"field": "paths"},
        )
    try:
        returns = trade_returns(trades.pnl, starting_equity=trades.starting_equity)
    except ValueError as exc:
        raise MonteCarloInputError(f"the run's trades cannot be drawn: {exc}", {"field": "trades"}) from exc
    try:
        return monte_carlo_trades(
            returns,
            starting_equity=trades.starting_equity,
            method=method,
            paths=paths,
            seed=seed,
            drawdown_limit_ratio=drawdown_limit_ratio,
        )
    except ValueError as exc:
        # The forms and the serializer check every parameter first; this names the engine's own words.
        field = next(
            (
                name
                for name in ("method", "paths", "seed", "drawdown_limit_ratio")
                if str(exc).startswith(name)
            ),
            "trades",
        )
        raise MonteCarloInputError(str(exc), {"field": field}) from exc


def _floats(values: np.ndarray, digits: int = 10) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values).ravel()]


def monte_carlo_as_json(simulation: Simulation, result: MonteCarloResult) -> dict[str, Any]:
    """The API's document of a Monte Carlo (see :class:`simulator.api.MonteCarloSerializer`): money in the quote
    currency and ratios as fractions, floats; ``fan.equity`` is 5 lists (the 5th, 25th, 50th, 75th and 95th
    percentiles) of the equity after each of ``fan.trade_numbers``; ``actual_equity`` the run's own realised path
    after each trade (``n_trades + 1`` values, the first the starting cash)."""
    return {
        "simulation": simulation.pk,
        "method": result.method,
        "paths": result.paths,
        "seed": result.seed,
        "n_trades": result.n_trades,
        "starting_equity": result.starting_equity,
        "drawdown_limit_ratio": result.drawdown_limit_ratio,
        "percentiles": [5, 50, 95],
        "final_equity_percentiles": _floats(result.final_equity_percentiles),
        "max_drawdown_ratio_percentiles": _floats(result.max_drawdown_ratio_percentiles),
        "longest_drawdown_trades_percentiles": _floats(result.longest_drawdown_trades_percentiles),
        "drawdown_beyond_limit_probability": result.drawdown_beyond_limit_probability,
        "drawdown_beyond_limit_interval": _floats(np.array(result.drawdown_beyond_limit_interval)),
        "actual": {
            "final_equity": round(float(result.actual_equity[-1]), 10),
            "max_drawdown_ratio": round(result.actual_max_drawdown_ratio, 10),
            "longest_drawdown_trades": result.actual_longest_drawdown_trades,
        },
        "fan": {
            "percentiles": [5, 25, 50, 75, 95],
            "trade_numbers": [int(n) for n in result.fan_trade_numbers],
            "equity": [_floats(row) for row in result.fan_equity],
            "actual_equity": _floats(result.actual_equity),
        },
    }
