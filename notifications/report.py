"""The day's report after the close step: the audit of live against the backtest, its alerts, and the digest.

:func:`daily_report` runs once the live close step of a day has finished (:mod:`notifications.receivers` starts
it through :func:`daily_report_start`, off the step's thread): it audits the day
(:func:`positions.audit.audit_day`), alerts on every signal mismatch, then sends the digest: equity and the day's
P&L per portfolio and strategy, the open positions, what each step of the day did, the data's freshness and the
audit's drift. The digest's equities are kept (:class:`notifications.models.DailyDigest`) so the next day's
P&L is measured from them.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from notifications.background import BackgroundSender
from notifications.events import Message, NotificationEvent
from notifications.models import DailyDigest
from notifications.services import eager_mode, notify
from positions.audit import audit_day
from positions.drift import DriftLine
from positions.models import StrategyAudit
from positions.selectors import Dashboard, dashboard_read
from runs.models import History, Step

logger = logging.getLogger(__name__)


_sender_lock = threading.Lock()
_sender: BackgroundSender | None = None


def _report_job(job: Any) -> None:
    daily_report(date.fromisoformat(str(job)))
    return None


def report_sender() -> BackgroundSender:
    """The embedded mode's thread for the day's reports in this process (made on first use)."""
    global _sender
    with _sender_lock:
        if _sender is None:
            _sender = BackgroundSender(_report_job, threads=1)
        return _sender


def report_sender_if_started() -> BackgroundSender | None:
    """This process's report thread, or None when no report was started here."""
    with _sender_lock:
        return _sender


def daily_report_start(as_of: date) -> None:
    """Start :func:`daily_report` for ``as_of`` off the caller's thread, so the close step's answer never waits
    for it: the Celery task ``notifications.daily_report`` with a broker, a background thread without one. A
    broker that cannot be reached is logged; the flush starts the report later (:func:`daily_report_due`)."""
    if eager_mode():
        report_sender().submit(as_of.isoformat())
        return
    from barter_site.celery_app import app

    try:
        app.send_task("notifications.daily_report", args=[as_of.isoformat()])
    except Exception:
        logger.warning(
            "the report of %s not queued (broker unavailable); the flush starts it", as_of, exc_info=True
        )


#: How long after a live close step its report may take before the flush starts it again (a lost task or thread).
REPORT_LEASE = timedelta(minutes=15)


def daily_report_due(*, now: datetime | None = None) -> date | None:
    """Start again the report of today whose close step finished more than :data:`REPORT_LEASE` ago without a
    digest (its task or thread was lost); run by the flush (Celery beat, or requests in the embedded mode).

    Args:
        now: aware; None is now.

    Returns:
        The day whose report was started, or None.
    """
    now = now or timezone.now()
    today = now.date()
    if not settings.BARTER_DAILY_REPORT or DailyDigest.objects.filter(as_of=today).exists():
        return None
    finished = (
        History.objects.runs_finished()
        .filter(step=Step.CLOSE, payload__as_of=today.isoformat(), created_at__lte=now - REPORT_LEASE)
        .exclude(payload__live=False)
        .exists()
    )
    if not finished:
        return None
    daily_report_start(today)
    return today


def daily_report(as_of: date) -> list[Message]:
    """Audit the day before ``as_of``, alert on its signal mismatches and send the digest of ``as_of`` (each once:
    messages have keys).

    The audited day is the one before: its candle is the last one the steps of ``as_of`` traded on, and a stop hit
    during it is settled only by them (docs/audit.md, "Which day").

    Args:
        as_of: the day whose close step finished (UTC).

    Returns:
        The messages handed to :func:`notifications.services.notify` (mismatch alerts, then the digest).
    """
    audited = as_of - timedelta(days=1)
    try:
        audits = audit_day(as_of=audited)
    except Exception:  # the audit records its own failure in History; the digest still goes out
        logger.exception("the audit of %s failed", audited)
        audits = []
    messages = [message for audit in audits if (message := audit_mismatch_message(audit)) is not None]
    messages.append(digest_message(as_of))
    notify(messages)
    return messages


