"""Writes on strategies (the strategy services): enabling and disabling them."""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from trading.models import Strategy


def strategies_set_enabled(*, strategies: QuerySet[Strategy], is_enabled: bool) -> int:
    """Enable (the daily cycle trades them) or disable strategies.

    Args:
        strategies: the strategies to change.
        is_enabled: the new value.

    Returns:
        How many strategies changed (those already in that state are left untouched).
    """
    return strategies.exclude(is_enabled=is_enabled).update(is_enabled=is_enabled, updated_at=timezone.now())
