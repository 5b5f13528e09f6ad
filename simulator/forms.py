"""The simulator form: the criteria builder both ways (criteria document <-> form rows) and the form itself.

Percent in the form, ratios inside: the builder's ``stop_loss_pct`` of ``"5"`` is ``stop_loss_ratio`` 0.05 in the
criteria document (CRITERIA.md), and back. The engine stays the only judge of what is valid: text the builder
cannot read as a number is passed on as it is, and the engine's error (``entry.all[1].right.period: must be an
integer >= 1, was 'x'``) is put back next to the builder field that holds it (:meth:`Builder.place_errors`).

The builder's POST names, for a condition row ``key`` (a number unique within its group, kept when other rows are
removed) of group ``entry`` or ``exit``:

- ``entry_mode`` / ``exit_mode``: ``all`` or ``any``; ``entry_next`` / ``exit_next``: the key of the next new row;
- ``entry-<key>-op``: one of :data:`trading.engine.criteria.COMPARISONS`;
- ``entry-<key>-left_indicator``: ``value`` or an indicator of :data:`trading.engine.indicators.INDICATORS`,
  and ``entry-<key>-left_<field>`` for each of :data:`OPERAND_FIELDS` (``value``, the indicator parameters,
  ``shift``); the same with ``right_``;
- the scalars of :data:`SCALAR_FIELDS` (``stop_loss_pct``, ``sizing_method``, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from simulator.models import STARTING_CASH_DEFAULT
from simulator.services import SimulationInputError, SimulationRequest, simulation_request_check
from trading.engine.criteria import COMPARISONS, SIZING_METHODS, TOP_LEVEL_DEFAULTS, VERSION
from trading.engine.examples import sma_cross_criteria
from trading.engine.indicators import INDICATOR_PARAMS
from trading.engine.limits import MAX_DEPTH, criteria_limits_check, json_depth
from trading.engine.vocabulary import HEADLINE_STATISTIC, STATISTICS_KEYS

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
assert {m for m, _ in SIZING_OPTIONS} == set(SIZING_METHODS)  # noqa: S101 - one list of sizing methods
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
#: Criteria key (or path) -> the builder field that shows it.
_CRITERIA_FIELD: dict[str, str] = {
    **{ratio: pct for pct, ratio in PERCENT_FIELDS.items()},
    "max_holding_days": "max_holding_days",
    "sizing": "sizing_method",
    "sizing.method": "sizing_method",
    "sizing.value": "sizing_value",
}
_ROW_KEY = re.compile(r"^(entry|exit)-(\d{1,4})-")
_MESSAGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\[\]]*): (.*)$", re.S)
_CONDITION_PATH = re.compile(
    r"^(entry|exit)(?:\.(all|any)(?:\[(\d+)\](?:\.(op|left|right)(?:\.([A-Za-z_]+))?)?)?)?$"
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


# Numbers in text -------------------------------------------------------------------------------------------


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def number_from_text(text: str | None) -> int | float | str | None:
    """Read a form number: ``""`` -> None, ``"10"`` -> 10, ``"2.5"`` -> 2.5; other text is returned unchanged
    (stripped), for the engine to refuse with its own message.

    Args:
        text: what the user typed.

    Returns:
        An ``int`` when the number is integral (a period must be one), else a ``float``; None for empty text.
    """
    if text is None or not text.strip():
        return None
    number = _decimal(text)
    if number is None:
        return text.strip()
    if number == number.to_integral_value() and ("e" not in text.lower() or abs(number) < 2**53):
        return int(number)
    return float(number)  # "1e308" stays a float: as an int of 309 digits the engine's message would puzzle


def ratio_from_percent(text: str | None) -> float | str | None:
    """``"5"`` (percent) -> 0.05; ``""`` -> None; text that is not a number is returned unchanged (stripped).

    The division is made in decimal, so ``"0.1"`` becomes exactly the float nearest 0.001.
    """
    if text is None or not text.strip():
        return None
    number = _decimal(text)
    if number is None:
        return text.strip()
    return float(number / 100)


def number_text(value: Any) -> str:
    """A number as the form shows it: 10 -> ``"10"``, 2.0 -> ``"2"``, 1e-07 -> ``"0.0000001"``; None -> ``""``."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return format(Decimal(repr(value)).normalize(), "f")


