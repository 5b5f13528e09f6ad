"""What the trader is told, end to end: the live steps' events, failed steps, halts, the digest, the audit's alerts
and the missed-run alarm, delivered to real local servers (aiosmtpd, an HTTP server taking Apprise webhooks)."""

from __future__ import annotations

import email
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from email.message import Message as EmailMessage
from typing import Any

import pytest
import time_machine
from pytest_django import Settings

from instruments.models import Instrument
from notifications.models import Channel, DailyDigest, Delivery
from notifications.report import REPORT_LEASE, daily_report, daily_report_due, report_sender
from notifications.services import channels_sync
from notifications.tasks import missed_run_check_task
from positions.cycle.close import sync_close_positions
from positions.cycle.open import sync_new_trades
from positions.execution.paper import ReplayBroker
from positions.models import Position
from runs.models import History, HistoryKind, RunStatus, Step
from runs.recorder import run_start
from tests.fakes.coingecko import FakeCoinGecko, json_reply
from tests.fakes.notify_servers import SmtpInbox, Webhook
from tests.instruments.factories import InstrumentFactory, flat_daily_candles
from tests.notifications.conftest import settle, webhook_url
from trading.models import Strategy

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2024, 1, 11, 0, 40, tzinfo=UTC)  # as_of 2024-01-11: candle 2024-01-10 has closed
AS_OF = NOW.date()
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}


@pytest.fixture(autouse=True)
def _daily_report(settings: Settings) -> None:
    """The day's report after a live close step is off in the test settings: these tests are about it."""
    settings.BARTER_DAILY_REPORT = True


@pytest.fixture
def bitcoin(db: None) -> Instrument:
    coin: Instrument = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC")
    flat_daily_candles(coin, date(2024, 1, 1), 10)
    return coin


@pytest.fixture
def ethereum(db: None) -> Instrument:
    coin: Instrument = InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH")
    flat_daily_candles(coin, date(2024, 1, 1), 10)
    return coin


def _strategy(
    name: str, *instruments: Instrument, starting_cash: Decimal = Decimal(10_000), **criteria: Any
) -> Strategy:
    """An enabled long strategy that enters every day (fee 0.1%, no slippage) on ``instruments``."""
    strategy = Strategy.objects.create(
        name=name,
        is_enabled=True,
        starting_cash=starting_cash,
        criteria={
            "version": 1,
            "side": "long",
            "entry": ALWAYS,
            "fee_rate": 0.001,
            "slippage_ratio": 0.0,
            **criteria,
        },
    )
    strategy.instruments.set(instruments)
    return strategy


def _texts(inbox: SmtpInbox) -> list[tuple[str, str]]:
    """``(subject, plain text)`` of every email the server received."""
    found = []
    for envelope in inbox.envelopes:
        parsed = email.message_from_bytes(envelope.original_content or b"")
        parts: list[EmailMessage] = list(parsed.walk()) if parsed.is_multipart() else [parsed]
        text = ""
        for part in parts:
            if part.get_content_type() == "text/plain":
                raw = part.get_payload(decode=True)
                text += raw.decode(part.get_content_charset() or "utf-8") if isinstance(raw, bytes) else ""
        found.append(
            (str(email.header.make_header(email.header.decode_header(parsed["Subject"] or ""))), text)
        )
    return found


def _reports_settle() -> None:
    assert report_sender().idle_wait(60), "the day's report is still running"
    settle()


