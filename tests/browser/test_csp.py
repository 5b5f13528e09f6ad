"""The Content-Security-Policy in a real browser: every kind of page (dashboard, simulator form, result with
charts, comparison, sweep, the admin, Swagger UI) loads and works under the header with no violation reported
(``tools/browser/run.cjs`` logs each ``securitypolicyviolation`` event to the console)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tests.browser.conftest import LiveBrowser
from tests.trading.factories import sma_cross_criteria

# The Content-Security-Policy header the page at this address is served with.
POLICY_OF_THIS_PAGE = "async () => (await fetch(location.href)).headers.get('content-security-policy')"


def _violations(console: list[dict[str, str]]) -> list[str]:
    return [
        m["text"]
        for m in console
        if "securitypolicyviolation" in m["text"] or "Content Security Policy" in m["text"]
    ]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_page_works_under_the_content_security_policy(live_browser: LiveBrowser) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from simulator.launch import simulation_start, sweep_start
    from simulator.services.requests import simulation_request_check
    from simulator.services.sweeps import sweep_create

    call_command("load_shipped_history", verbosity=0)
    User.objects.filter(username=live_browser.username).update(is_superuser=True)
    user = User.objects.get(username=live_browser.username)
    request = simulation_request_check(
        instruments=["bitcoin"],
        start=date(2019, 1, 1),
        end=date(2019, 12, 31),
        starting_cash=Decimal("10000"),
        criteria=sma_cross_criteria(stop_loss_ratio=0.06),
    )
    first, second = (simulation_start(request=request, created_by=user) for _ in range(2))
    axes = [{"path": "stop_loss_ratio", "values": [0.04, 0.08]}]
    sweep = sweep_create(request=request, axes=axes, created_by=user)
    sweep_start(sweep=sweep)  # no transaction here: sent (in-process) at once

    pages = [
        ("/", "table, main"),
        ("/simulator/", "#simulator-form"),
        (f"/simulator/runs/{first.pk}/", "#chart-equity canvas"),
        ("/simulator/runs/", "#compare-form"),
        (f"/simulator/compare/?ids={first.pk}&ids={second.pk}", "main canvas"),
        (f"/simulator/sweeps/{sweep.pk}/", "main table"),
        ("/admin/", "#content"),
        ("/admin/trading/strategy/add/", "#strategy_form"),
        ("/admin/positions/position/", "#changelist"),
        ("/admin/axes/accessattempt/", "#changelist"),
        ("/api/docs/", "#swagger-ui .info"),
    ]
    steps: list[dict[str, object]] = []
    for path, ready in pages:
        steps += [
            {"do": "goto", "name": path, "url": live_browser.url(path)},
            {"do": "waitFor", "selector": ready, "state": "attached"},
            {"do": "evaluate", "name": f"policy of {path}", "function": POLICY_OF_THIS_PAGE},
        ]
    # htmx under the policy: adding a condition row fetches and swaps in a fragment.
    steps += [
        {"do": "goto", "url": live_browser.url("/simulator/")},
        {"do": "count", "name": "rows before", "selector": "[data-row]"},
        {"do": "click", "selector": "button.add-row"},
        {"do": "waitFor", "selector": "[data-row]:nth-of-type(2)", "state": "attached"},
        {"do": "count", "name": "rows after", "selector": "[data-row]"},
    ]

    result = live_browser.run(steps, login_next="/")

    assert all(result.step(path)["status"] == 200 for path, _ in pages)
    for path, _ in pages:  # each page was loaded under the policy
        policy = result.step(f"policy of {path}")["value"] or ""
        directives = {d.strip().split(" ", 1)[0]: d.strip() for d in policy.split(";") if d.strip()}
        # In any order: the directive, exactly (no 'unsafe-inline' or another source beside 'self').
        assert directives.get("script-src") == "script-src 'self'", (path, policy)
        assert directives.get("default-src") == "default-src 'self'", (path, policy)
    assert result.step("rows after")["count"] > result.step("rows before")["count"]
    assert _violations(result.console) == []
    assert result.page_errors == []
