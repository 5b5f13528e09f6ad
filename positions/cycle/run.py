"""What every open and close run is made of: the day's claims, the typed events a strategy's work queues for
History, the result line of each strategy and instrument, and the rule that live steps act only for today.

Each strategy is handled in its own transaction under a row lock, with one ``StrategyStep`` claim per (strategy,
step, as_of, instrument) (:func:`claims_create`), so a second call for the same day skips what was handled and
handles the rest (a scoped run, a run after the close step, a run after a crash). The events of a strategy are
queued in :class:`positions.events.Events` and written to History only once its transaction has committed
(:mod:`positions.cycle.runner`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from django.db import IntegrityError, transaction

from barter_site.errors import ApplicationError
from instruments.models import Instrument
from positions.events import StepResult
from positions.models import StrategyStep
from runs.models import Step
from trading.models import Strategy


class StepDayError(ApplicationError):
    """A live open or close step was asked for a day other than today (UTC): field ``as_of``, 400."""


def step_day_validate(*, step: Step | str, as_of: date, today: date, live: bool) -> None:
    """Refuse a live open or close step for any day but today.

    A live step (the strategies' own backends: paper at CoinGecko's price of now, or an exchange) fills at the
    price of now, so it may only act for the boundary that just passed: ``as_of`` today (UTC). A past ``as_of``
    would trade that day's signals at today's price, stamped now. Past days are for ``manage.py replay``, whose
    broker fills at the stored open of each day. The close step still catches up the risk exits of days it
    missed (at their levels, from the stored candles), so nothing is lost by this rule.

    Args:
        step: ``open`` or ``close``.
        as_of: the day asked for (UTC).
        today: today (UTC).
        live: whether the step fills through a live backend (False only for the replay broker).

    Raises:
        StepDayError: (field ``as_of``) ``live`` and ``as_of`` is not ``today``.
    """
    if not live or as_of == today:
        return
    raise StepDayError(
        f"the live {step} step acts only for today ({today.isoformat()} UTC), the boundary that just passed; was "
        f"{as_of.isoformat()}: a live step fills at the price of now, so a past day's signals would trade at "
        "today's price. Leave as_of out (or give today); to see what the strategies would have done on past "
        f"days, replay them over the stored candles: manage.py replay --start {as_of.isoformat()} --end "
        f"{today.isoformat()} [--strategy NAME]",
        extra={"field": "as_of", "as_of": as_of.isoformat(), "today": today.isoformat()},
    )


def boundary_at(as_of: date) -> datetime:
    """The boundary of ``as_of``: its midnight, aware UTC (candle ``as_of - 1 day`` has closed)."""
    return datetime.combine(as_of, time(0), tzinfo=UTC)


def claimed_instruments(strategy: Strategy, step: str, as_of: date) -> set[int]:
    """Ids of the instruments ``step`` has already handled for ``strategy`` and ``as_of`` (their claims)."""
    return set(
        StrategyStep.objects.filter(strategy=strategy, step=step, as_of=as_of).values_list(
            "instrument_id", flat=True
        )
    )


def claims_create(
    strategy: Strategy, step: str, as_of: date, run_id: Any, instruments: Sequence[Instrument]
) -> dict[int, StrategyStep] | None:
    """Inside the strategy's transaction: claim (step, as_of) for each of ``instruments``.

    Returns:
        The claims by instrument id, or None when another run claimed one of them first (nothing is claimed
        then; the caller reports the strategy skipped). The unique constraint on (strategy, step, as_of,
        instrument) is what makes two racing runs unable to both claim one instrument.
    """
    try:
        with transaction.atomic():
            claims = [
                StrategyStep.objects.create(
                    strategy=strategy, step=step, as_of=as_of, instrument=instrument, run_id=run_id
                )
                for instrument in instruments
            ]
    except IntegrityError:
        return None
    return {claim.instrument_id: claim for claim in claims}


def skipped(
    strategy: Strategy, step: str, as_of: date, instrument: Instrument | None, why: str = ""
) -> StepResult:
    """The result line of an instrument this run does not handle (by default: the step already ran today)."""
    return StepResult(
        strategy=strategy.name,
        instrument=None if instrument is None else instrument.coingecko_id,
        action="skipped",
        reason=why or f"the {step} step already ran for {as_of.isoformat()}",
    )