@time_machine.travel(NOW, tick=False)
def test_an_opened_position_and_the_digest_reach_an_smtp_server(
    fast: Settings, smtp: tuple[SmtpInbox, int], fake_coingecko: FakeCoinGecko, bitcoin: Instrument
) -> None:
    inbox, port = smtp
    fast.BARTER_NOTIFY_URLS = (f"mailto://127.0.0.1:{port}?from=barter@example.com&to=trader@example.com",)
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 105}}))
    strategy = _strategy("trend", bitcoin, stop_loss_ratio=0.1)

    opened = sync_new_trades()
    settle()

    assert opened["status"] == "ok"
    position = Position.objects.get(strategy=strategy)
    subjects = dict(_texts(inbox))
    opened_subject = f"Opened long trend BTC at {position.entry_price:,.2f}"
    assert opened_subject in subjects, subjects.keys()
    body = subjects[opened_subject]
    assert f"quantity {position.quantity.normalize():f}" in body and "stop-loss 94.50" in body
    assert "Stop-loss placed: trend BTC" in subjects  # the paper stop rests as it would on the exchange

    closed = sync_close_positions()
    _reports_settle()

    assert closed["status"] == "ok"
    digests = [(s, t) for s, t in _texts(inbox) if s.startswith("Barter digest 2024-01-11")]
    assert len(digests) == 1, [s for s, _ in _texts(inbox)]
    text = digests[0][1]
    assert "Barter daily digest for 2024-01-11 (UTC)" in text
    # Marked at the newest close (100): the position bought at 105 is worth less than it cost.
    equity = strategy.starting_cash - (position.entry_price * position.quantity + position.entry_fee)
    equity += Decimal(100) * position.quantity
    assert f"- trend: equity {equity:,.2f}" in text
    assert f"- trend BTC: {position.quantity.normalize():f} at 105.00, mark 100.00" in text
    assert "- open: 1 run(s), ok; 1 opened" in text and "- close: 1 run(s), ok" in text
    assert "- collect: no run for 2024-01-11" in text
    kept = DailyDigest.objects.get(as_of=AS_OF).equities
    assert list(kept) == [f"strategy:{strategy.pk}"] and Decimal(kept[f"strategy:{strategy.pk}"]) == equity

    sync_close_positions()  # a second close run the same day: skipped, and no second digest
    _reports_settle()
    assert len([s for s, _ in _texts(inbox) if s.startswith("Barter digest")]) == 1


@time_machine.travel(NOW, tick=False)
def test_without_the_daily_report_a_close_step_sends_no_digest(
    fast: Settings, webhook: tuple[Webhook, int], fake_coingecko: FakeCoinGecko, bitcoin: Instrument
) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    fast.BARTER_DAILY_REPORT = False
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 100}}))
    _strategy("trend", bitcoin)

    assert sync_close_positions()["status"] == "ok"
    _reports_settle()

    assert not DailyDigest.objects.exists() and state.requests == 0


@time_machine.travel(NOW, tick=False)
def test_a_channel_that_times_out_does_not_delay_or_fail_the_step_and_is_retried(
    fast: Settings,
    webhook: tuple[Webhook, int],
    fake_coingecko: FakeCoinGecko,
    bitcoin: Instrument,
    ethereum: Instrument,
) -> None:
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 100}, "ethereum": {"usd": 100}}))
    _strategy("warm", bitcoin)
    _strategy("slow channel", ethereum)
    sync_new_trades(instruments=["bitcoin"])  # no channel yet: the engine is warm for the measured run
    state, port = webhook
    state.hang_seconds = 5.0  # longer than the timeout: every attempt times out
    fast.BARTER_NOTIFY_TIMEOUT_SECONDS = 2.0
    fast.BARTER_NOTIFY_MAX_ATTEMPTS = 2
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)

    started = time.monotonic()
    summary = sync_new_trades(instruments=["ethereum"])
    elapsed = time.monotonic() - started

    assert summary["status"] == "ok"
    # One attempt alone would have held the step for the 2 s timeout.
    assert elapsed < fast.BARTER_NOTIFY_TIMEOUT_SECONDS, elapsed
    settle(timeout_seconds=30)
    delivery = Delivery.objects.get(event="position_opened")
    assert delivery.status == Delivery.Status.FAILED and delivery.attempts == 2
    attempts = History.objects.filter(run_id=delivery.pk).order_by("created_at", "id")
    assert [(row.kind, row.payload["attempt"], row.payload["final"]) for row in attempts] == [
        (HistoryKind.NOTIFICATION_FAILED, 1, False),
        (HistoryKind.NOTIFICATION_FAILED, 2, True),
    ]
    assert "timed out" in attempts[0].payload["error"].lower()


@time_machine.travel(NOW, tick=False)
def test_a_failed_step_is_told_with_its_errors(
    fast: Settings, webhook: tuple[Webhook, int], fake_coingecko: FakeCoinGecko, bitcoin: Instrument
) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 100}}))
    # Saved past the form's and the API's checks (as a hand edit in the database would be): its entry cannot run.
    _strategy(
        "trend", bitcoin, entry={"left": {"indicator": "no_such_indicator"}, "op": ">", "right": {"value": 0}}
    )

    summary = sync_new_trades()
    settle()

    assert summary["status"] == "failed"
    [(_, body, _)] = state.received
    assert body["title"] == "The open step failed for 2024-01-11 with 1 error(s)"
    assert f"Run {summary['run_id']} of the open step ended failed (day 2024-01-11)." in body["message"]
    assert f"- trend: {summary['errors'][0]['message']}" in body["message"]


