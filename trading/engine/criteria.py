"""Validation of trade criteria (``../shared/CRITERIA.md``, format version 1) into typed values.

:func:`criteria_parse` accepts the JSON document (already decoded) that the admin, the API, the simulator form,
the live cycle and the command line all use, and returns :class:`Criteria`, or raises :class:`CriteriaError`
listing every problem with the path of the bad field, e.g. ``entry.all[1].right.period: must be an integer
>= 1, was 0``. Unknown keys are errors too, so a typo never passes silently.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from trading.engine.indicators import INDICATORS, PRICE_FIELDS
from trading.engine.limits import MAX_PERIOD, MAX_STDDEV, criteria_limits_check
from trading.engine.params import is_reference, params_resolve, reference_message

VERSION = 1
COMPARISONS = (">", ">=", "<", "<=", "crosses_above", "crosses_below")
SIZING_METHODS = ("equity_fraction", "fixed_quote", "risk")
#: The risk limits a criteria document's ``limits`` object may set (docs/criteria.md "Risk limits").
LIMIT_FIELDS = (
    "max_open_positions",
    "max_exposure_ratio",
    "daily_loss_limit_ratio",
    "max_drawdown_halt_ratio",
    "drawdown_resume_days",
    "cooldown_days_after_stop_loss",
)
#: The most ATRs a risk-sized entry's stop may be below its fill.
MAX_ATR_MULTIPLE = 100.0
#: The largest period, shift or holding time accepted: TA-Lib's own bound for every period
#: (:data:`trading.engine.limits.MAX_PERIOD`).
MAX_INTEGER = MAX_PERIOD
#: The timeframes an indicator operand may name: the run's own candles, or weekly ones built from daily candles.
OPERAND_TIMEFRAMES = ("1d", "1w")
#: A CoinGecko id as an operand's ``instrument``: lower-case letters, digits and ``-``, at most 100 characters
#: (the length of ``Instrument.coingecko_id``).
INSTRUMENT_ID = re.compile(r"[a-z0-9-]{1,100}")


class CriteriaError(ValueError):
    """The criteria document is invalid.

    Attributes:
        errors: ``[(path, message), ...]``, every problem found, in document order.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {message}" if path else message for path, message in errors))


@dataclass(frozen=True)
class Operand:
    """A constant (``indicator`` is ``"value"``) or an indicator series, optionally shifted.

    Attributes:
        indicator: ``"value"``, or an indicator name of :data:`trading.engine.indicators.INDICATORS` (price
            fields included).
        params: the indicator's parameters with defaults filled in, as sorted ``(name, value)`` pairs.
        value: the constant, for ``"value"``.
        shift: how many candles earlier the value is taken (>= 0), candles of the operand's own series: weeks for
            a weekly operand, the other instrument's candles for one of another instrument.
        instrument: the CoinGecko id of the instrument whose candles the series is computed over, or None for the
            traded instrument (docs/criteria.md, "Another instrument and weekly candles").
        timeframe: ``"1d"`` (the run's own candles) or ``"1w"`` (weekly candles built from the daily ones,
            counted once complete).
    """

    indicator: str
    params: tuple[tuple[str, Any], ...] = ()
    value: float | None = None
    shift: int = 0
    instrument: str | None = None
    timeframe: str = "1d"

    def param(self, name: str) -> Any:
        """Return parameter ``name``."""
        return dict(self.params)[name]


@dataclass(frozen=True)
class Compare:
    """``left OP right``."""

    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True)
class AllOf:
    """True where every condition holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """True where at least one condition holds."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class NotOf:
    """True where the condition does not hold."""

    item: Condition


Condition = Compare | AllOf | AnyOf | NotOf


@dataclass(frozen=True)
class Sizing:
    """How much an entry spends: ``equity_fraction`` (``value`` in (0, 1]), ``fixed_quote`` (quote currency),
    or ``risk`` (``value`` in (0, 1): the fraction of equity lost when the stop is hit, docs/criteria.md
    "Risk-based sizing").

    Attributes:
        method, value: as above.
        atr_period, atr_multiple: with ``risk``, the stop is ``atr_multiple`` ATRs (Wilder's, ``atr_period``
            candles) below the fill; both None when the stop is the criteria's ``stop_loss_ratio``.
    """

    method: str = "equity_fraction"
    value: float = 1.0
    atr_period: int | None = None
    atr_multiple: float | None = None