def audit_mismatch_message(audit: StrategyAudit) -> Message | None:
    """``audit_mismatch``: the signals the backtest has and live missed, or the reverse; None without any."""
    if not audit.missed and not audit.extra:
        return None
    lines = [
        f"The daily audit of {audit.strategy.name} for {audit.as_of.isoformat()} found signals on one side only:"
    ]
    lines += [f"- the backtest has, live missed: {_signal_words(signal)}" for signal in audit.missed]
    lines += [f"- live has, the backtest has not: {_signal_words(signal)}" for signal in audit.extra]
    lines.append("See the dashboard's drift table and History (signal_mismatch) for the details.")
    return Message(
        event=NotificationEvent.AUDIT_MISMATCH,
        key=f"audit_mismatch:{audit.strategy_id}:{audit.as_of.isoformat()}",
        title=f"Audit: {len(audit.missed) + len(audit.extra)} signal mismatch(es) in {audit.strategy.name} "
        f"on {audit.as_of.isoformat()}",
        body="\n".join(lines),
    )


def _signal_words(signal: Any) -> str:
    if isinstance(signal, dict):
        words = f"{signal.get('signal', '')} {signal.get('instrument', '')}".strip()
        reason = signal.get("reason")
        return f"{words} ({reason})" if reason else words
    return str(signal)