def test_a_replay_tells_nobody(fast: Settings, webhook: tuple[Webhook, int], bitcoin: Instrument) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    strategy = _strategy("trend", bitcoin, stop_loss_ratio=0.1)
    broker = ReplayBroker()

    opened = sync_new_trades(as_of=date(2024, 1, 10), broker=broker, strategies=[strategy])
    settle()

    assert opened["live"] is False and Position.objects.filter(strategy=strategy).count() == 1
    assert Delivery.objects.count() == 0 and state.requests == 0


def _recorded_run(strategy: Strategy, rows: list[tuple[HistoryKind, str, dict[str, Any]]]) -> dict[str, Any]:
    """A finished open run of today whose events are ``rows`` (as the open step writes them)."""
    recorder = run_start(step=Step.OPEN, params={"as_of": AS_OF.isoformat()})
    for kind, message, payload in rows:
        recorder.event(kind, strategy=strategy, message=message, payload=payload)
    return recorder.finish(
        status=RunStatus.OK, summary={"as_of": AS_OF.isoformat(), "live": True, "results": []}
    )


@time_machine.travel(NOW, tick=False)
def test_halts_and_the_kill_switch_are_told_once_a_day(
    fast: Settings, webhook: tuple[Webhook, int], bitcoin: Instrument
) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    strategy = _strategy("trend", bitcoin)
    blocked = "trading is switched off for strategy trend (trading_enabled); exits still run"
    halt = "entries halted: equity 800.00 is 20.00% below the peak 1,000.00 (max_drawdown_halt_ratio); exits still run"

    _recorded_run(
        strategy,
        [
            (HistoryKind.HALT, halt, {"limit": "max_drawdown_halt_ratio", "began": True}),
            (HistoryKind.ENTRY_REFUSED, f"entry on BTC not sent: {blocked}", {"reason": blocked}),
            (HistoryKind.ENTRY_REFUSED, f"entry on ETH not sent: {blocked}", {"reason": blocked}),
            # a risk limit's refusal is not a halt of its own (the halt above says it)
            (
                HistoryKind.ENTRY_REFUSED,
                "entry on BTC refused",
                {"reason": "max_open_positions", "limit": "x"},
            ),
        ],
    )
    _recorded_run(
        strategy, [(HistoryKind.ENTRY_REFUSED, f"entry on BTC not sent: {blocked}", {"reason": blocked})]
    )
    settle()

    titles = sorted(body["title"] for _, body, _ in state.received)
    assert titles == ["Halted: strategy trend", "Kill switch: entries of trend not sent"]
    bodies = {body["title"]: body["message"] for _, body, _ in state.received}
    assert bodies["Halted: strategy trend"] == f"strategy trend: {halt}"
    assert blocked in bodies["Kill switch: entries of trend not sent"]


@time_machine.travel(NOW, tick=False)
def test_a_position_left_unprotected_is_told(
    fast: Settings, webhook: tuple[Webhook, int], fake_coingecko: FakeCoinGecko, bitcoin: Instrument
) -> None:
    fake_coingecko.add("/simple/price", json_reply({"bitcoin": {"usd": 100}}))
    strategy = _strategy("trend", bitcoin, stop_loss_ratio=0.1)
    sync_new_trades()
    position = Position.objects.get(strategy=strategy)
    position.protection = Position.Protection.UNPROTECTED
    position.save(update_fields=["protection"])
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    recorder = run_start(step=Step.CLOSE, params={"as_of": AS_OF.isoformat()})
    recorder.event(
        HistoryKind.ORDER_REJECTED,
        strategy=strategy,
        position=position,
        message="no stop-loss order for BTC: binance takes no stop-loss order on BTC/USDT",
    )
    recorder.finish(status=RunStatus.OK, summary={"as_of": AS_OF.isoformat(), "live": True, "results": []})
    _reports_settle()

    unprotected = [body for _, body, _ in state.received if body["title"].startswith("Unprotected")]
    assert [body["title"] for body in unprotected] == [
        "Unprotected: trend BTC has no stop-loss on the exchange"
    ]
    assert "the close step still applies the stop-loss (90.00)" in unprotected[0]["message"]


