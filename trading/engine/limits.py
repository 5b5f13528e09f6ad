"""The one set of limits on what a criteria document, a simulation and a sweep may ask for.

The API, the admin (a strategy's criteria), the simulator form, ``manage.py simulate`` and the live cycle all check
criteria through :func:`trading.engine.criteria.criteria_parse`, which applies the criteria limits below first;
the simulator's request check (``simulator.services.simulation_request_check``) applies the date, candle and sweep
limits. Each limit is far above what a reasonable strategy uses and far below what costs a server real memory or
minutes (``docs/reliability.md``, "Bounded cost", has the measured figures):

- :data:`MAX_CRITERIA_BYTES` 64 KiB: CRITERIA.md's longest example is under 1 KiB, and a strategy of
  :data:`MAX_CONDITIONS` comparisons with every parameter written out is about 30 KiB.
- :data:`MAX_CONDITIONS` 200 comparisons (entry and exit together): the example strategies have 1 to 3; a
  simulation's cost grows with the count (the issue's 14,000 took one worker to 1.9 GB).
- :data:`MAX_DEPTH` 32 levels of JSON objects and lists: a flat group is 5 deep, every nested ``all``/``any``
  adds 2 and ``not`` adds 1; 32 is about a dozen nested groups. It also keeps every recursive walk (parsing,
  evaluation, JSON encoding) far from Python's recursion limit (the issue's 931 levels raised RecursionError).
- :data:`MAX_PERIOD` 100,000: TA-Lib's own bound for every ``timeperiod`` (``optInTimePeriod`` 2..100000, or
  1..100000; https://ta-lib.org/functions/); 100,001 made TA-Lib fail with ``TA_BAD_PARAM``. It bounds shifts and
  ``max_holding_days`` too: more than 270 years of daily candles.
- :data:`MAX_STDDEV` 100 standard deviations for Bollinger bands: TA-Lib accepts up to 3e37 (``1e308`` failed
  with ``TA_BAD_PARAM``), but prices never stray 100 deviations from their mean, so a wider band is never touched.
- :data:`EARLIEST_DAY` 2009-01-03, Bitcoin's genesis block: no crypto candle is older; the last day is today (UTC).
- :data:`MAX_INSTRUMENTS` 20 per run, :data:`MAX_SWEEP_POINTS` 10,000 grid points, and
  :data:`MAX_SWEEP_CONDITION_POINTS` 200,000 (grid points times comparisons: 10,000 points of a 20-comparison
  strategy, or 1,000 points of the largest), so a sweep's work is bounded and not just its grid.
- :data:`MAX_WALK_FORWARD_RUNS` 100,000: a walk-forward's folds times its grid points (10 folds of a 10,000-point
  grid, or 200 folds of 500): each fold runs the grid on its train window, so without it 200 folds of 10,000 points
  would be 2 million runs (some 5 minutes of a core at the sweep kernel's 0.15 ms a point-run of 5 years).

This module is pure (no Django), like the rest of the engine; the indicator registry says which parameters
look back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from trading.engine.indicators import lookback_params

MAX_CRITERIA_BYTES = 65_536
MAX_CONDITIONS = 200
MAX_DEPTH = 32
MAX_PERIOD = 100_000
MAX_STDDEV = 100.0
EARLIEST_DAY = date(2009, 1, 3)
MAX_INSTRUMENTS = 20
MAX_SWEEP_POINTS = 10_000
MAX_SWEEP_CONDITION_POINTS = 200_000
MAX_WALK_FORWARD_RUNS = 100_000


def json_depth(document: Any, *, stop_after: int | None = None) -> int:
    """Return how deeply JSON objects and lists nest in ``document``, without recursion (any depth is safe).

    Args:
        document: decoded JSON (``dict``, ``list``, scalars).
        stop_after: when given, stop walking as soon as this depth is exceeded and return ``stop_after + 1``.

    Returns:
        0 for a scalar, 1 for a flat object or list, and so on.
    """
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if stop_after is not None and deepest > stop_after:
                return stop_after + 1
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def condition_count(document: Any) -> int:
    """Return how many comparisons (objects with ``op``, ``left`` or ``right``) ``document`` holds, iteratively."""
    count, stack = 0, [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "op" in node or "left" in node or "right" in node:
                count += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def criteria_size_bytes(document: Any) -> int:
    """Return the size of ``document`` as compact UTF-8 JSON, in bytes (call it once the depth is bounded)."""
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def criteria_limits_check(document: Any) -> list[tuple[str, str]]:
    """Check a decoded criteria document against the size limits before anything walks it recursively.

    Args:
        document: the decoded JSON of a criteria document (any shape).

    Returns:
        ``[(path, message), ...]``: empty when the document is within :data:`MAX_DEPTH`,
        :data:`MAX_CRITERIA_BYTES` and :data:`MAX_CONDITIONS`; the path is ``""`` (the whole document).
    """
    depth = json_depth(document, stop_after=MAX_DEPTH)
    if depth > MAX_DEPTH:
        return [("", f"nested more than {MAX_DEPTH} levels deep (objects and lists); simplify the criteria")]
    problems = []
    size = criteria_size_bytes(document)
    if size > MAX_CRITERIA_BYTES:
        problems.append(
            ("", f"the criteria are {size:,} bytes as compact JSON; at most {MAX_CRITERIA_BYTES:,}")
        )
    conditions = condition_count(document)
    if conditions > MAX_CONDITIONS:
        problems.append(
            ("", f"the criteria have {conditions:,} comparisons (entry and exit); at most {MAX_CONDITIONS:,}")
        )
    return problems


def criteria_periods(document: Any) -> list[tuple[str, int]]:
    """Every look-back parameter (:func:`trading.engine.indicators.lookback_params`) of a valid criteria document,
    with its path.

    Args:
        document: a criteria document that :func:`trading.engine.criteria.criteria_parse` accepts.

    Returns:
        ``[(path, value), ...]`` in document order, paths in the engine's syntax (``entry.all[0].left.period``).
    """
    found: list[tuple[str, int]] = []
    lookbacks = lookback_params()
    stack: list[tuple[Any, str, str]] = [(document, "", "")]
    while stack:  # depth first, children pushed in reverse: popped in document order
        node, path, key = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k), str(k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", "") for i, v in reversed(list(enumerate(node))))
        elif key in lookbacks and isinstance(node, int) and not isinstance(node, bool):
            found.append((path, node))
    return found


@dataclass(frozen=True)
class Lookback:
    """A look-back parameter of a criteria document and the candles it looks back over.

    Attributes:
        path: the parameter's path (``entry.all[0].left.period``).
        value: the parameter's value, in candles of ``timeframe``.
        instrument: the CoinGecko id its operand names, or None for the traded instruments.
        timeframe: ``"1d"`` (the run's own candles) or ``"1w"`` (weeks).
    """

    path: str
    value: int
    instrument: str | None
    timeframe: str

    @property
    def candles(self) -> int:
        """How many of the run's candles it needs: ``value``, or 7 days a week for a weekly operand."""
        return self.value * WEEK_DAYS if self.timeframe == "1w" else self.value


#: The days of a week, by which a weekly look-back counts stored daily candles.
WEEK_DAYS = 7


def criteria_lookbacks(document: Any) -> list[Lookback]:
    """Every look-back parameter of a valid criteria document (:func:`criteria_periods`) with the instrument and
    timeframe of its operand, in document order."""
    found: list[Lookback] = []
    lookbacks = lookback_params()
    # (node, path, key, the enclosing operand's instrument and timeframe)
    stack: list[tuple[Any, str, str, str | None, str]] = [(document, "", "", None, "1d")]
    while stack:  # depth first, children pushed in reverse: popped in document order
        node, path, key, instrument, timeframe = stack.pop()
        if isinstance(node, dict):
            if "indicator" in node:
                instrument = node.get("instrument") if isinstance(node.get("instrument"), str) else None
                timeframe = "1w" if node.get("timeframe") == "1w" else "1d"
            stack.extend(
                (v, f"{path}.{k}" if path else str(k), str(k), instrument, timeframe)
                for k, v in reversed(node.items())
            )
        elif isinstance(node, list):
            stack.extend(
                (v, f"{path}[{i}]", "", instrument, timeframe) for i, v in reversed(list(enumerate(node)))
            )
        elif key in lookbacks and isinstance(node, int) and not isinstance(node, bool):
            found.append(Lookback(path, node, instrument, timeframe))
    return found


def criteria_operand_fields(document: Any, name: str) -> list[tuple[str, Any]]:
    """Every field ``name`` (``"instrument"``, ``"timeframe"``) of an indicator operand of a decoded criteria
    document, with its path (``entry.all[0].left.instrument``) and value, in document order (iteratively)."""
    found: list[tuple[str, Any]] = []
    stack: list[tuple[Any, str]] = [(document, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if "indicator" in node and name in node:
                found.append((f"{path}.{name}" if path else name, node[name]))
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
    return found


def periods_check(
    document: Any,
    *,
    available: int,
    where: str,
    candles: str = "daily candles",
    references: Mapping[str, tuple[int, str]] | None = None,
) -> list[tuple[str, str]]:
    """Refuse look-back periods longer than the candles a run has.

    A weekly operand's period (``"timeframe": "1w"``) counts weeks of 7 stored daily candles each; an operand of
    another instrument (``"instrument": "bitcoin"``) is checked against that instrument's candles, named in the
    message.

    Args:
        document: a valid criteria document.
        available: the fewest candles any instrument of the run has stored up to its last day.
        where: who has that few, for the message (``"bitcoin up to 2024-12-31"``).
        candles: what they are, for the message (``"daily candles"``, ``"1h candles"``).
        references: CoinGecko id -> ``(available, where)`` of each other instrument the operands name; one
            missing here counts as having no candles.

    Returns:
        ``[(path, message), ...]``, one per period above what is stored.
    """
    problems = []
    for lookback in criteria_lookbacks(document):
        if lookback.instrument is None:
            stored, holder = available, where
        else:
            stored, holder = (references or {}).get(lookback.instrument, (0, lookback.instrument))
        if lookback.candles <= stored:
            continue
        if lookback.timeframe == "1w":
            message = (
                f"must be at most the {stored // WEEK_DAYS:,} weeks ({WEEK_DAYS} days each) of the {stored:,} "
                f"{candles} stored for {holder}; was {lookback.value:,} weeks ({lookback.candles:,} days)"
            )
        else:
            message = f"must be at most the {stored:,} {candles} stored for {holder}; was {lookback.value:,}"
        problems.append((lookback.path, message))
    return problems