def percent_text(ratio: Any) -> str:
    """A fraction as the percent the form shows: 0.05 -> ``"5"``, 0.001 -> ``"0.1"``; None -> ``""``."""
    if ratio is None:
        return ""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float):
        return str(ratio)
    return format((Decimal(repr(float(ratio))) * 100).normalize(), "f")


def _percent_message(message: str) -> str:
    """An engine message about a fraction, with its numbers in percent: ``must be > 0 and < 1, was 1.5`` ->
    ``must be > 0 % and < 100 %, was 150 %``."""
    parts = _QUOTED.split(message)  # the odd parts are quoted user text, left as it is
    return "".join(
        part if n % 2 else _NUMBER_IN_TEXT.sub(lambda m: f"{percent_text(float(m.group(0)))} %", part)
        for n, part in enumerate(parts)
    )


# The builder -----------------------------------------------------------------------------------------------


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
        values = {"value": number_text(operand["value"])}
        indicator = "value"
    else:
        indicator = str(operand.get("indicator", ""))
        values = {name: number_text(operand[name]) for name in PARAM_NAMES if name in operand}
    if "shift" in operand:
        values["shift"] = number_text(operand["shift"])
    return OperandForm(prefix=prefix, indicator=indicator, values=values)


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
    """

    fields: dict[str, str]
    rows: dict[str, list[ConditionRow]]
    next_keys: dict[str, int]
    errors: dict[str, list[str]] = field(default_factory=dict)
    representable: bool = True

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
        if path in _CRITERIA_FIELD:
            name = _CRITERIA_FIELD[path]
            percent = name in PERCENT_FIELDS or (
                name == "sizing_value"
                and self.fields.get("sizing_method", "equity_fraction") == "equity_fraction"
            )
            self.errors.setdefault(name, []).append(_percent_message(message) if percent else message)
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
        return bool(self.errors) or any(
            row.errors or row.left.errors or row.right.errors for rows in self.rows.values() for row in rows
        )


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
    representable = (
        set(document) <= {"version", "side", "entry", *TOP_LEVEL_DEFAULTS}
        and data.get("version", VERSION) == VERSION
        and data.get("side", "long") == "long"
    )
    fields: dict[str, str] = {}
    rows: dict[str, list[ConditionRow]] = {}
    for group in GROUPS:
        mode, conditions, readable = _read_group(data.get(group), allow_null=group == "exit")
        representable = representable and readable
        fields[f"{group}_mode"] = mode
        rows[group] = [condition_row(group, n, c) for n, c in enumerate(conditions)]
    for pct, ratio in PERCENT_FIELDS.items():
        fields[pct] = percent_text(data.get(ratio))
    fields["max_holding_days"] = number_text(data.get("max_holding_days"))
    sizing = data.get("sizing")
    if (
        isinstance(sizing, Mapping)
        and set(sizing) <= {"method", "value"}
        and sizing.get("method") in SIZING_METHODS
    ):
        fields["sizing_method"] = str(sizing["method"])
        value = sizing.get("value")
        fields["sizing_value"] = (
            percent_text(value) if sizing["method"] == "equity_fraction" else number_text(value)
        )
    else:
        representable = False
        fields["sizing_method"], fields["sizing_value"] = "equity_fraction", "100"
    return Builder(
        fields=fields,
        rows=rows,
        next_keys={group: len(rows[group]) for group in GROUPS},
        representable=representable,
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
    return set(operand) <= allowed and all(isinstance(v, str | int | float) for v in operand.values())


def builder_from_data(data: Mapping[str, Any]) -> Builder:
    """The builder as the user left it: read from the POST (or GET) data of the form.

    Rows are found by their names (``entry-<key>-...``) and kept in key order, which is the order they were
    added in; a row's key is kept, so an error can be shown on the row it is about.
    """
    fields = {name: str(data.get(name, "") or "") for name in SCALAR_FIELDS}
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
                    values={name: str(data.get(f"{start}{name}", "") or "") for name in OPERAND_FIELDS},
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
    return Builder(fields=fields, rows=rows, next_keys=next_keys)


# Sweeps ----------------------------------------------------------------------------------------------------


def path_is_percent(path: str, document: Mapping[str, Any]) -> bool:
    """True when the sweep form takes ``path``'s values in percent: a ``_ratio`` or ``_rate`` field, or the
    ``equity_fraction`` sizing value."""
    if path == "sizing.value":
        sizing = document.get("sizing")
        return isinstance(sizing, Mapping) and sizing.get("method", "equity_fraction") == "equity_fraction"
    last = path.rsplit(".", 1)[-1]
    return last.endswith(("_ratio", "_rate"))


def numeric_paths(document: Any) -> list[tuple[str, str]]:
    """Every number of a criteria document a sweep can vary, as ``(path, label)`` in document order.

    The path uses the engine's error syntax (``entry.all[0].left.period``); the label adds ``(%)`` where the
    sweep form takes percent. ``version`` is left out.
    """
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if path or key != "version":
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


# The form --------------------------------------------------------------------------------------------------

#: The deepest nesting of objects and lists a pasted criteria document may have: the engine's one limit.
MAX_JSON_DEPTH = MAX_DEPTH


def read_json(text: str) -> tuple[Any, str]:
    """Decode a pasted criteria document.

    Returns:
        ``(document, "")``, or ``(None, problem)`` with a message for the JSON box: where the JSON is malformed,
        or that it nests deeper than :data:`MAX_JSON_DEPTH`.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    except RecursionError:
        return None, f"nested more than {MAX_JSON_DEPTH} levels deep; simplify the criteria"
    if json_depth(document, stop_after=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return None, f"nested more than {MAX_JSON_DEPTH} levels deep; simplify the criteria"
    return document, ""


SWEEP_AXES = (1, 2)


class SimulatorForm(forms.Form):
    """The simulator form: instruments, dates, cash, the criteria (builder or JSON box) and the sweep section.

    Bind it to the POST data; :meth:`is_valid` runs the builder and :func:`simulator.services.
    simulation_request_check`, and puts each error next to its field: Django's fields in ``errors``, the
    builder's in ``builder``. When valid, :attr:`simulation_request` is the checked request, and for a sweep
    (``action=sweep``) :attr:`sweep_axes` the axes in the criteria's units.
    """

    RUN = "run"
    SWEEP = "sweep"

    name = forms.CharField(max_length=200, required=False)
    instruments = forms.Field(required=False, widget=forms.SelectMultiple)
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    starting_cash = forms.DecimalField(required=False, initial=STARTING_CASH_DEFAULT)
    advanced = forms.BooleanField(required=False)
    criteria_json = forms.CharField(required=False, widget=forms.Textarea)
    source_strategy = forms.IntegerField(required=False, widget=forms.HiddenInput)
    action = forms.ChoiceField(choices=[(RUN, RUN), (SWEEP, SWEEP)], required=False)
    sweep_path_1 = forms.CharField(required=False)
    sweep_start_1 = forms.DecimalField(required=False)
    sweep_stop_1 = forms.DecimalField(required=False)
    sweep_step_1 = forms.DecimalField(required=False)
    sweep_path_2 = forms.CharField(required=False)
    sweep_start_2 = forms.DecimalField(required=False)
    sweep_stop_2 = forms.DecimalField(required=False)
    sweep_step_2 = forms.DecimalField(required=False)
    sweep_statistic = forms.ChoiceField(
        choices=[(key, key) for key in STATISTICS_KEYS], required=False, initial=HEADLINE_STATISTIC
    )

    def __init__(self, data: Any = None, *, builder: Builder | None = None, **kwargs: Any) -> None:
        super().__init__(data, **kwargs)
        if builder is None:
            builder = builder_from_data(data) if data is not None else builder_from_criteria(DEFAULT_CRITERIA)
        self.builder = builder
        self.simulation_request: SimulationRequest | None = None
        self.sweep_axes: list[dict[str, Any]] = []

    @property
    def uses_json(self) -> bool:
        """True when the JSON box wins over the builder: the advanced toggle is on and the box is not empty."""
        return bool(self._value("advanced")) and bool(str(self._value("criteria_json") or "").strip())

    def _value(self, name: str) -> Any:
        if self.is_bound:
            return self[name].data
        return self.initial.get(name, self.fields[name].initial)

    def criteria(self) -> tuple[Any, bool]:
        """The criteria document the form asks for, and whether it could be read (a malformed JSON paste is a
        ``criteria_json`` error and gives ``(None, False)``)."""
        if not self.uses_json:
            return self.builder.to_criteria(), True
        document, problem = read_json(str(self._value("criteria_json")))
        if problem:
            self.add_error("criteria_json", problem)
            return None, False
        return document, True

    @property
    def is_sweep(self) -> bool:
        """True when the sweep button was pressed."""
        return self._value("action") == self.SWEEP

    def clean(self) -> dict[str, Any]:
        """Check the whole request with the simulator's service and place every problem next to its field."""
        cleaned = super().clean() or {}
        criteria, readable = self.criteria()
        try:
            self.simulation_request = simulation_request_check(
                instruments=[str(i) for i in (cleaned.get("instruments") or []) if str(i).strip()],
                start=cleaned.get("start"),
                end=cleaned.get("end"),
                starting_cash=cleaned.get("starting_cash"),
                criteria=criteria if readable else {},
            )
        except SimulationInputError as exc:
            errors = dict(exc.errors)
            if not readable:
                errors.pop("criteria", None)
            self.place_errors(errors)
        if self.is_sweep and readable:
            self.sweep_axes = self._axes(criteria)
        return cleaned

    def _axes(self, criteria: Any) -> list[dict[str, Any]]:
        axes = []
        for n in SWEEP_AXES:
            path = (self.cleaned_data.get(f"sweep_path_{n}") or "").strip()
            if not path:
                continue
            numbers = {}
            for part in ("start", "stop", "step"):
                name = f"sweep_{part}_{n}"
                value = self.cleaned_data.get(name)
                if value is None:
                    if name not in self.errors:
                        self.add_error(name, "required")
                    continue
                percent = isinstance(criteria, Mapping) and path_is_percent(path, criteria)
                numbers[part] = float(value / 100) if percent else float(value)
            if len(numbers) == 3:
                axes.append({"path": path, **numbers})
        if not axes and "sweep_path_1" not in self.errors:
            self.add_error("sweep_path_1", "choose a field of the criteria to sweep")
        return axes

    def place_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Put a :class:`~simulator.services.SimulationInputError`'s ``errors`` next to their fields.

        ``criteria`` messages go to the builder row or field their path names (or, when the JSON box is used or
        no builder field matches, under the JSON box); ``axes`` and ``statistic`` to the sweep section; a field
        that already shows an error (a date Django could not read) is not given a second one.
        """
        for key, messages in errors.items():
            if key == "criteria":
                left_over = list(messages) if self.uses_json else self.builder.place_errors(list(messages))
                for message in left_over:
                    self.add_error("criteria_json", message)
            elif key == "axes":
                for message in messages:
                    match = re.match(r"^axes\[(\d)\](?:\.\w+)?: (.*)$", message, re.S)
                    n = int(match.group(1)) + 1 if match and int(match.group(1)) < len(SWEEP_AXES) else 1
                    self.add_error(f"sweep_path_{n}", match.group(2) if match else message)
            elif key == "statistic":
                for message in messages:
                    self.add_error("sweep_statistic", message)
            elif key in self.fields:
                if key not in self.errors:
                    for message in messages:
                        self.add_error(key, message)
            else:
                for message in messages:
                    self.add_error(None, f"{key}: {message}")

    def sweep_errors(self, errors: Mapping[str, list[str]]) -> None:
        """Place the errors of :func:`simulator.services.sweep_create`: a grid point's invalid criteria (the
        base criteria are valid) is a problem of the sweep, shown in its section."""
        rest = {key: value for key, value in errors.items() if key != "criteria"}
        for message in errors.get("criteria", []):
            self.add_error("sweep_path_1", message)
        self.place_errors(rest)

    def json_text(self) -> str:
        """The text of the JSON box: what the user typed, or the builder's document."""
        typed = str(self._value("criteria_json") or "")
        if typed.strip():
            return typed
        return json.dumps(self.builder.to_criteria(), indent=2)

    def criteria_for_paths(self) -> Any:
        """The document whose numbers the sweep section lists (the JSON box's when used and readable)."""
        if self.uses_json:
            document, problem = read_json(str(self._value("criteria_json")))
            if not problem:
                # A document over the limits is refused: listing its numbers would be megabytes of options.
                return {} if criteria_limits_check(document) else document
        return self.builder.to_criteria()


class SaveStrategyForm(forms.Form):
    """The "save as strategy" form of a result page: the new strategy's name."""

    name = forms.CharField(max_length=100)
