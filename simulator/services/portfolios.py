"""Portfolio runs (issue 16, docs/portfolios.md): check a request, save it, run it through
:func:`trading.engine.portfolio.portfolio_backtest`, keep its results.

A portfolio run is several saved strategies with weights trading one account's cash over the same days. Its
members (each strategy's name, weight, criteria and instruments) are copied into the run when it is made, so a
later edit of a strategy does not change it. The candles are read as a simulation reads them
(:mod:`simulator.services.simulations`: every stored daily candle up to ``end``, the operands' other
instruments, the finer candles of the run's days when a member's exits need them), the days are those with data
(:mod:`simulator.services.coverage`, over every member's instruments), and what is still open at the last close is
closed there (``end_of_data``), as a simulation does.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from django.db.models import Count

from instruments.models import Instrument, InstrumentOHLC, Timeframe
from simulator.models import PortfolioSimulation, RunStatus
from simulator.services.coverage import coverage_compute
from simulator.services.magnifier import finer_candles_load
from simulator.services.requests import (
    SimulationInputError,
    day_start,
    days_and_cash_check,
    run_bounds,
    simulation_request_check,
)
from simulator.services.risk_limits import MAX_REFUSAL_ROWS
from simulator.services.simulations import (
    OHLC_SERIES,
    candles_load,
    curve_document,
    monthly_returns_as_json,
    references_load,
    ruin_time,
    run_tracked,
)
from trading.engine.criteria import CriteriaError, criteria_parse, limits_parse
from trading.engine.magnifier import uses_finer_candles
from trading.engine.portfolio import WEIGHT_TOLERANCE, PortfolioBook, PortfolioResult, portfolio_backtest
from trading.engine.statistics import equity_at_ruin
from trading.engine.types import SECONDS_PER_DAY
from trading.models import Portfolio, Strategy
from trading.selectors import from_seconds, to_decimal, to_seconds

#: The most strategies in one portfolio run.
MAX_PORTFOLIO_MEMBERS = 20


@dataclass(frozen=True)
class PortfolioRequest:
    """A checked portfolio run: what :func:`portfolio_simulation_create` saves.

    Attributes:
        members: in portfolio order, ``{"strategy": id, "name", "weight" (float, a fraction in [0, 1]),
            "criteria", "instruments": [CoinGecko ids, in symbol order]}``.
        start, end: the first and last UTC day (inclusive).
        starting_cash: quote currency, > 0.
        limits: the portfolio's own risk limits (valid; ``{}``: none).
        timeframe: ``1d``.
        portfolio: the saved portfolio the members came from, or None.
    """

    members: tuple[dict[str, Any], ...]
    start: date
    end: date
    starting_cash: Decimal
    limits: dict[str, Any]
    timeframe: str = Timeframe.D1
    portfolio: Portfolio | None = None


def _weight(value: Any) -> Decimal | None:
    """A weight as a ``Decimal`` (a JSON number or a decimal string), or None when it is no finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def portfolio_request_check(
    *,
    strategies: Any = None,
    portfolio: Any = None,
    start: date | None,
    end: date | None,
    starting_cash: Any = None,
    limits: Any = None,
    timeframe: str | None = Timeframe.D1,
    filled_from: Portfolio | None = None,
) -> PortfolioRequest:
    """Check a portfolio run and return it typed, or raise every problem at once.

    Args:
        strategies: ``[{"strategy": id, "weight": 0.5}, ...]`` in portfolio order (weights fractions of the
            account's equity, each in [0, 1], adding up to at most 1); or None with ``portfolio``.
        portfolio: a saved :class:`~trading.models.Portfolio` or its id: its members (in its order), and its
            starting cash and limits where those are not given.
        start, end: the first and last UTC day, inclusive.
        starting_cash: quote currency, > 0 (default: the portfolio's, else 10,000).
        limits: the portfolio's own risk limits (docs/criteria.md "Risk limits"); None: the portfolio's, or none.
        timeframe: ``1d`` (also for None or ``""``); no other timeframe yet.
        filled_from: the saved portfolio a form was filled from, kept on the run (its members are not read:
            ``strategies`` are).

    Raises:
        SimulationInputError: ``errors`` by field: ``strategies`` (each message starts with its member's path,
            ``strategies[1].weight: ...``, or is about them all: none chosen, weights adding up to more than 1),
            ``portfolio``, ``start``, ``end``, ``starting_cash``, ``timeframe``, ``limits`` (messages start with the
            bad limit's path, ``limits.max_open_positions: ...``). Each member is checked as a simulation of its
            criteria and instruments over the days (:func:`simulator.services.requests.simulation_request_check`):
            its ``instruments`` and ``criteria`` problems are errors of ``strategies`` at
            ``strategies[i].instruments`` or ``strategies[i].criteria``; its days' are errors of ``start``/``end``.
    """
    errors: dict[str, list[str]] = {}

    def problem(field: str, message: str) -> None:
        messages = errors.setdefault(field, [])
        if message not in messages:
            messages.append(message)

    chosen: list[tuple[Strategy, Decimal]] = []
    saved: Portfolio | None = None
    if portfolio is not None and strategies is not None:
        problem("portfolio", "give either strategies or a saved portfolio, not both")
    elif portfolio is not None:
        saved = _portfolio_found(portfolio, problem)
        if saved is not None:
            chosen = [
                (member.strategy, member.weight)
                for member in saved.members.select_related("strategy").order_by("order", "strategy__name")
            ]
            if not chosen:
                problem("portfolio", f"portfolio {saved.name!r} has no strategies; add some in the admin")
            if starting_cash is None:
                starting_cash = saved.starting_cash
            if limits is None:
                limits = saved.limits or {}
    elif strategies is None or strategies == []:
        problem("strategies", "choose at least one strategy (or a saved portfolio)")
    else:
        chosen = _strategies_found(strategies, problem)
    if starting_cash is None and saved is None:
        starting_cash = Decimal("10000")
    if len(chosen) > MAX_PORTFOLIO_MEMBERS:
        problem("strategies", f"at most {MAX_PORTFOLIO_MEMBERS} strategies; was {len(chosen)}")
    total = sum((weight for _, weight in chosen), Decimal(0))
    if total > 1 + Decimal(repr(WEIGHT_TOLERANCE)):
        problem(
            "strategies",
            f"the weights add up to {total.normalize():f} ({total * 100:.2f} %); at most 1 (100 %): "
            "each weight is the strategy's share of the account's equity",
        )

    timeframe = str(timeframe or Timeframe.D1)
    if timeframe != Timeframe.D1:
        problem("timeframe", f"a portfolio run reads daily candles only: choose 1d; was {timeframe!r}")

    limits_document: dict[str, Any] = {}
    try:
        limits_parse({} if limits is None else limits)
        limits_document = dict(limits or {})
    except CriteriaError as exc:
        for path, message in exc.errors:
            problem("limits", f"{path}: {message}" if path else message)

    cash = days_and_cash_check(start=start, end=end, starting_cash=starting_cash, problem=problem)
    members: list[dict[str, Any]] = []
    for index, (strategy, weight) in enumerate(chosen):
        instruments = sorted(strategy.instruments.all(), key=lambda i: (i.symbol, i.pk))
        if not instruments:
            problem(
                "strategies",
                f"strategies[{index}].strategy: strategy {strategy.name!r} has no instruments; give it some",
            )
            continue
        members.append(
            {
                "strategy": strategy.pk,
                "name": strategy.name,
                "weight": float(weight),
                "criteria": strategy.criteria,
                "instruments": [i.coingecko_id for i in instruments],
            }
        )
        if {"start", "end", "starting_cash"} & errors.keys():
            continue  # each member's check would repeat them
        try:
            simulation_request_check(
                instruments=instruments,
                start=start,
                end=end,
                starting_cash=cash,
                criteria=strategy.criteria,
                timeframe=Timeframe.D1,
            )
        except SimulationInputError as exc:
            for field, messages in exc.errors.items():
                for message in messages:
                    if field in ("instruments", "criteria"):
                        problem("strategies", f"strategies[{index}].{field}: {message}")
                    else:
                        problem(field, message)
    if errors:
        raise SimulationInputError(errors)
    assert start is not None and end is not None and cash is not None  # noqa: S101  # no errors above
    return PortfolioRequest(
        members=tuple(members),
        start=start,
        end=end,
        starting_cash=cash,
        limits=limits_document,
        timeframe=Timeframe.D1,
        portfolio=saved or filled_from,
    )


