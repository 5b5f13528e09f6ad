"""Trade criteria in words, for people: ``Enter long when SMA(10) crosses above SMA(30); exit when SMA(10) crosses
below SMA(30), or at a 2 % stop-loss or a 4 % take-profit; size: 100 % of equity; fee 0.1 %, slippage 0 %``.

Pure (no Django), from the parsed criteria (:class:`trading.engine.criteria.Criteria`), so the simulator's run page,
its comparison and anything else that shows criteria say them the same way. Operands are named as traders write
them (:func:`operand_text`); ratios are shown in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from trading.engine.criteria import AllOf, Compare, Condition, Criteria, NotOf, Operand

#: How each comparison reads, and how it reads negated (``not``).
_OPS: dict[str, tuple[str, str]] = {
    ">": ("is above", "is not above"),
    ">=": ("is at or above", "is not at or above"),
    "<": ("is below", "is not below"),
    "<=": ("is at or below", "is not at or below"),
    "crosses_above": ("crosses above", "does not cross above"),
    "crosses_below": ("crosses below", "does not cross below"),
}

#: The name of each indicator in text; its parameters follow in parentheses (``SMA(10)``).
_NAMES = {
    "sma": "SMA",
    "ema": "EMA",
    "rsi": "RSI",
    "roc": "ROC",
    "atr": "ATR",
    "highest": "highest",
    "lowest": "lowest",
    "bb_upper": "upper Bollinger band",
    "bb_middle": "middle Bollinger band",
    "bb_lower": "lower Bollinger band",
    "macd": "MACD",
    "macd_signal": "MACD signal",
    "macd_hist": "MACD histogram",
}

#: The default ``source`` of each indicator that has one: a source other than it is named (``SMA(10, high)``).
_DEFAULT_SOURCE = {"sma": "close", "ema": "close", "highest": "high", "lowest": "low"}


def number_text(value: float) -> str:
    """A number as people write it: ``70``, ``0.05``, ``-1.5``, ``30,000`` (no exponent, no float noise such as
    ``7.000000000000001``)."""
    shown = Decimal(repr(round(float(value), 10))).normalize()
    if shown == shown.to_integral_value():
        return f"{int(shown):,}"
    whole, _, fraction = format(shown, "f").partition(".")
    return f"{int(whole):,}.{fraction}" if whole not in ("-0", "0") else f"{whole}.{fraction}"


def percent_text(ratio: float) -> str:
    """A fraction in percent: ``0.02`` -> ``2 %``, ``0.001`` -> ``0.1 %``."""
    return f"{number_text(ratio * 100)} %"


def operand_text(operand: Operand) -> str:
    """An operand as text: ``SMA(10)``, ``EMA(20, high)``, ``RSI(14)``, ``highest(20)`` (of highs),
    ``highest(20, close)``, ``upper Bollinger band(20, 2)``, ``MACD(12, 26, 9)``, ``close``, ``70``; a shift adds
    ``1 candle earlier`` / ``3 candles earlier``; a weekly operand reads ``weekly SMA(200)`` (its shift in weeks)
    and one of another instrument ``SMA(200) of bitcoin``."""
    if operand.indicator == "value":
        text = number_text(operand.value if operand.value is not None else float("nan"))
    else:
        params = dict(operand.params)
        name = _NAMES.get(operand.indicator)
        if name is None:  # a candle's own field
            text = operand.indicator
        else:
            if operand.indicator.startswith("macd"):
                shown = [params["fast"], params["slow"], params["signal"]]
            elif operand.indicator.startswith("bb_"):
                shown = [params["period"], params["stddev"]]
            else:
                shown = [params["period"]]
            source = params.get("source")
            if source is not None and source != _DEFAULT_SOURCE.get(operand.indicator):
                shown.append(source)
            text = f"{name}({', '.join(_param_text(p) for p in shown)})"
    unit = "week" if operand.timeframe == "1w" else "candle"
    if operand.timeframe == "1w":
        text = f"weekly {text}"
    if operand.instrument is not None:
        text += f" of {operand.instrument}"
    if operand.shift:
        text += f" {operand.shift} {unit}{'s' if operand.shift != 1 else ''} earlier"
    return text


def _a(text: str) -> str:
    """``text`` after its indefinite article as spoken: ``an 8 %``, ``an 11 %``, ``a 2 %``."""
    whole = text.split(" ")[0].split(".")[0]
    return f"{'an' if whole.startswith('8') or whole in ('11', '18') else 'a'} {text}"


def _param_text(value: object) -> str:
    return number_text(value) if isinstance(value, int | float) else str(value)


def condition_text(condition: Condition, *, nested: bool = False) -> str:
    """A condition as text: comparisons read as ``RSI(14) is below 70``; ``all`` joins with ``and``, ``any`` with
    ``or``; a group inside another is in parentheses; ``not`` of a comparison negates its verb (``does not cross
    above``), ``not`` of a group reads ``not (...)``."""
    if isinstance(condition, Compare):
        verb = _OPS[condition.op][0]
        return f"{operand_text(condition.left)} {verb} {operand_text(condition.right)}"
    if isinstance(condition, NotOf):
        inner = condition.item
        if isinstance(inner, Compare):
            verb = _OPS[inner.op][1]
            return f"{operand_text(inner.left)} {verb} {operand_text(inner.right)}"
        if isinstance(inner, NotOf):
            return condition_text(inner.item, nested=nested)
        if len(inner.items) == 1:
            return condition_text(NotOf(inner.items[0]), nested=nested)
        return f"not ({condition_text(inner)})"
    if len(condition.items) == 1:
        return condition_text(condition.items[0], nested=nested)
    joiner = " and " if isinstance(condition, AllOf) else " or "
    text = joiner.join(condition_text(item, nested=True) for item in condition.items)
    return f"({text})" if nested else text


@dataclass(frozen=True)
class CriteriaWords:
    """The parts of :func:`criteria_words`, each a phrase without the final full stop.

    Attributes:
        entry: ``Enter long when ...``.
        exit: ``exit when ..., or at a 2 % stop-loss ...``, or what closes positions without an exit rule.
        sizing: ``size: 100 % of equity``.
        costs: ``fee 0.1 %, slippage 0 %``.
    """

    entry: str
    exit: str
    sizing: str
    costs: str

    @property
    def text(self) -> str:
        """The whole sentence, its parts joined with semicolons."""
        return "; ".join((self.entry, self.exit, self.sizing, self.costs))


def criteria_words(criteria: Criteria, *, currency: str = "") -> CriteriaWords:
    """Say what ``criteria`` do, in words (see the module's docstring for an example).

    Args:
        criteria: parsed criteria (:func:`trading.engine.criteria.criteria_parse`).
        currency: the quote currency, named after a ``fixed_quote`` size (``1,000 USDT per entry``).

    Returns:
        :class:`CriteriaWords`; ``.text`` is the sentence.
    """
    entry = f"Enter {criteria.side} when {condition_text(criteria.entry)}"
    levels = []
    if criteria.stop_loss_ratio is not None:
        levels.append(f"{_a(percent_text(criteria.stop_loss_ratio))} stop-loss")
    if criteria.take_profit_ratio is not None:
        levels.append(f"{_a(percent_text(criteria.take_profit_ratio))} take-profit")
    if criteria.trailing_stop_ratio is not None:
        levels.append(f"{_a(percent_text(criteria.trailing_stop_ratio))} trailing stop")
    ways = [] if criteria.exit is None else [f"when {condition_text(criteria.exit)}"]
    if levels:
        ways.append("at " + " or ".join(levels))
    if criteria.max_holding_days is not None:
        days = criteria.max_holding_days
        ways.append(f"after {days} day{'s' if days != 1 else ''} held")
    exit_ = "exit " + ", or ".join(ways) if ways else "no exit rule: positions close at the end of the data"
    if criteria.sizing.method == "equity_fraction":
        sizing = f"size: {percent_text(criteria.sizing.value)} of equity"
    else:
        sizing = f"size: {number_text(criteria.sizing.value)}{' ' + currency if currency else ''} per entry"
    costs = f"fee {percent_text(criteria.fee_rate)}, slippage {percent_text(criteria.slippage_ratio)}"
    return CriteriaWords(entry=entry, exit=exit_, sizing=sizing, costs=costs)
