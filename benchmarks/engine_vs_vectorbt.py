"""The engine against vectorbt on a year of one-minute candles, same signals and stops (issue 13's goal: the
engine takes at most 0.5x vectorbt's time).

    .venv/bin/python benchmarks/engine_vs_vectorbt.py ../shared/data/minute/binance_btcusdt_1m_2024 \\
        --vectorbt-python /path/to/bench-venv/bin/python

vectorbt is never a dependency of Barter: it lives in a virtual environment of its own, made for this benchmark
only, e.g. ``python3 -m venv ../bench-vbt && ../bench-vbt/bin/pip install 'vectorbt==1.2.*'``, and runs in that
interpreter. This script

1. reads the klines as :mod:`engine_minutes` does (arrays cached in a ``.npz``);
2. computes the engine's signals once (SMA 10 crosses above / below SMA 30 on candle ``t``) and writes them,
   with the prices, to a temporary ``.npz``;
3. runs vectorbt's ``Portfolio.from_signals`` on them in the other interpreter: long only, all the cash
   (``size=inf``), fee 0.1 %, 2 % stop-loss and 4 % take-profit measured from the fill price
   (``stop_entry_price="fillprice"``), filled at the level or at a worse open (``stop_exit_price="stoplimit"``),
   and no minimum order size (``min_size=0``: vectorbt's default of 1e-8 units refuses the last 2,413 entries of
   this losing run, whose cash has fallen below 1e-8 BTC);
   the signal of candle ``t`` fills at the open of ``t + 1`` (the signals are shifted by one candle and
   ``price=open``), as the engine does;
4. runs the engine's :func:`~trading.engine.backtest.backtest` with the same criteria here.

Each side is timed warm: one run first (which loads or compiles the Numba code), then the median of ``--repeat``
runs, interleaved (one vectorbt run, then one engine run: the vectorbt process waits for a line on its standard
input before each), so that both see the same load on a shared machine. The engine's time is the whole
``backtest`` call: its signals (TA-Lib SMAs), the preparation, the compiled loop, the equity curve, buy and
hold and the statistics; vectorbt's is ``from_signals`` alone, given the signals, which makes no curve or
statistics until asked. The script also prints the engine's time without its signals,
and where the engine's time goes.

Trade counts: the engine counts every trade in its log (closed and the one still open at the end); vectorbt counts
its exit trades (``pf.trades.count()``), open ones included. The fees take this losing run's equity below a
billionth of its starting cash after 10,339 trades: the engine's account is then ruined and enters no more
(``RUIN_TOLERANCE_RATIO`` in ``trading/engine/types.py``; README "ruined"), while vectorbt goes on trading the dust
left (``min_size=0``) for 278 more, the last one open at the end. The 10,339 trades of both are entered at the same
candles and exited at the same candles. One exit price differs, by rule: the trade entered at candle 17,161 has an
exit signal on candle 17,163 and a stop-loss level inside candle 17,164; the engine sells at the open of 17,164
(42,908.8), which comes first (CRITERIA.md: signal exits fill at the open), vectorbt checks the stop of candle
17,164 before that candle's signal and sells at the level (42,542.58).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _vectorbt import VectorbtWorker, portfolio_from_signals, script_main, worker_input_save, worker_serve
from engine_minutes import CRITERIA as MINUTES_CRITERIA

ROOT = Path(__file__).resolve().parent.parent

#: The engine's criteria: :mod:`engine_minutes`'s SMA 10/30 crossover, 2 % stop-loss, 4 % take-profit and 0.1 %
#: fee, without its trailing stop (vectorbt's ``from_signals`` is given the same stops below).
CRITERIA = {key: value for key, value in MINUTES_CRITERIA.items() if key != "trailing_stop_ratio"}
STOP_LOSS_RATIO = float(CRITERIA["stop_loss_ratio"])  # type: ignore[arg-type]
TAKE_PROFIT_RATIO = float(CRITERIA["take_profit_ratio"])  # type: ignore[arg-type]
FEE_RATE = float(CRITERIA["fee_rate"])  # type: ignore[arg-type]
STARTING_CASH = 10_000.0


def vectorbt_worker(npz: str, repeat: int) -> None:
    """Run in the vectorbt interpreter (numpy, vectorbt, :mod:`_vectorbt`, :mod:`engine_minutes`): time
    ``from_signals``, print JSON.

    Args:
        npz: arrays ``open``, ``high``, ``low``, ``close`` (float64) and ``entry``, ``exit`` (bool) of shape
            (n,): the engine's signals on candle ``t``.
        repeat: timed runs after the first.
    """
    import vectorbt as vbt  # type: ignore[import-not-found]  # the benchmark's own interpreter only

    data = np.load(npz)
    candles = {name: data[name] for name in ("open", "high", "low", "close")}

    def run() -> Any:
        return portfolio_from_signals(
            vbt,
            candles=candles,
            entries=data["entry"],
            exits=data["exit"],
            fee_rate=FEE_RATE,
            starting_cash=STARTING_CASH,
            freq="1min",
            sl_stop=STOP_LOSS_RATIO,
            tp_stop=TAKE_PROFIT_RATIO,
        )

    portfolio, first, times = worker_serve(run, repeat)
    trades = portfolio.trades
    print(
        json.dumps(
            {
                "version": vbt.__version__,
                "first_seconds": first,
                "seconds": times,
                "trades": int(trades.count()),
                "open_trades": int(trades.open.count()),
                "entry_indices": trades.records["entry_idx"].tolist(),
                # An open trade's exit_idx is the last candle's; -1 here, as the engine's exit_index.
                "exit_indices": np.where(
                    trades.records["status"] == 1, trades.records["exit_idx"], -1
                ).tolist(),
                "exit_prices": trades.records["exit_price"].tolist(),
                "final_value": float(portfolio.final_value()),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="folder of Binance 1m kline CSVs (one file a day)")
    parser.add_argument(
        "--vectorbt-python", required=True, help="interpreter of a virtual environment holding vectorbt 1.x"
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed warm runs of each side (default 7)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from engine_minutes import load_klines, read_candles

    from trading.engine import backtest as backtest_module
    from trading.engine.backtest import BacktestResult
    from trading.engine.conditions import signals_compute
    from trading.engine.criteria import criteria_parse

    candles = read_candles(load_klines(args.folder))
    criteria = criteria_parse(CRITERIA)
    signals = signals_compute(criteria, candles)

    def run() -> BacktestResult:
        return backtest_module.backtest(
            criteria=criteria,
            instruments=[candles],
            start_time_seconds=int(candles.open_time_seconds[0]),
            end_time_seconds=int(candles.open_time_seconds[-1]),
            starting_cash=STARTING_CASH,
            candle_seconds=60,
        )

    with tempfile.TemporaryDirectory() as folder:
        npz = Path(folder) / "signals.npz"
        worker_input_save(
            npz,
            candles=candles,
            entry=signals.entry,
            exit=signals.exit,
        )
        worker = VectorbtWorker(
            python=args.vectorbt_python, script=__file__, arguments=[str(npz), "--repeat", str(args.repeat)]
        )
        run()  # the engine's first run loads its compiled code
        times: list[float] = []
        for _ in range(args.repeat):  # interleaved: one vectorbt run, then one engine run
            worker.run()
            started = time.perf_counter()
            result = run()
            times.append(time.perf_counter() - started)
        vbt = worker.result()

    # Where the engine's time goes: its steps, timed by wrapping them in backtest's namespace.
    split: dict[str, list[float]] = {}
    steps = {
        "signals (TA-Lib SMAs, comparisons)": "signals_compute",
        "market columns (signals included)": "_market_columns",
        "closes at each boundary": "_closes_on",
        "compiled loop (run_boundaries)": "run_boundaries",
        "trade log": "_trade_log",
        "equity curve and exposure": "curves_from_trades",
        "buy and hold": "_buy_and_hold",
    }
    import trading.engine.statistics as statistics_module

    originals = {name: getattr(backtest_module, name) for name in steps.values()}
    original_statistics = statistics_module.backtest_statistics

    def timed(label: str, function):  # type: ignore[no-untyped-def]
        def wrapper(*positional, **named):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            result = function(*positional, **named)
            split.setdefault(label, []).append(time.perf_counter() - started)
            return result

        return wrapper

    signal_times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        signals_compute(criteria, candles)
        signal_times.append(time.perf_counter() - started)
    try:
        for label, name in steps.items():
            setattr(backtest_module, name, timed(label, originals[name]))
        statistics_module.backtest_statistics = timed("statistics", original_statistics)
        for _ in range(args.repeat):
            run()
    finally:
        for name, function in originals.items():
            setattr(backtest_module, name, function)
        statistics_module.backtest_statistics = original_statistics

    engine = statistics.median(times)
    engine_signals = statistics.median(signal_times)
    vectorbt = statistics.median(vbt["seconds"])
    log = result.trade_log
    engine_trades = len(log)
    engine_open = int(np.count_nonzero(~log.closed))
    print(
        f"candles: {len(candles):,}   entry signals: {int(signals.entry.sum()):,}   "
        f"vectorbt {vbt['version']} ({args.vectorbt_python})"
    )
    print(f"| measure (median of {args.repeat}, warm) | seconds | goal |")
    print("|---|---|---|")
    print(f"| engine: backtest (signals, loop, curves, statistics) | {engine:.3f} | |")
    print(f"| engine: its signals alone | {engine_signals:.3f} | |")
    print(f"| vectorbt: Portfolio.from_signals, given the signals | {vectorbt:.3f} | |")
    print(f"| ratio engine / vectorbt | {engine / vectorbt:.2f} | <= 0.5 |")
    print(f"| ratio engine without its signals / vectorbt | {(engine - engine_signals) / vectorbt:.2f} | |")
    print(
        f"trades: engine {engine_trades:,} ({engine_open} open), vectorbt {vbt['trades']:,} "
        f"({vbt['open_trades']} open); vectorbt's first run (compiling or loading): {vbt['first_seconds']:.2f} s"
    )
    entries_engine = set(log.entry_index.tolist())
    entries_vectorbt = set(vbt["entry_indices"])
    print(
        f"entry candles: {len(entries_engine & entries_vectorbt):,} in both, "
        f"{len(entries_engine - entries_vectorbt):,} engine only, {len(entries_vectorbt - entries_engine):,} "
        "vectorbt only"
    )
    exits_engine = dict(zip(log.entry_index.tolist(), log.exit_index.tolist(), strict=True))
    exits_vectorbt = dict(zip(vbt["entry_indices"], vbt["exit_indices"], strict=True))
    differ = [
        (entry, exits_engine[entry], exits_vectorbt[entry])
        for entry in sorted(entries_engine & entries_vectorbt)
        if exits_engine[entry] != exits_vectorbt[entry]
    ]
    print(
        f"exit candles of the trades entered at the same candle: {len(differ):,} differ "
        "(entry, engine's exit or -1 for open, vectorbt's exit): " + ", ".join(map(str, differ[:5]))
    )
    prices_engine = dict(zip(log.entry_index.tolist(), log.exit_price.tolist(), strict=True))
    prices_vectorbt = dict(zip(vbt["entry_indices"], vbt["exit_prices"], strict=True))
    priced = [
        (entry, prices_engine[entry], prices_vectorbt[entry])
        for entry in sorted(entries_engine & entries_vectorbt)
        if exits_engine[entry] >= 0
        and exits_engine[entry] == exits_vectorbt[entry]
        and abs(prices_engine[entry] - prices_vectorbt[entry]) > 1e-9 * prices_engine[entry]
    ]
    print(
        f"exit prices of the closed trades with the same candles: {len(priced):,} differ "
        "(entry, engine's exit price, vectorbt's): " + ", ".join(map(str, priced[:5]))
    )
    print("where the engine's time goes (median ms of each step):")
    for label, values in split.items():
        print(f"  {label}: {1000 * statistics.median(values):.1f}")


if __name__ == "__main__":
    script_main(worker=vectorbt_worker, main=main)
