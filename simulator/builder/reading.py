"""Reading the builder from what comes in: a criteria document (:func:`builder_from_criteria`, the page's
first draw and "load JSON") or the form's POST (:func:`builder_from_data`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from simulator.builder.conversions import (
    GROUPS,
    MODES,
    OPERAND_FIELDS,
    PERCENT_FIELDS,
    SCALAR_FIELDS,
    SIDES,
    SIZING_OPTIONS,
    field_text,
    number_from_text,
    reference_name,
)
from simulator.builder.rows import Builder, ConditionRow, OperandForm, ParamRow, condition_row
from simulator.display import number_text
from trading.engine.criteria import TOP_LEVEL_DEFAULTS, VERSION
from trading.engine.indicators import INDICATOR_PARAMS

_ROW_KEY = re.compile(r"^(entry|exit)-(\d{1,4})-")
_PARAM_KEY = re.compile(r"^param-(\d{1,3})-(?:name|value)$")


def builder_from_criteria(document: Any) -> Builder:
    """The builder showing a criteria document (a saved strategy's, a previous run's, the default).

    Fractions become percent (``stop_loss_ratio`` 0.08 -> ``stop_loss_pct`` ``"8"``; ``equity_fraction`` sizing
    too); ``fixed_quote`` sizing stays quote currency. A bare comparison as ``entry`` becomes one row of an
    ``all`` group. Documents with nested groups, ``not`` or fields the builder has no input for come back with
    ``representable`` False (and whatever rows could be read).

    Args:
        document: a decoded criteria document; need not be valid.
    """
    if not isinstance(document, Mapping):
        document = {}
    data = {**TOP_LEVEL_DEFAULTS, **document}
    params = data.get("params", {})
    representable = (
        set(document) <= {"version", "side", "params", "entry", *TOP_LEVEL_DEFAULTS}
        and data.get("version", VERSION) == VERSION
        and data.get("side", "long") == "long"
        and isinstance(params, Mapping)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in params.values())
    )
    fields: dict[str, str] = {}
    rows: dict[str, list[ConditionRow]] = {}
    for group in GROUPS:
        mode, conditions, readable = _read_group(data.get(group), allow_null=group == "exit")
        representable = representable and readable
        fields[f"{group}_mode"] = mode
        rows[group] = [condition_row(group, n, c) for n, c in enumerate(conditions)]
    for pct, ratio in PERCENT_FIELDS.items():
        fields[pct] = field_text(data.get(ratio), percent=True)
    fields["max_holding_days"] = field_text(data.get("max_holding_days"))
    sizing = data.get("sizing")
    if (
        isinstance(sizing, Mapping)
        and set(sizing) <= {"method", "value"}
        and sizing.get("method") in {method for method, _ in SIZING_OPTIONS}
    ):
        fields["sizing_method"] = str(sizing["method"])
        value = sizing.get("value")
        fields["sizing_value"] = field_text(value, percent=sizing["method"] == "equity_fraction")
    else:
        representable = False
        fields["sizing_method"], fields["sizing_value"] = "equity_fraction", "100"
    return Builder(
        fields=fields,
        rows=rows,
        next_keys={group: len(rows[group]) for group in GROUPS},
        representable=representable,
        params=[
            ParamRow(name=str(name), value=number_text(value), old=str(name))
            for name, value in (params.items() if isinstance(params, Mapping) else [])
        ],
    )


def _read_group(condition: Any, *, allow_null: bool) -> tuple[str, list[Mapping[str, Any]], bool]:
    """``(mode, comparisons, readable)`` of an ``entry``/``exit`` condition."""
    if condition is None:
        return "any" if allow_null else "all", [], allow_null
    if not isinstance(condition, Mapping):
        return "all", [], False
    for mode in MODES:
        if mode in condition:
            items = condition[mode]
            if set(condition) != {mode} or not isinstance(items, list):
                return mode, [], False
            comparisons = [c for c in items if _is_comparison(c)]
            return mode, comparisons, len(comparisons) == len(items)
    if _is_comparison(condition):
        return "all", [condition], True
    return "all", [], False


def _is_comparison(condition: Any) -> bool:
    return (
        isinstance(condition, Mapping)
        and set(condition) == {"left", "op", "right"}
        and all(_is_plain_operand(condition[side]) for side in SIDES)
    )


def _is_plain_operand(operand: Any) -> bool:
    if not isinstance(operand, Mapping):
        return False
    if "value" in operand:
        allowed = {"value", "shift"}
    else:
        indicator = operand.get("indicator")
        if indicator not in INDICATOR_PARAMS:
            return False
        allowed = {"indicator", "shift", *INDICATOR_PARAMS[str(indicator)]}
    return set(operand) <= allowed and all(
        isinstance(v, str | int | float) or (isinstance(v, Mapping) and set(v) == {"param"})
        for v in operand.values()
    )


def builder_from_data(data: Mapping[str, Any]) -> Builder:
    """The builder as the user left it: read from the POST (or GET) data of the form.

    Rows are found by their names (``entry-<key>-...``) and kept in key order, which is the order they were
    added in; a row's key is kept, so an error can be shown on the row it is about. A parameter renamed in its
    row (``param-<n>-name`` differs from ``param-<n>-old``) is renamed in every field that referred to it.
    """
    fields = {name: str(data.get(name, "") or "") for name in SCALAR_FIELDS}
    params: list[ParamRow] = []
    for n in sorted({int(m.group(1)) for m in map(_PARAM_KEY.match, data) if m}):
        name = str(data.get(f"param-{n}-name", "") or "").strip()
        value = str(data.get(f"param-{n}-value", "") or "").strip()
        if name or value:
            params.append(
                ParamRow(name=name, value=value, old=str(data.get(f"param-{n}-old", "") or "").strip())
            )
    renamed = {f"${p.old}": f"${p.name}" for p in params if p.old and p.name and p.old != p.name}
    for group in GROUPS:
        if fields[f"{group}_mode"] not in MODES:
            fields[f"{group}_mode"] = "all" if group == "entry" else "any"
    keys: dict[str, set[int]] = {group: set() for group in GROUPS}
    for name in data:
        match = _ROW_KEY.match(name)
        if match:
            keys[match.group(1)].add(int(match.group(2)))
    rows: dict[str, list[ConditionRow]] = {}
    next_keys: dict[str, int] = {}
    for group in GROUPS:
        rows[group] = []
        for key in sorted(keys[group]):
            prefix = f"{group}-{key}"
            operands = {}
            for side in SIDES:
                start = f"{prefix}-{side}_"
                operands[side] = OperandForm(
                    prefix=start,
                    indicator=str(data.get(f"{start}indicator", "") or ""),
                    values={name: _renamed(data.get(f"{start}{name}"), renamed) for name in OPERAND_FIELDS},
                )
            rows[group].append(
                ConditionRow(
                    group=group,
                    key=str(key),
                    left=operands["left"],
                    op=str(data.get(f"{prefix}-op", "") or ""),
                    right=operands["right"],
                )
            )
        posted = number_from_text(str(data.get(f"{group}_next", "") or ""))
        next_keys[group] = max(
            posted if isinstance(posted, int) and 0 <= posted < 10_000 else 0,
            max(keys[group], default=-1) + 1,
        )
    for name in SCALAR_FIELDS:
        fields[name] = _renamed(fields[name], renamed)
    for param in params:
        param.old = param.name
    return Builder(fields=fields, rows=rows, next_keys=next_keys, params=params)


def _renamed(text: Any, renamed: Mapping[str, str]) -> str:
    """A field's posted text, with a reference to a renamed parameter following the new name."""
    shown = str(text or "")
    name = reference_name(shown)
    if renamed and name is not None:
        return str(renamed.get(f"${name}", shown))
    return shown
