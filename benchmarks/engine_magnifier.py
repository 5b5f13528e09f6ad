"""What the bar magnifier costs: a year of daily candles backtested without and with its one-minute candles as
finer candles (docs/criteria.md "Finer candles inside a daily candle"), warm, in this process.

    .venv/bin/python benchmarks/engine_magnifier.py ../shared/data/minute/binance_btcusdt_1m_2024

Reads the Binance kline CSVs as :mod:`engine_minutes` does (cached in a ``.npz``), rolls them up to days, and
times :func:`trading.engine.backtest.backtest` (median and best of ``--repeat`` runs, after one that loads the
compiled code) for two strategies: entering every day with a 2 % stop-loss and a 2 % take-profit (many ambiguous
days), and engine_minutes' SMA 10/30 cross with a 2 % stop-loss, 4 % take-profit and 1 % trailing stop. The time
with minutes includes preparing their indexes (``searchsorted`` over the 525,600 minutes) and the flat arrays.
Also times engine_minutes' run over the minutes themselves (no finer candles), whose goal is <= 0.1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine_minutes import CRITERIA as SMA_CRITERIA  # noqa: E402
from engine_minutes import load_klines  # noqa: E402

from trading.engine.backtest import BacktestResult, backtest  # noqa: E402
from trading.engine.criteria import Criteria, criteria_parse  # noqa: E402
from trading.engine.types import CandleArrays  # noqa: E402

DAY = 86_400
EVERY_DAY: dict[str, Any] = {
    "version": 1,
    "side": "long",
    "entry": {"all": [{"left": {"indicator": "close"}, "op": ">", "right": {"value": 0}}]},
    "stop_loss_ratio": 0.02,
    "take_profit_ratio": 0.02,
    "fee_rate": 0.001,
}


def minutes_and_days(npz: Path) -> tuple[CandleArrays, CandleArrays]:
    """The minutes of ``npz`` and the daily candles rolled up from them."""
    data = np.load(npz)
    ohlcv = data["ohlcv"]
    minutes = CandleArrays(
        "BTCUSDT",
        data["open_time"],
        *(np.ascontiguousarray(ohlcv[:, i]) for i in range(5)),
    )
    day = minutes.open_time_seconds // DAY * DAY
    starts = np.flatnonzero(np.r_[True, day[1:] != day[:-1]])
    ends = np.r_[starts[1:], len(minutes)] - 1
    days = CandleArrays(
        "BTCUSDT",
        day[starts],
        minutes.open[starts],
        np.maximum.reduceat(minutes.high, starts),
        np.minimum.reduceat(minutes.low, starts),
        minutes.close[ends],
        np.add.reduceat(minutes.volume, starts),
    )
    return minutes, days


def timed(run: Callable[[], BacktestResult], repeat: int) -> tuple[float, float, BacktestResult]:
    """Median and best seconds of ``repeat`` runs after a first one, and the last result."""
    result = run()
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), min(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="folder of Binance 1m kline CSVs (one file a day)")
    parser.add_argument("--repeat", type=int, default=7, help="warm runs (default 7)")
    args = parser.parse_args()
    minutes, days = minutes_and_days(load_klines(args.folder))
    print(f"{len(minutes):,} minutes, {len(days)} days")
    print("| run | finer candles | median s | best s | ambiguous | resolved | trades |")
    print("|---|---|---|---|---|---|---|")
    for name, document in (
        ("enter daily, 2 % / 2 %", EVERY_DAY),
        ("SMA 10/30, 2 % / 4 % / trailing 1 %", SMA_CRITERIA),
    ):
        criteria = criteria_parse(document)
        for finer in (None, {"BTCUSDT": minutes}):

            def run(
                finer: dict[str, CandleArrays] | None = finer, criteria: Criteria = criteria
            ) -> BacktestResult:
                return backtest(
                    criteria=criteria,
                    instruments=[days],
                    start_time_seconds=int(days.open_time_seconds[1]),
                    end_time_seconds=int(days.open_time_seconds[-1]),
                    starting_cash=10_000.0,
                    close_at_end=True,
                    finer=finer,
                )

            median, best, result = timed(run, args.repeat)
            print(
                f"| {name} | {'1m' if finer else 'none'} | {median:.4f} | {best:.4f} | "
                f"{result.statistics['ambiguous_candles']} | {result.statistics['ambiguous_resolved']} | "
                f"{len(result.trade_log)} |"
            )
    sma = criteria_parse(SMA_CRITERIA)
    median, best, result = timed(
        lambda: backtest(
            criteria=sma,
            instruments=[minutes],
            start_time_seconds=int(minutes.open_time_seconds[0]),
            end_time_seconds=int(minutes.open_time_seconds[-1]),
            starting_cash=10_000.0,
            candle_seconds=60,
        ),
        args.repeat,
    )
    print(
        f"| engine_minutes' run over the minutes (goal <= 0.1 s) | none | {median:.4f} | {best:.4f} | "
        f"{result.statistics['ambiguous_candles']} | {result.statistics['ambiguous_resolved']} | "
        f"{len(result.trade_log)} |"
    )


if __name__ == "__main__":
    main()
