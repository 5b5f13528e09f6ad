"""What the benchmarks against vectorbt share: the rules that align ``Portfolio.from_signals`` with the engine,
and the worker process that runs vectorbt in an interpreter of its own, timed in turn with the engine.

vectorbt is never a dependency of Barter: the benchmarks start ``--vectorbt-python`` (a virtual environment made
for them only) on their own script with ``--worker``; that process imports this module, numpy and vectorbt, and
nothing of Barter. Both sides are timed warm and interleaved: the worker runs once (loading or compiling its
Numba code), says ``ready``, then answers each line it reads on its standard input with one timed run (its
seconds on one line), so that both sides see the same load on a shared machine; its last line is a JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: ``Portfolio.from_signals`` arguments that make vectorbt follow the engine's rules (CRITERIA.md): long only;
#: all the cash (``size=inf``: it buys ``cash / (price * (1 + fee))``, as ``equity_fraction`` 1.0 does); stops
#: measured from the fill price and filled at the level or at a worse open; no minimum order size (vectorbt's
#: default of 1e-8 units refuses entries once the cash has fallen below 1e-8 units of the asset). The prices,
#: stops and fee are the caller's.
FROM_SIGNALS_RULES: dict[str, Any] = {
    "stop_entry_price": "fillprice",
    "stop_exit_price": "stoplimit",
    "size": np.inf,
    "min_size": 0.0,
    "direction": "longonly",
}


def signals_shift(signal: np.ndarray) -> np.ndarray:
    """The signal of candle ``t`` moved to candle ``t + 1``, where the engine fills it (at the open: the caller
    passes ``price=open``).

    Args:
        signal: shape (n,) or (n, columns), bool: the signals on the candles they hold on.

    Returns:
        A new bool array of the same shape; row 0 is False.
    """
    shifted = np.zeros_like(signal, dtype=np.bool_)
    shifted[1:] = signal[:-1]
    return shifted


def worker_input_save(path: Path, *, candles: Any, **arrays: np.ndarray) -> None:
    """Write the worker's input: the prices of ``candles`` (a :class:`~trading.engine.types.CandleArrays`) as
    ``open``, ``high``, ``low``, ``close`` and ``arrays`` under their names, into the ``.npz`` file ``path``."""
    prices = {name: getattr(candles, name) for name in ("open", "high", "low", "close")}
    np.savez(path, **prices, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle among them


def portfolio_from_signals(
    vbt: Any,
    *,
    candles: dict[str, np.ndarray],
    entries: np.ndarray,
    exits: np.ndarray,
    fee_rate: float,
    starting_cash: float,
    freq: str,
    **stops: float,
) -> Any:
    """vectorbt's ``Portfolio.from_signals`` under the engine's rules (:data:`FROM_SIGNALS_RULES`), the signal of
    candle ``t`` filled at the open of ``t + 1`` (shifted here; ``price=open``).

    Args:
        vbt: the ``vectorbt`` module (imported by the worker only).
        candles: ``open``, ``high``, ``low``, ``close``, float64, shape (n,) or (n, 1).
        entries, exits: shape (n,) or (n, columns), bool: the signals on the candles they hold on.
        fee_rate: a fraction of each fill's notional (0.001 is 0.1 %).
        starting_cash: quote currency.
        freq: the candles' length as pandas writes it (``"1D"``, ``"1min"``): the annualisation of its ratios.
        stops: ``sl_stop``, ``tp_stop`` as fractions of the fill price.

    Returns:
        The ``Portfolio``.
    """
    return vbt.Portfolio.from_signals(
        candles["close"],
        signals_shift(entries),
        signals_shift(exits),
        price=candles["open"],
        open=candles["open"],
        high=candles["high"],
        low=candles["low"],
        fees=fee_rate,
        init_cash=starting_cash,
        freq=freq,
        **stops,
        **FROM_SIGNALS_RULES,
    )


def script_main(*, worker: Callable[[str, int], None], main: Callable[[], None]) -> None:
    """A benchmark script's entry: ``--worker NPZ --repeat N`` runs ``worker(NPZ, N)`` (in the vectorbt
    interpreter, started by :class:`VectorbtWorker`), anything else ``main()``."""
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        parser = argparse.ArgumentParser()
        parser.add_argument("--worker")
        parser.add_argument("--repeat", type=int)
        arguments = parser.parse_args()
        worker(arguments.worker, arguments.repeat)
    else:
        main()


def worker_serve(run: Callable[[], Any], repeat: int) -> tuple[Any, float, list[float]]:
    """In the vectorbt interpreter: run once, say ``ready``, then time one run per line read from the standard
    input, printing each run's seconds.

    Args:
        run: one measured run; its first result is returned.
        repeat: timed runs after the first.

    Returns:
        (the first run's result, its seconds, the seconds of each timed run).
    """
    started = time.perf_counter()
    result = run()
    first_seconds = time.perf_counter() - started
    print("ready", flush=True)
    times = []
    for _ in range(repeat):
        sys.stdin.readline()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
        print(times[-1], flush=True)
    return result, first_seconds, times


class VectorbtWorker:
    """The caller's side of :func:`worker_serve`: start the worker, ask for its timed runs, read its JSON.

    Args:
        python: the vectorbt interpreter.
        script: the benchmark script, run as ``python script --worker ARGS...``.
        arguments: the worker's own arguments.

    Raises:
        SystemExit: the worker ended before it was ready, or with a non-zero status.
    """

    def __init__(self, *, python: str, script: str | Path, arguments: Sequence[str]) -> None:
        self.process = subprocess.Popen(  # noqa: S603 (the benchmark's own script, in the interpreter it was given)
            [python, str(script), "--worker", *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        while self.process.stdout.readline().strip() != "ready":
            if self.process.poll() is not None:
                raise SystemExit(f"the vectorbt worker ended with {self.process.returncode}")

    def run(self) -> None:
        """Ask for one timed run and wait until it is done."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        self.process.stdout.readline()

    def result(self) -> dict[str, Any]:
        """Close the worker's input; return the JSON object of its last line once it has ended."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        output = self.process.stdout.read().strip().splitlines()
        if self.process.wait() != 0 or not output:
            raise SystemExit(f"the vectorbt worker ended with {self.process.returncode}")
        result: dict[str, Any] = json.loads(output[-1])
        return result