def _portfolio_found(portfolio: Any, problem: Callable[[str, str], None]) -> Portfolio | None:
    if isinstance(portfolio, Portfolio):
        return portfolio
    key = portfolio if isinstance(portfolio, int) and not isinstance(portfolio, bool) else None
    if isinstance(portfolio, str) and portfolio.isdigit():
        key = int(portfolio)
    found = Portfolio.objects.filter(pk=key).first() if key is not None else None
    if found is None:
        problem("portfolio", f"unknown portfolio {portfolio!r}; give the id of a saved portfolio")
    return found


def _strategies_found(strategies: Any, problem: Callable[[str, str], None]) -> list[tuple[Strategy, Decimal]]:
    """The strategies and weights of a request's ``strategies`` list, each problem with its path."""
    if not isinstance(strategies, list):
        problem("strategies", 'must be a list like [{"strategy": 3, "weight": 0.5}]')
        return []
    wanted: list[tuple[int, Any, Decimal]] = []
    for index, item in enumerate(strategies):
        path = f"strategies[{index}]"
        if not isinstance(item, dict):
            problem(
                "strategies", f'{path}: must be an object like {{"strategy": 3, "weight": 0.5}}; was {item!r}'
            )
            continue
        unknown = sorted(set(item) - {"strategy", "weight"})
        if unknown:
            problem(
                "strategies", f"{path}: unknown field(s) {', '.join(unknown)}; expected strategy and weight"
            )
        key = item.get("strategy")
        if isinstance(key, bool) or not isinstance(key, int):
            problem("strategies", f"{path}.strategy: must be a strategy's id (a whole number); was {key!r}")
            key = None
        weight = _weight(item.get("weight"))
        if "weight" not in item:
            problem("strategies", f"{path}.weight: required (a fraction of the account's equity, 0 to 1)")
        elif weight is None or not Decimal(0) <= weight <= Decimal(1):
            problem(
                "strategies",
                f"{path}.weight: must be a number from 0 to 1 (a fraction of the account's equity: 0.25 is 25 %); "
                f"was {item.get('weight')!r}",
            )
            weight = None
        if key is not None and weight is not None:
            wanted.append((index, key, weight))
    found = Strategy.objects.prefetch_related("instruments").in_bulk([key for _, key, _ in wanted])
    seen: set[int] = set()
    chosen = []
    for index, key, weight in wanted:
        if key not in found:
            problem("strategies", f"strategies[{index}].strategy: unknown strategy {key}")
        elif key in seen:
            problem("strategies", f"strategies[{index}].strategy: strategy {key} is in the list twice")
        else:
            seen.add(key)
            chosen.append((found[key], weight))
    return chosen


