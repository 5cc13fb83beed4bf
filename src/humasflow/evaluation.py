"""Standard times: each step's start, end and duration against its standard.

The timeline is derived from the record itself (every move is an event with its time),
so there is one source of truth.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import attrs

from humasflow.models import ContentItem, Event
from humasflow.sop import SOP

__all__ = ["Breach", "StepRun", "timeline"]


@attrs.frozen
class StepRun:
    """One visit of an item to one step.

    Attributes:
        step: The step's key.
        number: The step's number in the SOP.
        started_at: When the item entered the step.
        ended_at: When it left (``None`` while it is still there).
        ended_by: Who moved it on.
        outcome: The action that ended the visit (``complete``, ``reject``…).
        standard: The step's standard time.
    """

    step: str
    number: int
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    ended_by: str | None = None
    outcome: str | None = None
    standard: dt.timedelta | None = None

    def duration(self, now: dt.datetime) -> dt.timedelta:
        """How long the visit took (until ``now`` if still open)."""
        return (self.ended_at or now) - self.started_at

    def over(self, now: dt.datetime) -> dt.timedelta | None:
        """How far past the standard time the visit went, or ``None`` if within it."""
        if self.standard is None:
            return None
        excess = self.duration(now) - self.standard
        return excess if excess > dt.timedelta(0) else None


@attrs.frozen
class Breach:
    """An item whose current step ran past its standard time."""

    item: ContentItem
    step: str
    due_at: dt.datetime
    late_by: dt.timedelta


def timeline(sop: SOP, events: Iterable[Event]) -> list[StepRun]:
    """Return an item's step visits, in order, from its events."""
    runs: list[StepRun] = []
    current: StepRun | None = None
    lifecycle = {s.key: s for s in sop.lifecycle}
    for event in events:
        if event.from_state == event.to_state and event.action != "create":
            continue
        if current is not None:
            runs.append(attrs.evolve(current, ended_at=event.at, ended_by=event.actor,
                                     outcome=event.action))
            current = None
        step = lifecycle.get(event.to_state or "")
        if step is not None:
            current = StepRun(step=step.key, number=step.number, started_at=event.at,
                              standard=step.standard_time)
    if current is not None:
        runs.append(current)
    return runs
