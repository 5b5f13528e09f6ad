/*
 * Barter simulator pages: the criteria builder's small behaviours, sortable tables and the charts.
 *
 * No library besides the vendored htmx and TradingView lightweight-charts v5 (the global LightweightCharts of
 * its standalone build). Chart data comes from <script type="application/json"> blocks written by Django's
 * json_script; text from the data is only ever set with textContent.
 */
(function () {
  "use strict";

  // The criteria builder -----------------------------------------------------------------------------------

  function builderChanged() {
    var builder = document.getElementById("criteria-builder");
    if (builder) builder.dispatchEvent(new Event("change", { bubbles: true }));
  }

  // Show only the inputs the chosen indicator takes (the option's data-params), and the shift.
  function showParams(select) {
    var option = select.options[select.selectedIndex];
    var wanted = ((option && option.getAttribute("data-params")) || "").split(" ");
    var operand = select.closest("[data-operand]");
    if (!operand) return;
    operand.querySelectorAll("[data-param]").forEach(function (label) {
      var name = label.getAttribute("data-param");
      label.hidden = !(name === "shift" || wanted.indexOf(name) >= 0);
    });
  }

  function toggleAdvanced(box) {
    var panel = document.getElementById("advanced-box");
    if (panel) panel.hidden = !box.checked;
    var area = document.getElementById("id_criteria_json");
    var fill = document.getElementById("fill-json");
    // Fill the box from the builder unless the user has typed or pasted in it.
    if (box.checked && fill && area && area.getAttribute("data-edited") !== "1" && window.htmx) {
      window.htmx.trigger(fill, "click");
    }
  }

  // Coverage -------------------------------------------------------------------------------------------------
  // A run trades each instrument only inside its stored candles (CRITERIA.md): before the run, say what the
  // chosen dates will use. The server decides (the run page's coverage note); this note only announces it.

  function coverageNote() {
    var note = document.querySelector("[data-coverage-note]");
    var select = document.getElementById("id_instruments");
    var start = document.getElementById("id_start");
    var end = document.getElementById("id_end");
    if (!note || !select || !start || !end) return;
    var chosen = Array.prototype.filter.call(select.options, function (option) { return option.selected; });
    var from = start.value, to = end.value;
    if (!chosen.length || !from || !to || from > to) {
      note.hidden = true;
      note.textContent = "";
      return;
    }
    var first = chosen.map(function (o) { return o.getAttribute("data-first"); }).sort()[0];
    var last = chosen.map(function (o) { return o.getAttribute("data-last"); }).sort().reverse()[0];
    var lines = [];
    chosen.forEach(function (option) {
      var symbol = option.getAttribute("data-symbol");
      var ends = option.getAttribute("data-last"), begins = option.getAttribute("data-first");
      if (ends && ends < to) lines.push(symbol + "'s data ends " + ends + ": it trades only until then (what is open is closed at that close)");
      if (begins && begins > from) lines.push(symbol + "'s data starts " + begins);
    });
    var used = [from > first ? from : first, to < last ? to : last];
    if (used[0] > used[1]) {
      lines.unshift("No chosen instrument has data between " + from + " and " + to);
    } else if (used[0] !== from || used[1] !== to) {
      lines.unshift("The run will use " + used[0] + " to " + used[1] + ", the days with data");
    }
    note.hidden = lines.length === 0;
    note.textContent = lines.length ? lines.join("; ") + "." : "";
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    if (target.matches("[data-indicator-select]")) showParams(target);
    if (target.matches("[data-advanced-toggle]")) toggleAdvanced(target);
    if (target.matches("#id_instruments, #id_start, #id_end")) coverageNote();
    if (target.matches("[data-log-scale-toggle]")) setLogScale(target.checked);
    // A select that shows another view of the same page (the sweep's statistic): submit its GET form at once.
    if (target.matches("select[data-autosubmit]") && target.form) target.form.submit();
  });
  document.addEventListener("DOMContentLoaded", coverageNote);
  document.addEventListener("htmx:afterSettle", coverageNote);

  document.addEventListener("input", function (event) {
    if (event.target instanceof Element && event.target.id === "id_criteria_json") {
      event.target.setAttribute("data-edited", "1");
    }
    if (event.target instanceof Element && event.target.matches("#id_start, #id_end")) coverageNote();
  });

  document.addEventListener("click", function (event) {
    if (!(event.target instanceof Element)) return;
    var remove = event.target.closest("[data-remove-row]");
    if (remove) {
      var row = remove.closest(".condition");
      if (row) row.remove();
      builderChanged();
      return;
    }
    var heading = event.target.closest("table[data-sortable] th[data-sort]");
    if (heading) sortBy(heading);
    var trade = event.target.closest("tr[data-trade]");
    if (trade && !event.target.closest("a, button")) showTrade(trade);
  });

  document.addEventListener("keydown", function (event) {
    if (!(event.target instanceof Element) || !event.target.matches("tr[data-trade]")) return;
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      showTrade(event.target);
    }
  });

  // A row added by htmx changes the criteria too (the sweep's field list follows).
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail && event.detail.target;
    if (target && target.classList && target.classList.contains("rows")) builderChanged();
  });

  // Errors instead of the form ------------------------------------------------------------------------------
  // htmx swaps only 2xx answers: a body over the server's size limit (413), a server error (5xx) or a lost
  // connection would otherwise show nothing. The message goes into the form's [data-request-error] slot, as
  // text only; the form keeps what the user typed.

  function requestErrorSlot(element) {
    var form = element && element.closest ? element.closest("form") : null;
    return form ? form.querySelector("[data-request-error]") : document.querySelector("[data-request-error]");
  }

  function showRequestError(element, text) {
    var slot = requestErrorSlot(element);
    if (!slot) return;
    slot.textContent = text;
    slot.hidden = false;
  }

  // The server's own words: {"detail": ...} from the API, the first paragraph of an HTML error page.
  function responseMessage(xhr) {
    var body = xhr.responseText || "";
    var type = xhr.getResponseHeader("Content-Type") || "";
    var said = "";
    try {
      if (type.indexOf("application/json") === 0) {
        said = JSON.parse(body).detail || "";
      } else if (type.indexOf("text/html") === 0 && body.length < 100000) {
        var page = new DOMParser().parseFromString(body, "text/html");
        var paragraph = page.querySelector("p");
        said = paragraph ? paragraph.textContent.trim() : "";
      }
    } catch (error) {
      said = "";
    }
    return said;
  }

  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var said = responseMessage(xhr);
    var text;
    if (xhr.status === 413) {
      text = "The form is too large to send: " + (said || "the server refused it") + ". Shorten the criteria.";
    } else {
      text = "The server answered " + xhr.status + " " + (xhr.statusText || "") + (said ? ": " + said : "") +
        ". Nothing was run; try again.";
    }
    showRequestError(event.detail.elt, text);
  });

  document.addEventListener("htmx:sendError", function (event) {
    showRequestError(event.detail.elt, "The server could not be reached (or closed the connection: a form " +
      "too large to send?). Nothing was run; check the connection and try again.");
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var slot = requestErrorSlot(event.detail.elt);
    if (slot) slot.hidden = true;
  });

  // Sortable tables: cells carry data-sort, the value they sort by ---------------------------------------

  function sortBy(heading) {
    var table = heading.closest("table");
    var body = table.tBodies[0];
    if (!body) return;
    var column = Array.prototype.indexOf.call(heading.parentNode.children, heading);
    var numeric = heading.getAttribute("data-sort") === "num";
    var ascending = heading.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var cell = row.cells[column];
      var raw = cell ? cell.getAttribute("data-sort") || cell.textContent.trim() : "";
      if (!numeric) return raw.toLowerCase();
      var number = parseFloat(raw);
      return isNaN(number) ? -Infinity : number;
    }
    rows.sort(function (a, b) {
      var x = key(a);
      var y = key(b);
      var order = x < y ? -1 : x > y ? 1 : 0;
      return ascending ? order : -order;
    });
    heading.parentNode.querySelectorAll("th").forEach(function (th) {
      th.removeAttribute("aria-sort");
    });
    heading.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.forEach(function (row) {
      body.appendChild(row);
    });
  }

  // Charts -------------------------------------------------------------------------------------------------

  // A price on a chart's scale: two decimals from 1 up (as the library's default), six significant digits below.
  function priceText(price) {
    return price >= 1 ? price.toFixed(2) : price.toPrecision(6);
  }

  var COLORS = {
    ink: "#1f2933",
    line: "#e4e7eb",
    accent: "#2f6f9f",
    hold: "#9aa5b1",
    gain: "#1b7f3b",
    loss: "#b42318",
  };
  var PALETTE = ["#2f6f9f", "#b42318", "#1b7f3b", "#9a6700", "#6b3fa0", "#0f7c86", "#c2410c", "#475569"];

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function newChart(container, extra) {
    var options = {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: COLORS.ink, attributionLogo: true },
      grid: { vertLines: { color: COLORS.line }, horzLines: { color: COLORS.line } },
      timeScale: { borderColor: COLORS.line },
      rightPriceScale: { borderColor: COLORS.line },
    };
    Object.keys(extra || {}).forEach(function (key) {
      options[key] = extra[key];
    });
    return LightweightCharts.createChart(container, options);
  }

  function points(times, values) {
    var out = new Array(times.length);
    for (var i = 0; i < times.length; i++) out[i] = { time: times[i], value: values[i] };
    return out;
  }

  function dayText(seconds) {
    return new Date(seconds * 1000).toISOString().slice(0, 10);
  }

  function number(value) {
    return Math.abs(value) >= 1
      ? value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })
      : value.toPrecision(6);
  }

  // A tooltip inside the chart's container: the day's candle and what the run did that day.
  function attachTooltip(chart, container, series, notes) {
    var tip = document.createElement("div");
    tip.className = "chart-tooltip";
    tip.hidden = true;
    container.appendChild(tip);
    chart.subscribeCrosshairMove(function (param) {
      if (!param || param.time === undefined || !param.point || param.point.x < 0 || param.point.y < 0) {
        tip.hidden = true;
        return;
      }
      var candle = param.seriesData && param.seriesData.get(series);
      var lines = [dayText(param.time)];
      if (candle && candle.open !== undefined) {
        lines.push(
          "O " + number(candle.open) + "  H " + number(candle.high) + "  L " + number(candle.low) +
            "  C " + number(candle.close)
        );
      }
      (notes[String(param.time)] || []).forEach(function (line) {
        lines.push(line);
      });
      tip.textContent = "";
      lines.forEach(function (line, index) {
        var row = document.createElement("div");
        if (index >= 2) row.className = "chart-tooltip-trade";
        row.textContent = line;
        tip.appendChild(row);
      });
      tip.hidden = false;
      var left = Math.min(param.point.x + 14, container.clientWidth - tip.offsetWidth - 4);
      tip.style.left = Math.max(0, left) + "px";
      tip.style.top = "8px";
    });
  }

  // The candle charts by symbol: {chart, times} (times: each bar's open, seconds), for the log toggle and the
  // trades table's clicks.
  var CANDLE_CHARTS = {};

  function lineOptions(line) {
    return {
      color: line.color,
      lineWidth: 2,
      title: line.label,
      priceLineVisible: false,
      lastValueVisible: false,
      crosshairMarkerVisible: false,
    };
  }

  // Points of a line at the bars' times; a null value (warming up) is a gap.
  function linePoints(times, values) {
    var out = new Array(times.length);
    for (var i = 0; i < times.length; i++) {
      out[i] = values[i] === null || values[i] === undefined ? { time: times[i] } : { time: times[i], value: values[i] };
    }
    return out;
  }

  function drawCandles(container, data) {
    var symbol = container.getAttribute("data-symbol");
    var chart = newChart(container);
    var series = chart.addSeries(LightweightCharts.CandlestickSeries, {
      upColor: COLORS.gain,
      downColor: COLORS.loss,
      wickUpColor: COLORS.gain,
      wickDownColor: COLORS.loss,
      borderVisible: false,
      // The price scale leaves its bottom quarter to the volume; no price is below 0, so its labels there stay
      // blank rather than showing negative prices.
      priceFormat: {
        type: "custom",
        minMove: 0.00000001,
        formatter: function (price) { return price < 0 ? "" : priceText(price); },
      },
    });
    var candles = data.candles[symbol] || [];
    series.setData(candles.map(function (c) {
      return { time: c.time, open: c.open, high: c.high, low: c.low, close: c.close };
    }));
    // Volume: a histogram at the bottom of the candles, on a scale of its own; unknown volumes are left out.
    var volumes = [];
    candles.forEach(function (c) {
      if (c.volume !== null && c.volume !== undefined) {
        volumes.push({ time: c.time, value: c.volume, color: c.close >= c.open ? "rgba(27,127,59,0.35)" : "rgba(180,35,24,0.35)" });
      }
    });
    var drawnLines = 0;
    if (volumes.length) {
      var volume = chart.addSeries(LightweightCharts.HistogramSeries, {
        priceScaleId: "volume",
        priceFormat: { type: "volume" },
        priceLineVisible: false,
        lastValueVisible: false,
      });
      volume.setData(volumes);
      // The bottom fifth for the volume, the candles above it.
      chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
      chart.priceScale("right").applyOptions({ scaleMargins: { top: 0.08, bottom: 0.24 } });
      container.setAttribute("data-volume-bars", String(volumes.length));
    }
    // The criteria's indicators (computed by the engine on the server): price lines over the candles, volume
    // lines over the volume, the others each kind in a pane below.
    var found = (data.indicators || {})[symbol] || { time: [], lines: [] };
    var panes = [];
    found.lines.forEach(function (line) {
      var pane = 0;
      var options = lineOptions(line);
      if (line.pane === "volume") {
        options.priceScaleId = "volume";
      } else if (line.pane !== "price") {
        if (panes.indexOf(line.pane) < 0) panes.push(line.pane);
        pane = panes.indexOf(line.pane) + 1;
      }
      chart.addSeries(LightweightCharts.LineSeries, options, pane).setData(linePoints(found.time, line.values));
      drawnLines += 1;
    });
    var paneBoxes = chart.panes();
    for (var p = 1; p < paneBoxes.length; p++) paneBoxes[p].setHeight(130);
    container.setAttribute("data-lines", String(drawnLines));
    container.setAttribute("data-panes", String(paneBoxes.length));
    LightweightCharts.createSeriesMarkers(series, data.markers[symbol] || []);
    attachTooltip(chart, container, series, data.notes[symbol] || {});
    chart.timeScale().subscribeVisibleTimeRangeChange(function (range) {
      if (!range) return;
      container.setAttribute("data-visible-from", String(range.from));
      container.setAttribute("data-visible-to", String(range.to));
    });
    chart.timeScale().fitContent();
    CANDLE_CHARTS[symbol] = { chart: chart, times: candles.map(function (c) { return c.time; }), container: container };
    return chart;
  }

  // The log price scale toggle: every candle chart's price scale (the volume keeps its own).
  function setLogScale(on) {
    Object.keys(CANDLE_CHARTS).forEach(function (symbol) {
      var entry = CANDLE_CHARTS[symbol];
      entry.chart.priceScale("right").applyOptions({
        mode: on ? LightweightCharts.PriceScaleMode.Logarithmic : LightweightCharts.PriceScaleMode.Normal,
      });
      entry.container.setAttribute("data-log-scale", on ? "true" : "false");
    });
  }

  // The index of the last bar opening at or before ``seconds`` (0 when none does).
  function barIndex(times, seconds) {
    var low = 0, high = times.length - 1, found = 0;
    while (low <= high) {
      var middle = (low + high) >> 1;
      if (times[middle] <= seconds) {
        found = middle;
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found;
  }

  // A click on a trade row: its chart shows the trade, from entry to exit (to the last bar while open), with
  // room on either side, and comes into view.
  function showTrade(row) {
    var entry = CANDLE_CHARTS[row.getAttribute("data-symbol")];
    var entryTime = parseInt(row.getAttribute("data-entry-time"), 10);
    if (!entry || isNaN(entryTime) || !entry.times.length) return;
    var exitTime = parseInt(row.getAttribute("data-exit-time"), 10);
    var first = barIndex(entry.times, entryTime);
    var last = isNaN(exitTime) ? entry.times.length - 1 : barIndex(entry.times, exitTime);
    var room = Math.max(10, Math.round((last - first) * 0.5));
    entry.chart.timeScale().setVisibleLogicalRange({ from: first - room, to: last + room });
    document.querySelectorAll("tr[data-trade].selected").forEach(function (other) {
      other.classList.remove("selected");
    });
    row.classList.add("selected");
    entry.container.scrollIntoView({ block: "center" });
  }

  function drawEquity(container, data) {
    var chart = newChart(container);
    var curve = data.equity;
    var hold = chart.addSeries(LightweightCharts.LineSeries, {
      color: COLORS.hold,
      lineWidth: 2,
      title: "buy and hold",
    });
    hold.setData(points(curve.time, curve.buy_and_hold));
    var equity = chart.addSeries(LightweightCharts.LineSeries, {
      color: COLORS.accent,
      lineWidth: 2,
      title: "strategy",
    });
    equity.setData(points(curve.time, curve.equity));
    chart.timeScale().fitContent();
    return chart;
  }

  function drawDrawdown(container, data) {
    var chart = newChart(container);
    var series = chart.addSeries(LightweightCharts.HistogramSeries, {
      color: COLORS.loss,
      priceFormat: {
        type: "custom",
        formatter: function (value) {
          return value.toFixed(2) + " %";
        },
      },
    });
    series.setData(points(data.equity.time, data.equity.drawdown_pct));
    chart.timeScale().fitContent();
    return chart;
  }

  // Keep two charts over the same candles scrolled and zoomed together.
  function linkTimeScales(a, b) {
    var busy = false;
    function follow(from, to) {
      from.timeScale().subscribeVisibleLogicalRangeChange(function (range) {
        if (busy || !range) return;
        busy = true;
        to.timeScale().setVisibleLogicalRange(range);
        busy = false;
      });
    }
    follow(a, b);
    follow(b, a);
  }

  function drawCompare(container, lines) {
    var chart = newChart(container);
    var legend = document.getElementById("compare-legend");
    var runs = 0;
    lines.forEach(function (line) {
      var color = line.hold ? COLORS.hold : PALETTE[runs++ % PALETTE.length];
      var series = chart.addSeries(LightweightCharts.LineSeries, {
        color: color,
        lineWidth: 2,
        lineStyle: line.hold ? LightweightCharts.LineStyle.Dashed : LightweightCharts.LineStyle.Solid,
        title: line.hold ? "B&H" : "#" + line.id,
        priceFormat: {
          type: "custom",
          formatter: function (value) {
            return value.toFixed(2) + " %";
          },
        },
      });
      series.setData(points(line.time, line.return_pct));
      if (legend) {
        var swatch = document.createElement("span");
        swatch.className = "swatch";
        swatch.style.background = color;
        var label = document.createElement("span");
        label.textContent = " " + line.name + "  ";
        legend.appendChild(swatch);
        legend.appendChild(label);
      }
    });
    chart.timeScale().fitContent();
  }

  // The Monte Carlo fan: the bands between the 5th and 95th and the 25th and 75th percentiles of the paths' equity
  // after each trade (opaque areas stacked from the top band down, the lowest filled white), the median dashed and
  // the run's own trades as a line. The horizontal scale is the trade number, given to the chart as its "time".
  function drawMonteCarlo(container, fan) {
    var chart = newChart(container, {
      timeScale: { borderColor: COLORS.line, tickMarkFormatter: function (time) { return String(time); } },
      localization: { timeFormatter: function (time) { return "after trade " + time; } },
      handleScroll: false,
      handleScale: false,
    });
    var fills = ["#ffffff", "#d6e4ef", "#a8c5dc", "#d6e4ef"]; // below p5, p5-p25, p25-p75, p75-p95
    var order = [4, 3, 1, 0]; // p95, p75, p25, p5: each later area paints over the one before
    var fillOf = { 4: fills[3], 3: fills[2], 1: fills[1], 0: fills[0] };
    order.forEach(function (index) {
      var area = chart.addSeries(LightweightCharts.AreaSeries, {
        lineColor: "#8fb3cf",
        lineWidth: 1,
        topColor: fillOf[index],
        bottomColor: fillOf[index],
        priceLineVisible: false,
        lastValueVisible: false,
        crosshairMarkerVisible: false,
      });
      area.setData(points(fan.trade_numbers, fan.equity[index]));
    });
    var median = chart.addSeries(LightweightCharts.LineSeries, {
      color: "#1f4e70",
      lineWidth: 2,
      lineStyle: LightweightCharts.LineStyle.Dashed,
      priceLineVisible: false,
      lastValueVisible: false,
      title: "median",
    });
    median.setData(points(fan.trade_numbers, fan.equity[2]));
    var numbers = new Array(fan.actual.length);
    for (var i = 0; i < numbers.length; i++) numbers[i] = i;
    var actual = chart.addSeries(LightweightCharts.LineSeries, {
      color: COLORS.accent,
      lineWidth: 2,
      priceLineVisible: false,
      title: "this run",
    });
    actual.setData(points(numbers, fan.actual));
    chart.timeScale().fitContent();
    return chart;
  }

  function guarded(container, draw) {
    try {
      var chart = draw();
      container.setAttribute("data-drawn", "true");
      return chart;
    } catch (error) {
      container.setAttribute("data-drawn", "false");
      container.textContent = "The chart could not be drawn: " + error.message;
      return null;
    }
  }

  function drawCharts() {
    if (typeof LightweightCharts === "undefined") return;
    var data = readJson("chart-data");
    if (data) {
      document.querySelectorAll("[data-chart=candles]").forEach(function (container) {
        guarded(container, function () {
          return drawCandles(container, data);
        });
      });
      var equityBox = document.getElementById("chart-equity");
      var drawdownBox = document.getElementById("chart-drawdown");
      var equity = equityBox && guarded(equityBox, function () {
        return drawEquity(equityBox, data);
      });
      var drawdown = drawdownBox && guarded(drawdownBox, function () {
        return drawDrawdown(drawdownBox, data);
      });
      if (equity && drawdown) linkTimeScales(equity, drawdown);
    }
    var fan = readJson("monte-carlo-data");
    var fanBox = document.getElementById("chart-monte-carlo");
    if (fan && fanBox) {
      guarded(fanBox, function () {
        return drawMonteCarlo(fanBox, fan);
      });
    }
    var compare = readJson("compare-data");
    var compareBox = document.getElementById("chart-compare");
    if (compare && compareBox) {
      guarded(compareBox, function () {
        drawCompare(compareBox, compare);
        return true;
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawCharts);
  } else {
    drawCharts();
  }
})();