@dataclass(frozen=True)
class Limits:
    """The risk limits of a strategy (docs/criteria.md "Risk limits"), each None when not set.

    Attributes:
        max_open_positions: the most positions open at once, >= 1.
        max_exposure_ratio: the most of the equity held in open positions, in (0, 1].
        daily_loss_limit_ratio: no entries for the rest of a UTC day once its loss exceeds this, in (0, 1).
        max_drawdown_halt_ratio: no entries while the drawdown from the peak equity exceeds this, in (0, 1).
        drawdown_resume_days: the drawdown halt ends this many days after it began (the peak is reset), >= 1;
            only with ``max_drawdown_halt_ratio``.
        cooldown_days_after_stop_loss: no entry in an instrument for this many days after its stop-loss, >= 1.
    """

    max_open_positions: int | None = None
    max_exposure_ratio: float | None = None
    daily_loss_limit_ratio: float | None = None
    max_drawdown_halt_ratio: float | None = None
    drawdown_resume_days: int | None = None
    cooldown_days_after_stop_loss: int | None = None


@dataclass(frozen=True)
class Criteria:
    """Validated trade criteria. Ratios are fractions: 0.08 means 8 %.

    Attributes:
        side: ``"long"``.
        entry: the entry condition.
        exit: the exit condition, or None (only the risk exits close positions).
        stop_loss_ratio: stop at ``entry_price * (1 - ratio)``, in (0, 1), or None.
        take_profit_ratio: take profit at ``entry_price * (1 + ratio)``, > 0, or None.
        trailing_stop_ratio: trailing stop ``ratio`` below the highest price since entry, in (0, 1), or None.
        max_holding_days: exit at the first open at least this many days after entry, >= 1, or None.
        sizing: see :class:`Sizing`.
        fee_rate: fee per fill as a fraction of its notional, in [0, 0.1); 0.001 means 0.1 %.
        slippage_ratio: fills are this fraction worse than the price, in [0, 0.1).
        limits: the risk limits (:class:`Limits`; all None without a ``limits`` object).
        document: the normalised JSON document (defaults filled in), as stored and shown; its ``params`` and
            ``{"param": name}`` references are kept (docs/criteria.md, "Named parameters").
    """

    side: str
    entry: Condition
    exit: Condition | None
    stop_loss_ratio: float | None
    take_profit_ratio: float | None
    trailing_stop_ratio: float | None
    max_holding_days: int | None
    sizing: Sizing
    fee_rate: float
    slippage_ratio: float
    limits: Limits = field(default_factory=Limits)
    document: dict[str, Any] = field(compare=False, hash=False, default_factory=dict)

    def operands(self) -> list[Operand]:
        """Every indicator operand of the entry and exit conditions (for warm-up and preloading)."""
        found: list[Operand] = []
        for condition in (self.entry, self.exit):
            if condition is not None:
                _collect_operands(condition, found)
        return found


def _collect_operands(condition: Condition, found: list[Operand]) -> None:
    if isinstance(condition, Compare):
        found.extend(o for o in (condition.left, condition.right) if o.indicator != "value")
    elif isinstance(condition, NotOf):
        _collect_operands(condition.item, found)
    else:
        for item in condition.items:
            _collect_operands(item, found)


TOP_LEVEL_DEFAULTS: dict[str, Any] = {
    "exit": None,
    "stop_loss_ratio": None,
    "take_profit_ratio": None,
    "trailing_stop_ratio": None,
    "max_holding_days": None,
    "sizing": {"method": "equity_fraction", "value": 1.0},
    "fee_rate": 0.001,
    "slippage_ratio": 0.0,
}


