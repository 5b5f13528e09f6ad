"""The simulator form in a real browser when the server answers with an error instead of the form: a body over
the upload limit (413) is a message above the form, never nothing, and what was typed stays."""

from __future__ import annotations

import json

import pytest
from pytest_django import Settings

from simulator.models import Simulation
from tests.browser.conftest import LiveBrowser
from tests.trading.factories import sma_cross_criteria


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_form_over_the_upload_limit_shows_a_message_and_keeps_the_input(
    live_browser: LiveBrowser, settings: Settings
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 20_000
    pasted = json.dumps(sma_cross_criteria(), indent=2) + " " * 30_000

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#simulator-form"},
            # Marked as typed in, so ticking the toggle does not refill the box from the builder meanwhile.
            {
                "do": "evaluate",
                "expression": "document.getElementById('id_criteria_json').setAttribute('data-edited', '1')",
            },
            {"do": "check", "selector": "[data-advanced-toggle]"},
            {"do": "fill", "selector": "#id_criteria_json", "value": pasted},
            {"do": "click", "selector": "#run-button"},
            {"do": "waitFor", "selector": "[data-request-error]", "state": "visible"},
            {"do": "text", "name": "message", "selector": "[data-request-error]"},
            {
                "do": "evaluate",
                "name": "typed",
                "expression": "document.getElementById('id_criteria_json').value.length",
            },
            {"do": "screenshot", "path": "simulator-413.png"},
        ],
        login_next="/simulator/",
    )

    message = result.step("message")["text"]
    assert "too large" in message, message
    assert int(result.step("typed")["value"]) == len(pasted)
    assert not Simulation.objects.exists()