def portfolio_simulation_create(
    *, request: PortfolioRequest, created_by: Any = None, name: str = ""
) -> PortfolioSimulation:
    """Save a pending portfolio run of ``request`` (run it with :func:`portfolio_simulation_run`)."""
    return PortfolioSimulation.objects.create(
        name=name[:200],
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        portfolio=request.portfolio,
        start=request.start,
        end=request.end,
        timeframe=request.timeframe,
        starting_cash=request.starting_cash,
        members=list(request.members),
        limits=request.limits,
    )


def portfolio_candle_cost(request: PortfolioRequest) -> tuple[int, int]:
    """What a run of ``request`` reads and holds: ``(candles, candle series)``, each member counted with its own
    instruments (an instrument two members trade counts twice: each book has its own signal columns); series as
    :func:`simulator.services.simulations.simulation_candle_series` counts them. One query."""
    ids = {coingecko_id for member in request.members for coingecko_id in member["instruments"]}
    counts = {
        row["instrument__coingecko_id"]: row["n"]
        for row in InstrumentOHLC.objects.filter(
            instrument__coingecko_id__in=ids,
            timeframe=Timeframe.D1,
            open_time__lt=day_start(request.end) + timedelta(days=1),
        )
        .values("instrument__coingecko_id")
        .annotate(n=Count("id"))
        .order_by()
    }
    candles = series = 0
    for member in request.members:
        mine = sum(counts.get(c, 0) for c in member["instruments"])
        candles += mine
        series += mine * (OHLC_SERIES + len(set(criteria_parse(member["criteria"]).operands())))
    return candles, series


