"""The criteria builder both ways: a criteria document <-> the form's condition rows and scalars.

The engine stays the only judge of what is valid: its error (``entry.all[1].right.period: must be an integer
>= 1, was 'x'``) is put back next to the builder field that holds it (:meth:`Builder.place_errors`).

The builder's POST names, for a condition row ``key`` (a number unique within its group, kept when other rows are
removed) of group ``entry`` or ``exit``:

- ``entry_mode`` / ``exit_mode``: ``all`` or ``any``; ``entry_next`` / ``exit_next``: the key of the next new row;
- ``entry-<key>-op``: one of :data:`trading.engine.criteria.COMPARISONS`;
- ``entry-<key>-left_indicator``: ``value`` or an indicator of :data:`trading.engine.indicators.INDICATORS`,
  and ``entry-<key>-left_<field>`` for each of :data:`simulator.builder.conversions.OPERAND_FIELDS` (``value``,
  the indicator parameters, ``shift``); the same with ``right_``;
- the scalars of :data:`simulator.builder.conversions.SCALAR_FIELDS` (``stop_loss_pct``, ``sizing_method``, ...);
- named parameters (docs/criteria.md): ``param-<n>-name`` and ``param-<n>-value`` (in the criteria's units: a
  fraction for a ratio), and ``param-<n>-old``, the name it had when drawn, so renaming a parameter renames the
  fields that refer to it. A number field refers to a parameter by holding ``$name``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simulator.builder.conversions import (
    GROUPS,
    OPERAND_FIELDS,
    PARAM_KINDS,
    PARAM_NAMES,
    PERCENT_FIELDS,
    field_text,
    number_from_text,
    percent_message,
    ratio_from_percent,
    reference_name,
)
from simulator.display import number_text
from trading.engine.criteria import TOP_LEVEL_DEFAULTS, VERSION
from trading.engine.indicators import INDICATOR_PARAMS

#: Criteria key (or path) -> the builder field that shows it.
_CRITERIA_FIELD: dict[str, str] = {
    **{ratio: pct for pct, ratio in PERCENT_FIELDS.items()},
    "max_holding_days": "max_holding_days",
    "sizing": "sizing_method",
    "sizing.method": "sizing_method",
    "sizing.value": "sizing_value",
}


_MESSAGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): (.*)$", re.S)


_CONDITION_PATH = re.compile(
    r"^(entry|exit)(?:\.(all|any)(?:\[(\d+)\](?:\.(op|left|right)(?:\.([A-Za-z_]+))?)?)?)?$"
)


@dataclass
class ParamInput:
    """One input of an operand, as the template draws it."""

    name: str
    input_name: str
    value: str
    errors: list[str]
    shown: bool
    is_select: bool
    placeholder: str


@dataclass
class OperandForm:
    """One side of a condition row: ``indicator`` plus the text of each of :data:`OPERAND_FIELDS`."""

    prefix: str
    indicator: str
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def inputs(self) -> list[ParamInput]:
        """The value, parameter and shift inputs, each marked shown or not for the chosen indicator."""
        spec = INDICATOR_PARAMS.get(self.indicator, {})
        found = []
        for name in OPERAND_FIELDS:
            if name == "value":
                shown, placeholder = self.indicator == "value", "number"
            elif name == "shift":
                shown, placeholder = True, "0"
            else:
                shown = name in spec
                default = spec.get(name, (None, None))[1]
                placeholder = "" if default is None else number_text(default)
            found.append(
                ParamInput(
                    name=name,
                    input_name=f"{self.prefix}{name}",
                    value=self.values.get(name, ""),
                    errors=self.errors.get(name, []),
                    shown=shown,
                    is_select=PARAM_KINDS.get(name, "").startswith("source"),
                    placeholder=placeholder,
                )
            )
        return found

    @property
    def indicator_errors(self) -> list[str]:
        """Errors about the operand as a whole or its indicator."""
        return self.errors.get("indicator", [])

    def to_operand(self) -> dict[str, Any]:
        """The operand of the criteria document (empty parameters left out, so the engine's defaults apply)."""
        if self.indicator == "value":
            operand: dict[str, Any] = {"value": number_from_text(self.values.get("value"))}
        else:
            operand = {"indicator": self.indicator}
            for name in INDICATOR_PARAMS.get(self.indicator, {}):
                text = self.values.get(name, "")
                if text.strip():
                    operand[name] = (
                        text.strip() if PARAM_KINDS[name].startswith("source") else number_from_text(text)
                    )
        shift = self.values.get("shift", "")
        if shift.strip():
            operand["shift"] = number_from_text(shift)
        return operand


@dataclass
class ConditionRow:
    """One comparison of a group: ``left op right``."""

    group: str
    key: str
    left: OperandForm
    op: str
    right: OperandForm
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """The row's POST name prefix, e.g. ``entry-3``."""
        return f"{self.group}-{self.key}"

    @property
    def op_errors(self) -> list[str]:
        """Errors of the operator select."""
        return self.errors.get("op", [])

    @property
    def row_errors(self) -> list[str]:
        """Errors about the row as a whole."""
        return self.errors.get("", [])

    def to_condition(self) -> dict[str, Any]:
        """The comparison of the criteria document."""
        return {"left": self.left.to_operand(), "op": self.op, "right": self.right.to_operand()}


def condition_row(group: str, key: str | int, condition: Mapping[str, Any]) -> ConditionRow:
    """A builder row showing ``condition`` (``{"left": operand, "op": OP, "right": operand}``)."""
    prefix = f"{group}-{key}"
    return ConditionRow(
        group=group,
        key=str(key),
        left=_operand_form(f"{prefix}-left_", condition.get("left")),
        op=str(condition.get("op", "")),
        right=_operand_form(f"{prefix}-right_", condition.get("right")),
    )


def _operand_form(prefix: str, operand: Any) -> OperandForm:
    if not isinstance(operand, Mapping):
        return OperandForm(prefix=prefix, indicator="value")
    if "value" in operand:
        values = {"value": field_text(operand["value"])}
        indicator = "value"
    else:
        indicator = str(operand.get("indicator", ""))
        values = {name: field_text(operand[name]) for name in PARAM_NAMES if name in operand}
    if "shift" in operand:
        values["shift"] = field_text(operand["shift"])
    return OperandForm(prefix=prefix, indicator=indicator, values=values)


@dataclass
class ParamRow:
    """One named parameter of the builder: its name, its value as text (the criteria's units), the name it had
    when the page was drawn (``old``), and its errors."""

    name: str
    value: str
    old: str = ""
    errors: list[str] = field(default_factory=list)


#: Builder scalar field -> the name a parameter made from it gets.
_SCALAR_PARAM_NAMES: dict[str, str] = {
    **{pct: ratio.removesuffix("_ratio").removesuffix("_rate") for pct, ratio in PERCENT_FIELDS.items()},
    "max_holding_days": "holding_days",
    "sizing_value": "size",
}


_OPERAND_INPUT = re.compile(r"^(entry|exit)-(\d{1,4})-(left|right)_([a-z_]+)$")


@dataclass
class Builder:
    """What the criteria builder shows and holds: scalar fields as text, the condition rows of each group.

    Attributes:
        fields: each of :data:`SCALAR_FIELDS` -> its text (percent for the ``_pct`` fields).
        rows: ``{"entry": [ConditionRow, ...], "exit": [...]}`` in display order.
        next_keys: the key the next added row of each group gets.
        errors: scalar field or group name (``entry``, ``exit``) -> messages.
        representable: False when the builder cannot show the document it was made from (nested groups,
            ``not``, unknown fields): the form then shows that document in the JSON box instead.
        params: the named parameters (:class:`ParamRow`), in order; fields refer to one with ``$name``.
    """

    fields: dict[str, str]
    rows: dict[str, list[ConditionRow]]
    next_keys: dict[str, int]
    errors: dict[str, list[str]] = field(default_factory=dict)
    representable: bool = True
    params: list[ParamRow] = field(default_factory=list)

    @property
    def param_names(self) -> list[str]:
        """The parameters' names (for the fields' list of ``$name`` choices)."""
        return [p.name for p in self.params if p.name]

    def make_param(self, input_name: str) -> str | None:
        """Turn the number field ``input_name`` (a POST name: ``entry-0-left_period``, ``stop_loss_pct``) into a
        named parameter: a new parameter holding its current value (in the criteria's units: percent becomes a
        fraction; an empty operand field its indicator's default) replaces the field by ``$name``.

        Returns:
            The new parameter's name (``sma_period``, ``stop_loss``; ``_2``, ``_3``... when taken), the name the
            field already referred to, or None when the field is not a number field of the builder or holds no
            number (an error is put on the field then).
        """
        if input_name in _SCALAR_PARAM_NAMES:
            text = self.fields.get(input_name, "")
            if reference_name(text):
                return reference_name(text)
            method = self.fields.get("sizing_method") or "equity_fraction"
            percent = input_name in PERCENT_FIELDS or (
                input_name == "sizing_value" and method == "equity_fraction"
            )
            value = ratio_from_percent(text) if percent else number_from_text(text)
            if not isinstance(value, int | float):
                self.errors.setdefault(input_name, []).append("type a number first, then make it a parameter")
                return None
            name = self._free_name(_SCALAR_PARAM_NAMES[input_name])
            self.fields[input_name] = f"${name}"
            self.params.append(ParamRow(name=name, value=number_text(value), old=name))
            return name
        match = _OPERAND_INPUT.match(input_name)
        if not match:
            return None
        group, key, side, part = match.groups()
        row = next((r for r in self.rows[group] if r.key == key), None)
        if row is None or part not in OPERAND_FIELDS or PARAM_KINDS.get(part, "").startswith("source"):
            return None
        operand = row.left if side == "left" else row.right
        text = operand.values.get(part, "")
        if reference_name(text):
            return reference_name(text)
        number = number_from_text(text)
        if number is None:  # an empty parameter field runs with its default: the parameter starts there
            number = INDICATOR_PARAMS.get(operand.indicator, {}).get(
                part, (None, 0 if part == "shift" else None)
            )[1]
        if not isinstance(number, int | float):
            operand.errors.setdefault(part, []).append("type a number first, then make it a parameter")
            return None
        base = part if operand.indicator == "value" or part == "shift" else f"{operand.indicator}_{part}"
        name = self._free_name(base)
        operand.values[part] = f"${name}"
        self.params.append(ParamRow(name=name, value=number_text(number), old=name))
        return name

    def _free_name(self, base: str) -> str:
        taken = set(self.param_names)
        if base not in taken:
            return base
        return next(f"{base}_{n}" for n in range(2, len(taken) + 3) if f"{base}_{n}" not in taken)

    @property
    def entry_rows(self) -> list[ConditionRow]:
        """The entry condition rows."""
        return self.rows["entry"]

    @property
    def exit_rows(self) -> list[ConditionRow]:
        """The exit condition rows (none: no signal exit)."""
        return self.rows["exit"]

    def to_criteria(self) -> dict[str, Any]:
        """The criteria document (CRITERIA.md) of the builder: percent fields become fractions, empty optional
        fields null, no exit rows a null ``exit``. Never raises: what is not a number is left as text for the
        engine to refuse with the path of the field."""
        document: dict[str, Any] = {"version": VERSION, "side": "long"}
        params = {p.name: number_from_text(p.value) for p in self.params if p.name or p.value.strip()}
        if params:
            document["params"] = params
        for group in GROUPS:
            mode = self.fields.get(f"{group}_mode") or "all"
            conditions = [row.to_condition() for row in self.rows[group]]
            if group == "exit" and not conditions:
                document[group] = None
            else:
                document[group] = {mode: conditions}
        for pct, ratio in PERCENT_FIELDS.items():
            document[ratio] = ratio_from_percent(self.fields.get(pct))
        if ratio_from_percent(self.fields.get("fee_pct")) is None:
            document["fee_rate"] = TOP_LEVEL_DEFAULTS["fee_rate"]
        if ratio_from_percent(self.fields.get("slippage_pct")) is None:
            document["slippage_ratio"] = TOP_LEVEL_DEFAULTS["slippage_ratio"]
        document["max_holding_days"] = number_from_text(self.fields.get("max_holding_days"))
        method = self.fields.get("sizing_method") or "equity_fraction"
        text = self.fields.get("sizing_value")
        document["sizing"] = {
            "method": method,
            "value": ratio_from_percent(text) if method == "equity_fraction" else number_from_text(text),
        }
        return document

    def place_errors(self, messages: list[str]) -> list[str]:
        """Put the engine's criteria messages (``path: message``) next to the builder fields they name.

        Args:
            messages: ``SimulationInputError.errors["criteria"]``, each starting with the path of the bad field
                in the document :meth:`to_criteria` made.

        Returns:
            The messages no builder field shows (for the JSON box), unchanged.
        """
        left_over = []
        for message in messages:
            match = _MESSAGE.match(message)
            if not match or not self._place(match.group(1), match.group(2)):
                left_over.append(message)
        return left_over

    def _place(self, path: str, message: str) -> bool:
        if path == "params" or path.startswith("params."):
            param_row = next((p for p in self.params if f"params.{p.name}" == path), None)
            if param_row is None:
                self.errors.setdefault("params", []).append(message)
            else:
                param_row.errors.append(message)
            return True
        if path in _CRITERIA_FIELD:
            name = _CRITERIA_FIELD[path]
            percent = name in PERCENT_FIELDS or (
                name == "sizing_value"
                and self.fields.get("sizing_method", "equity_fraction") == "equity_fraction"
            )
            self.errors.setdefault(name, []).append(percent_message(message) if percent else message)
            return True
        match = _CONDITION_PATH.match(path)
        if not match:
            return False
        group, _, index, part, param = match.groups()
        rows = self.rows[group]
        if index is None:
            if message.startswith("must be a non-empty list"):  # said for the builder, which has rows
                message = "add at least one condition"
            self.errors.setdefault(group, []).append(message)
            return True
        if int(index) >= len(rows):
            return False
        row = rows[int(index)]
        if part is None:
            row.errors.setdefault("", []).append(message)
        elif part == "op":
            row.errors.setdefault("op", []).append(message)
        else:
            operand = row.left if part == "left" else row.right
            name = param if param in OPERAND_FIELDS else "indicator"
            operand.errors.setdefault(name, []).append(message)
        return True

    @property
    def has_errors(self) -> bool:
        """True when any field or row of the builder shows an error."""
        return (
            bool(self.errors)
            or any(p.errors for p in self.params)
            or any(
                row.errors or row.left.errors or row.right.errors
                for rows in self.rows.values()
                for row in rows
            )
        )
