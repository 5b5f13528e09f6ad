"""The simulator in a real browser: an SMA crossover on the shipped BTC history, from the form to the charts."""

from __future__ import annotations

import pytest

from simulator.models import Simulation
from tests.browser.conftest import LiveBrowser

# The canvases of every chart of the result page, and whether each drew something (a pixel that is not blank).
CHARTS_DREW = """
() => {
  const drew = {};
  for (const id of ["chart-candles-BTC", "chart-equity", "chart-drawdown"]) {
    const box = document.getElementById(id);
    const canvases = box ? [...box.querySelectorAll("canvas")] : [];
    drew[id] = canvases.some((canvas) => {
      if (!canvas.width || !canvas.height) return false;
      const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
      return false;
    });
  }
  return drew;
}
"""


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_sma_crossover_on_the_shipped_btc_history_draws_its_charts_and_lists_every_trade(
    live_browser: LiveBrowser,
) -> None:
    from django.core.management import call_command

    from instruments.models import Instrument

    call_command("load_shipped_history", verbosity=0)
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#simulator-form"},
            {"do": "select", "selector": "#id_instruments", "value": [str(bitcoin.pk)]},
            {"do": "fill", "selector": "input[name='start']", "value": "2018-01-01"},
            {"do": "fill", "selector": "input[name='end']", "value": "2022-12-31"},
            {"do": "fill", "selector": "input[name='entry-0-left_period']", "value": "20"},
            {"do": "fill", "selector": "input[name='entry-0-right_period']", "value": "50"},
            {"do": "fill", "selector": "input[name='exit-0-left_period']", "value": "20"},
            {"do": "fill", "selector": "input[name='exit-0-right_period']", "value": "50"},
            {"do": "fill", "selector": "input[name='stop_loss_pct']", "value": "8"},
            {"do": "click", "selector": "#run-button"},
            {"do": "waitForUrl", "name": "result", "url": "**/simulator/runs/*/"},
            {"do": "waitFor", "selector": "#chart-equity canvas"},
            {"do": "waitFor", "selector": "#chart-candles-BTC canvas"},
            {"do": "evaluate", "name": "drew", "function": CHARTS_DREW},
            {"do": "count", "name": "rows", "selector": "#trades tbody tr"},
            {
                "do": "evaluate",
                "name": "n_trades",
                "expression": "document.getElementById('trades').dataset.nTrades",
            },
            {"do": "screenshot", "path": "simulator-result.png"},
        ],
        login_next="/simulator/",
    )

    simulation = Simulation.objects.get()
    assert result.step("result")["url"].endswith(f"/simulator/runs/{simulation.pk}/")
    assert simulation.criteria["stop_loss_ratio"] == 0.08  # 8 % in the form, a ratio inside
    assert simulation.criteria["entry"]["all"][0]["right"]["period"] == 50
    assert result.step("drew")["value"] == {
        "chart-candles-BTC": True,
        "chart-equity": True,
        "chart-drawdown": True,
    }
    n_trades = simulation.statistics["n_trades"]
    assert n_trades > 5
    assert int(result.step("n_trades")["value"]) == n_trades
    assert result.step("rows")["count"] == n_trades
    assert result.page_errors == []
    assert live_browser.artifact("simulator-result.png").stat().st_size > 10_000


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_form_says_what_dates_past_an_instruments_data_will_use_before_the_run(
    live_browser: LiveBrowser,
) -> None:
    """Issue 13, item 3: ETH's shipped data ends 2020-01-17; with dates to 2024 the form says, next to the dates,
    that the run will use the days with data and that ETH trades only until its data ends."""
    from django.core.management import call_command

    from instruments.models import Instrument

    call_command("load_shipped_history", verbosity=0)
    ethereum = Instrument.objects.get(coingecko_id="ethereum")
    bitcoin = Instrument.objects.get(coingecko_id="bitcoin")

    result = live_browser.run(
        [
            {"do": "waitFor", "selector": "#simulator-form"},
            {"do": "select", "selector": "#id_instruments", "value": [str(ethereum.pk)]},
            {"do": "fill", "selector": "input[name='start']", "value": "2019-04-21"},
            {"do": "fill", "selector": "input[name='end']", "value": "2024-04-20"},
            {
                "do": "evaluate",
                "name": "eth",
                "expression": "document.getElementById('coverage-note').textContent",
            },
            {"do": "select", "selector": "#id_instruments", "value": [str(ethereum.pk), str(bitcoin.pk)]},
            {
                "do": "evaluate",
                "name": "both",
                "expression": "document.getElementById('coverage-note').textContent",
            },
            {"do": "fill", "selector": "input[name='end']", "value": "2019-12-31"},
            {
                "do": "evaluate",
                "name": "inside",
                "expression": "document.getElementById('coverage-note').hidden",
            },
            {"do": "fill", "selector": "input[name='end']", "value": "2024-04-20"},
            {"do": "select", "selector": "#id_instruments", "value": [str(ethereum.pk)]},
            {"do": "screenshot", "path": "simulator-coverage-note.png"},
        ],
        login_next="/simulator/",
    )

    eth = result.step("eth")["value"]
    assert "The run will use 2019-04-21 to 2020-01-17" in eth
    assert "ETH's data ends 2020-01-17: it trades only until then" in eth
    both = result.step("both")["value"]
    assert "The run will use" not in both  # bitcoin has data to 2024-04-20
    assert "ETH's data ends 2020-01-17" in both
    assert result.step("inside")["value"] is True
    assert result.page_errors == []