class _Checker:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def keys(self, data: dict[str, Any], path: str, allowed: set[str]) -> None:
        for key in data:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.fail(where, f"unknown field; expected one of {', '.join(sorted(allowed))}")

    def number(
        self,
        value: Any,
        path: str,
        *,
        low: float,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = True,
        nullable: bool = False,
    ) -> float | None:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            self.fail(path, f"must be a number{' or null' if nullable else ''}, was {_show(value)}")
            return None
        # JSON has no infinity, but Python's reader takes Infinity and -Infinity.
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(path, f"must be a finite number, was {_show(value)}")
            return None
        if isinstance(value, int) and abs(value) > 2**1023:  # JSON integers have no bound; floats do
            digits = len(str(abs(value)))
            self.fail(path, f"must be a number between -1e308 and 1e308, was an integer of {digits} digits")
            return None
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high)
        )
        if not ok:
            lower = f"{'>' if low_open else '>='} {_num(low)}"
            upper = "" if high is None else f" and {'<' if high_open else '<='} {_num(high)}"
            self.fail(path, f"must be {lower}{upper}, was {_show(value)}")
            return None
        return float(value)

    def integer(self, value: Any, path: str, *, low: int, nullable: bool = False) -> int | None:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(
                path, f"must be an integer >= {low}{' or null' if nullable else ''}, was {_show(value)}"
            )
            return None
        if value > MAX_INTEGER:
            self.fail(path, f"must be an integer <= {MAX_INTEGER:,}, was {_show(value)}")
            return None
        return value


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (int, float)) else type(value).__name__


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def criteria_parse(document: Any) -> Criteria:
    """Validate a criteria document and return it typed, with defaults filled in.

    Args:
        document: the decoded JSON (``dict``); numbers may be ``int`` or ``float``. Named parameters
            (``"params"`` and ``{"param": name}`` references) are substituted first (:func:`criteria_resolve`), so
            every check applies to the substituted value; an error about a field a parameter stood for names the
            parameter (``entry.left.period: parameter "fast" is 0; must be an integer >= 1``).

    Returns:
        :class:`Criteria` (the engine's values: no parameters left).

    Raises:
        CriteriaError: listing every problem with its path; nothing is returned for a half-valid document. A
            document beyond :mod:`trading.engine.limits` (size, comparisons, nesting) is refused with that alone.
    """
    check = _Checker()
    resolved, references = _resolved(document)
    data = {**TOP_LEVEL_DEFAULTS, **resolved}
    check.keys(data, "", {"version", "side", "params", "entry", "limits", *TOP_LEVEL_DEFAULTS})
    if data.get("version") != VERSION:
        check.fail("version", f"must be {VERSION}, was {_show(data.get('version'))}")
    side = data.get("side")
    if side != "long":
        message = "short positions are not supported yet; use long" if side == "short" else "must be long"
        check.fail("side", f"{message}, was {_show(side)}")
    entry = _condition(check, data.get("entry"), "entry") if "entry" in data else None
    if "entry" not in data:
        check.fail("entry", 'is required: a condition such as {"all": [...]}')
    exit_ = None if data["exit"] is None else _condition(check, data["exit"], "exit")
    stop_loss = check.number(
        data["stop_loss_ratio"], "stop_loss_ratio", low=0, high=1, low_open=True, nullable=True
    )
    take_profit = check.number(
        data["take_profit_ratio"], "take_profit_ratio", low=0, low_open=True, nullable=True
    )
    trailing = check.number(
        data["trailing_stop_ratio"], "trailing_stop_ratio", low=0, high=1, low_open=True, nullable=True
    )
    max_holding = check.integer(data["max_holding_days"], "max_holding_days", low=1, nullable=True)
    sizing = _sizing(
        check, data["sizing"], stop_loss=stop_loss, has_stop_loss=data["stop_loss_ratio"] is not None
    )
    limits = _limits(check, data.get("limits", {}))
    fee_rate = check.number(data["fee_rate"], "fee_rate", low=0, high=0.1)
    slippage = check.number(data["slippage_ratio"], "slippage_ratio", low=0, high=0.1)
    if (
        check.errors
        or entry is None
        or sizing is None
        or limits is None
        or fee_rate is None
        or slippage is None
    ):
        raise CriteriaError(
            [
                (path, reference_message(references[path], m) if path in references else m)
                for path, m in check.errors
            ]
        )
    # The document as written (references kept), defaults filled in.
    written = {**TOP_LEVEL_DEFAULTS, **document}
    normalised: dict[str, Any] = {"version": VERSION, "side": "long"}
    if "params" in document:
        normalised["params"] = dict(document["params"])
    normalised.update({k: written[k] for k in TOP_LEVEL_DEFAULTS})
    normalised["entry"] = written["entry"]
    raw_size = written["sizing"].get("value") if isinstance(written["sizing"], dict) else None
    normalised["sizing"] = {
        "method": sizing.method,
        "value": raw_size if is_reference(raw_size) else sizing.value,
    }
    if sizing.method == "risk":
        normalised["sizing"]["stop"] = written["sizing"]["stop"]
    if "limits" in document:
        normalised["limits"] = dict(document["limits"])
    return Criteria(
        side="long",
        entry=entry,
        exit=exit_,
        stop_loss_ratio=stop_loss,
        take_profit_ratio=take_profit,
        trailing_stop_ratio=trailing,
        max_holding_days=max_holding,
        sizing=sizing,
        fee_rate=fee_rate,
        slippage_ratio=slippage,
        limits=limits,
        document=normalised,
    )


