"""Named parameters of a criteria document (``docs/criteria.md``, "Named parameters").

A document may declare ``"params": {"fast": 10, "slow": 50}`` (names are identifiers, values numbers) and write
``{"param": "fast"}`` in place of any number of an operand (``period``, ``value``, ``stddev``, ``shift``...) or of
the top level (``stop_loss_ratio``, ``take_profit_ratio``, ``trailing_stop_ratio``, ``max_holding_days``,
``sizing.value``, ``fee_rate``, ``slippage_ratio``). :func:`params_resolve` substitutes the values, so every check
of :func:`trading.engine.criteria.criteria_parse` applies to the substituted number and the engine never sees a
parameter. One parameter referenced by several fields moves them together: a sweep of ``params.fast`` moves the
entry's and the exit's fast average at once.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: A parameter's name: a letter or ``_``, then letters, digits or ``_`` (a Python identifier in ASCII).
PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Fields that hold text or structure, never a number: a parameter cannot stand for them.
_NOT_NUMBERS = frozenset(
    {
        "version",
        "side",
        "op",
        "indicator",
        "source",
        "instrument",
        "timeframe",
        "method",
        "entry",
        "exit",
        "all",
        "any",
        "not",
        "left",
        "right",
    }
)
_NOT_NUMBERS_TOP = frozenset({"sizing", "params"})

#: ``{path: parameter name}`` of every field a document's references stood for.
References = dict[str, str]


def is_reference(node: Any) -> bool:
    """True when ``node`` is a parameter reference (an object with a ``param`` key)."""
    return isinstance(node, dict) and "param" in node


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else type(value).__name__


def params_check(params: Any) -> tuple[dict[str, int | float], list[tuple[str, str]]]:
    """Check a document's ``params`` object.

    Args:
        params: the value of ``"params"`` (any decoded JSON).

    Returns:
        ``(params, errors)``: the valid parameters by name, and ``[(path, message), ...]`` for the bad ones
        (``params.fast: must be a number, was 'ten'``).
    """
    if not isinstance(params, dict):
        return {}, [("params", f'must be an object like {{"fast": 10, "slow": 50}}, was {_show(params)}')]
    valid: dict[str, int | float] = {}
    errors: list[tuple[str, str]] = []
    for name, value in params.items():
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
            errors.append(
                (
                    "params",
                    f"a parameter's name must be letters, digits and _, not starting with a digit; was {name!r}",
                )
            )
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            errors.append((f"params.{name}", f"must be a number, was {_show(value)}"))
        else:
            valid[name] = value
    return valid, errors


def params_resolve(document: dict[str, Any]) -> tuple[dict[str, Any], References, list[tuple[str, str]]]:
    """Substitute a document's parameters into its fields.

    Args:
        document: a decoded criteria document (an object) within :mod:`trading.engine.limits` (its depth is
            bounded, so the recursive walk is safe).

    Returns:
        ``(resolved, references, errors)``: the document without ``params`` and with every ``{"param": name}``
        replaced by the parameter's value (a new object; ``document`` is unchanged), the path of every replaced
        field with its parameter's name, and the problems: a bad ``params`` object, a reference to an unknown
        parameter (the message names the known ones), a malformed reference or one in place of a field that is not
        a number, and a parameter no field refers to (a typo guard). Paths use the engine's syntax
        (``entry.all[0].left.period``).
    """
    has_params = "params" in document
    params, errors = params_check(document["params"]) if has_params else ({}, [])
    declared = set(document["params"]) if has_params and isinstance(document["params"], dict) else set()
    references: References = {}
    known = ", ".join(sorted(declared)) or 'none (declare them in "params": {"fast": 10})'

    def substitute(node: Any, path: str, key: str, top: bool) -> Any:
        if is_reference(node):
            name = node["param"]
            if set(node) != {"param"} or not isinstance(name, str):
                errors.append((path, f'a parameter reference is {{"param": "<name>"}} alone, was {node!r}'))
                return node
            if key in _NOT_NUMBERS or (top and key in _NOT_NUMBERS_TOP) or not key:
                errors.append((path, f'parameter "{name}" cannot stand here: parameters are numbers'))
                return node
            if name not in declared:
                errors.append((path, f'unknown parameter "{name}"; the parameters are {known}'))
                return node
            references[path] = name
            return params.get(name, node)  # a declared but invalid one is reported under params
        if isinstance(node, dict):
            return {
                k: substitute(v, f"{path}.{k}" if path else str(k), str(k), not path) for k, v in node.items()
            }
        if isinstance(node, list):
            return [substitute(v, f"{path}[{i}]", "", False) for i, v in enumerate(node)]
        return node

    resolved = {
        key: substitute(value, str(key), str(key), True) for key, value in document.items() if key != "params"
    }
    used = set(references.values())
    for name in params:
        if name not in used:
            errors.append(
                (f"params.{name}", f'is never used; refer to it as {{"param": "{name}"}} or remove it')
            )
    return resolved, references, errors


_WAS = re.compile(r"^(.*), was (.*)$", re.S)


def reference_message(name: str, message: str) -> str:
    """An engine message about a field that a parameter stood for, said of the parameter:
    ``must be an integer >= 1, was 0`` -> ``parameter "fast" is 0; must be an integer >= 1``."""
    match = _WAS.match(message)
    if match:
        return f'parameter "{name}" is {match.group(2)}; {match.group(1)}'
    return f'parameter "{name}": {message}'
