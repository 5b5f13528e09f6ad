"""How fast the engine backtests a year of one-minute candles (issue 4's speed goal: <= 0.1 s warm, <= 1.5 s in a
fresh process, peak memory < 400 MB).

    .venv/bin/python benchmarks/engine_minutes.py ../shared/data/minute/binance_btcusdt_1m_2024

Reads the Binance kline CSVs (one file a day) into arrays once and keeps them in a ``.npz`` beside the system's
temporary files, so that the timed parts are the engine's: SMA 10/30 crossover entries and exits with a 2 %
stop-loss, 4 % take-profit and 1 % trailing stop, over every candle, statistics included.

- **warm**: the median (and best) of ``--repeat`` runs in this process, after one run that loads the compiled
  code;
- **fresh process**: a new Python process that imports the engine (numpy, TA-Lib, Numba and the compiled code
  cached on disk), reads the arrays and runs once; the time from the process's start to the end of the run,
  minus the reading of the arrays, which it prints separately; and the process's peak resident memory. The first
  fresh process starts with an empty Numba cache, so it also shows what compiling costs (once per install).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from trading.engine.types import CandleArrays

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The kline fields kept in the ``.npz``, each as its own array (and the names of :class:`CandleArrays`).
FIELDS = ("open", "high", "low", "close", "volume")

CRITERIA = {
    "version": 1,
    "side": "long",
    "entry": {
        "left": {"indicator": "sma", "period": 10},
        "op": "crosses_above",
        "right": {"indicator": "sma", "period": 30},
    },
    "exit": {
        "left": {"indicator": "sma", "period": 10},
        "op": "crosses_below",
        "right": {"indicator": "sma", "period": 30},
    },
    "stop_loss_ratio": 0.02,
    "take_profit_ratio": 0.04,
    "trailing_stop_ratio": 0.01,
    "sizing": {"method": "equity_fraction", "value": 1.0},
    "fee_rate": 0.001,
    "slippage_ratio": 0.0,
}


def arrays_path(folder: Path) -> Path:
    """Where the arrays of ``folder``'s klines are cached (keyed by the folder's path and file list)."""
    import hashlib
    import tempfile

    files = sorted(p.name for p in folder.glob("*.csv"))
    key = hashlib.sha256((str(folder.resolve()) + "\n".join(files)).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"barter-bench-klines-v2-{key}.npz"


def load_klines(folder: Path) -> Path:
    """Read Binance 1m kline CSVs (open time in ms or µs) into an ``.npz`` of seconds and OHLCV; return its path."""
    target = arrays_path(folder)
    if target.exists():
        return target
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise SystemExit(f"no .csv files in {folder}; pass the folder of Binance 1m kline files")
    rows = np.concatenate([np.loadtxt(f, delimiter=",", usecols=(0, 1, 2, 3, 4, 5), ndmin=2) for f in files])
    raw_time = rows[:, 0].astype(np.int64)
    seconds = np.where(raw_time > 10**14, raw_time // 1_000_000, raw_time // 1_000)
    # One contiguous array a field, which the engine takes as they are (no copy in the measured process).
    fields = {name: np.ascontiguousarray(rows[:, i]) for i, name in enumerate(FIELDS, start=1)}
    np.savez(target, open_time=seconds, **fields)  # type: ignore[arg-type]  # numpy's stub: allow_pickle
    return target


def read_candles(npz: Path) -> CandleArrays:
    """The candles of :func:`load_klines`'s ``.npz``, as contiguous float64 and int64 arrays of shape (n,)."""
    from trading.engine.types import CandleArrays

    with np.load(npz) as data:
        return CandleArrays(
            symbol="BTCUSDT", open_time_seconds=data["open_time"], **{name: data[name] for name in FIELDS}
        )


def run_once(npz: Path) -> dict[str, float | int]:
    """Backtest the whole file once; return timings and the run's figures."""
    from trading.engine.backtest import backtest
    from trading.engine.criteria import criteria_parse

    started = time.perf_counter()
    candles = read_candles(npz)
    read = time.perf_counter() - started
    criteria = criteria_parse(CRITERIA)
    began = time.perf_counter()
    result = backtest(
        criteria=criteria,
        instruments=[candles],
        start_time_seconds=int(candles.open_time_seconds[0]),
        end_time_seconds=int(candles.open_time_seconds[-1]),
        starting_cash=10_000.0,
        candle_seconds=60,
    )
    return {
        "read_seconds": read,
        "engine_seconds": time.perf_counter() - began,
        "candles": len(candles),
        "trades": len(result.trade_log),
        "final_equity": float(result.statistics["final_equity"] or 0.0),
    }


def fresh_process(npz: Path, python: str, cache_dir: str | None = None) -> dict[str, float | int]:
    """Run :func:`run_once` in a new interpreter; return its figures, wall time and peak memory.

    Args:
        npz: the arrays (:func:`load_klines`).
        python: the interpreter, e.g. that of a virtual environment with the runtime dependencies only.
        cache_dir: when given, Numba keeps its compiled code there (``NUMBA_CACHE_DIR``): an empty folder makes
            the process compile everything, as the first run after installing or changing the engine does.
    """
    code = (
        "import time; t0 = time.perf_counter(); import json, resource, sys; "
        f"sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
        "import engine_minutes; "
        f"figures = engine_minutes.run_once(engine_minutes.Path({str(npz)!r})); "
        "figures['total_seconds'] = time.perf_counter() - t0; "
        "figures['peak_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
        "print(json.dumps(figures))"
    )
    import json
    import os
    import subprocess

    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, env=env)  # noqa: S603
    figures: dict[str, float | int] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    import argparse
    import statistics
    import tempfile

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="folder of Binance 1m kline CSVs (one file a day)")
    parser.add_argument("--repeat", type=int, default=7, help="warm runs (default 7)")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter of the fresh processes (default: this one); `make bench` passes a virtual "
        "environment with the runtime dependencies only, as deployed",
    )
    args = parser.parse_args()
    npz = load_klines(args.folder)
    with tempfile.TemporaryDirectory() as empty:
        compiling = fresh_process(npz, args.python, cache_dir=empty)
        cached = [fresh_process(npz, args.python, cache_dir=empty) for _ in range(3)]
    run_once(npz)
    warm = [float(run_once(npz)["engine_seconds"]) for _ in range(args.repeat)]

    def engine(figures: dict[str, float | int]) -> float:
        return float(figures["total_seconds"]) - float(figures["read_seconds"])

    print(
        f"candles: {compiling['candles']:,}   trades: {compiling['trades']:,}   "
        f"final equity: {float(compiling['final_equity']):.6g}   fresh processes: {args.python}"
    )
    rows = [
        (f"engine, warm (median of {args.repeat})", f"{statistics.median(warm):.3f}", "<= 0.1"),
        ("engine, warm (best)", f"{min(warm):.3f}", ""),
        (
            "fresh process: imports, compiled code from the cache, run (median of 3)",
            f"{statistics.median(engine(c) for c in cached):.3f}",
            "<= 1.5",
        ),
        ("fresh process with an empty cache: imports, compiling, run", f"{engine(compiling):.3f}", ""),
        (
            "reading the arrays, not counted above",
            f"{statistics.median(c['read_seconds'] for c in cached):.3f}",
            "",
        ),
        ("peak memory of a fresh process, MB", f"{max(float(c['peak_mb']) for c in cached):.0f}", "< 400"),
    ]
    print("| measure | seconds | goal |")
    print("|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