def test_a_missed_signal_in_the_audit_is_alerted(fast: Settings, webhook: tuple[Webhook, int]) -> None:
    day = date(2024, 3, 10)
    coins = []
    for coingecko_id, symbol in (("bitcoin", "BTC"), ("ethereum", "ETH")):
        coin = InstrumentFactory.create(coingecko_id=coingecko_id, symbol=symbol)
        flat_daily_candles(coin, day - timedelta(days=20), 22)
        coins.append(coin)
    strategy = _strategy(
        "both", *coins, starting_cash=Decimal(1000), sizing={"method": "equity_fraction", "value": 0.3}
    )
    broker = ReplayBroker()
    # ethereum's open step never ran that day: the backtest enters it, live did not
    sync_new_trades(as_of=day, broker=broker, strategies=[strategy], instruments=["bitcoin"])
    sync_close_positions(as_of=day, broker=broker, strategies=[strategy], instruments=["bitcoin"])
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)

    messages = daily_report(day + timedelta(days=1))
    settle()

    assert [m.key for m in messages] == [f"audit_mismatch:{strategy.pk}:2024-03-10", "digest:2024-03-11"]
    bodies = {body["title"]: body["message"] for _, body, _ in state.received}
    alert = bodies["Audit: 1 signal mismatch(es) in both on 2024-03-10"]
    assert "- the backtest has, live missed: entry ethereum" in alert
    digest = next(text for title, text in bodies.items() if title.startswith("Barter digest 2024-03-11"))
    assert "- both on 2024-03-10: signals missed 1, extra 0" in digest and "(DRIFTED)" in digest

    daily_report(day + timedelta(days=1))  # again: nothing more is sent
    settle()
    assert len(state.received) == 2


def test_the_missed_run_alarm_reaches_every_enabled_channel_once(
    fast: Settings, webhook: tuple[Webhook, int]
) -> None:
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port, "one"), webhook_url(port, "two"))
    fast.BARTER_RUN_DEADLINE = dt_time(3, 0)
    one, _two = channels_sync()
    Channel.objects.filter(pk=one.pk).update(events=[])  # its filter lets nothing through but the alarm

    with time_machine.travel(datetime(2026, 12, 3, 2, 59, tzinfo=UTC), tick=False):
        assert missed_run_check_task() is None
    with time_machine.travel(datetime(2026, 12, 3, 3, 1, tzinfo=UTC), tick=False):
        first = missed_run_check_task()
        again = missed_run_check_task()
    settle()

    assert first == again and first is not None and first["key"] == "missed_run:2026-12-03"
    assert sorted(path.split("/")[2] for path, _, _ in state.received) == ["one", "two"]
    assert {body["title"] for _, body, _ in state.received} == {
        "Barter: no daily cycle for 2026-12-03 by 03:00 UTC"
    }


def test_without_a_broker_a_request_raises_the_missed_run_alarm(
    fast: Settings, webhook: tuple[Webhook, int], client: Any
) -> None:
    # No beat in the embedded mode: a request (at most every reaper interval) checks for a missed daily cycle.
    state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    fast.BARTER_REAPER_ON_REQUEST = True
    fast.BARTER_REAPER_INTERVAL_SECONDS = 0
    fast.BARTER_RUN_DEADLINE = dt_time(3, 0)

    with time_machine.travel(datetime(2026, 12, 3, 3, 30, tzinfo=UTC), tick=False):
        client.get("/healthz")
        client.get("/healthz")
    settle()

    assert [body["title"] for _, body, _ in state.received] == [
        "Barter: no daily cycle for 2026-12-03 by 03:00 UTC"
    ]
    assert History.objects.filter(kind=HistoryKind.RUN_MISSED).count() == 1


def test_a_lost_report_is_started_again_by_the_flush_once_the_close_step_is_overdue(
    fast: Settings, webhook: tuple[Webhook, int]
) -> None:
    # The report's thread died with its process (or its task was lost): no digest for the day. The flush starts
    # the report again once the close step is older than REPORT_LEASE, and only while no digest exists.
    _state, port = webhook
    fast.BARTER_NOTIFY_URLS = (webhook_url(port),)
    close_at = datetime(2026, 12, 3, 0, 45, tzinfo=UTC)
    with time_machine.travel(close_at, tick=False):
        recorder = run_start(step=Step.CLOSE, params={"as_of": "2026-12-03"})
        recorder.finish(status=RunStatus.OK, summary={"as_of": "2026-12-03", "live": True, "results": []})
    _reports_settle()
    DailyDigest.objects.all().delete()  # as if the report had died before its digest
    Delivery.objects.all().delete()

    assert daily_report_due(now=close_at + REPORT_LEASE - timedelta(seconds=1)) is None
    with time_machine.travel(close_at + REPORT_LEASE + timedelta(seconds=1), tick=False):
        assert daily_report_due() == date(2026, 12, 3)
        _reports_settle()
        assert daily_report_due() is None  # the digest exists now

    assert DailyDigest.objects.filter(as_of=date(2026, 12, 3)).exists()
    assert Delivery.objects.get().key == "digest:2026-12-03"
