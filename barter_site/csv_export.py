"""CSV that a spreadsheet opens as data, never as formulas (OWASP "CSV injection").

Every CSV Barter writes goes through :func:`csv_text`, whose cells pass :func:`csv_safe_cell`: a text cell
that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a single quote, so
Excel, LibreOffice and Google Sheets show it as text instead of evaluating it (``=HYPERLINK(...)`` in an
instrument's name, say). Plain numbers are left alone, so a loss of ``-775.81`` stays a number.
Source: https://owasp.org/www-community/attacks/CSV_Injection
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal

#: What a spreadsheet may take as the start of a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
#: A plain decimal number, as Python, JSON and spreadsheets write it: ``-775.81``, ``+5``, ``1e-05``, ``.5``.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def csv_safe_cell(value: object) -> object:
    """Return ``value`` ready for a CSV cell: text that could start a formula gets a leading ``'``.

    Args:
        value: a cell: ``None`` (written empty), a number (``int``, ``float``, ``Decimal``; never changed), or
            anything else, written as its ``str``.

    Returns:
        ``""`` for ``None``; numbers and plain-number text (``"-775.81"``) as they are; other text beginning
        with one of :data:`FORMULA_PREFIXES` as ``"'" + text``; any other value unchanged.
    """
    if value is None:
        return ""
    if isinstance(value, bool | int | float | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Write a CSV document (``\\n`` line ends) with every cell through :func:`csv_safe_cell`.

    Args:
        header: the column names.
        rows: the rows, each with one value per column.

    Returns:
        The CSV text, the header first.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_safe_cell(name) for name in header])
    for row in rows:
        writer.writerow([csv_safe_cell(cell) for cell in row])
    return out.getvalue()