def criteria_resolve(document: Any) -> dict[str, Any]:
    """Return a criteria document with its named parameters substituted and ``params`` removed (a copy; a
    document without parameters comes back equal to itself). Only the parameters are checked here.

    Args:
        document: a decoded criteria document.

    Returns:
        The document the engine runs: every ``{"param": name}`` replaced by the value of ``params[name]``.

    Raises:
        CriteriaError: not an object, beyond :mod:`trading.engine.limits`, a bad ``params`` object (a name that is
            not an identifier, a value that is not a number), a reference to an unknown parameter (the message
            names the known ones), a reference in place of a field that is not a number, or a parameter that no
            field refers to. Each with its path (``params.fast``, ``entry.all[0].left.period``).
    """
    return _resolved(document)[0]


def _resolved(document: Any) -> tuple[dict[str, Any], dict[str, str]]:
    if not isinstance(document, dict):
        raise CriteriaError([("", f"criteria must be a JSON object, was {_show(document)}")])
    too_large = criteria_limits_check(document)  # before any recursive walk of the document
    if too_large:
        raise CriteriaError(too_large)
    if "params" not in document and "param" not in json_keys(document):
        return document, {}
    resolved, references, errors = params_resolve(document)
    if errors:  # the rest is checked once the parameters are right: their values are not known before
        raise CriteriaError(errors)
    return resolved, references


