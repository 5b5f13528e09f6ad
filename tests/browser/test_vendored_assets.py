"""The vendored front-end libraries (htmx, TradingView lightweight-charts) are served by the app, carry their
licences and attribution, and work in a real browser on a logged-in page: htmx loads and a candlestick chart
draws its candles."""

from __future__ import annotations

import dataclasses
import urllib.request
from pathlib import Path

import pytest
from django.template.loader import render_to_string
from django.templatetags.static import static
from pytest_django.live_server_helper import LiveServer

from tests.browser.conftest import LiveBrowser

VENDOR = Path(__file__).resolve().parents[2] / "simulator" / "static" / "simulator" / "vendor"
HTMX = "simulator/vendor/htmx.min.js"
CHARTS = "simulator/vendor/lightweight-charts.standalone.production.js"

# Five daily candles: three up (close > open), two down. Colours are unusual on purpose, so that counting
# pixels of exactly these colours finds candle bodies and nothing else.
UP_RGB = (0, 200, 83)
DOWN_RGB = (213, 0, 249)
CANDLES = [
    {"time": "2024-01-01", "open": 100, "high": 112, "low": 96, "close": 110},
    {"time": "2024-01-02", "open": 110, "high": 115, "low": 101, "close": 104},
    {"time": "2024-01-03", "open": 104, "high": 121, "low": 103, "close": 119},
    {"time": "2024-01-04", "open": 119, "high": 120, "low": 107, "close": 108},
    {"time": "2024-01-05", "open": 108, "high": 126, "low": 106, "close": 124},
]

# Draw CANDLES into a 640x320 div appended to <main>, wait two frames for the chart to paint, then count the
# canvas pixels of exactly the up and down colours. Returns the counts and the chart's own links.
DRAW_CHART = """
async ({candles, up, down}) => {
  const box = document.createElement("div");
  box.id = "chart-probe";
  box.style.cssText = "width: 640px; height: 320px";
  document.querySelector("main").append(box);
  const rgb = (c) => `rgb(${c.join(",")})`;
  const chart = LightweightCharts.createChart(box, {width: 640, height: 320});
  const series = chart.addSeries(LightweightCharts.CandlestickSeries, {
    upColor: rgb(up), downColor: rgb(down), borderVisible: false,
    wickUpColor: rgb(up), wickDownColor: rgb(down), priceLineVisible: false, lastValueVisible: false,
  });
  series.setData(candles);
  chart.timeScale().fitContent();
  await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  const counts = {up: 0, down: 0, canvases: 0};
  for (const canvas of box.querySelectorAll("canvas")) {
    counts.canvases += 1;
    if (!canvas.width || !canvas.height) continue;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < pixels.length; i += 4) {
      const [r, g, b, a] = [pixels[i], pixels[i + 1], pixels[i + 2], pixels[i + 3]];
      if (a !== 255) continue;
      if (r === up[0] && g === up[1] && b === up[2]) counts.up += 1;
      if (r === down[0] && g === down[1] && b === down[2]) counts.down += 1;
    }
  }
  counts.links = [...box.querySelectorAll("a")].map((a) => a.href);
  counts.bars = series.data().length;
  return counts;
}
"""


@pytest.mark.parametrize(
    ("asset", "first_bytes"),
    [(HTMX, b"var htmx="), (CHARTS, b"/*!\n * @license\n * TradingView Lightweight Charts")],
    ids=["htmx", "lightweight-charts"],
)
def test_the_app_serves_the_vendored_scripts_as_javascript(
    live_server: LiveServer, asset: str, first_bytes: bytes
) -> None:
    url = live_server.url + static(asset)  # http://localhost:<port>/static/simulator/vendor/...
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a loopback http URL
        body = response.read()
        assert response.status == 200
        assert "javascript" in response.headers["Content-Type"]
    assert body == (VENDOR / Path(asset).name).read_bytes()
    assert body.startswith(first_bytes)


