"""The producers of notifications: what a finished run tells the trader.

:func:`run_finished_notify` receives :data:`runs.signals.run_finished` once per run, after its ``run_finished``
row, so everything the run did is already in History and committed (a strategy's events are written only once
its transaction committed: :mod:`positions.cycle.runner`). It reads the run's rows and makes one
:class:`~notifications.events.Message` per event a trader wants to hear about (:func:`run_messages`), hands them
to :func:`notifications.services.notify` (which only writes deliveries and sends them in the background), and
after a live close step starts the day's report (the audit, its alerts and the digest:
:func:`notifications.report.daily_report_start`). Nothing here sends, and nothing here can fail the run: the
signal calls receivers with ``send_robust``.

Only live runs speak: a replay's runs (``manage.py replay``, ``"live": false`` in the summary) trade a copy of a
strategy over past days and tell nobody.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.conf import settings
from django.dispatch import receiver

from notifications.events import Message, NotificationEvent
from notifications.report import daily_report_start
from notifications.services import notify
from positions.models import Order, Position
from runs.models import History, HistoryKind, RunStatus, Step
from runs.signals import run_finished

logger = logging.getLogger(__name__)

#: Steps whose runs never notify: a delivery's own attempts (a broken channel must not report itself by itself).
SILENT_STEPS = frozenset({Step.NOTIFY, Step.DEPLOY})
#: Statuses of a run that went wrong (``interrupted``: its worker died and the reaper finished it).
FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.INTERRUPTED})


@receiver(run_finished, dispatch_uid="notifications.run_finished_notify")
def run_finished_notify(sender: str, summary: dict[str, Any], **kwargs: Any) -> None:
    """Notify what the finished run did, and after a live close step start the day's report (unless
    ``BARTER_DAILY_REPORT`` is off).

    Args:
        sender: the run's step.
        summary: its summary (the ``run_finished`` row's payload).
    """
    if sender in SILENT_STEPS or summary.get("live") is False:
        return
    notify(run_messages(sender, summary))
    if sender == Step.CLOSE and summary.get("as_of") and settings.BARTER_DAILY_REPORT:
        daily_report_start(date.fromisoformat(str(summary["as_of"])))


def run_messages(step: str, summary: dict[str, Any]) -> list[Message]:
    """Every message of one finished run, in the order its events happened.

    Args:
        step: the run's step.
        summary: its summary: ``run_id``, ``status``, ``errors``, ``as_of`` (open and close steps).

    Returns:
        A message per position opened or closed, stop placed, moved or filled, position left unprotected, halt
        (a risk limit's, or the kill switch's refusal: once per strategy and day), and one for a run that failed,
        was partial or was interrupted.
    """
    run_id = str(summary.get("run_id") or "")
    as_of = str(summary.get("as_of") or "")
    rows = list(
        History.objects.for_run(run_id).select_related("strategy", "instrument", "position")
        if run_id
        else History.objects.none()
    )
    messages = [*_event_messages(rows, as_of=as_of)]
    status = str(summary.get("status") or "")
    if status in FAILED_STATUSES:
        messages.append(step_failed_message(step, summary))
    return messages


def _event_messages(rows: Iterable[History], *, as_of: str) -> Iterable[Message]:
    unprotected: set[int] = set()
    kill_switched: set[int] = set()
    for row in rows:
        payload: dict[str, Any] = row.payload if isinstance(row.payload, dict) else {}
        position = row.position
        if row.kind == HistoryKind.POSITION_OPENED and position is not None:
            yield position_opened_message(position)
        elif row.kind == HistoryKind.POSITION_CLOSED and position is not None:
            yield position_closed_message(position)
        elif (
            row.kind in (HistoryKind.ORDER, HistoryKind.FILL)
            and payload.get("purpose") == Order.Purpose.PROTECTION
            and payload.get("type") == Order.Type.STOP_LOSS
        ):
            yield stop_message(row, payload)
        elif row.kind == HistoryKind.HALT:
            yield halt_message(row, payload)
        elif (
            row.kind == HistoryKind.ENTRY_REFUSED
            and "limit" not in payload
            and row.strategy_id is not None
            and row.strategy_id not in kill_switched
        ):
            kill_switched.add(row.strategy_id)
            yield kill_switch_message(row, payload, as_of=as_of)
        if (
            position is not None
            and position.pk not in unprotected
            and position.status == Position.Status.OPEN
            and position.protection == Position.Protection.UNPROTECTED
        ):
            unprotected.add(position.pk)
            yield unprotected_message(position, row, as_of=as_of)


def _money(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _quantity(value: Any) -> str:
    return f"{value.normalize():f}" if value is not None else "-"


def _name(position: Position) -> str:
    return f"{position.strategy.name} {position.instrument.symbol}"


def position_opened_message(position: Position) -> Message:
    """``position_opened``: instrument, side, price, quantity, cost and the levels that will close it."""
    levels = [
        f"{label} {_money(level)}"
        for label, level in (
            ("stop-loss", position.stop_loss_price),
            ("take-profit", position.take_profit_price),
            ("trailing stop", position.trailing_stop_price),
        )
        if level is not None
    ]
    cost = position.entry_price * position.quantity + position.entry_fee
    return Message(
        event=NotificationEvent.POSITION_OPENED,
        key=f"position_opened:{position.pk}",
        title=f"Opened {position.side} {_name(position)} at {_money(position.entry_price)}",
        body="\n".join(
            [
                f"Strategy {position.strategy.name} opened a {position.side} position in "
                f"{position.instrument.symbol} ({position.instrument.coingecko_id}).",
                f"Price {_money(position.entry_price)}, quantity {_quantity(position.quantity)}, fee "
                f"{_money(position.entry_fee)}, cost {_money(cost)} ({position.entry_at:%Y-%m-%d %H:%M} UTC).",
                f"Reason: the entry criteria's signal. Exits: {', '.join(levels) or 'the exit criteria only'}.",
            ]
        ),
    )


def position_closed_message(position: Position) -> Message:
    """``position_closed``: instrument, side, exit price, quantity, P&L and the exit's reason."""
    reason = position.get_exit_reason_display().lower() if position.exit_reason else "unknown"
    pnl_ratio = "" if position.pnl_ratio is None else f" ({position.pnl_ratio:+.2%})"
    return Message(
        event=NotificationEvent.POSITION_CLOSED,
        key=f"position_closed:{position.pk}",
        title=f"Closed {_name(position)} ({reason}): P&L {position.pnl or 0:+,.2f}{pnl_ratio}",
        body="\n".join(
            [
                f"Strategy {position.strategy.name} closed its {position.side} position in "
                f"{position.instrument.symbol} ({position.instrument.coingecko_id}).",
                f"Reason: {reason}. Exit price {_money(position.exit_price)}, quantity "
                f"{_quantity(position.quantity)}, exit fee {_money(position.exit_fee)}.",
                f"Entry {_money(position.entry_price)} on {position.entry_at:%Y-%m-%d}; P&L "
                f"{position.pnl or 0:+,.2f}{pnl_ratio} after fees.",
            ]
        ),
    )


def stop_message(row: History, payload: dict[str, Any]) -> Message:
    """``stop``: a stop-loss order placed, moved (a new order at another level replacing an earlier one) or
    filled on the exchange, or resting on paper (placed or moved; a paper stop that fills closes its position,
    which ``position_closed`` reports). ``payload`` is the order's (:func:`order_payload`)."""
    order_id = payload.get("order_id")
    exchange_id = str(payload.get("exchange_id") or "")
    where = "paper" if exchange_id in ("paper", "replay") else exchange_id or "the exchange"
    symbol = row.instrument.symbol if row.instrument is not None else str(payload.get("market_symbol") or "")
    strategy = row.strategy.name if row.strategy is not None else ""
    if row.kind == HistoryKind.FILL:
        what = "filled"
        detail = (
            f"sold {payload.get('filled_quantity')} at {payload.get('average_price') or payload.get('price')}"
        )
    else:
        earlier = (
            row.position_id is not None
            and order_id is not None
            and Order.objects.filter(
                position_id=row.position_id,
                purpose=Order.Purpose.PROTECTION,
                type=Order.Type.STOP_LOSS,
                pk__lt=order_id,
            ).exists()
        )
        what = "moved" if earlier else "placed"
        detail = f"sell {payload.get('quantity')} at stop {payload.get('price')}"
    return Message(
        event=NotificationEvent.STOP,
        key=f"stop:{row.kind}:{order_id or row.pk}",
        title=f"Stop-loss {what}: {strategy} {symbol}",
        body=f"Strategy {strategy}: stop-loss of {symbol} {what} on {where}: {detail} "
        f"(order {payload.get('client_order_id') or order_id}).",
    )


def unprotected_message(position: Position, row: History, *, as_of: str) -> Message:
    """``unprotected``: an open position the exchange holds no stop for (once per position and day)."""
    return Message(
        event=NotificationEvent.UNPROTECTED,
        key=f"unprotected:{position.pk}:{as_of or row.created_at.date().isoformat()}",
        title=f"Unprotected: {_name(position)} has no stop-loss on the exchange",
        body=f"{row.message}\nThe position stays open without a resting stop between runs; the close step still "
        f"applies the stop-loss ({_money(position.stop_loss_price)}) at its next run.",
    )


def halt_message(row: History, payload: dict[str, Any]) -> Message:
    """``halt``: a risk limit halted entries, or a halt ended (the message has its figures)."""
    portfolio = payload.get("portfolio")
    account = (
        f"portfolio {portfolio}" if portfolio else f"strategy {row.strategy.name if row.strategy else ''}"
    )
    ended = "ended" in row.message
    return Message(
        event=NotificationEvent.HALT,
        key=f"halt:{row.pk}",
        title=f"{'Halt ended' if ended else 'Halted'}: {account}",
        body=f"{account}: {row.message}",
    )


def kill_switch_message(row: History, payload: dict[str, Any], *, as_of: str) -> Message:
    """``halt``: the kill switch refused a strategy's entries (once per strategy and day)."""
    name = row.strategy.name if row.strategy is not None else ""
    return Message(
        event=NotificationEvent.HALT,
        key=f"kill_switch:{row.strategy_id}:{as_of or row.created_at.date().isoformat()}",
        title=f"Kill switch: entries of {name} not sent",
        body=f"Strategy {name}: {row.message}. Reason: {payload.get('reason') or 'the kill switch is on'}.",
    )


def step_failed_message(step: str, summary: dict[str, Any]) -> Message:
    """``step_failed``: a run that failed, was partial or was interrupted, with its errors (at most 10 listed)."""
    errors = [error for error in summary.get("errors") or [] if isinstance(error, dict)]
    lines = []
    for error in errors[:10]:
        subject = error.get("strategy") or error.get("instrument") or error.get("file") or "run"
        lines.append(f"- {subject}: {error.get('message', '')}")
    if len(errors) > 10:
        lines.append(f"- ... and {len(errors) - 10} more (see History, run {summary.get('run_id')})")
    status = str(summary.get("status") or "")
    as_of = summary.get("as_of")
    kept = summary.get("kept")
    return Message(
        event=NotificationEvent.STEP_FAILED,
        key=f"step_failed:{summary.get('run_id')}",
        title=f"The {step} step {status}"
        + (f" for {as_of}" if as_of else "")
        + f" with {len(errors)} error(s)",
        body="\n".join(
            [
                f"Run {summary.get('run_id')} of the {step} step ended {status}"
                + (f" (day {as_of})." if as_of else "."),
                *lines,
                *([f"Kept: {kept}"] if isinstance(kept, str) else []),
            ]
        ),
    )