def portfolio_simulation_run(
    *, record: PortfolioSimulation, progress: Callable[[float], None] | None = None
) -> PortfolioSimulation:
    """Run a pending portfolio run and save its results (status ``done``) or its error (``failed``); one
    already done is returned as it is, so a retried task does nothing. It beats (``heartbeat_at``) while it runs.

    Args:
        record: a saved portfolio run.
        progress: called with a fraction in [0, 1] as the run goes (the task stores it for the progress bar).
    """

    def compute(run: PortfolioSimulation, report: Callable[[float], None]) -> None:
        try:
            documents = _compute(run, report)
        except (ValueError, OverflowError, CriteriaError) as exc:
            run.status = RunStatus.FAILED
            run.error = f"{type(exc).__name__}: {exc}"
            return
        for field, value in documents.items():
            setattr(run, field, value)
        run.status = RunStatus.DONE
        run.error = ""

    return run_tracked(
        record,
        compute,
        progress=progress,
        label=f"portfolio run {record.pk}",
        result_fields=[
            "statistics",
            "equity_curve",
            "book_curves",
            "attribution",
            "correlation",
            "limits_report",
        ],
    )


def portfolio_simulation_run_queued(*, portfolio_simulation_id: int) -> str:
    """Run a queued portfolio run by id, storing its progress as it goes; return its final status (what the
    Celery task ``simulator.run_portfolio_simulation`` and the embedded background thread call)."""
    record = PortfolioSimulation.objects.get(pk=portfolio_simulation_id)

    def progress(ratio: float) -> None:
        PortfolioSimulation.objects.filter(pk=portfolio_simulation_id).update(
            progress_ratio=min(max(ratio, 0.0), 1.0), heartbeat_at=datetime.now(tz=UTC)
        )

    return str(portfolio_simulation_run(record=record, progress=progress).status)


def portfolio_engine_inputs(record: PortfolioSimulation) -> dict[str, Any]:
    """The arguments of :func:`trading.engine.portfolio.portfolio_backtest` for a saved run, read as a simulation
    reads its candles, and the coverage of its days.

    Returns:
        ``{"books", "start_time_seconds", "end_time_seconds", "starting_cash", "limits", "candle_seconds",
        "close_at_end", "finer", "references"}`` (the engine's keywords) and ``"coverage"``
        (:class:`simulator.services.coverage.Coverage`), ``"names"`` (symbol -> CoinGecko id).

    Raises:
        ValueError: an instrument of a member is no longer stored, or none has candles in the range.
        CriteriaError: a member's criteria or the limits no longer parse.
    """
    members: Sequence[dict[str, Any]] = record.members
    ids = sorted({c for member in members for c in member["instruments"]})
    instruments = list(Instrument.objects.filter(coingecko_id__in=ids).order_by("symbol", "pk"))
    missing = sorted(set(ids) - {i.coingecko_id for i in instruments})
    if missing:
        raise ValueError(f"instrument(s) {', '.join(missing)} are no longer stored")
    candles = candles_load(instruments, record.end, Timeframe.D1)
    by_id = {i.coingecko_id: c for i, c in zip(instruments, candles, strict=True)}
    names = {i.symbol: i.coingecko_id for i in instruments}
    coverage = coverage_compute(candles=candles, names=names, start=record.start, end=record.end)
    parsed = [criteria_parse(member["criteria"]) for member in members]
    finer = (
        finer_candles_load(instruments, coverage.start, coverage.end, Timeframe.D1)
        if any(uses_finer_candles(p) for p in parsed)
        else {}
    )
    first, last = run_bounds(coverage.start, coverage.end, Timeframe.D1)
    return {
        "books": [
            PortfolioBook(
                name=member["name"],
                criteria=criteria,
                instruments=[by_id[c] for c in member["instruments"]],
                weight=float(member["weight"]),
            )
            for member, criteria in zip(members, parsed, strict=True)
        ],
        "start_time_seconds": to_seconds(first),
        "end_time_seconds": to_seconds(last),
        "starting_cash": float(record.starting_cash),
        "limits": limits_parse(record.limits or {}),
        "candle_seconds": SECONDS_PER_DAY,
        "close_at_end": True,
        "finer": finer,
        "references": references_load(parsed, record.end, Timeframe.D1),
        "coverage": coverage,
        "names": names,
    }


def _compute(record: PortfolioSimulation, report: Callable[[float], None]) -> dict[str, Any]:
    inputs = portfolio_engine_inputs(record)
    coverage, names = inputs.pop("coverage"), inputs.pop("names")
    report(0.4)
    result = portfolio_backtest(**inputs)
    report(0.8)
    documents = portfolio_result_documents(
        result, members=record.members, starting_cash=float(record.starting_cash), names=names
    )
    documents["statistics"]["coverage"] = coverage.document
    return documents