def json_keys(document: Any) -> set[str]:
    """Every object key that occurs in a decoded JSON document (iteratively: any depth is safe)."""
    keys: set[str] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            keys.update(str(k) for k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return keys


def _sizing(check: _Checker, data: Any, *, stop_loss: float | None, has_stop_loss: bool) -> Sizing | None:
    if not isinstance(data, dict):
        check.fail(
            "sizing",
            f'must be an object like {{"method": "equity_fraction", "value": 1.0}}, was {_show(data)}',
        )
        return None
    method = data.get("method")
    check.keys(data, "sizing", {"method", "value", "stop"} if method == "risk" else {"method", "value"})
    if method not in SIZING_METHODS:
        check.fail("sizing.method", f"must be one of {', '.join(SIZING_METHODS)}, was {_show(method)}")
        return None
    if method == "equity_fraction":
        value = check.number(data.get("value"), "sizing.value", low=0, high=1, low_open=True, high_open=False)
    elif method == "risk":
        value = check.number(data.get("value"), "sizing.value", low=0, high=1, low_open=True)
        return _risk_sizing(check, data.get("stop"), value, stop_loss=stop_loss, has_stop_loss=has_stop_loss)
    else:
        value = check.number(data.get("value"), "sizing.value", low=0, low_open=True)
    return None if value is None else Sizing(method=method, value=value)


def _risk_sizing(
    check: _Checker, stop: Any, value: float | None, *, stop_loss: float | None, has_stop_loss: bool
) -> Sizing | None:
    """``{"method": "risk", "value": v, "stop": "stop_loss" | {"atr": period, "multiple": m}}``."""
    if stop == "stop_loss":
        if not has_stop_loss:
            check.fail("sizing.stop", 'is "stop_loss", so stop_loss_ratio must be set (the stop sized on)')
            return None
        return None if value is None or stop_loss is None else Sizing(method="risk", value=value)
    if not isinstance(stop, dict):
        check.fail(
            "sizing.stop",
            f'must be "stop_loss" or an ATR stop like {{"atr": 14, "multiple": 2}}, was {_show(stop)}',
        )
        return None
    check.keys(stop, "sizing.stop", {"atr", "multiple"})
    period = check.integer(stop.get("atr"), "sizing.stop.atr", low=1)
    multiple = check.number(
        stop.get("multiple"),
        "sizing.stop.multiple",
        low=0,
        high=MAX_ATR_MULTIPLE,
        low_open=True,
        high_open=False,
    )
    if has_stop_loss:
        check.fail(
            "sizing.stop",
            'an ATR stop sets each trade\'s stop-loss: remove stop_loss_ratio, or size on it with "stop_loss"',
        )
        return None
    if value is None or period is None or multiple is None:
        return None
    return Sizing(method="risk", value=value, atr_period=period, atr_multiple=multiple)


def limits_parse(document: Any) -> Limits:
    """Validate a ``limits`` object (a portfolio's own, or a criteria document's) and return it typed.

    Args:
        document: the decoded JSON object (``{}``: no limits).

    Returns:
        :class:`Limits`.

    Raises:
        CriteriaError: every problem with its path (``limits.max_open_positions: must be an integer >= 1 ...``).
    """
    check = _Checker()
    limits = _limits(check, document)
    if check.errors or limits is None:
        raise CriteriaError(check.errors)
    return limits


def _limits(check: _Checker, data: Any) -> Limits | None:
    if not isinstance(data, dict):
        check.fail("limits", f'must be an object like {{"max_open_positions": 3}}, was {_show(data)}')
        return None
    errors_before = len(check.errors)
    check.keys(data, "limits", set(LIMIT_FIELDS))

    def ratio(key: str, *, up_to_one: bool = False) -> float | None:
        return check.number(
            data.get(key),
            f"limits.{key}",
            low=0,
            high=1,
            low_open=True,
            high_open=not up_to_one,
            nullable=True,
        )

    def count(key: str) -> int | None:
        return check.integer(data.get(key), f"limits.{key}", low=1, nullable=True)

    limits = Limits(
        max_open_positions=count("max_open_positions"),
        max_exposure_ratio=ratio("max_exposure_ratio", up_to_one=True),
        daily_loss_limit_ratio=ratio("daily_loss_limit_ratio"),
        max_drawdown_halt_ratio=ratio("max_drawdown_halt_ratio"),
        drawdown_resume_days=count("drawdown_resume_days"),
        cooldown_days_after_stop_loss=count("cooldown_days_after_stop_loss"),
    )
    if data.get("drawdown_resume_days") is not None and data.get("max_drawdown_halt_ratio") is None:
        check.fail("limits.drawdown_resume_days", "resumes a drawdown halt: set max_drawdown_halt_ratio too")
    return None if len(check.errors) > errors_before else limits


def _condition(check: _Checker, data: Any, path: str) -> Condition | None:
    if not isinstance(data, dict):
        check.fail(path, f"must be a condition object, was {_show(data)}")
        return None
    for combinator in ("all", "any"):
        if combinator in data:
            check.keys(data, path, {combinator})
            items = data[combinator]
            if not isinstance(items, list) or not items:
                check.fail(
                    f"{path}.{combinator}", f"must be a non-empty list of conditions, was {_show(items)}"
                )
                return None
            parsed = [_condition(check, item, f"{path}.{combinator}[{i}]") for i, item in enumerate(items)]
            if any(p is None for p in parsed):
                return None
            conditions = tuple(p for p in parsed if p is not None)
            return AllOf(conditions) if combinator == "all" else AnyOf(conditions)
    if "not" in data:
        check.keys(data, path, {"not"})
        inner = _condition(check, data["not"], f"{path}.not")
        return None if inner is None else NotOf(inner)
    if "op" not in data and "left" not in data:
        check.fail(path, "must have all, any, not, or left/op/right")
        return None
    check.keys(data, path, {"left", "op", "right"})
    op = data.get("op")
    if op not in COMPARISONS:
        check.fail(f"{path}.op", f"must be one of {', '.join(COMPARISONS)}, was {_show(op)}")
    left = _operand(check, data.get("left"), f"{path}.left")
    right = _operand(check, data.get("right"), f"{path}.right")
    if left is None or right is None or op not in COMPARISONS:
        return None
    return Compare(left=left, op=op, right=right)


def _operand(check: _Checker, data: Any, path: str) -> Operand | None:
    if not isinstance(data, dict):
        check.fail(
            path,
            f'must be an operand like {{"value": 30}} or {{"indicator": "sma", "period": 20}}, was {_show(data)}',
        )
        return None
    errors_before = len(check.errors)
    shift = check.integer(data.get("shift", 0), f"{path}.shift", low=0)
    if "value" in data:
        check.keys(data, path, {"value", "shift"})
        value = check.number(data["value"], f"{path}.value", low=float("-inf"))
        if value is None or shift is None or len(check.errors) > errors_before:
            return None
        return Operand(indicator="value", value=value, shift=shift)
    name = data.get("indicator")
    if not isinstance(name, str) or name not in INDICATORS:  # a list or object is not a name either
        check.fail(f"{path}.indicator", f"must be one of value, {', '.join(INDICATORS)}, was {_show(name)}")
        return None
    spec = INDICATORS[name].params
    check.keys(data, path, {"indicator", "shift", "instrument", "timeframe", *spec})
    instrument = data.get("instrument")
    if instrument is not None and not (isinstance(instrument, str) and INSTRUMENT_ID.fullmatch(instrument)):
        check.fail(
            f"{path}.instrument",
            "must be a CoinGecko id (1 to 100 characters of a-z, 0-9 and -, such as bitcoin), "
            f"was {_show(instrument)}",
        )
    timeframe = data.get("timeframe", "1d")
    if timeframe not in OPERAND_TIMEFRAMES:
        check.fail(
            f"{path}.timeframe", f"must be one of {', '.join(OPERAND_TIMEFRAMES)}, was {_show(timeframe)}"
        )
    params: dict[str, Any] = {}
    for param, (kind, default) in spec.items():
        where = f"{path}.{param}"
        raw = data.get(param, default)
        if raw is None:
            check.fail(where, f"is required for {name}")
            continue
        if kind == "period":
            params[param] = check.integer(raw, where, low=1)
        elif kind == "period2":
            params[param] = check.integer(raw, where, low=2)
        elif kind == "stddev":
            params[param] = check.number(raw, where, low=0, low_open=True, high=MAX_STDDEV, high_open=False)
        elif kind == "source":
            if raw not in PRICE_FIELDS:
                check.fail(where, f"must be one of {', '.join(PRICE_FIELDS)}, was {_show(raw)}")
            params[param] = raw
        elif kind == "source_hlc":
            if raw not in ("high", "low", "close"):
                check.fail(where, f"must be one of high, low, close, was {_show(raw)}")
            params[param] = raw
    for param, message in INDICATORS[name].check(params):
        check.fail(f"{path}.{param}", message)
    if len(check.errors) > errors_before or shift is None:
        return None
    return Operand(
        indicator=name,
        params=tuple(sorted(params.items())),
        shift=shift,
        instrument=instrument,
        timeframe=timeframe,
    )


def criteria_instruments(criteria: Criteria) -> tuple[str, ...]:
    """The CoinGecko ids of the other instruments ``criteria`` name (operands' ``instrument``), sorted, distinct:
    the instruments whose candles a run must load besides the traded ones."""
    return tuple(sorted({o.instrument for o in criteria.operands() if o.instrument is not None}))
