"""The day a run is for (``as_of``, a UTC date), as every step and its task checks it."""

from __future__ import annotations

from datetime import date, datetime

from barter_site.errors import ApplicationError


def as_of_validate(as_of: date, *, now: datetime) -> date:
    """Return ``as_of`` if it is not after today (UTC).

    Raises:
        ApplicationError: (field ``as_of``) ``as_of`` lies in the future.
    """
    today = now.date()
    if as_of > today:
        raise ApplicationError(
            f"as_of must be today ({today.isoformat()} UTC) or earlier; was {as_of.isoformat()}",
            extra={"field": "as_of"},
        )
    return as_of