def _money(value: float | None) -> str | None:
    """An engine amount as a decimal string (the one conversion out of the engine), or None."""
    if value is None or not math.isfinite(value):
        return None
    return format(to_decimal(value).normalize(), "f")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def portfolio_result_documents(
    result: PortfolioResult, *, members: Sequence[dict[str, Any]], starting_cash: float, names: dict[str, str]
) -> dict[str, Any]:
    """The JSON a :class:`~simulator.models.PortfolioSimulation` keeps of ``result``.

    Args:
        result: the engine's.
        members: the run's members, in portfolio order (the books').
        starting_cash: quote currency.
        names: symbol -> CoinGecko id.

    Returns:
        ``{"statistics", "equity_curve", "book_curves", "attribution", "correlation", "limits_report"}``:

        - ``statistics``: the engine's (the account's, over every trade) and ``ruined_at`` (ISO UTC or None);
        - ``equity_curve``: :func:`simulator.services.simulations.curve_document` of the account and buy and hold,
          with ``monthly_returns``;
        - ``book_curves``: ``{"names": [...], "values": [[...] per member]}``, each member's sleeve (its budget at
          the start plus its trades' P&L) at the curve's kept times, quote currency;
        - ``attribution``: one row a member: ``strategy`` (id), ``name``, ``weight``, ``budget`` and ``pnl`` and
          ``drawdown_contribution`` (decimal strings, quote currency), ``return_on_budget_ratio`` (None for a
          weight of 0), ``exposure_ratio``, ``n_trades``;
        - ``correlation``: ``{"names", "matrix"}``, Pearson correlation of the members' daily sleeve returns, None
          where a member's returns do not vary;
        - ``limits_report``: ``{"refused": {member name: {limit: count}}, "refusals_total", "refusals": [{"at",
          "book", "symbol", "instrument", "limit"}] (the first MAX_REFUSAL_ROWS, time order), "halts": [{"at",
          "book" (a member's name, None for the portfolio's own limits), "limit", "began", "equity",
          "reference_equity"}]}``.
    """
    curve, kept = curve_document(
        result.times, result.equity_curve, result.buy_and_hold_curve, starting_cash=starting_cash
    )
    curve["monthly_returns"] = monthly_returns_as_json(result.times, result.equity_curve, starting_cash)
    _, ruin = equity_at_ruin(result.equity_curve)
    statistics = {**result.statistics, "ruined_at": ruin_time(result.times, ruin, SECONDS_PER_DAY)}
    attribution = [
        {
            "strategy": member.get("strategy"),
            "name": row.name,
            "weight": row.weight,
            "budget": _money(row.weight * starting_cash),
            "pnl": _money(row.pnl),
            "return_on_budget_ratio": _finite(row.return_on_budget_ratio),
            "exposure_ratio": row.exposure_ratio,
            "drawdown_contribution": _money(row.drawdown_contribution),
            "n_trades": row.n_trades,
        }
        for member, row in zip(members, result.attribution, strict=True)
    ]
    refused: dict[str, Counter[str]] = {}
    for book, refusal in result.refusals:
        refused.setdefault(book, Counter())[refusal.limit.value] += 1
    limits_report = {
        "refused": {book: dict(counts) for book, counts in refused.items()},
        "refusals_total": len(result.refusals),
        "refusals": [
            {
                "at": from_seconds(refusal.boundary_seconds).isoformat(),
                "book": book,
                "symbol": refusal.symbol,
                "instrument": names.get(refusal.symbol, refusal.symbol),
                "limit": refusal.limit.value,
            }
            for book, refusal in result.refusals[:MAX_REFUSAL_ROWS]
        ],
        "halts": [
            {
                "at": from_seconds(halt.boundary_seconds).isoformat(),
                "book": None if halt.book is None else result.books[halt.book],
                "limit": halt.limit.value,
                "began": halt.began,
                "equity": _money(halt.equity),
                "reference_equity": _money(halt.reference_equity),
            }
            for halt in result.halts
        ],
    }
    matrix = [[_finite(float(v)) for v in row] for row in result.correlation.tolist()]
    return {
        "statistics": statistics,
        "equity_curve": curve,
        "book_curves": {
            "names": list(result.books),
            "values": [np.round(row[kept], 8).tolist() for row in result.book_curves],
        },
        "attribution": attribution,
        "correlation": {"names": list(result.books), "matrix": matrix},
        "limits_report": limits_report,
    }
