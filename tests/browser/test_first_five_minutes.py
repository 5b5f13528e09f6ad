"""What a new user sees first, on a 1,400 x 900 screen: the dashboard (stale data said, replay accounts apart, why
nothing opened) and the admin's change lists (readable decimals, no horizontal scrolling). Screenshots are saved as
artifacts (``dashboard-1400.png``, ``admin-<model>-1400.png``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tests.browser.conftest import LiveBrowser

SCREEN = (1400, 900)
#: The page's own width beyond the window's: more than 0 means a horizontal scroll bar.
#: The open position's row of the positions' change list (Playwright's :text-is).
OPEN_ROW = "#result_list tr:has(td.field-status:text-is('Open'))"
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _book() -> None:
    """Shipped-history-like candles ending 2024-04-20, a live strategy, a replay account, an open position and an
    order carrying 18-decimal values."""
    from positions.models import Order
    from tests.instruments.factories import CandleFactory, InstrumentFactory
    from tests.trading.factories import PositionFactory, StrategyFactory

    bitcoin = InstrumentFactory.create(coingecko_id="bitcoin", symbol="BTC", name="Bitcoin")
    ether = InstrumentFactory.create(coingecko_id="ethereum", symbol="ETH", name="Ethereum")
    for instrument in (bitcoin, ether):
        for n in range(5):
            CandleFactory.create(
                instrument=instrument,
                open_time=datetime(2024, 4, 16, tzinfo=UTC) + timedelta(days=n),
                open=Decimal("64940.580000000000000000") + n,
                volume=Decimal("541.455450000000000000"),
                source="file:BTC_USDT-1h.feather rolled up 1h->1d",
            )
    trend = StrategyFactory.create(name="SMA 20/50 trend", instruments=[bitcoin, ether], is_enabled=True)
    replay = StrategyFactory.create(
        name="SMA 20/50 trend [replay 2023-04-23..2024-04-21 20261203T125643398921]", instruments=[bitcoin]
    )
    PositionFactory.create(
        strategy=trend,
        instrument=bitcoin,
        quantity=Decimal("0.153846153846153846"),
        entry_price=Decimal("64940.580000000000000000"),
        entry_fee=Decimal("9.991000000000000000"),
    )
    PositionFactory.create(strategy=replay, instrument=bitcoin, closed=True)
    Order.objects.create(
        strategy=trend,
        instrument=bitcoin,
        as_of=date(2024, 4, 20),
        side=Order.Side.SELL,
        type=Order.Type.STOP_LOSS,
        purpose=Order.Purpose.PROTECTION,
        quantity=Decimal("0.153846153846153846"),
        price=Decimal("59745.333600000000000000"),
        status=Order.Status.OPEN,
        exchange_id="paper",
        market_symbol="BTC/USD",
        client_order_id="barter-stop-0123456789abcdef0123456",
    )


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_and_the_admin_change_lists_fit_a_1400_px_screen(live_browser: LiveBrowser) -> None:
    _book()
    pages = {
        "dashboard": "/",
        "position": "/admin/positions/position/",
        "order": "/admin/positions/order/",
        "instrumentohlc": "/admin/instruments/instrumentohlc/",
        "strategy": "/admin/trading/strategy/",
        "instrument": "/admin/instruments/instrument/",
    }
    steps: list[dict[str, object]] = []
    for name, path in pages.items():
        shot = "dashboard-1400.png" if name == "dashboard" else f"admin-{name}-1400.png"
        steps += [
            {"do": "goto", "name": f"{name} page", "url": live_browser.url(path)},
            {"do": "evaluate", "name": f"{name} overflow", "expression": OVERFLOW},
            {"do": "screenshot", "name": f"{name} shot", "path": shot, "fullPage": True},
        ]
    steps += [
        {"do": "goto", "url": live_browser.url("/")},
        {"do": "text", "name": "stale", "selector": "#stale-data"},
        {"do": "text", "name": "replays", "selector": "#replays"},
        {"do": "text", "name": "today", "selector": "#strategies td[data-field='today']"},
        {"do": "goto", "url": live_browser.url("/admin/positions/position/")},
        {"do": "text", "name": "quantity", "selector": OPEN_ROW + " td.field-quantity"},
        {"do": "text", "name": "entry price", "selector": OPEN_ROW + " td.field-entry_price"},
        {"do": "goto", "url": live_browser.url("/admin/positions/order/")},
        {"do": "text", "name": "order price", "selector": "td.field-price"},
    ]

    result = live_browser.run(steps, login_next="/", viewport=SCREEN)

    for name in pages:
        assert result.step(f"{name} overflow")["value"] <= 0, f"{name} scrolls sideways at 1,400 px"
        assert live_browser.artifact(
            f"{'dashboard' if name == 'dashboard' else 'admin-' + name}-1400.png"
        ).is_file()
    stale = result.step("stale")["text"]
    assert "the newest daily candle is of 2024-04-20" in stale and "manage.py sync_data" in stale
    replays = result.step("replays")["text"]
    assert (
        "SMA 20/50 trend" in replays and "2023-04-23 .. 2024-04-21" in replays and "20261203T" not in replays
    )
    assert "the open step has not run today" in result.step("today")["text"]
    assert result.step("quantity")["text"] == "0.15384615"
    assert result.step("entry price")["text"] == "64,940.58"
    assert result.step("order price")["text"] == "59,745.3336"
