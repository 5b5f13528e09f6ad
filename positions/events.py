"""The typed events a strategy's work queues for History, and the result line of each strategy and instrument.

Below both the cycle (:mod:`positions.cycle`) and the execution backends (:mod:`positions.execution`), which both
add events and result lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from instruments.models import Instrument
from positions.models import Position
from runs.models import HistoryKind
from runs.recorder import RunRecorder
from trading.models import Strategy


@dataclass
class StepResult:
    """One line of an open or close step's summary: what happened to one strategy and instrument."""

    strategy: str
    instrument: str | None  # the instrument's CoinGecko id (unique; tickers are not)
    action: str  # "opened", "closed", "none", "skipped"
    reason: str = ""
    position_id: int | None = None
    price: str | None = None
    quantity: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Event:
    """One History event of a strategy, queued until its transaction has committed.

    Attributes:
        kind: the event's kind (signal, order, fill, position opened or closed, error, ...).
        message: its one-line message.
        instrument: the instrument it is about, if any.
        position: the position it is about, if any.
        payload: JSON-ready details (never a key).
    """

    kind: HistoryKind
    message: str
    instrument: Instrument | None = None
    position: Position | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Events:
    """History events to write once the strategy's transaction has committed, in the order they were added."""

    events: list[Event] = field(default_factory=list)

    def add(
        self,
        kind: HistoryKind,
        message: str,
        *,
        instrument: Instrument | None = None,
        position: Position | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Queue one event (see :class:`Event`)."""
        self.events.append(Event(kind, message, instrument, position, {} if payload is None else payload))

    def record(self, recorder: RunRecorder, strategy: Strategy) -> None:
        """Append the events, in order, to ``recorder``'s run as events of ``strategy``."""
        for event in self.events:
            recorder.event(
                event.kind,
                strategy=strategy,
                instrument=event.instrument,
                position=event.position,
                message=event.message,
                payload=event.payload,
            )
