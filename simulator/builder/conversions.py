"""The criteria builder's vocabulary and conversions: which fields a condition row and the scalars have, and
numbers in text both ways (percent in the form, ratios in the criteria document: ``stop_loss_pct`` ``"5"`` is
``stop_loss_ratio`` 0.05, CRITERIA.md).

Text the builder cannot read as a number is passed on as it is, for the engine to refuse with its own message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from simulator.display import number_text, percent_text
from trading.engine.criteria import COMPARISONS, TOP_LEVEL_DEFAULTS
from trading.engine.examples import sma_cross_criteria
from trading.engine.indicators import INDICATOR_PARAMS

GROUPS = ("entry", "exit")


MODES = ("all", "any")


SIDES = ("left", "right")


#: Every indicator parameter name, in the order the builder shows them (period, source, stddev, fast, ...).
PARAM_NAMES: tuple[str, ...] = tuple(dict.fromkeys(p for spec in INDICATOR_PARAMS.values() for p in spec))


#: Parameter name -> kind (``period``, ``period2``, ``positive``, ``source``, ``source_hlc``).
PARAM_KINDS: dict[str, str] = {p: kind for spec in INDICATOR_PARAMS.values() for p, (kind, _) in spec.items()}


#: The inputs of one operand besides its indicator select.
OPERAND_FIELDS: tuple[str, ...] = ("value", *PARAM_NAMES, "shift")


#: The left operand's indicator choices: a constant, then every indicator of the engine.
INDICATOR_CHOICES: tuple[str, ...] = ("value", *INDICATOR_PARAMS)


#: ``(indicator, the inputs it takes)`` for the indicator selects (``data-params`` tells the page what to show).
INDICATOR_OPTIONS: tuple[tuple[str, str], ...] = (
    ("value", "value"),
    *((name, " ".join(spec)) for name, spec in INDICATOR_PARAMS.items()),
)


#: ``(operator, label)`` for the operator selects.
COMPARISON_OPTIONS: tuple[tuple[str, str], ...] = tuple((op, op.replace("_", " ")) for op in COMPARISONS)


#: ``(sizing method, label)``.
SIZING_OPTIONS: tuple[tuple[str, str], ...] = (
    ("equity_fraction", "% of equity"),
    ("fixed_quote", "fixed amount (quote currency)"),
)


#: Builder fields holding a criteria fraction, entered in percent: form field -> criteria key.
PERCENT_FIELDS: dict[str, str] = {
    "stop_loss_pct": "stop_loss_ratio",
    "take_profit_pct": "take_profit_ratio",
    "trailing_stop_pct": "trailing_stop_ratio",
    "fee_pct": "fee_rate",
    "slippage_pct": "slippage_ratio",
}


#: Every scalar field of the builder.
SCALAR_FIELDS: tuple[str, ...] = (
    "entry_mode",
    "exit_mode",
    *PERCENT_FIELDS,
    "max_holding_days",
    "sizing_method",
    "sizing_value",
)


_QUOTED = re.compile(r"('(?:[^'\\]|\\.)*')")


_NUMBER_IN_TEXT = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE]-?\d+)?")


#: The builder of a fresh form: SMA(10) crossing SMA(20), the fees of CRITERIA.md's example, no stops.
DEFAULT_CRITERIA: dict[str, Any] = {
    **sma_cross_criteria(),
    **{key: value for key, value in TOP_LEVEL_DEFAULTS.items() if key != "exit"},
}


#: A row added with the "add condition" button: the close above its SMA(20).
NEW_ROW: dict[str, Any] = {
    "left": {"indicator": "close"},
    "op": ">",
    "right": {"indicator": "sma", "period": 20},
}


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


#: A field of the builder that holds a named parameter shows ``$name`` (docs/criteria.md "Named parameters").
REFERENCE_TEXT = re.compile(r"^\s*\$([A-Za-z_][A-Za-z0-9_]*)\s*$")


def reference_name(text: str | None) -> str | None:
    """The parameter a field's text refers to (``"$fast"`` -> ``"fast"``), or None."""
    match = REFERENCE_TEXT.match(text or "")
    return match.group(1) if match else None


def field_text(value: Any, *, percent: bool = False) -> str:
    """A criteria value as a builder field shows it: ``{"param": "fast"}`` -> ``"$fast"``, a fraction in percent
    when ``percent``, else the number (:func:`simulator.display.number_text`)."""
    if isinstance(value, Mapping) and isinstance(value.get("param"), str):
        return f"${value['param']}"
    return percent_text(value) if percent else number_text(value)


