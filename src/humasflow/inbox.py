"""What waits for one person, most urgent first: :meth:`Office.inbox
<humasflow.office.Office.inbox>`.

>>> inbox = office.inbox("budi")                     # doctest: +SKIP
>>> [(e.kind, e.item_id) for e in inbox]             # doctest: +SKIP
[('failed', 3), ('approve', 1), ('scheduled', 4)]

An entry is one thing the person can act on:

========== ==========================================================================
kind       what waits
========== ==========================================================================
failed     a channel failed and is not retried automatically: fix the cause, retry it
unknown    a channel's last attempt may have posted: check the platform, confirm it
waiting    a channel is posted by hand: post it, confirm it
late       an item is late at a step whose role the person holds
approve    an approval the person may give (not their own item under four eyes)
scheduled  a post scheduled for today (in the office's zone) that has not gone out
========== ==========================================================================

Channel entries and scheduled posts are for the people who post (the posting step's
role) and the coordinator (the approval step's role, who may skip a channel). A failed
channel that is retried automatically waits for nobody and is left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from humasflow.errors import Refused
from humasflow.models import Actor, ContentItem, Publication

if TYPE_CHECKING:
    from humasflow.office import Office

__all__ = ["KINDS", "Inbox", "InboxEntry"]

#: The kinds of entries, in the order of their urgency when nothing else decides.
KINDS = ("failed", "unknown", "waiting", "late", "action", "approve", "scheduled")

# Urgency groups: a channel a person must settle first (a post that silently never
# appears is the worst outcome), then late work (the latest first), then approvals (the
# soonest due first), then what only needs watching.
_PERSON, _LATE, _APPROVE, _WATCH = range(4)


@attrs.frozen
class InboxEntry:
    """One thing waiting for the person.

    Attributes:
        kind: One of :data:`KINDS`.
        item_id: The item's number.
        title: The item's title.
        step: The key of the item's current step.
        urgency: The entry's place in the inbox, from 1 (the most urgent).
        channel: The channel, for ``failed``, ``unknown`` and ``waiting``.
        due_at: When it is due: the step's deadline, or the scheduled time (for
            ``scheduled``), or when an unknown channel is looked up next.
        late_by: How late the item is at its step, if it is.
        since: Since when it waits (the step's start, or the channel's last change).
        detail: The channel's last error or instructions, if any; for ``action``,
            what is to be done.
        action_id: For ``action`` (an overdue corrective action): its number; the item
            is the one it is recorded against (0 for a report's period).
    """

    kind: str
    item_id: int
    title: str
    step: str
    urgency: int = 0
    channel: str | None = None
    due_at: dt.datetime | None = None
    late_by: dt.timedelta | None = None
    since: dt.datetime | None = None
    detail: str = ""
    action_id: int | None = None


@attrs.frozen
class Inbox:
    """What waits for one actor at one moment, most urgent first.

    Iterating gives the entries; ``len()`` counts them.

    Attributes:
        actor: Whose inbox it is.
        at: The moment it was judged at.
        entries: The entries, most urgent first (``urgency`` 1, 2, …).
    """

    actor: Actor
    at: dt.datetime
    entries: tuple[InboxEntry, ...] = ()

    def __iter__(self) -> Iterator[InboxEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def of_kind(self, *kinds: str) -> list[InboxEntry]:
        """The entries of these kinds, in urgency order."""
        return [e for e in self.entries if e.kind in kinds]


def build(office: Office, actor: Actor, now: dt.datetime, zone: dt.tzinfo) -> Inbox:
    """The inbox of ``actor`` at ``now``; "today" is the day of ``now`` in ``zone``."""
    found: list[tuple[tuple[Any, ...], InboxEntry]] = []
    today = now.astimezone(zone).date()
    for item in office.items(state="open"):
        engine = office.engine(item.sop_revision)
        step = engine.step(item.state)
        if step is None:
            continue
        approver = engine.approval_step.actor
        posting = step.output == "publication"
        holds_step = step.actor is not None and actor.has_role(step.actor)
        coordinates = approver is not None and actor.has_role(approver)
        deadline = item.deadline
        late_by = office.late_by(item, now)

        if _may_approve(office, item, actor, posting):
            key = ((_LATE, -late_by.total_seconds()) if late_by is not None
                   else (_APPROVE, _ts(deadline)))
            found.append(((*key, item.id), _entry(
                item, "approve", due_at=deadline, late_by=late_by,
                since=item.step_started_at)))
            continue
        if item.state == engine.approval_step.key:
            continue  # someone else's approval (the role, or four eyes): not theirs to do

        channels = 0
        if posting and (holds_step or coordinates):
            for name, pub in sorted(office.publications(item.id).items()):
                entry = _channel_entry(item, pub, late_by)
                if entry is None:
                    continue
                channels += 1
                # An unknown outcome the platform will be asked about needs no one yet.
                group = _WATCH if entry.kind == "unknown" and pub.next_attempt_at else _PERSON
                found.append(((group, _ts(pub.updated_at), item.id, name), entry))
            if (item.is_scheduled(now) and item.post_at is not None
                    and item.post_at.astimezone(zone).date() == today):
                found.append(((_WATCH, _ts(item.post_at), item.id), _entry(
                    item, "scheduled", due_at=item.post_at, since=item.step_started_at)))
        if late_by is not None and holds_step and not channels:
            found.append(((_LATE, -late_by.total_seconds(), item.id), _entry(
                item, "late", due_at=deadline, late_by=late_by, since=item.step_started_at)))
    found.extend(_action_entries(office, actor, now, zone))
    ordered = [entry for _key, entry in sorted(found, key=lambda pair: pair[0])]
    return Inbox(actor=actor, at=now, entries=tuple(
        attrs.evolve(entry, urgency=n) for n, entry in enumerate(ordered, start=1)))


def _action_entries(office: Office, actor: Actor, now: dt.datetime,
                    zone: dt.tzinfo) -> list[tuple[tuple[Any, ...], InboxEntry]]:
    """Overdue corrective actions: the owner's own, and every one for those who control
    them (the coordinating role, administrators)."""
    today = now.astimezone(zone).date()
    controls = office.may_control(actor)
    found = []
    for action in office.actions(overdue=True, today=today):
        if action.owner != actor.id and not controls:
            continue
        item_part, _sep, step = action.target.partition("/")
        item_id = int(item_part) if action.subject != "report" else 0
        due = dt.datetime.combine(action.due, dt.time.max, tzinfo=zone)
        found.append(((_LATE, -(now - due).total_seconds(), 0, action.id), InboxEntry(
            kind="action", item_id=item_id, title=action.finding, step=step,
            due_at=due.astimezone(dt.timezone.utc), late_by=now - due,
            since=action.created_at, detail=action.action, action_id=action.id)))
    return found


def _entry(item: ContentItem, kind: str, **values: Any) -> InboxEntry:
    return InboxEntry(kind=kind, item_id=item.id, title=item.title, step=item.state,
                      **values)


def _may_approve(office: Office, item: ContentItem, actor: Actor, posting: bool) -> bool:
    """Whether ``actor`` may give the approval the item waits for (a dry run of the
    SOP's own checks: the role, four eyes, something complete to approve)."""
    engine = office.engine(item.sop_revision)
    if "approve" not in engine.allowed(item.state):
        return False
    if posting:
        # The final approval, where the SOP asks for one: only while it is missing.
        given = item.outputs.get("final_approval")
        if isinstance(given, Mapping) and given.get("digest") == item.final_digest:
            return False
    try:
        engine.run(item, "approve", actor)
    except Refused:
        return False
    return True


def _channel_entry(item: ContentItem, pub: Publication,
                   late_by: dt.timedelta | None) -> InboxEntry | None:
    """The channel's entry if it waits for a person (or a look-up), else ``None``."""
    if pub.state == "failed" and pub.next_attempt_at is None:
        kind = "failed"
    elif pub.state in ("unknown", "waiting"):
        kind = pub.state
    else:
        return None
    detail = pub.error_message or ""
    if pub.error_class and kind == "failed":
        detail = f"{pub.error_class}: {detail}" if detail else pub.error_class
    return _entry(item, kind, channel=pub.channel, due_at=pub.next_attempt_at,
                  late_by=late_by, since=pub.updated_at, detail=detail)


def _ts(when: dt.datetime | None) -> float:
    return when.timestamp() if when is not None else 0.0
