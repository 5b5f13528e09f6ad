"""Reads for the dashboard, each in a constant number of queries.

A strategy's account (cash, equity, open positions) is computed for many strategies at once from one prefetch
of their positions (:func:`positions.accounts.strategies_with_accounts`), which
:func:`positions.accounts.strategy_cash` and :func:`~positions.accounts.strategy_equity` use when present.
Open positions are marked at the newest stored daily close of their instrument.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import F, OuterRef, Subquery, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from barter_site.notify_channels import notify_channel_keys
from instruments.models import Instrument, InstrumentOHLC, Timeframe
from positions.accounts import (
    ACCOUNT_FIELDS,
    account_open_positions_count,
    strategies_with_accounts,
    strategy_cash,
    strategy_equity,
)
from positions.cycle.replay import ReplayAccountName, replay_account_parse
from positions.drift import DriftLine, drift_lines
from positions.execution.trades import trading_blocked
from positions.limits import halts_in_force
from positions.models import LimitState, Order, Position
from runs.models import History, HistoryKind, Step
from trading.models import Portfolio, PortfolioStrategy, Strategy

#: The steps of the daily cycle the dashboard shows the last runs of, in cycle order.
DASHBOARD_STEPS = (Step.COLLECT, Step.OPEN, Step.CLOSE)

#: The newest daily candle is stale when it opened more than this many days before today (UTC). Normally the
#: newest complete candle is yesterday's (the day before yesterday's until the daily collect at 00:40 UTC).
STALE_AFTER_DAYS = 2


@dataclass(frozen=True)
class LatestClose:
    """The newest stored daily close of an instrument.

    Attributes:
        close: quote currency.
        open_time: aware UTC open time of that candle.
    """

    close: Decimal
    open_time: datetime


def latest_closes(instrument_ids: Iterable[int] | None = None) -> dict[int, LatestClose]:
    """Return the newest stored daily (``1d``) close of each instrument, in one query.

    Args:
        instrument_ids: the instruments to read; default every instrument.

    Returns:
        ``{instrument_id: LatestClose}``; instruments without a daily candle are left out. Each lookup is a
        subquery on the unique (instrument, timeframe, open_time) index, so it does not scan the candles.
    """
    newest = InstrumentOHLC.objects.filter(instrument=OuterRef("pk"), timeframe=Timeframe.D1).order_by(
        "-open_time"
    )
    rows = Instrument.objects.annotate(
        last_close=Subquery(newest.values("close")[:1]),
        last_open_time=Subquery(newest.values("open_time")[:1]),
    ).filter(last_close__isnull=False)
    if instrument_ids is not None:
        rows = rows.filter(pk__in=list(instrument_ids))
    return {
        pk: LatestClose(close=Decimal(close), open_time=open_time)
        for pk, close, open_time in rows.order_by().values_list("pk", "last_close", "last_open_time")
    }


@dataclass(frozen=True)
class StrategyLine:
    """One strategy's account on the dashboard. Money is quote currency.

    Attributes:
        strategy: the strategy (with ``instruments`` prefetched).
        cash: free cash.
        equity: cash plus open positions at the newest closes.
        return_ratio: ``equity / starting_cash - 1`` (0.05 is +5 %).
        open_positions_count: how many positions are open.
        replay: what the name of a replay account says (the strategy replayed, its days); None for a strategy.
        opened_today: symbols of the instruments the open step of today entered.
        why_not_today: for a strategy that entered nothing today, one line per reason (disabled, kill switch,
            the open step not run today, or per instrument what the open step recorded: "BTC: no entry signal
            on 2024-04-20", "BTC: already in a position", "BTC: data stale: newest candle 2024-04-20").
        halt: what halts its entries now by a risk limit (the kill switch's automatic twin: exits still run),
            or "" (:func:`positions.limits.halts_in_force`).
        portfolio: the name of the portfolio it is a member of (its entries spend that cash), or "".
    """

    strategy: Strategy
    cash: Decimal
    equity: Decimal
    return_ratio: Decimal
    open_positions_count: int
    replay: ReplayAccountName | None = None
    opened_today: list[str] = field(default_factory=list)
    why_not_today: list[str] = field(default_factory=list)
    halt: str = ""
    portfolio: str = ""

    @property
    def return_pct(self) -> Decimal:
        """``return_ratio`` in percent (0-100 scale), for display only."""
        return self.return_ratio * 100


@dataclass(frozen=True)
class OpenPositionLine:
    """An open position marked at the newest close of its instrument. Money is quote currency.

    Attributes:
        position: the position (with ``strategy`` and ``instrument``).
        mark_price: the newest daily close, or None when the instrument has no candle.
        marked_at: open time of that candle.
        cost: ``entry_price * quantity + entry_fee``.
        value: ``mark_price * quantity`` (None without a mark).
        unrealized_pnl: ``value - cost``: what closing at the mark would make before the exit fee.
        unrealized_pnl_ratio: ``unrealized_pnl / cost`` (0.05 is +5 %).
    """

    position: Position
    mark_price: Decimal | None
    marked_at: datetime | None
    cost: Decimal
    value: Decimal | None
    unrealized_pnl: Decimal | None
    unrealized_pnl_ratio: Decimal | None

    @property
    def unrealized_pnl_pct(self) -> Decimal | None:
        """``unrealized_pnl_ratio`` in percent, for display only."""
        return None if self.unrealized_pnl_ratio is None else self.unrealized_pnl_ratio * 100


@dataclass(frozen=True)
class RunLine:
    """A finished run of a cycle step, from its ``run_finished`` history row.

    Attributes:
        run_id: the run's id.
        step: ``collect``, ``open`` or ``close``.
        status: ``ok``, ``partial`` or ``failed``.
        finished_at: aware UTC.
        as_of: the run's day as stored in its summary (ISO date), or "" when it has none.
        message: the row's one-line message.
        results: how many result lines the summary has.
        errors: one line per error: ``"<instrument or strategy>: <message>"``.
    """

    run_id: str
    step: str
    status: str
    finished_at: datetime
    as_of: str
    message: str
    results: int
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DataFreshness:
    """How old the newest stored daily candle is, and what to do when it is stale.

    Attributes:
        today: today (UTC).
        newest: the day of the newest daily candle of any instrument, or None when there is none.
        stale: ``newest`` is more than :data:`STALE_AFTER_DAYS` days before ``today`` (or missing).
        shipped_only: the newest candle came from a file import (``load_shipped_history``, ``import_ohlc``),
            not from a collect: the data is the shipped history only.
    """

    today: date
    newest: date | None
    stale: bool
    shipped_only: bool

    @property
    def days_behind(self) -> int | None:
        """Days from the newest candle's day to today (1 is up to date), None without candles."""
        return None if self.newest is None else (self.today - self.newest).days

    @property
    def advice(self) -> str:
        """What to do about stale data, one sentence; empty when it is fresh."""
        if not self.stale:
            return ""
        if self.newest is None:
            return "No daily candle is stored: run manage.py load_shipped_history or manage.py sync_data."
        if self.shipped_only:
            return (
                "The candles are the shipped history only: run manage.py sync_data (it needs CoinGecko) to add "
                "the days since, then keep them current with the daily cycle (make beat and make worker, or "
                "the daily GitHub Action)."
            )
        return (
            "The daily collect has not added a candle since: check its schedule (Celery beat or the daily "
            "GitHub Action) and the collect runs below, or run manage.py sync_data."
        )


@dataclass(frozen=True)
class PortfolioLine:
    """One portfolio's account on the dashboard (docs/portfolios.md). Money is quote currency.

    Attributes:
        portfolio: the portfolio.
        members: ``(strategy name, weight)`` in member order.
        cash: free cash (its starting cash less what its positions cost, plus what the closed ones returned).
        equity: cash plus its open positions at the newest closes.
        return_ratio: ``equity / starting_cash - 1``.
        open_positions_count: its open positions.
        halt: what halts its entries now by its own limits, or "".
    """

    portfolio: Portfolio
    members: list[tuple[str, Decimal]]
    cash: Decimal
    equity: Decimal
    return_ratio: Decimal
    open_positions_count: int
    halt: str = ""

    @property
    def return_pct(self) -> Decimal:
        """The return in percent, for display."""
        return self.return_ratio * 100


def portfolio_lines(prices: dict[int, Decimal], today: date) -> list[PortfolioLine]:
    """Every portfolio's account, by name: five queries (the portfolios, their members, the members' strategies,
    their positions, their limit states), however many portfolios and positions there are; only the first when
    there is none."""
    portfolios = list(Portfolio.objects.prefetch_related("members__strategy").order_by("name"))
    if not portfolios:
        return []
    positions = list(Position.objects.filter(portfolio__in=portfolios).only(*ACCOUNT_FIELDS, "portfolio_id"))
    halted = {}
    for row in LimitState.objects.filter(portfolio__in=portfolios):
        if row.drawdown_halt_since is not None:
            halted[row.portfolio_id] = (
                f"halted by max_drawdown_halt_ratio since {row.drawdown_halt_since.date().isoformat()}; "
                "exits still run"
            )
        elif row.halt_day is not None and row.halt_day == row.day and row.as_of == today:
            halted[row.portfolio_id] = "halted for today by daily_loss_limit_ratio; exits still run"
    lines = []
    for portfolio in portfolios:
        cash, value, held = portfolio.starting_cash, Decimal(0), 0
        for position in (p for p in positions if p.portfolio_id == portfolio.pk):
            cash -= position.entry_price * position.quantity + position.entry_fee
            if position.status == Position.Status.CLOSED and position.exit_price is not None:
                cash += position.exit_price * position.quantity - (position.exit_fee or Decimal(0))
            elif position.status == Position.Status.OPEN:
                held += 1
                value += position.quantity * prices.get(position.instrument_id, position.entry_price)
        equity = cash + value
        lines.append(
            PortfolioLine(
                portfolio=portfolio,
                members=[(m.strategy.name, m.weight) for m in portfolio.members.all()],
                cash=cash,
                equity=equity,
                return_ratio=equity / portfolio.starting_cash - 1,
                open_positions_count=held,
                halt=halted.get(portfolio.pk, ""),
            )
        )
    return lines


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard page shows.

    Attributes:
        strategies: one line per strategy (replay accounts apart), by name.
        open_positions: every open position, by strategy name then instrument symbol (each shows whether a
            stop-loss order protects it on the exchange: ``position.protection``).
        runs: ``(step, newest runs first)`` for each step of :data:`DASHBOARD_STEPS`.
        open_orders: the orders the exchange may still fill (new, open, partially filled), by strategy name.
        replays: one line per replay account (``manage.py replay``), by strategy then first day, newest first.
        freshness: how old the newest daily candle is.
        portfolios: one line per portfolio, by name.
        drift: the daily audit of live against the backtest (docs/audit.md): one line per audited strategy, its
            latest audited day and its drift over every audited day (:func:`positions.drift.drift_lines`).
    """

    strategies: list[StrategyLine]
    open_positions: list[OpenPositionLine]
    runs: list[tuple[str, list[RunLine]]]
    open_orders: list[Order] = field(default_factory=list)
    replays: list[StrategyLine] = field(default_factory=list)
    freshness: DataFreshness | None = None
    portfolios: list[PortfolioLine] = field(default_factory=list)
    notification_failures: list[NotificationFailure] = field(default_factory=list)
    drift: list[DriftLine] = field(default_factory=list)


#: How many of the newest notification attempts the dashboard reads to find each channel's latest.
NOTIFICATION_ATTEMPTS_READ = 300
#: A channel whose last this many attempts all failed is shown as failing, even before a delivery's last attempt.
NOTIFICATION_FAILURES_SHOWN_AFTER = 3


@dataclass(frozen=True)
class NotificationFailure:
    """A notification channel whose latest attempt failed for good (or whose last attempts all failed).

    Attributes:
        channel: the channel's label (service, scheme and host; never its URL).
        error: the reason, redacted by the notifications app.
        failed_at: aware UTC time of that attempt.
        event: the event of the message that failed.
    """

    channel: str
    error: str
    failed_at: datetime
    event: str


def notification_failures(
    *, limit: int = NOTIFICATION_ATTEMPTS_READ, after: int = NOTIFICATION_FAILURES_SHOWN_AFTER
) -> list[NotificationFailure]:
    """Return the notification channels that are failing, read from ``History`` in one query (positions imports
    no notifications code: the notifications app records each attempt as a ``notification_sent`` or
    ``notification_failed`` row of step ``notify`` whose payload names the channel, its key, the attempt, whether it
    was the last one (``final``) and the redacted error).

    A channel is failing when its latest attempt failed and was final, or when its latest ``after`` attempts all
    failed; one sent message clears it, and so does taking its URL out of ``BARTER_NOTIFY_URLS`` (only the
    channels configured now are shown: :func:`barter_site.notify_channels.notify_channel_keys`).

    Args:
        limit: how many of the newest attempts (every channel) are read.
        after: consecutive failed attempts that make a channel failing before any is final.

    Returns:
        One line per failing channel, the most recent failure first; no query when no channel is configured.
    """
    rows = (
        History.objects.filter(
            step=Step.NOTIFY, kind__in=[HistoryKind.NOTIFICATION_SENT, HistoryKind.NOTIFICATION_FAILED]
        )
        .order_by("-created_at", "-id")
        .only("kind", "created_at", "payload")[:limit]
    )
    configured = notify_channel_keys()
    if not configured:
        return []
    failures: dict[str, list[History]] = {}
    settled: set[str] = set()
    for row in rows:
        payload: dict[str, Any] = row.payload if isinstance(row.payload, dict) else {}
        channel = str(payload.get("channel_key") or "")
        if channel not in configured or channel in settled:
            continue
        if row.kind == HistoryKind.NOTIFICATION_SENT:
            settled.add(channel)
            continue
        failures.setdefault(channel, []).append(row)
        latest = failures[channel][0].payload
        if latest.get("final") or len(failures[channel]) >= after:
            settled.add(channel)
    lines = []
    for found in failures.values():
        latest_row = found[0]
        payload = latest_row.payload
        if payload.get("final") or len(found) >= after:
            lines.append(
                NotificationFailure(
                    channel=str(payload.get("channel") or "unnamed channel"),
                    error=str(payload.get("error") or "no reason given"),
                    failed_at=latest_row.created_at,
                    event=str(payload.get("event") or ""),
                )
            )
    return sorted(lines, key=lambda line: line.failed_at, reverse=True)


def _run_line(row: History) -> RunLine:
    payload: dict[str, Any] = row.payload if isinstance(row.payload, dict) else {}
    errors = []
    for error in payload.get("errors") or []:
        if isinstance(error, dict):
            subject = error.get("instrument") or error.get("strategy") or error.get("file") or "run"
            errors.append(f"{subject}: {error.get('message', '')}")
        else:
            errors.append(str(error))
    results = payload.get("results")
    return RunLine(
        run_id=str(row.run_id),
        step=row.step,
        status=row.status,
        finished_at=row.created_at,
        as_of=str(payload.get("as_of") or ""),
        message=row.message,
        results=len(results) if isinstance(results, list) else 0,
        errors=errors,
    )


def recent_runs(
    *, steps: Sequence[str] = DASHBOARD_STEPS, per_step: int = 5
) -> list[tuple[str, list[RunLine]]]:
    """Return the newest ``per_step`` finished runs of each step, in one query (a window function).

    Args:
        steps: the steps, in the order they are returned.
        per_step: how many runs of each step, >= 1.

    Returns:
        ``[(step, [RunLine, ...newest first]), ...]`` with an entry for every step, empty when it never ran.
    """
    ranked = (
        History.objects.runs_finished()
        .filter(step__in=list(steps))
        .annotate(
            rank=Window(
                RowNumber(), partition_by=[F("step")], order_by=[F("created_at").desc(), F("id").desc()]
            )
        )
        .filter(rank__lte=per_step)
        .order_by("step", "-created_at", "-id")
    )
    by_step: dict[str, list[RunLine]] = {step: [] for step in steps}
    for row in ranked:
        by_step[row.step].append(_run_line(row))
    return [(step, by_step[step]) for step in steps]


def _open_position_line(position: Position, mark: LatestClose | None) -> OpenPositionLine:
    cost = position.entry_price * position.quantity + position.entry_fee
    if mark is None:
        return OpenPositionLine(position, None, None, cost, None, None, None)
    value = mark.close * position.quantity
    pnl = value - cost
    return OpenPositionLine(position, mark.close, mark.open_time, cost, value, pnl, pnl / cost)


def data_freshness(marks: dict[int, LatestClose], *, today: date) -> DataFreshness:
    """How old the newest of ``marks`` (:func:`latest_closes` of every instrument) is; one query for its source.

    Args:
        marks: the newest daily close of each instrument.
        today: today (UTC).
    """
    if not marks:
        return DataFreshness(today=today, newest=None, stale=True, shipped_only=False)
    instrument_id, newest = max(marks.items(), key=lambda item: item[1].open_time)
    source = (
        InstrumentOHLC.objects.filter(
            instrument_id=instrument_id, timeframe=Timeframe.D1, open_time=newest.open_time
        )
        .values_list("source", flat=True)
        .first()
    )
    day = newest.open_time.date()
    return DataFreshness(
        today=today,
        newest=day,
        stale=(today - day).days > STALE_AFTER_DAYS,
        shipped_only=(source or "").startswith("file:"),
    )


def todays_open_results(today: date) -> dict[str, list[dict[str, Any]]]:
    """The result lines of the newest open-step run of ``today`` that handled each strategy, by strategy name.

    One query: the open runs whose summary's ``as_of`` is today (a replay's runs are of past days), newest first.
    Each line is the summary's ``{"strategy", "instrument" (CoinGecko id), "action", "reason", "error", ...}``.
    """
    runs = (
        History.objects.runs_finished()
        .filter(step=Step.OPEN, payload__as_of=today.isoformat())
        .order_by("-created_at", "-id")[:20]
    )
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        payload = run.payload if isinstance(run.payload, dict) else {}
        this_run: dict[str, list[dict[str, Any]]] = {}
        for line in payload.get("results") or []:
            if isinstance(line, dict) and line.get("strategy"):
                this_run.setdefault(str(line["strategy"]), []).append(line)
        for name, lines in this_run.items():
            by_strategy.setdefault(name, lines)
    return by_strategy


def _reason_in_words(line: dict[str, Any], *, symbol: str, today: date, newest: LatestClose | None) -> str:
    """One open-step result line (action ``none``, ``skipped`` or an error) as a reason a trader reads."""
    signal_day = (today - timedelta(days=1)).isoformat()
    reason = str(line.get("reason") or "")
    if line.get("error"):
        return f"{symbol}: error: {line['error']}"
    if line.get("action") == "skipped":
        return f"{symbol}: handled by an earlier open run today"
    if reason == "no entry signal":
        return f"{symbol}: no entry signal on {signal_day}"
    if reason == "a position is already open":
        return f"{symbol}: already in a position"
    if reason.startswith("no candle for the day before"):
        stored = f"newest candle {newest.open_time.date().isoformat()}" if newest else "no candle stored"
        return f"{symbol}: data stale: {stored}, none for {signal_day} (collect first)"
    return f"{symbol}: {reason or line.get('action', 'nothing done')}"


def why_nothing_opened(
    strategy: Strategy,
    *,
    today: date,
    results: list[dict[str, Any]] | None,
    marks: dict[int, LatestClose],
) -> tuple[list[str], list[str]]:
    """What the open step of ``today`` entered for ``strategy``, and otherwise why it entered nothing.

    It reads what the open step recorded (its run summary's result lines, :func:`todays_open_results`) and the
    strategy's own switches; it decides nothing itself (the entry rules are the engine's).

    Args:
        strategy: with ``instruments`` prefetched.
        today: today (UTC).
        results: the strategy's result lines of today's newest open run, or None when none ran for it.
        marks: the newest daily close of each instrument (:func:`latest_closes`).

    Returns:
        ``(opened, reasons)``: the symbols entered today, and when there are none, one line per reason.
    """
    instruments = {i.coingecko_id: i for i in strategy.instruments.all()}
    opened = [
        instruments[str(line["instrument"])].symbol if line.get("instrument") in instruments else "?"
        for line in results or []
        if line.get("action") == "opened"
    ]
    if opened:
        return opened, []
    reasons: list[str] = []
    if not strategy.is_enabled:
        reasons.append("disabled: the daily cycle does not trade it")
    if strategy.execution_backend == Strategy.ExecutionBackend.EXCHANGE:
        blocked = trading_blocked(strategy)
        if blocked:
            reasons.append(f"kill switch: {blocked}")
    if results is None:
        if strategy.is_enabled:
            reasons.append(f"the open step has not run today ({today.isoformat()})")
        for instrument in instruments.values():
            mark = marks.get(instrument.pk)
            if mark is None:
                reasons.append(f"{instrument.symbol}: no daily candle stored")
            elif (today - mark.open_time.date()).days > STALE_AFTER_DAYS:
                reasons.append(
                    f"{instrument.symbol}: data stale: newest candle {mark.open_time.date().isoformat()}"
                )
        return [], reasons
    for line in results:
        if not line.get("instrument"):
            reasons.append(str(line.get("error") or line.get("reason") or "the open step failed"))
            continue
        listed = instruments.get(str(line["instrument"]))
        symbol = listed.symbol if listed is not None else str(line["instrument"])
        mark = marks.get(listed.pk) if listed is not None else None
        reasons.append(_reason_in_words(line, symbol=symbol, today=today, newest=mark))
    return [], reasons


def dashboard_read() -> Dashboard:
    """Read the dashboard: strategies' equity and return, open positions' unrealized P&L, the last runs.

    Strategies are split from replay accounts (``manage.py replay``'s, named ``<strategy> [replay ...]``); each
    strategy says what the open step of today entered or why it entered nothing (:func:`why_nothing_opened`),
    and :class:`DataFreshness` says whether the newest daily candle is stale.

    Queries: strategies, their instruments, their positions, the open positions with strategy and instrument,
    the newest closes, today's open runs, the risk limits' halts, the memberships, the portfolios, the newest
    candle's source, the runs, the latest audits: twelve, whatever the number of strategies, positions and runs;
    two more when some strategy was audited (the audits' sums and third-currency fees); four more when
    portfolios exist (their members, strategies, positions and limit states); plus one for the live orders when
    some strategy trades on an exchange (only those have orders); plus one for the notification attempts when
    channels are configured (:func:`notification_failures`).
    """
    today = timezone.now().date()
    strategies = list(strategies_with_accounts().order_by("name"))
    open_rows = list(
        Position.objects.open()
        .select_related("strategy", "instrument")
        .order_by("strategy__name", "instrument__symbol", "id")
    )
    marks = latest_closes()
    prices = {instrument_id: mark.close for instrument_id, mark in marks.items()}
    todays = todays_open_results(today)
    halted = halts_in_force(strategies, today)
    members = dict(
        PortfolioStrategy.objects.filter(strategy__in=strategies).values_list(
            "strategy_id", "portfolio__name"
        )
    )
    lines: list[StrategyLine] = []
    replays: list[StrategyLine] = []
    for strategy in strategies:
        equity = strategy_equity(strategy, prices)
        replay = replay_account_parse(strategy.name)
        opened, why = (
            ([], [])
            if replay is not None
            else why_nothing_opened(strategy, today=today, results=todays.get(strategy.name), marks=marks)
        )
        line = StrategyLine(
            strategy=strategy,
            cash=strategy_cash(strategy),
            equity=equity,
            return_ratio=equity / strategy.starting_cash - 1,
            open_positions_count=account_open_positions_count(strategy),
            replay=replay,
            opened_today=opened,
            why_not_today=why,
            halt=halted.get(strategy.pk, ""),
            portfolio=members.get(strategy.pk, ""),
        )
        (lines if replay is None else replays).append(line)
    replays.sort(key=lambda line: (line.replay.strategy, line.replay.start) if line.replay else ("", today))
    return Dashboard(
        strategies=lines,
        portfolios=portfolio_lines(prices, today),
        replays=replays,
        freshness=data_freshness(marks, today=today),
        open_positions=[_open_position_line(p, marks.get(p.instrument_id)) for p in open_rows],
        runs=recent_runs(),
        notification_failures=notification_failures(),
        drift=drift_lines(),
        open_orders=list(
            Order.objects.live()
            .select_related("strategy", "instrument")
            .order_by("strategy__name", "created_at", "id")
        )
        if any(s.execution_backend == Strategy.ExecutionBackend.EXCHANGE for s in strategies)
        else [],
    )
