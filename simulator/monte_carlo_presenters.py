"""The run page's "Monte Carlo of the trades" section: the form's parameters run through
:func:`simulator.services.monte_carlo.simulation_monte_carlo`, and what the page shows of the result (the
percentile table, one sentence about the drawdown limit, the fan chart's data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.forms import MonteCarloForm
from simulator.models import RunStatus, Simulation
from simulator.services.monte_carlo import (
    MIN_TRADES,
    MonteCarloInputError,
    MonteCarloNotEnoughTradesError,
    simulation_closed_trades,
    simulation_monte_carlo,
)
from trading.engine.monte_carlo import MonteCarloResult

#: The most path-trades the page draws on its own (no parameter asked): a run of many trades (a minute run's
#: thousands) gets fewer than the default 1,000 paths, at least :data:`PAGE_MIN_PATHS`, so that its page stays quick
#: (about 0.1 s); asking for more in the form draws them.
PAGE_DEFAULT_PATH_TRADES = 2_000_000
PAGE_MIN_PATHS = 100

#: The form's field for each engine parameter (the limit is in percent on the page).
FORM_FIELDS = {"drawdown_limit_ratio": "drawdown_limit_pct"}


@dataclass(frozen=True)
class MonteCarloRow:
    """A row of the percentile table: the figure, its 5th, 50th and 95th percentiles over the paths and the run's
    own value, as text."""

    key: str
    label: str
    percentiles: list[str]
    actual: str


@dataclass
class MonteCarloSection:
    """What the section shows. ``note`` replaces the table and chart (too few trades, a run not finished);
    ``chart`` is the fan chart's data (``{"trade_numbers", "equity": 5 lists, "actual", "currency"}``) or None."""

    form: MonteCarloForm
    n_trades: int = 0
    rows: list[MonteCarloRow] = field(default_factory=list)
    sentence: str = ""
    note: str = ""
    chart: dict[str, Any] | None = None
    method: str = ""
    paths: int = 0

    @property
    def paths_text(self) -> str:
        """The number of paths with a thousands separator."""
        return f"{self.paths:,}"


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}".rstrip()


def _percent(ratio: float) -> str:
    return f"{ratio * 100:,.2f} %"


def _trades(count: float) -> str:
    return f"{count:,.1f}".removesuffix(".0")


def _rows(result: MonteCarloResult, currency: str) -> list[MonteCarloRow]:
    return [
        MonteCarloRow(
            "final_equity",
            f"Final equity ({currency})" if currency else "Final equity",
            [_money(v, currency) for v in result.final_equity_percentiles.tolist()],
            _money(float(result.actual_equity[-1]), currency),
        ),
        MonteCarloRow(
            "max_drawdown_ratio",
            "Maximum drawdown",
            [_percent(v) for v in result.max_drawdown_ratio_percentiles.tolist()],
            _percent(result.actual_max_drawdown_ratio),
        ),
        MonteCarloRow(
            "longest_drawdown_trades",
            "Longest drawdown (trades)",
            [_trades(v) for v in result.longest_drawdown_trades_percentiles.tolist()],
            _trades(result.actual_longest_drawdown_trades),
        ),
    ]


def _sentence(result: MonteCarloResult) -> str:
    low, high = result.drawdown_beyond_limit_interval
    beyond = result.drawdown_beyond_limit_probability
    return (
        f"In {beyond * 100:.1f} % of the {result.paths:,} {result.method} paths the maximum drawdown went beyond "
        f"{result.drawdown_limit_ratio * 100:g} % (95 % interval over this many paths: {low * 100:.1f} % to "
        f"{high * 100:.1f} %); this run's own maximum drawdown over its closed trades was "
        f"{result.actual_max_drawdown_ratio * 100:.2f} %."
    )


def _chart(result: MonteCarloResult, currency: str) -> dict[str, Any]:
    return {
        "trade_numbers": result.fan_trade_numbers.tolist(),
        "percentiles": [5, 25, 50, 75, 95],
        "equity": [[round(v, 6) for v in row] for row in result.fan_equity.tolist()],
        "actual": [round(v, 6) for v in result.actual_equity.tolist()],
        "currency": currency,
    }


def monte_carlo_section(simulation: Simulation, form: MonteCarloForm, currency: str) -> MonteCarloSection:
    """The section for ``simulation`` with the parameters of ``form`` (its defaults when unbound, with at most
    :data:`PAGE_DEFAULT_PATH_TRADES` path-trades). A bound form with errors shows them next to its fields and draws
    nothing; a parameter the engine refuses for this run (too many paths for its trades) is added to the form as
    that field's error."""
    section = MonteCarloSection(form=form)
    if simulation.status != RunStatus.DONE:
        return section
    try:
        section.n_trades = simulation_closed_trades(simulation).n_trades
    except MonteCarloInputError as exc:
        section.note = exc.message
        return section
    if section.n_trades < MIN_TRADES:
        section.note = (
            f"A Monte Carlo of the trades needs at least {MIN_TRADES} closed trades; this run has "
            f"{section.n_trades}."
        )
        return section
    if form.is_bound and not form.is_valid():
        return section
    parameters = form.parameters
    if not form.is_bound:
        parameters["paths"] = min(
            parameters["paths"], max(PAGE_MIN_PATHS, PAGE_DEFAULT_PATH_TRADES // section.n_trades)
        )
        form.initial["paths"] = parameters["paths"]
    try:
        result = simulation_monte_carlo(simulation=simulation, **parameters)
    except MonteCarloNotEnoughTradesError as exc:
        section.note = exc.message
        return section
    except MonteCarloInputError as exc:
        name = FORM_FIELDS.get(str(exc.extra.get("field")), str(exc.extra.get("field")))
        if name in form.fields and form.is_bound:
            form.add_error(name, exc.message)
        else:
            section.note = exc.message
        return section
    section.rows = _rows(result, currency)
    section.sentence = _sentence(result)
    section.chart = _chart(result, currency)
    section.method = result.method
    section.paths = result.paths
    return section