#: What a builder field becomes in the criteria document: a number, a reference, text for the engine to refuse.
FieldValue = int | float | str | dict[str, str] | None


def number_from_text(text: str | None) -> FieldValue:
    """Read a form number: ``""`` -> None, ``"10"`` -> 10, ``"2.5"`` -> 2.5, ``"$fast"`` -> ``{"param":
    "fast"}``; other text is returned unchanged (stripped), for the engine to refuse with its own message.

    Args:
        text: what the user typed.

    Returns:
        An ``int`` when the number is integral (a period must be one), else a ``float``; None for empty text.
    """
    if text is None or not text.strip():
        return None
    name = reference_name(text)
    if name is not None:
        return {"param": name}
    number = _decimal(text)
    if number is None:
        return text.strip()
    if number == number.to_integral_value() and ("e" not in text.lower() or abs(number) < 2**53):
        return int(number)
    return float(number)  # "1e308" stays a float: as an int of 309 digits the engine's message would puzzle


def ratio_from_percent(text: str | None) -> FieldValue:
    """``"5"`` (percent) -> 0.05; ``""`` -> None; ``"$stop"`` -> ``{"param": "stop"}`` (a parameter holds the
    criteria's own units, a fraction); text that is not a number is returned unchanged (stripped).

    The division is made in decimal, so ``"0.1"`` becomes exactly the float nearest 0.001.
    """
    if text is None or not text.strip():
        return None
    name = reference_name(text)
    if name is not None:
        return {"param": name}
    number = _decimal(text)
    if number is None:
        return text.strip()
    return float(number / 100)


def percent_message(message: str) -> str:
    """An engine message about a fraction, with its numbers in percent: ``must be > 0 and < 1, was 1.5`` ->
    ``must be > 0 % and < 100 %, was 150 %``."""
    parts = _QUOTED.split(message)  # the odd parts are quoted user text, left as it is
    return "".join(
        part if n % 2 else _NUMBER_IN_TEXT.sub(lambda m: f"{percent_text(float(m.group(0)))} %", part)
        for n, part in enumerate(parts)
    )


def param_references(document: Any) -> dict[str, list[str]]:
    """Where a criteria document refers to its named parameters: name -> the paths of the fields
    (``{"fast": ["entry.all[0].left.period", "exit.any[0].right.period"]}``), in document order."""
    found: dict[str, list[str]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("param"), str) and path:
                found.setdefault(node["param"], []).append(path)
                return
            for key, value in node.items():
                if path or key != "params":
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    walk(document, "")
    return found


def path_is_percent(path: str, document: Mapping[str, Any]) -> bool:
    """True when the sweep form takes ``path``'s values in percent: a ``_ratio`` or ``_rate`` field, the
    ``equity_fraction`` sizing value, or a parameter (``params.stop``) that only such fields refer to."""
    if path.startswith("params."):
        paths = param_references(document).get(path.removeprefix("params."), [])
        return bool(paths) and all(path_is_percent(p, document) for p in paths)
    if path == "sizing.value":
        sizing = document.get("sizing")
        return isinstance(sizing, Mapping) and sizing.get("method", "equity_fraction") == "equity_fraction"
    last = path.rsplit(".", 1)[-1]
    return last.endswith(("_ratio", "_rate"))


def numeric_paths(document: Any) -> list[tuple[str, str]]:
    """Every number of a criteria document a sweep can vary, as ``(path, label)`` in document order.

    Named parameters come first (path ``params.fast``, label ``fast (parameter)``): sweeping one moves every
    field that refers to it. The path uses the engine's error syntax (``entry.all[0].left.period``); the label adds
    ``(%)`` where the sweep form takes percent. ``version`` is left out, and so are fields a parameter stands for
    (they are not numbers in the document).
    """
    found: list[tuple[str, str]] = []
    params = document.get("params") if isinstance(document, Mapping) else None
    if isinstance(params, Mapping):
        for name, value in params.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                path = f"params.{name}"
                found.append((path, f"{name} (parameter{', %' if path_is_percent(path, document) else ''})"))

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if path or key not in ("version", "params"):
                    walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")
        elif isinstance(node, int | float) and not isinstance(node, bool):
            label = f"{path} (%)" if path_is_percent(path, document) else path
            found.append((path, label))

    if isinstance(document, Mapping):
        walk(document, "")
    return found
