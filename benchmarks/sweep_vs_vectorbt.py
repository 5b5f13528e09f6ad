"""A 1,000-point sweep on the engine against one 1,000-column vectorbt portfolio, statistics of every point
included (issue 15's goal: the engine's sweep takes at most 0.4x vectorbt's time, measured in one run).

    .venv/bin/python benchmarks/sweep_vs_vectorbt.py --vectorbt-python /path/to/bench-venv/bin/python

vectorbt is never a dependency of Barter: it runs in a virtual environment of its own, as for
:mod:`engine_vs_vectorbt` (whose rules and worker this script shares through :mod:`_vectorbt`). The grid is
:mod:`simulator_sweep`'s: an SMA crossover, fast 5..50 by 5 (10 values) x slow 20..218 by 2 (100 values), with an
8 % stop-loss, fee 0.1 % a side, all the cash, over the real Bitstamp BTC daily history the project ships
(``data/history/bitstamp_(BTC,ETH,LTC)USD_d.csv``: 1,865 candles, 2014-11-28 .. 2020-01-17, none on 2019-03-20
.. 31). Three measures, each warm (one run first), the median of ``--repeat`` runs interleaved (one of each in
turn, the vectorbt worker waiting for a line on its standard input before each), so that all see the same load:

(a) the engine called once per point: :func:`~trading.engine.backtest.backtest` in a Python loop over the 1,000
    parsed criteria (signals, preparation, loop, curves, buy and hold and statistics of each);
(b) the engine's sweep kernel, :func:`~trading.engine.sweep.sweep_statistics`, given the same 1,000 parsed
    criteria (the very objects of (a)), the statistics of every point (the simulator's sweeps run it); every
    point's statistics and equity curve (one more run that keeps the curves) must equal (a)'s, or the script exits
    with status 1;
(c) vectorbt: the SMAs of each column (``vbt.MA.run`` with the 1,000 windows of each side), their crossings
    (``ma_crossed_above`` / ``ma_crossed_below``), one 1,000-column ``Portfolio.from_signals`` (8 % stop-loss from
    the fill price, the signal of candle ``t`` filled at the open of ``t + 1``: the signals shifted by one candle
    and ``price=open``) and the statistics of every column with vectorbt's vectorised methods (total return,
    Sharpe ratio, max drawdown, trade count; not ``pf.stats()`` per column).

The criteria are one document with named parameters (docs/criteria.md "Named parameters"), ``fast`` and
``slow`` set per point and parsed by :func:`~trading.engine.criteria.criteria_parse`, as a simulator sweep does;
(a) and (b) run with ``close_at_end=True``, as the simulator does.

Agreement, for every point: the trade count, the final equity and every trade (entry and exit candle, exit price)
of the engine against vectorbt's; for the points that agree, the max drawdown and the Sharpe ratio. Two
differences of rule are accounted for, not reported: the engine sells a trade still open after the last candle at
its close and pays the fee (``end_of_data``), while vectorbt marks it at that close (its final value is compared
less that fee); vectorbt counts that trade open, the engine closed. The engine's equity curve has a point on each
day of the range (flat on the missing days), vectorbt's one a row: the Sharpe ratios differ by that alone (about
0.3 %). Every other difference is one of three rules, which the script names for each point (the first trade that
differs; :data:`REASONS`):

- a stop-loss level inside the entry candle: CRITERIA.md's stops are active from the entry candle on, so the
  engine sells there at the level; vectorbt fills one order per column and candle and checks the stop only from
  the next candle on (its documentation: "Stop signal cannot be processed at the same bar as the entry signal");
- an exit signal on candle ``t`` and the stop level inside ``t + 1``: the engine sells at ``t + 1``'s open, which
  comes first (CRITERIA.md: signal exits fill at the open); vectorbt checks the stop first and sells at the
  level (``stop_exit_price="stoplimit"``);
- a signal on the last candle before the missing days: vectorbt's candles are rows and it fills the signal at
  the next row's open, twelve days later; the engine's next boundary has no candle and the signal lapses.

vectorbt's crossing needs the fast average strictly below the slow one at some candle since it was last above
(``crossed_above_1d_nb``: a tie after being above does not arm it; CRITERIA.md's ``crosses_above`` needs
``left[t-1] <= right[t-1]``), and TA-Lib and vectorbt round their averages differently; neither changed a trade
here.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _vectorbt import VectorbtWorker, portfolio_from_signals, script_main, worker_input_save, worker_serve

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "data" / "history" / "bitstamp_(BTC,ETH,LTC)USD_d.csv"

FAST_PERIODS = range(5, 51, 5)
SLOW_PERIODS = range(20, 219, 2)
#: The grid's points in the order of the results and of vectorbt's columns: (fast, slow), fast outer.
POINTS = [(fast, slow) for fast in FAST_PERIODS for slow in SLOW_PERIODS]
STOP_LOSS_RATIO = 0.08
FEE_RATE = 0.001
STARTING_CASH = 10_000.0
#: Relative tolerance of the final equities compared (float rounding of two implementations).
EQUITY_RTOL = 1e-9


def criteria_document(*, fast: int, slow: int) -> dict[str, Any]:
    """The criteria of one point: docs/criteria.md's "fast x slow" document, 8 % stop-loss, fee 0.1 %, all the
    equity, no slippage."""
    fast_sma = {"indicator": "sma", "period": {"param": "fast"}}
    slow_sma = {"indicator": "sma", "period": {"param": "slow"}}
    return {
        "version": 1,
        "side": "long",
        "params": {"fast": fast, "slow": slow, "stop": STOP_LOSS_RATIO},
        "entry": {"all": [{"left": fast_sma, "op": "crosses_above", "right": dict(slow_sma)}]},
        "exit": {"any": [{"left": dict(fast_sma), "op": "crosses_below", "right": dict(slow_sma)}]},
        "stop_loss_ratio": {"param": "stop"},
        "sizing": {"method": "equity_fraction", "value": 1.0},
        "fee_rate": FEE_RATE,
        "slippage_ratio": 0.0,
    }


def bitstamp_btc() -> dict[str, np.ndarray]:
    """The shipped Bitstamp BTC daily candles: ``open_time_seconds`` (int64, seconds since epoch, UTC) and
    ``open``, ``high``, ``low``, ``close``, ``volume`` (float64), shape (n,) each, oldest first; the rows without
    BTC are left out (as ``load_shipped_history`` and the oracle tests read them)."""
    times: list[int] = []
    rows: list[list[float]] = []
    with HISTORY.open(newline="") as handle:
        for record in csv.DictReader(handle):
            cells = [record[f"BTC:{field}"] for field in ("open", "high", "low", "close", "volume")]
            if "" in cells:
                continue
            times.append(int(datetime.fromisoformat(record[""]).replace(tzinfo=UTC).timestamp()))
            rows.append([float(cell) for cell in cells])
    values = np.array(rows, dtype=np.float64)
    out = {"open_time_seconds": np.array(times, dtype=np.int64)}
    for k, field in enumerate(("open", "high", "low", "close", "volume")):
        out[field] = np.ascontiguousarray(values[:, k])
    return out


def vectorbt_worker(npz: str, repeat: int) -> None:
    """Run in the vectorbt interpreter (numpy, vectorbt, :mod:`_vectorbt`): time (c), print JSON.

    Args:
        npz: arrays ``open``, ``high``, ``low``, ``close`` (float64, shape (n,)) and ``fast``, ``slow`` (int64,
            shape (points,)): each column's windows.
        repeat: timed runs after the first.
    """
    import vectorbt as vbt  # type: ignore[import-not-found]  # the benchmark's own interpreter only

    data = np.load(npz)
    close = data["close"]
    # The prices as one column each, broadcast by vectorbt to the signals' columns.
    candles = {name: data[name][:, None] for name in ("open", "high", "low", "close")}
    fast_windows, slow_windows = data["fast"].tolist(), data["slow"].tolist()
    phases: dict[str, list[float]] = {}

    def phase(label: str, started: float) -> float:
        now = time.perf_counter()
        phases.setdefault(label, []).append(now - started)
        return now

    def run() -> tuple[Any, dict[str, np.ndarray]]:
        started = time.perf_counter()
        fast = vbt.MA.run(close, fast_windows, short_name="fast")
        slow = vbt.MA.run(close, slow_windows, short_name="slow")
        entries = fast.ma_crossed_above(slow).to_numpy()
        exits = fast.ma_crossed_below(slow).to_numpy()
        started = phase("signals (MA.run, crossings)", started)
        portfolio = portfolio_from_signals(
            vbt,
            candles=candles,
            entries=entries,
            exits=exits,
            fee_rate=FEE_RATE,
            starting_cash=STARTING_CASH,
            freq="1D",
            sl_stop=STOP_LOSS_RATIO,
        )
        started = phase("shift, Portfolio.from_signals (1,000 columns)", started)
        figures = {
            "final_value": np.asarray(portfolio.final_value()),
            "total_return": np.asarray(portfolio.total_return()),
            "sharpe_ratio": np.asarray(portfolio.sharpe_ratio()),
            "max_drawdown": np.asarray(portfolio.max_drawdown()),
            "trades": np.asarray(portfolio.trades.count()),
        }
        phase("statistics of every column", started)
        return portfolio, figures

    (portfolio, figures), first, times = worker_serve(run, repeat)
    records = portfolio.trades.records
    print(
        json.dumps(
            {
                "version": vbt.__version__,
                "first_seconds": first,
                "seconds": times,
                "phases": {label: statistics.median(values[1:]) for label, values in phases.items()},
                "figures": {name: values.tolist() for name, values in figures.items()},
                "trades": {
                    name: records[name].tolist()
                    for name in ("col", "entry_idx", "exit_idx", "exit_price", "size", "status")
                },
            }
        )
    )


def same_figures(left: dict[str, Any], right: dict[str, Any]) -> bool:
    """Whether two statistics dicts are equal, NaN equal to NaN."""

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return bool(a == b)

    return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--vectorbt-python", required=True, help="interpreter of a virtual environment holding vectorbt 1.x"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed warm runs of each side (default 5)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from trading.engine.backtest import BacktestResult, backtest
    from trading.engine.criteria import criteria_parse
    from trading.engine.sweep import SweepStatistics, sweep_statistics
    from trading.engine.types import CandleArrays

    arrays = bitstamp_btc()
    candles = CandleArrays(symbol="BTC", **arrays)
    criteria = [criteria_parse(criteria_document(fast=fast, slow=slow)) for fast, slow in POINTS]
    window = {
        "instruments": [candles],
        "start_time_seconds": int(candles.open_time_seconds[0]),
        "end_time_seconds": int(candles.open_time_seconds[-1]),
        "starting_cash": STARTING_CASH,
        "close_at_end": True,
    }

    def one_per_point() -> list[BacktestResult]:
        return [backtest(criteria=point, **window) for point in criteria]  # type: ignore[arg-type]

    def sweep(*, keep_curves: bool = False) -> SweepStatistics:
        return sweep_statistics(criteria=criteria, keep_curves=keep_curves, **window)  # type: ignore[arg-type]

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        npz = Path(folder) / "candles.npz"
        worker_input_save(
            npz,
            candles=candles,
            fast=np.array([fast for fast, _ in POINTS], dtype=np.int64),
            slow=np.array([slow for _, slow in POINTS], dtype=np.int64),
        )
        worker = VectorbtWorker(
            python=args.vectorbt_python, script=__file__, arguments=[str(npz), "--repeat", str(args.repeat)]
        )
        one_per_point()  # the engine's first runs load its compiled code
        sweep()
        times: dict[str, list[float]] = {"a": [], "b": []}
        for _ in range(args.repeat):  # interleaved: vectorbt, then (a), then (b)
            worker.run()
            started = time.perf_counter()
            singles = one_per_point()
            times["a"].append(time.perf_counter() - started)
            started = time.perf_counter()
            sweep()
            times["b"].append(time.perf_counter() - started)
        vbt = worker.result()
    swept = sweep(keep_curves=True)
    load_after = os.getloadavg()[0]

    single_seconds = statistics.median(times["a"])
    sweep_seconds = statistics.median(times["b"])
    vectorbt_seconds = statistics.median(vbt["seconds"])
    print(
        f"candles: {len(candles):,} (Bitstamp BTC daily, {iso(arrays['open_time_seconds'][0])} .. "
        f"{iso(arrays['open_time_seconds'][-1])})   points: {len(POINTS):,}   "
        f"vectorbt {vbt['version']} ({args.vectorbt_python})   load average (1 min) {load_before:.1f} before, "
        f"{load_after:.1f} after, {os.cpu_count()} cores"
    )
    print(f"| measure (median of {args.repeat}, warm, interleaved) | seconds | goal |")
    print("|---|---|---|")
    print(f"| (a) engine: backtest once per point, statistics included | {single_seconds:.3f} | |")
    print(
        f"| (b) engine: sweep_statistics (the sweep kernel) of the 1,000 criteria | {sweep_seconds:.3f} | |"
    )
    print(f"| (c) vectorbt: MA.run, crossings, from_signals, statistics | {vectorbt_seconds:.3f} | |")
    print(f"| ratio (b) / (c) | {sweep_seconds / vectorbt_seconds:.2f} | <= 0.4 |")
    print(f"| ratio (a) / (c) | {single_seconds / vectorbt_seconds:.2f} | |")
    print(
        "vectorbt's phases (median ms): "
        + ", ".join(f"{label} {1000 * seconds:.0f}" for label, seconds in vbt["phases"].items())
        + f"; its first run (compiling or loading): {vbt['first_seconds']:.2f} s"
    )

    assert swept.equity_curves is not None
    differ = [
        i
        for i, single in enumerate(singles)
        if swept.statistics[i] is None
        or not same_figures(single.statistics, swept.statistics[i])  # type: ignore[arg-type]
        or not np.array_equal(single.equity_curve, swept.equity_curves[i])
    ]
    print(
        f"(a) and (b): {len(POINTS) - len(differ):,} of {len(POINTS):,} points with the same statistics and "
        "equity curve" + (f"; differ at (fast, slow) {[POINTS[i] for i in differ[:5]]}" if differ else "")
    )
    agreement(singles, vbt, candles)
    if differ:
        raise SystemExit(1)


def iso(seconds: int) -> str:
    """``YYYY-MM-DD`` of seconds since epoch (UTC)."""
    return datetime.fromtimestamp(int(seconds), UTC).date().isoformat()


def agreement(results: list[Any], vbt: dict[str, Any], candles: Any) -> None:
    """Print how many points agree with vectorbt (trade count, final equity, every trade) and why the others
    differ.

    Args:
        results: the engine's :class:`~trading.engine.backtest.BacktestResult` of each point, in :data:`POINTS`
            order.
        vbt: the worker's JSON: ``figures`` (per column) and ``trades`` (vectorbt's trade records as columns).
        candles: the :class:`~trading.engine.types.CandleArrays` both ran on.
    """
    records = {name: np.asarray(values) for name, values in vbt["trades"].items()}
    final_value = np.asarray(vbt["figures"]["final_value"])
    trade_counts = np.asarray(vbt["figures"]["trades"])
    last_close = float(candles.close[-1])
    kinds: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    counts_agree = equities_agree = 0
    agreeing: list[int] = []
    for column, result in enumerate(results):
        mine = records["col"] == column
        still_open = mine & (records["status"] == 0)
        # vectorbt marks an open trade at the last close; the engine sells it there and pays the fee.
        vectorbt_equity = final_value[column] - FEE_RATE * last_close * float(
            records["size"][still_open].sum()
        )
        engine_equity = float(result.equity_curve[-1])
        same_equity = abs(engine_equity - vectorbt_equity) <= EQUITY_RTOL * abs(vectorbt_equity)
        counts_agree += len(result.trade_log) == int(trade_counts[column])
        equities_agree += same_equity
        difference = first_difference(result.trade_log, {k: v[mine] for k, v in records.items()}, candles)
        if difference is None and not same_equity:
            difference = "other", f"the same trades, final equity {engine_equity} and {vectorbt_equity}"
        if difference is None:
            agreeing.append(column)
            continue
        kind, detail = difference
        kinds[kind] += 1
        examples.setdefault(kind, []).append(f"{POINTS[column]}: {detail}")
    print(
        f"engine against vectorbt, {len(results):,} points: trade count equal in {counts_agree:,}, final equity "
        f"equal (relative {EQUITY_RTOL:g}, vectorbt's open trade sold at the last close with the fee) in "
        f"{equities_agree:,}, every trade (entry and exit candle, exit price) and the final equity in "
        f"{len(agreeing):,}"
    )
    # vectorbt's max drawdown is negative; the engine's a positive fraction (both of the equity's peak). The
    # Sharpe ratio is undefined (engine) or infinite (vectorbt) without trades: those points are left out.
    drawdown = np.array([results[i].statistics["max_drawdown_ratio"] for i in agreeing], dtype=np.float64)
    vectorbt_drawdown = -np.asarray(vbt["figures"]["max_drawdown"])[agreeing]
    sharpe = np.array([results[i].statistics["sharpe_ratio"] for i in agreeing], dtype=np.float64)
    vectorbt_sharpe = np.asarray(vbt["figures"]["sharpe_ratio"])[agreeing]
    defined = np.isfinite(sharpe) & np.isfinite(vectorbt_sharpe)
    sharpe_ratio_ratio = sharpe[defined] / vectorbt_sharpe[defined]
    print(
        f"  of those {len(agreeing):,}: max drawdown equal (relative 1e-9) in "
        f"{int(np.isclose(drawdown, vectorbt_drawdown, rtol=1e-9, atol=0).sum()):,}; Sharpe ratio (of the "
        f"{int(defined.sum()):,} with trades) engine / vectorbt {sharpe_ratio_ratio.min():.4f} .. "
        f"{sharpe_ratio_ratio.max():.4f}: the engine's curve has a point on each day of the range "
        f"({len(results[0].equity_curve):,}, flat on the missing days), vectorbt's one a row ({len(candles):,})"
    )
    for kind, count in kinds.most_common():
        print(
            f"  {count:,} points differ first by {REASONS[kind]}; e.g. (fast, slow) "
            + "; ".join(examples[kind][:2])
        )


#: Why the first differing trade of a point differs, by kind (the keys :func:`first_difference` returns).
REASONS = {
    "stop in the entry candle": (
        "a stop-loss level inside the entry candle: the engine sells there, at the level (CRITERIA.md: stops are "
        "active from the entry candle on); vectorbt fills one order per column and candle and checks the stop "
        "from the next candle on, so it sells on a later candle (at the stop if the next one crosses it)"
    ),
    "signal exit and stop in one candle": (
        "an exit signal on candle t and the stop level inside t + 1: the engine sells at t + 1's open, which "
        "comes first (CRITERIA.md); vectorbt checks the stop first and sells at the level"
    ),
    "the missing days": (
        "a signal on 2019-03-19, the last candle before the 12 missing days: vectorbt fills it at the next row's "
        "open (2019-04-01); the engine's next boundary (2019-03-20) has no candle, and the signal lapses"
    ),
    "other": "none of the above (look at the SMAs there: a tie within float rounding?)",
}


def first_difference(log: Any, records: dict[str, np.ndarray], candles: Any) -> tuple[str, str] | None:
    """The first trade that differs between the engine's ``log`` and vectorbt's ``records`` (one column's): the
    kind of difference (a key of :data:`REASONS`) and a description; None when every trade is the same.

    Trades are compared in order: entry candle, exit candle, exit price (relative :data:`EQUITY_RTOL`).
    """
    times = candles.open_time_seconds
    after_gap = set(
        (np.flatnonzero(np.diff(times) > 86_400) + 1).tolist()
    )  # first candles after missing days
    engine_entries, vectorbt_entries = log.entry_index.tolist(), records["entry_idx"].tolist()
    for k in range(max(len(engine_entries), len(vectorbt_entries))):
        entry = engine_entries[k] if k < len(engine_entries) else None
        vectorbt_entry = vectorbt_entries[k] if k < len(vectorbt_entries) else None
        if entry != vectorbt_entry:
            first = min(e for e in (entry, vectorbt_entry) if e is not None)
            kind = "the missing days" if first in after_gap else "other"
            return kind, (
                f"trade {k}: engine enters {'-' if entry is None else iso(times[entry])}, vectorbt "
                f"{'-' if vectorbt_entry is None else iso(times[vectorbt_entry])}"
            )
        exit_, vectorbt_exit = int(log.exit_index[k]), int(records["exit_idx"][k])
        price, vectorbt_price = float(log.exit_price[k]), float(records["exit_price"][k])
        stop = float(log.stop_loss_price[k])
        if exit_ != vectorbt_exit:
            kind = "other"
            if exit_ == entry and price == stop:
                kind = "stop in the entry candle"
            return kind, (
                f"trade {k} entered {iso(times[entry])}: engine exits {iso(times[exit_])} at {price:,.2f}, "
                f"vectorbt {iso(times[vectorbt_exit])} at {vectorbt_price:,.2f}"
            )
        if abs(price - vectorbt_price) > EQUITY_RTOL * price:
            kind = "other"
            if price == candles.open[exit_] and vectorbt_price == stop and candles.low[exit_] <= stop:
                kind = "signal exit and stop in one candle"
            return kind, (
                f"trade {k} exits {iso(times[exit_])}: engine at the open {price:,.2f}, vectorbt at "
                f"{vectorbt_price:,.2f} (the stop {stop:,.2f})"
            )
    return None


if __name__ == "__main__":
    script_main(worker=vectorbt_worker, main=main)
