"""The daily audit (positions.audit, docs/audit.md): live against the engine's backtest over the stored candles."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from pytest_django import DjangoAssertNumQueries

from instruments.models import Instrument
from positions.audit import AuditDayError, audit_day
from positions.cycle.close import sync_close_positions
from positions.cycle.manual import position_close_manual
from positions.cycle.open import sync_new_trades
from positions.drift import drift_lines
from positions.execution.paper import ReplayBroker
from positions.models import Position, StrategyAudit
from positions.selectors import dashboard_read
from runs.models import History, HistoryKind
from tests.instruments.factories import InstrumentFactory, flat_daily_candles
from trading.models import Portfolio, PortfolioStrategy, Strategy

# -- mismatches, idempotency, errors: flat synthetic candles ----------------------------------------------------

DAY = date(2024, 3, 10)
ALWAYS = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}
NEVER = {"left": {"indicator": "close"}, "op": ">", "right": {"value": 1_000_000}}


def _paper(name: str, entry: dict[str, Any], coins: list[str]) -> Strategy:
    strategy = Strategy.objects.create(
        name=name,
        is_enabled=True,
        starting_cash=Decimal(1000),
        criteria={
            "version": 1,
            "side": "long",
            "entry": entry,
            "exit": None,
            "fee_rate": 0.001,
            "slippage_ratio": 0.0,
            "sizing": {"method": "equity_fraction", "value": 0.3},
        },
    )
    strategy.instruments.set(Instrument.objects.filter(coingecko_id__in=coins))
    return strategy


@pytest.fixture
def coins() -> list[Instrument]:
    """Bitcoin and ethereum with flat daily candles (open 100, high 110, low 90, close 100) through DAY + 1."""
    made = [
        InstrumentFactory.create(coingecko_id=c, symbol=s)
        for c, s in (("bitcoin", "BTC"), ("ethereum", "ETH"))
    ]
    for instrument in made:
        flat_daily_candles(instrument, DAY - timedelta(days=20), 22)
    return made


def _steps(strategy: Strategy, day: date, instruments: list[str] | None = None) -> None:
    broker = ReplayBroker()
    sync_new_trades(as_of=day, broker=broker, strategies=[strategy], instruments=instruments)
    sync_close_positions(as_of=day, broker=broker, strategies=[strategy], instruments=instruments)


def _mismatch_rows(strategy: Strategy) -> list[dict[str, Any]]:
    return [
        row.payload
        for row in History.objects.filter(kind=HistoryKind.SIGNAL_MISMATCH, strategy=strategy).order_by("id")
    ]


@pytest.mark.django_db
def test_an_open_step_that_did_not_run_for_an_instrument_is_a_missed_entry_recorded_once(
    coins: list[Instrument],
) -> None:
    strategy = _paper("both", ALWAYS, ["bitcoin", "ethereum"])
    _steps(strategy, DAY, instruments=["bitcoin"])  # ethereum's open step never ran that day

    (audit,) = audit_day(as_of=DAY)

    assert audit.backtest_entries == ["bitcoin", "ethereum"] and audit.live_entries == ["bitcoin"]
    assert audit.missed == [{"instrument": "ethereum", "signal": "entry", "reason": ""}]
    assert audit.extra == [] and audit.signal_mismatches == 1
    assert audit.open_mismatches == 1  # the backtest holds ethereum at the end of the day, live does not
    assert [r["instrument"] for r in audit.open_backtest] == ["bitcoin", "ethereum"]
    assert [r["instrument"] for r in audit.open_live] == ["bitcoin"]
    # Live kept the 30 % it did not spend on ethereum: 0.3 of the equity after the bitcoin entry (the engine
    # enters in key order, sizing each on the equity then, fees included in the spend).
    assert audit.cash_backtest == Decimal(1000) - 300 - 300
    assert audit.cash_drift == 300
    [row] = _mismatch_rows(strategy)
    assert row == {
        "as_of": DAY.isoformat(),
        "side": "backtest_only",
        "instrument": "ethereum",
        "signal": "entry",
        "reason": "",
    }
    fields = (
        "missed",
        "extra",
        "fills",
        "slippage_bps",
        "fee_drift",
        "cash_live",
        "cash_backtest",
        "open_live",
        "details",
    )
    before = [getattr(audit, f) for f in fields]

    (again,) = audit_day(as_of=DAY)  # idempotent: the same row, the same values, no second History row

    assert again.pk == audit.pk and StrategyAudit.objects.count() == 1
    assert [getattr(again, f) for f in fields] == before
    assert len(_mismatch_rows(strategy)) == 1


@pytest.mark.django_db
def test_a_position_opened_by_hand_is_an_extra_entry(coins: list[Instrument]) -> None:
    strategy = _paper("never", NEVER, ["bitcoin"])
    _steps(strategy, DAY)  # live (its open step ran), entering nothing
    bitcoin = coins[0]
    Position.objects.create(
        strategy=strategy,
        instrument=bitcoin,
        quantity=Decimal(2),
        entry_price=Decimal(101),
        entry_at=datetime(DAY.year, DAY.month, DAY.day, 9, 30, tzinfo=UTC),
        entry_fee=Decimal("0.202"),
    )

    (audit,) = audit_day(as_of=DAY)

    assert audit.backtest_entries == [] and audit.live_entries == ["bitcoin"]
    assert audit.extra == [{"instrument": "bitcoin", "signal": "entry", "reason": ""}] and audit.missed == []
    [row] = _mismatch_rows(strategy)
    assert row["side"] == "live_only" and row["instrument"] == "bitcoin" and row["signal"] == "entry"
    # Its fill against the model: 101 paid against the open 100 (no slippage modelled): +100 bps; the fee is the
    # model's 0.1 % of 100 * 2 = 0.2, paid 0.202.
    assert audit.slippage_bps == Decimal("100.0000")
    assert audit.slippage_cost == Decimal("2.000000")
    assert audit.fee_drift == Decimal("0.002000")
    assert audit.cash_live == Decimal(1000) - Decimal(202) - Decimal("0.202") and audit.cash_backtest == 1000


@pytest.mark.django_db
def test_a_position_closed_by_hand_is_an_extra_exit_and_the_backtests_position_is_still_open(
    coins: list[Instrument],
) -> None:
    strategy = _paper("btc", ALWAYS, ["bitcoin"])
    _steps(strategy, DAY - timedelta(days=1))
    position = Position.objects.get(strategy=strategy)
    position_close_manual(position=position, price=Decimal(100))
    Position.objects.filter(pk=position.pk).update(
        exit_at=datetime(DAY.year, DAY.month, DAY.day, 8, tzinfo=UTC)
    )
    _steps(strategy, DAY)  # enters bitcoin again: the backtest still holds it, so enters nothing

    (audit,) = audit_day(as_of=DAY)

    assert audit.extra == [
        {"instrument": "bitcoin", "signal": "entry", "reason": ""},
        {"instrument": "bitcoin", "signal": "exit", "reason": "manual"},
    ]
    assert audit.missed == [] and audit.signal_mismatches == 2
    assert (
        [r["instrument"] for r in audit.open_live]
        == [r["instrument"] for r in audit.open_backtest]
        == ["bitcoin"]
    )


@pytest.mark.django_db
def test_a_strategy_whose_audit_fails_leaves_the_others_audited_and_the_run_partial(
    coins: list[Instrument],
) -> None:
    good = _paper("good", ALWAYS, ["bitcoin"])
    _steps(good, DAY)
    broken = _paper("broken", ALWAYS, ["ethereum"])
    _steps(broken, DAY)
    Strategy.objects.filter(pk=broken.pk).update(criteria={"version": 1, "entry": "not a condition"})

    audits = audit_day(as_of=DAY)

    assert [a.strategy.name for a in audits] == ["good"]
    assert not StrategyAudit.objects.filter(strategy=broken).exists()
    finished = History.objects.get(kind=HistoryKind.RUN_FINISHED, step="audit")
    assert finished.status == "partial"
    assert [e["strategy"] for e in finished.payload["errors"]] == ["broken"]
    assert History.objects.filter(kind=HistoryKind.ERROR, strategy=broken, run_id=finished.run_id).exists()


@pytest.mark.django_db
def test_only_live_strategies_are_audited_and_only_complete_days(coins: list[Instrument]) -> None:
    live = _paper("live", ALWAYS, ["bitcoin"])
    _steps(live, DAY)
    disabled = _paper("disabled", ALWAYS, ["bitcoin"])
    _steps(disabled, DAY)
    Strategy.objects.filter(pk=disabled.pk).update(is_enabled=False)
    _paper("never-ran", ALWAYS, ["bitcoin"])

    assert [a.strategy.name for a in audit_day(as_of=DAY)] == ["live"]
    assert audit_day(as_of=DAY - timedelta(days=1)) == []  # before its first live day
    with pytest.raises(AuditDayError, match="as_of must be before today"):
        audit_day(as_of=timezone.now().date())


@pytest.mark.django_db
def test_the_audit_day_command(coins: list[Instrument]) -> None:
    strategy = _paper("both", ALWAYS, ["bitcoin", "ethereum"])
    _steps(strategy, DAY, instruments=["bitcoin"])
    out = StringIO()

    call_command("audit_day", "--as-of", DAY.isoformat(), stdout=out)

    assert "both 2024-03-10: 1 signal mismatch(es) (1 missed, 0 extra)" in out.getvalue()
    with pytest.raises(
        CommandError, match=r"--as-of must be a date like 2024-01-31 \(YYYY-MM-DD\); was '2024-13-01'"
    ):
        call_command("audit_day", "--as-of", "2024-13-01")
    with pytest.raises(CommandError, match="as_of must be before today"):
        call_command("audit_day", "--as-of", timezone.now().date().isoformat())
    with pytest.raises(CommandError, match="unknown strategy 'nope'; known: both"):
        call_command("audit_day", "--strategy", "nope")


@pytest.mark.django_db
def test_the_dashboard_shows_the_drift_table_with_a_mismatch_as_an_error(
    coins: list[Instrument], client: Client, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    clean = _paper("clean", ALWAYS, ["bitcoin"])
    drifted = _paper("drifted", ALWAYS, ["bitcoin", "ethereum"])
    for day in (DAY - timedelta(days=1), DAY):
        _steps(clean, day)
        _steps(drifted, day, instruments=["bitcoin"])  # ethereum never entered: missed on the first day only
        audit_day(as_of=day)
    # The next day's entry is missed no more (the backtest holds ethereum, so enters nothing), but the open
    # positions still differ; the drift table shows the latest day and the two days summed.
    with django_assert_num_queries(3):
        lines = drift_lines()
    assert [(line.latest.strategy.name, line.latest.as_of, line.days) for line in lines] == [
        ("clean", DAY, 2),
        ("drifted", DAY, 2),
    ]
    assert [line.signal_mismatches for line in lines] == [0, 1]
    assert [line.open_mismatch_days for line in lines] == [0, 2]
    assert dashboard_read().drift == lines  # the Dashboard carries it for a digest
    client.force_login(User.objects.create_superuser("boss", password="unused-password-123"))

    page = client.get("/").content.decode()

    table = page[page.index('<table id="drift">') :]
    table = table[: table.index("</table>")]
    clean_row = table[table.index('data-drift="clean"') :]
    clean_row = clean_row[: clean_row.index("</tr>")]
    drifted_row = table[table.index('data-drift="drifted"') :]
    drifted_row = drifted_row[: drifted_row.index("</tr>")]
    assert 'class="error"' not in clean_row and "mismatch</span>" not in clean_row
    assert 'class="error"' in drifted_row and 'data-field="mismatch">mismatch</span>' in drifted_row
    assert '<td class="num loss" data-field="signal_mismatches">1</td>' in drifted_row
    assert '<td class="num" data-field="days">2</td>' in drifted_row
    assert '<td class="num" data-field="signal_mismatches">0</td>' in clean_row
    # It entered the day before (at the open: 0 bps) and filled nothing on its latest day.
    assert '<td class="num" data-field="slippage_bps"><span class="muted">no fill</span></td>' in clean_row
    assert StrategyAudit.objects.get(strategy=clean, as_of=DAY - timedelta(days=1)).slippage_bps == 0
    cash_drift = StrategyAudit.objects.get(strategy=drifted, as_of=DAY).cash_drift
    assert cash_drift > 0
    assert f'<td class="num" data-field="cash_drift">{cash_drift:,.2f}</td>' in drifted_row


@pytest.mark.django_db
def test_portfolio_members_are_audited_against_the_portfolios_backtest(coins: list[Instrument]) -> None:
    first = _paper("member-btc", ALWAYS, ["bitcoin"])
    second = _paper("member-eth", ALWAYS, ["ethereum"])
    portfolio = Portfolio.objects.create(name="pf", starting_cash=Decimal(1000), is_enabled=True)
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=first, weight=Decimal("0.5"), order=0)
    PortfolioStrategy.objects.create(portfolio=portfolio, strategy=second, weight=Decimal("0.5"), order=1)
    broker = ReplayBroker()
    for day in (DAY - timedelta(days=1), DAY):
        sync_new_trades(as_of=day, broker=broker, strategies=[first, second])
        sync_close_positions(as_of=day, broker=broker, strategies=[first, second])
    assert Position.objects.filter(portfolio=portfolio).count() == 2

    audits = {a.strategy.name: a for a in audit_day(as_of=DAY - timedelta(days=1))}

    assert audits["member-btc"].live_entries == audits["member-btc"].backtest_entries == ["bitcoin"]
    assert audits["member-eth"].live_entries == audits["member-eth"].backtest_entries == ["ethereum"]
    for audit in audits.values():
        assert audit.signal_mismatches == 0 and audit.open_mismatches == 0
        assert audit.cash_drift == 0 and audit.fee_drift == 0 and audit.slippage_bps == 0
        assert audit.details["cash_scope"] == "portfolio pf"
    # The portfolio's cash is shared: both members report it, less what both entries cost.
    spent = sum(
        (p.entry_price * p.quantity + p.entry_fee for p in Position.objects.filter(portfolio=portfolio)),
        Decimal(0),
    )
    assert (
        audits["member-btc"].cash_live
        == audits["member-eth"].cash_live
        == (1000 - spent).quantize(Decimal("0.000001"))
    )