def _signed(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def digest_message(as_of: date) -> Message:
    """``digest``: the day in a few lines, and keep its equities for tomorrow's day P&L.

    Equity and the day's P&L (from the previous digest's equities) per portfolio and strategy, the open positions
    marked at the newest closes, each step's runs of the day, the data's freshness, and the audit's drift per
    strategy (the latest audited day and every day's sum: :attr:`positions.selectors.Dashboard.drift`).

    Args:
        as_of: the day (UTC).
    """
    dashboard = dashboard_read()
    previous = DailyDigest.objects.filter(as_of__lt=as_of).order_by("-as_of").first()
    before: dict[str, str] = previous.equities if previous is not None else {}
    equities: dict[str, str] = {}
    lines = [f"Barter daily digest for {as_of.isoformat()} (UTC)"]
    since = f" since {previous.as_of.isoformat()}" if previous is not None else ""
    if dashboard.portfolios:
        lines += ["", "Portfolios"]
    for line in dashboard.portfolios:
        key = f"portfolio:{line.portfolio.pk}"
        equities[key] = str(line.equity)
        day_pnl = line.equity - Decimal(before[key]) if key in before else None
        lines.append(
            f"- {line.portfolio.name}: equity {line.equity:,.2f} ({line.return_ratio:+.2%} since start), "
            f"day P&L {_signed(day_pnl)}{since}, {line.open_positions_count} open"
            + (f"; {line.halt}" if line.halt else "")
        )
    lines += ["", "Strategies"]
    for strategy_line in dashboard.strategies:
        key = f"strategy:{strategy_line.strategy.pk}"
        equities[key] = str(strategy_line.equity)
        day_pnl = strategy_line.equity - Decimal(before[key]) if key in before else None
        state = "" if strategy_line.strategy.is_enabled else " (disabled)"
        member = f" (spends portfolio {strategy_line.portfolio}'s cash)" if strategy_line.portfolio else ""
        lines.append(
            f"- {strategy_line.strategy.name}{state}{member}: equity {strategy_line.equity:,.2f} "
            f"({strategy_line.return_ratio:+.2%}), day P&L {_signed(day_pnl)}{since}, "
            f"{strategy_line.open_positions_count} open"
            + (
                f"; opened today: {', '.join(strategy_line.opened_today)}"
                if strategy_line.opened_today
                else ""
            )
            + (f"; {strategy_line.halt}" if strategy_line.halt else "")
        )
    if not dashboard.strategies:
        lines.append("- none")
    lines += ["", "Open positions"]
    for position_line in dashboard.open_positions:
        position = position_line.position
        unrealized = (
            "no mark"
            if position_line.unrealized_pnl is None or position_line.unrealized_pnl_ratio is None
            else f"unrealized {position_line.unrealized_pnl:+,.2f} ({position_line.unrealized_pnl_ratio:+.2%})"
        )
        lines.append(
            f"- {position.strategy.name} {position.instrument.symbol}: {position.quantity.normalize():f} at "
            f"{position.entry_price:,.2f}, mark {_mark(position_line.mark_price)}, {unrealized}"
        )
    if not dashboard.open_positions:
        lines.append("- none")
    lines += ["", "Steps", *_steps_lines(as_of)]
    lines += ["", "Data", _freshness_line(dashboard)]
    lines += ["", "Audit: live against the backtest", *_audit_lines(dashboard.drift)]
    DailyDigest.objects.update_or_create(as_of=as_of, defaults={"equities": equities})
    return Message(
        event=NotificationEvent.DIGEST,
        key=f"digest:{as_of.isoformat()}",
        title=f"Barter digest {as_of.isoformat()}: "
        + ", ".join(f"{line.strategy.name} {line.equity:,.2f}" for line in dashboard.strategies[:3])
        + (" ..." if len(dashboard.strategies) > 3 else ""),
        body="\n".join(lines),
    )


def _mark(price: Decimal | None) -> str:
    return "-" if price is None else f"{price:,.2f}"


#: A step's result actions (``positions.events.StepResult.action``) as the digest words them.
ACTION_WORDS = {
    "opened": "opened",
    "closed": "closed",
    "none": "with nothing to do",
    "skipped": "already handled",
}


def _steps_lines(as_of: date) -> list[str]:
    """One line per step of the day: its runs' statuses, results and errors."""
    rows = History.objects.runs_finished().filter(
        step__in=[Step.COLLECT, Step.OPEN, Step.CLOSE], payload__as_of=as_of.isoformat()
    )
    by_step: dict[str, list[History]] = {}
    for row in rows.order_by("created_at", "id"):
        by_step.setdefault(row.step, []).append(row)
    lines = []
    for step in (Step.COLLECT, Step.OPEN, Step.CLOSE):
        runs = by_step.get(step, [])
        if not runs:
            lines.append(f"- {step}: no run for {as_of.isoformat()}")
            continue
        statuses = ", ".join(sorted({run.status for run in runs}))
        results: list[Any] = []
        errors: list[Any] = []
        for run in runs:
            payload = run.payload if isinstance(run.payload, dict) else {}
            results += payload.get("results") or []
            errors += payload.get("errors") or []
        done: dict[str, int] = {}
        for result in results:
            if isinstance(result, dict) and result.get("action"):
                done[str(result["action"])] = done.get(str(result["action"]), 0) + 1
        counts = ", ".join(
            f"{count} {ACTION_WORDS.get(action, action)}" for action, count in sorted(done.items())
        )
        lines.append(
            f"- {step}: {len(runs)} run(s), {statuses}"
            + (f"; {counts}" if counts else "")
            + (f"; {len(errors)} error(s)" if errors else "")
        )
    return lines


def _freshness_line(dashboard: Dashboard) -> str:
    freshness = dashboard.freshness
    if freshness is None or freshness.newest is None:
        return "- no daily candle stored"
    state = "STALE: " + freshness.advice if freshness.stale else "fresh"
    return f"- newest daily candle {freshness.newest.isoformat()} ({state})"


def _audit_lines(drift: list[DriftLine]) -> list[str]:
    if not drift:
        return ["- no strategy audited yet"]
    lines = []
    for line in drift:
        latest = line.latest
        slippage = "-" if latest.slippage_bps is None else f"{latest.slippage_bps:+.1f} bps"
        other = ", ".join(f"{amount} {currency}" for currency, amount in line.other_fees.items())
        lines.append(
            f"- {latest.strategy.name} on {latest.as_of.isoformat()}: signals missed {len(latest.missed)}, extra "
            f"{len(latest.extra)}; slippage {slippage}; fee drift {_signed(latest.fee_drift)}; cash drift "
            f"{_signed(latest.cash_drift)}. Over {line.days} day(s): {line.signal_mismatches} signal mismatch(es), "
            f"slippage cost {_signed(line.slippage_cost)}, fee drift {_signed(line.fee_drift)}"
            + (f", fees paid in {other}" if other else "")
            + (" (DRIFTED)" if line.drifted else "")
        )
    return lines
