"""hypothesis against the two parsers of outside input: the criteria validator and the candle file importer.

- ``criteria_parse`` on documents built from the ``CRITERIA.md`` grammar with junk mixed in at every level
  returns ``Criteria`` or raises ``CriteriaError`` with at least one ``(path, message)``; nothing else escapes.
  What it returns parses again to the same criteria.
- A daily CSV with one bad line (a bad number, high < low, a missing column, a bad time, NaN, a negative
  price) is refused, naming that line's number, by the reader and by ``manage.py import_ohlc``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instruments.models import InstrumentOHLC
from instruments.sources.files.reader import read_ohlc_file
from trading.engine.criteria import COMPARISONS, CriteriaError, criteria_parse
from trading.engine.indicators import INDICATOR_PARAMS, PRICE_FIELDS

CRITERIA_EXAMPLES = 400
CSV_EXAMPLES = 150
IMPORT_EXAMPLES = 25

# -- criteria -------------------------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(),  # unbounded: 10**400 does not fit a float
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, -1, 0.5, 1e-12, 1_000_000, 1_000_001, 10**400, -(10**400)]),
)
junk = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def grammar(junky: bool) -> st.SearchStrategy[Any]:
    """Documents of the ``CRITERIA.md`` grammar; with ``junky``, junk replaces a quarter of the values at every
    level and unknown keys appear, else every value is in its documented range (most documents are valid)."""

    def maybe_junk(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(good, good, good, junk) if junky else good

    @st.composite
    def operands(draw: st.DrawFn) -> Any:
        if draw(st.booleans()):
            operand: dict[str, Any] = {"value": draw(maybe_junk(numbers if junky else st.floats(-1e6, 1e6)))}
        else:
            name = draw(maybe_junk(st.sampled_from(sorted(INDICATOR_PARAMS))))
            operand = {"indicator": name}
            for param in INDICATOR_PARAMS.get(name, {}) if isinstance(name, str) else {}:
                if draw(st.integers(0, 4)):
                    good = (
                        st.sampled_from(PRICE_FIELDS)
                        if param == "source"
                        else st.integers(-2 if junky else 2, 60)
                    )
                    operand[param] = draw(maybe_junk(good))
        if draw(st.integers(0, 3)) == 0:
            operand["shift"] = draw(maybe_junk(st.integers(-1 if junky else 0, 5)))
        if junky and draw(st.integers(0, 9)) == 0:
            operand[draw(st.text(max_size=5))] = draw(junk)  # an unknown key
        return operand

    compares = st.fixed_dictionaries(
        {"left": operands(), "op": maybe_junk(st.sampled_from(COMPARISONS)), "right": operands()}
    )
    conditions = st.recursive(
        st.one_of(compares, compares, compares, junk) if junky else compares,
        lambda inner: st.one_of(
            st.fixed_dictionaries({"all": st.lists(inner, min_size=0 if junky else 1, max_size=3)}),
            st.fixed_dictionaries({"any": st.lists(inner, min_size=0 if junky else 1, max_size=3)}),
            st.fixed_dictionaries({"not": inner}),
        ),
        max_leaves=5,
    )
    ratios = maybe_junk(st.one_of(st.none(), st.floats(-0.5, 1.5) if junky else st.floats(0.001, 0.9)))
    fractions = st.floats(-0.01, 0.2) if junky else st.floats(0, 0.09)
    optional = {
        "exit": st.one_of(st.none(), conditions),
        "stop_loss_ratio": ratios,
        "take_profit_ratio": ratios,
        "trailing_stop_ratio": ratios,
        "max_holding_days": maybe_junk(st.one_of(st.none(), st.integers(-1 if junky else 1, 400))),
        "sizing": maybe_junk(
            st.fixed_dictionaries(
                {
                    "method": st.just("equity_fraction"),
                    "value": maybe_junk(st.floats(-1, 2) if junky else st.floats(0.01, 1)),
                }
            )
        ),
        "fee_rate": maybe_junk(fractions),
        "slippage_ratio": maybe_junk(fractions),
    }
    if junky:
        optional["extra"] = junk
    return st.fixed_dictionaries(
        {
            "version": maybe_junk(st.just(1)),
            "side": maybe_junk(st.sampled_from(["long", "short"]) if junky else st.just("long")),
            "entry": conditions,
        },
        optional=optional,
    )


documents = st.one_of(junk, grammar(junky=True), grammar(junky=False))
parsed = {"valid": 0, "invalid": 0}


@settings(max_examples=CRITERIA_EXAMPLES, deadline=None, database=None)
@given(document=documents)
def test_criteria_parse_returns_criteria_or_raises_criteria_error(document: object) -> None:
    try:
        criteria = criteria_parse(document)
    except CriteriaError as exc:
        parsed["invalid"] += 1
        assert exc.errors, "a CriteriaError must list its problems"
        for path, message in exc.errors:
            assert isinstance(path, str) and isinstance(message, str) and message
        assert str(exc)
        return
    parsed["valid"] += 1
    assert criteria_parse(criteria.document) == criteria  # the normalised document says the same


def test_the_criteria_generator_makes_valid_and_invalid_documents() -> None:
    # The property above would prove little if every document were refused at the top.
    test_criteria_parse_returns_criteria_or_raises_criteria_error()
    assert parsed["valid"] >= 20 and parsed["invalid"] >= 100


# -- candle files ---------------------------------------------------------------------------------------------

HEADER = "date,open,high,low,close,volume"
T0 = datetime(2023, 1, 1, tzinfo=UTC)
FAULTS: dict[str, Callable[[list[str]], list[str]]] = {
    "bad number": lambda c: [c[0], "12.5x", *c[2:]],
    "high below low": lambda c: [c[0], c[1], c[3], c[2], c[4], c[5]],  # high and low swapped
    "missing column": lambda c: c[:-1],
    "bad time": lambda c: ["2023-02-30", *c[1:]],
    "NaN": lambda c: [*c[:4], "NaN", c[5]],
    "negative": lambda c: [c[0], c[1], c[2], "-" + c[3], c[4], c[5]],
}
EXPECTED = {
    "bad number": "open is not a number",
    "high below low": "is below low",
    "missing column": "5 columns, the header needs at least 6",
    "bad time": "is not a date or time",
    "NaN": "close must be a finite price > 0",
    "negative": "low must be a finite price > 0",
}


@st.composite
def bad_files(draw: st.DrawFn) -> tuple[str, int, str]:
    """A daily CSV with one bad line: its text, that line's number (the header is line 1) and the fault."""
    rows = []
    for n in range(draw(st.integers(2, 25))):
        low = draw(st.decimals(Decimal("0.01"), Decimal(100_000), places=2))
        open_, close = (low + draw(st.decimals(0, 500, places=2)) for _ in range(2))
        high = max(open_, close) + draw(st.decimals(Decimal("0.01"), 500, places=2))
        volume = draw(st.decimals(0, 10**6, places=4))
        day = (T0 + timedelta(days=n)).date().isoformat()
        rows.append([day, str(open_), str(high), str(low), str(close), str(volume)])
    bad = draw(st.integers(0, len(rows) - 1))
    fault = draw(st.sampled_from(sorted(FAULTS)))
    rows[bad] = FAULTS[fault](rows[bad])
    text = "\n".join([HEADER, *(",".join(row) for row in rows)]) + "\n"
    return text, bad + 2, fault


@settings(
    max_examples=CSV_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=bad_files())
def test_one_bad_line_is_reported_with_its_number(tmp_path: Path, case: tuple[str, int, str]) -> None:
    text, line, fault = case
    path = tmp_path / "candles.csv"
    path.write_text(text)
    found = read_ohlc_file(path)
    assert [number for number, _ in found.errors] == [line]
    assert EXPECTED[fault] in found.errors[0][1]
    assert found.error_messages()[0].startswith(f"candles.csv line {line}: ")
    assert len(found.candles) == found.rows_read - 1


@pytest.mark.django_db
@settings(
    max_examples=IMPORT_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=bad_files())
def test_import_ohlc_refuses_the_file_naming_the_bad_line(tmp_path: Path, case: tuple[str, int, str]) -> None:
    text, line, fault = case
    path = tmp_path / "candles.csv"
    path.write_text(text)
    with pytest.raises(CommandError, match=rf"candles\.csv line {line}: .*{EXPECTED[fault]}"):
        call_command("import_ohlc", str(path), "--instrument", "bitcoin", "--symbol", "BTC")
    assert not InstrumentOHLC.objects.exists()  # refused whole