def test_each_vendored_library_sits_beside_its_licence_and_versions() -> None:
    assert "Zero-Clause BSD" in (VENDOR / "htmx.LICENSE").read_text()
    assert "Apache License" in (VENDOR / "lightweight-charts.LICENSE").read_text()
    assert "TradingView, Inc." in (VENDOR / "lightweight-charts.NOTICE").read_text()
    assert "Copyright (c) 2019 TradingView, Inc" in (VENDOR / "fancy-canvas.LICENSE").read_text()
    versions = {line.split()[0]: line.split()[1] for line in (VENDOR / "VERSIONS").read_text().splitlines()}
    assert versions["htmx.org"].startswith("2.")
    assert versions["lightweight-charts"].startswith("5.")
    # The header of the copied build names the version VERSIONS records: the copy is the pinned one.
    assert (
        f"Lightweight Charts™ v{versions['lightweight-charts']}\n" in (VENDOR / Path(CHARTS).name).read_text()
    )


def test_the_chart_attribution_names_tradingview_and_links_to_it() -> None:
    html = render_to_string("simulator/_chart_attribution.html")

    assert "TradingView Lightweight Charts™" in html
    assert "Copyright (c) 2023 TradingView, Inc." in html
    assert '<a href="https://www.tradingview.com/"' in html


@pytest.mark.browser
def test_the_logged_in_dashboard_loads_htmx_and_draws_a_candlestick_chart(live_browser: LiveBrowser) -> None:
    result = live_browser.run(
        [
            {"do": "text", "name": "heading", "selector": "main h1"},
            {"do": "addScriptTag", "url": live_browser.url(static(HTMX))},
            {"do": "addScriptTag", "url": live_browser.url(static(CHARTS))},
            {
                "do": "evaluate",
                "name": "globals",
                "function": "() => ({htmx: htmx.version, createChart: typeof LightweightCharts.createChart})",
            },
            {
                "do": "evaluate",
                "name": "chart",
                "function": DRAW_CHART,
                "arg": {"candles": CANDLES, "up": UP_RGB, "down": DOWN_RGB},
            },
            {"do": "count", "name": "canvases", "selector": "#chart-probe canvas"},
            {"do": "screenshot", "path": "dashboard-with-chart.png"},
            {"do": "screenshot", "path": "chart.png", "selector": "#chart-probe"},
        ],
        login_next="/",
    )

    assert result.steps[0]["url"].endswith("/admin/login/?next=/")  # logged in through the admin login page
    assert result.step("heading")["text"] == "Dashboard"
    assert result.step("globals")["value"]["htmx"].startswith("2.")
    assert result.step("globals")["value"]["createChart"] == "function"
    chart = result.step("chart")["value"]
    assert chart["bars"] == len(CANDLES)
    assert result.step("canvases")["count"] >= 1
    assert chart["up"] > 0, "no up-candle body was painted"
    assert chart["down"] > 0, "no down-candle body was painted"
    # lightweight-charts' own attribution link (layout.attributionLogo, on by default) is on the chart.
    assert any(link.startswith("https://www.tradingview.com/") for link in chart["links"])
    assert result.page_errors == []
    assert (live_browser.artifacts / "dashboard-with-chart.png").stat().st_size > 0
    assert (live_browser.artifacts / "chart.png").stat().st_size > 0


@pytest.mark.browser
def test_a_failed_step_is_reported_with_the_step_and_a_screenshot(live_browser: LiveBrowser) -> None:
    steps = dataclasses.replace(live_browser, password="not-the-password").login_steps("/")
    steps[-1]["timeoutMs"] = 2000  # the logout form never comes: the login page answers the wrong password

    result = live_browser.run(steps, check=False)

    assert not result.ok
    assert result.error is not None and result.error.startswith("step 4 (logged in): ")
    assert [step["do"] for step in result.steps] == ["goto", "fill", "fill", "click"]
    assert (live_browser.artifacts / "failure-1.png").stat().st_size > 0
