"""Argument parsing shared by the management commands."""

from __future__ import annotations

from datetime import date

from django.core.management.base import CommandError


def parse_date(value: str, *, option: str) -> date:
    """Parse ``YYYY-MM-DD`` or raise a ``CommandError`` that names the option and the expected format."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option} must be a date like 2024-01-31 (YYYY-MM-DD); was {value!r}") from None
