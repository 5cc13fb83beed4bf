"""The evaluation report (SOP step 9): how the procedure went over a period.

:meth:`Office.report <humasflow.office.Office.report>` returns a :class:`Report`, an
app renders it itself or asks :func:`render` for a table, Markdown, CSV or JSON.

What is counted, and how:

- A *visit* is one stay of an item at one step: from the event that moved it there to
  the next event that moved it on (events that leave the item at its step, such as a
  revision before approval, do not end the visit). Each move writes the visit it ends
  as a row of ``step_visits`` in its own transaction; the visit of an item still at its
  step is the item's row (migration 12 derived the visits of the events before it). A
  visit counts in the period when it *ended* in it (``since`` included, ``until``
  excluded); a visit still open at the end of the period is counted as open and, if it
  already ran past its standard time, is a breach.
- Durations are measured against the standard time of the item's own SOP revision.
  The median and 90th percentile are nearest-rank: the value at rank ⌈p·n⌉ of the
  ordered durations.
- Everything is computed in the database with aggregate SQL over the period's visits
  (on SQLite one walk per step of an index by step and duration, with the step's
  standard time as a constant; on PostgreSQL one pass grouped by step, and
  ``percentile_disc`` for the nearest ranks), on SQLite and PostgreSQL alike, when the
  SOP's standard times are on the wall clock; only the breaches and, on SQLite, the
  lead times (ranked in Python from one number per posted item) come to Python a row
  each. When they are in working time (``clock = "working"``), the database gives one
  row per visit (its start and end) and each visit's working time is computed in
  Python with the office's :class:`~humasflow.calendar.WorkingCalendar`: working time
  depends on holidays and opening hours that SQL does not know.
- Per channel: the channel records (one per item and channel) of the items posted or
  being posted whose record last changed in the period: their states, attempts, and the
  causes of failures (the error class the publisher reported).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import datetime as dt
import gc
import io
import json
import math
import operator
import re
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from humasflow import _input
from humasflow.errors import InputInvalid
from humasflow.i18n import N_, _, format_duration
from humasflow.storage import schema as t
from humasflow.storage.driver import Compiled
from humasflow.workflow import TRIGGERS

if TYPE_CHECKING:
    from humasflow.office import Office
    from humasflow.storage.store import Store

__all__ = ["BY", "FORMATS", "MIN_SAMPLE", "ChannelStats", "Comparison", "Decisions",
           "Distribution", "Report", "StepBreach", "StepChange", "StepStats", "Week",
           "build_comparison", "build_report", "render", "render_comparison"]

#: How a report can be broken down (``None``: by step only).
BY = ("step", "channel", "staff", "revision")
#: The formats :func:`render` writes.
FORMATS = ("table", "md", "csv", "json", "html")

_WEEK = 7 * 86400
#: A UTC time as SQLite's column holds it (and as the report reads times as text).
_UTC_TEXT = "%Y-%m-%d %H:%M:%S.%f"
#: Fewer completions than this on either side of a comparison are too few to read a
#: trend from: the comparison says so instead of suggesting one.
MIN_SAMPLE = 10


@attrs.frozen
class Distribution:
    """How long something took, over ``count`` cases (durations ``None`` when none)."""

    count: int = 0
    median: dt.timedelta | None = None
    p90: dt.timedelta | None = None
    max: dt.timedelta | None = None


@attrs.frozen
class StepStats:
    """One step (in one group) over the period.

    Attributes:
        step: The step's key.
        number: Its number in the SOP.
        group: The group's value (a channel, a staff member, a revision), or ``""``.
        standard: The step's standard time (the current revision's), if any.
        durations: Completions and their median, 90th percentile and longest duration.
        within: How many completions were within the standard time.
        outcomes: How the visits ended (``complete``, ``reject``, ``rework``…), counted.
        open: Visits still open at the end of the period.
    """

    step: str
    number: int
    group: str = ""
    standard: dt.timedelta | None = None
    durations: Distribution = Distribution()
    within: int = 0
    outcomes: Mapping[str, int] = attrs.field(factory=dict)
    open: int = 0

    @property
    def completions(self) -> int:
        """Visits that ended in the period."""
        return self.durations.count

    @property
    def within_share(self) -> float | None:
        """The share of completions within the standard time (``None``: no standard or
        no completion)."""
        if self.standard is None or not self.completions:
            return None
        return self.within / self.completions


@attrs.frozen
class Decisions:
    """A deciding step (approval, recheck): how often it sent the item back, and why."""

    step: str
    decided: int = 0
    returned: int = 0
    reasons: tuple[tuple[str, int], ...] = ()

    @property
    def rate(self) -> float | None:
        """The share of decisions that sent the item back (``None``: none decided)."""
        return self.returned / self.decided if self.decided else None


@attrs.frozen
class Week:
    """One week of the period (from Monday, in the report's zone)."""

    start: dt.date
    created: int = 0
    posted: int = 0
    #: Step completions that ended in the week, of steps with a standard time.
    completed: int = 0
    #: Of those, within their standard time.
    on_time: int = 0

    @property
    def on_time_share(self) -> float | None:
        """The share of the week's completions within the standard (``None``: none)."""
        return self.on_time / self.completed if self.completed else None


@attrs.frozen
class ChannelStats:
    """One channel's posting over the period."""

    channel: str
    records: int = 0
    states: Mapping[str, int] = attrs.field(factory=dict)
    attempts: int = 0
    retries: int = 0
    causes: tuple[tuple[str, int], ...] = ()

    @property
    def posted(self) -> int:
        """Records posted (or confirmed as posted by hand)."""
        return self.states.get("posted", 0)

    @property
    def success_share(self) -> float | None:
        """Posted among the records not skipped (``None``: none)."""
        counted = self.records - self.states.get("skipped", 0)
        return self.posted / counted if counted else None


#: What one pass over the ended visits gives: per (group, step) the durations and how
#: many were within the standard; how the visits ended; the reasons, most frequent first.
_Ended = tuple[dict[tuple[str, str], tuple["Distribution", int]],
               dict[tuple[str, str], dict[str, int]],
               dict[tuple[str, str], list[tuple[str, int]]]]

@attrs.frozen
class StepBreach:
    """A visit that ran past its standard time.

    ``ended_at`` is ``None`` for a visit still open at the end of the period, whose
    duration is measured until then.
    """

    item_id: int
    title: str
    step: str
    actor: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    duration: dt.timedelta
    standard: dt.timedelta

    @property
    def overrun(self) -> dt.timedelta:
        """By how much the standard time was exceeded."""
        return self.duration - self.standard


@attrs.frozen
class Report:
    """The evaluation report of one period.

    Attributes:
        org: The organisation.
        since: The start of the period (included), UTC.
        until: Its end (excluded), UTC.
        made_at: When the report was made (open visits are measured until ``until``, or
            until then if that is earlier).
        clock: The clock durations are measured with: ``"wall"`` or ``"working"``
            (the current SOP's).
        calendar: The working calendar used (as data), on the working clock.
        by: How the steps are broken down (``None``: by step only).
        filters: The filters applied (``revision``, ``channel``, ``staff``).
        steps: Per step (and group), in the SOP's order.
        approval: Rejections at the approval step.
        recheck: Rework at the recheck step.
        lead_time: From creation (the concept) to posted, for the items posted in the
            period.
        weeks: Items created and posted per week.
        channels: Per channel.
        breaches: Every visit past its standard time, the largest overrun first.
    """

    org: str
    since: dt.datetime
    until: dt.datetime
    made_at: dt.datetime
    clock: str
    timezone: str
    calendar: Mapping[str, Any] | None = None
    by: str | None = None
    filters: Mapping[str, Any] = attrs.field(factory=dict)
    steps: tuple[StepStats, ...] = ()
    approval: Decisions | None = None
    recheck: Decisions | None = None
    lead_time: Distribution = Distribution()
    weeks: tuple[Week, ...] = ()
    channels: tuple[ChannelStats, ...] = ()
    breaches: tuple[StepBreach, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON data (durations in seconds, times in ISO 8601)."""
        data: dict[str, Any] = _plain(attrs.asdict(self))
        return data | {
            "steps": [_plain(attrs.asdict(s)) | {"completions": s.completions,
                                                  "within_share": s.within_share}
                      for s in self.steps],
            "approval": _decisions(self.approval),
            "recheck": _decisions(self.recheck),
            "channels": [_plain(attrs.asdict(c)) | {"posted": c.posted,
                                                     "success_share": c.success_share}
                         for c in self.channels],
            "breaches": [_plain(attrs.asdict(b)) | {"overrun": b.overrun.total_seconds()}
                         for b in self.breaches],
        }


def _decisions(value: Decisions | None) -> dict[str, Any] | None:
    return None if value is None else _plain(attrs.asdict(value)) | {"rate": value.rate}


def _plain(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@attrs.frozen
class StepChange:
    """One step before and after an SOP revision.

    ``before`` and ``after`` are the step's statistics over the items of the previous
    revision and over those of the revision compared; the changes are ``after`` minus
    ``before``, ``None`` when either side has nothing to measure.
    """

    step: str
    number: int
    before: StepStats
    after: StepStats
    min_sample: int = MIN_SAMPLE

    @property
    def median_change(self) -> dt.timedelta | None:
        """How much the median duration changed (negative: faster)."""
        old, new = self.before.durations.median, self.after.durations.median
        return None if old is None or new is None else new - old

    @property
    def within_change(self) -> float | None:
        """How much the share within the standard time changed (in shares of 1)."""
        old, new = self.before.within_share, self.after.within_share
        return None if old is None or new is None else new - old

    @property
    def too_small(self) -> bool:
        """Whether either side has fewer completions than ``min_sample``."""
        return min(self.before.completions, self.after.completions) < self.min_sample


@attrs.frozen
class Comparison:
    """A period's steps before and after an SOP revision ("did the change help?").

    Attributes:
        revision: The revision compared.
        previous: The revision before it.
        before: The report over the items of ``previous``.
        after: The report over the items of ``revision``.
        steps: Per step of either revision, in the SOP's order.
        min_sample: Below how many completions a side is too small to read a trend.
    """

    revision: int
    previous: int
    before: Report
    after: Report
    steps: tuple[StepChange, ...] = ()
    min_sample: int = MIN_SAMPLE

    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON data (durations in seconds, times in ISO 8601)."""
        return {
            "org": self.after.org, "since": self.after.since.isoformat(),
            "until": self.after.until.isoformat(), "clock": self.after.clock,
            "revision": self.revision, "previous": self.previous,
            "min_sample": self.min_sample, "filters": _plain(self.after.filters),
            "steps": [{"step": c.step, "number": c.number,
                       "before": _side(c.before), "after": _side(c.after),
                       "median_change": _plain(c.median_change),
                       "within_change": c.within_change, "too_small": c.too_small}
                      for c in self.steps],
            "lead_time": {"before": _plain(attrs.asdict(self.before.lead_time)),
                          "after": _plain(attrs.asdict(self.after.lead_time))},
            "approval": {"before": _decisions(self.before.approval),
                         "after": _decisions(self.after.approval)},
        }


def _side(stats: StepStats) -> dict[str, Any]:
    return {"completions": stats.completions, "standard": _plain(stats.standard),
            "median": _plain(stats.durations.median), "p90": _plain(stats.durations.p90),
            "max": _plain(stats.durations.max), "within": stats.within,
            "within_share": stats.within_share, "open": stats.open}


# -- building ---------------------------------------------------------------------------

def _bound(name: str, value: dt.datetime | dt.date, zone: dt.tzinfo, *,
           end: bool) -> dt.datetime:
    """A period's bound: a date is a day of the zone (``until``'s day included)."""
    if isinstance(value, dt.datetime):
        return _input.moment(name, value).astimezone(dt.timezone.utc)
    if isinstance(value, dt.date):
        day = value + dt.timedelta(days=1) if end else value
        return dt.datetime.combine(day, dt.time(0), zone).astimezone(dt.timezone.utc)
    raise TypeError(f"{name} must be a date or an aware datetime, got "
                    f"{type(value).__name__} {value!r:.60}")


def _seconds(dialect: str, end: Any, start: Any) -> Any:
    """The seconds from ``start`` to ``end``, in SQL (as a visit's row holds them)."""
    return t.visit_seconds(dialect, end, start)


def _rank_of(count: Any, numerator: int, denominator: int) -> Any:
    """⌈numerator/denominator · count⌉ in integer SQL (the same on both databases)."""
    return (count * numerator + (denominator - 1)) // denominator


def _nearest_rank(ordered: Sequence[float], numerator: int, denominator: int) -> float:
    return ordered[max(0, -(-len(ordered) * numerator // denominator) - 1)]


def _td(seconds: Any) -> dt.timedelta | None:
    return None if seconds is None else dt.timedelta(seconds=round(float(seconds), 3))


def build_report(office: Office, store: Store, since: dt.datetime | dt.date,
                 until: dt.datetime | dt.date, *, by: str | None = None,
                 revision: int | None = None, channel: str | None = None,
                 staff: str | None = None, now: dt.datetime) -> Report:
    """Compute the report (see :meth:`Office.report <humasflow.office.Office.report>`).

    Raises:
        InputInvalid: ``until`` is not after ``since``, or ``by`` is not one of
            :data:`BY`.
    """
    org = office.org
    sop = office.sop()
    zone = zoneinfo.ZoneInfo(sop.header.timezone)
    start = _bound("since", since, zone, end=False)
    end = _bound("until", until, zone, end=True)
    if end <= start:
        raise InputInvalid("until", _("is not after since ({since})").format(
            since=start.isoformat()), _("give a later --until"))
    if by is not None and by not in BY:
        raise InputInvalid("by", _("is {value!r}").format(value=by),
                           _("one of {choices}").format(choices=", ".join(BY)))
    if staff is not None:
        office.actor(staff)
    if channel is not None and channel not in office.channels():
        raise InputInvalid("channel", _("is {value!r}, no channel of {org}").format(
            value=channel, org=org), _("one of {choices}").format(
                choices=", ".join(sorted(office.channels())) or "-"))
    clock = sop.header.clock
    calendar = office.calendar if clock == "working" else None
    cutoff = min(end, now)

    revisions = {int(r["id"]): office.sop(int(r["id"])) for r in store.sop_revisions(org)}
    lifecycle = {s.key: s for rev in revisions.values() for s in rev.lifecycle}
    for s in sop.lifecycle:
        lifecycle[s.key] = s
    standards = [(rev, s.key, s.standard_time.total_seconds())
                 for rev, definition in revisions.items() for s in definition.lifecycle
                 if s.standard_time]

    # The report makes an object or a row per breach, per posted item and (on the
    # working clock) per visit and none of them refers to another: the cyclic garbage
    # collector would walk them all again and again as they pile up, for nothing.
    with _collector_paused(), store.engine.connect() as conn:
        dialect = conn.dialect.name
        postgres = dialect == "postgresql"
        if postgres:
            # Every part read from one snapshot, as SQLite's read transaction does.
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            _no_jit(conn)
        q = _Queries(dialect, org, start, end, cutoff, list(lifecycle), standards, by,
                     revision, channel, staff, per_step=_per_step(revisions.items()))
        if calendar is None and postgres:
            # The step counts are the server's work and the breaches mostly Python's:
            # both at once, on a second connection that reads the same snapshot.
            with _beside(store.engine, conn) as other, ThreadPoolExecutor(
                    1, thread_name_prefix="humasflow-report") as pool:
                ending = pool.submit(q.ended, other, zone)
                lead = q.lead_time_sql(conn, zone)
                breaches = q.breaches_sql(conn, zone)
                steps, outcomes, reasons = ending.result()
        elif calendar is None:
            steps, outcomes, reasons = q.ended(conn, zone)
            lead = q.lead_time_sql(conn, zone)
            breaches = q.breaches_sql(conn, zone)
        else:
            _wall_clock, outcomes, reasons = q.ended(conn, zone)  # steps: below
            steps, breaches = q.step_stats_working(conn, calendar)
            lead = q.lead_time_working(conn, calendar)
        open_counts, open_breaches = q.open_visits(conn, calendar)
        weeks = q.weeks(conn, zone)
        channels = q.channels(conn)
        conn.rollback()  # a read: nothing of it stays

    order = {key: (step.number, key) for key, step in lifecycle.items()}
    current = {s.key: s.standard_time for s in sop.lifecycle}
    groups = sorted({g for g, _s in steps} | {g for g, _s in open_counts}
                    | {g for g, _s in outcomes}) or ([""] if by in (None, "step") else [])
    stats = []
    for group in groups:
        for key in sorted(lifecycle, key=lambda k: order[k]):
            found = steps.get((group, key))
            if found is None and (group, key) not in open_counts and group != "":
                continue
            dist, within = found if found is not None else (Distribution(), 0)
            stats.append(StepStats(
                step=key, number=lifecycle[key].number, group=group,
                standard=current.get(key, lifecycle[key].standard_time), durations=dist,
                within=within, outcomes=dict(outcomes.get((group, key), {})),
                open=open_counts.get((group, key), 0)))

    def decisions(output: str, back: str) -> Decisions | None:
        step = next((s for s in sop.lifecycle if s.output == output), None)
        if step is None:
            return None
        counted: Counter[str] = Counter()
        for (_group, key), ends in outcomes.items():
            if key == step.key:
                counted.update(ends)
        return Decisions(step=step.key, decided=sum(counted.values()), returned=counted[back],
                         reasons=tuple(reasons.get((step.key, back), ())))

    # The ended breaches come in order on the wall clock; the few open ones join them.
    every = breaches if calendar is None else sorted(breaches, key=_breach_order)
    if len(open_breaches) <= 64:
        for breach in open_breaches:
            bisect.insort(every, breach, key=_breach_order)
    else:
        every = sorted([*every, *open_breaches], key=_breach_order)
    return Report(org=org, since=start, until=end, made_at=now, clock=clock,
                  timezone=sop.header.timezone,
                  calendar=calendar.to_dict() if calendar is not None else None, by=by,
                  filters={k: v for k, v in (("revision", revision), ("channel", channel),
                                             ("staff", staff)) if v is not None},
                  steps=tuple(stats), approval=decisions("approval", "reject"),
                  recheck=decisions("recheck", "rework"), lead_time=lead,
                  weeks=tuple(weeks), channels=tuple(channels), breaches=tuple(every))


def build_comparison(office: Office, since: dt.datetime | dt.date,
                     until: dt.datetime | dt.date, *, revision: int | None = None,
                     channel: str | None = None, staff: str | None = None,
                     min_sample: int = MIN_SAMPLE, now: dt.datetime) -> Comparison:
    """Compare the items of ``revision`` with those of the revision before it (see
    :meth:`Office.compare_revisions <humasflow.office.Office.compare_revisions>`).

    Raises:
        InputInvalid: ``revision`` is not a revision of the organisation, or is its
            first (nothing to compare it with); or the period or a filter is wrong.
    """
    ids = [int(r["id"]) for r in office.revisions()]
    chosen = revision if revision is not None else office.current_revision()
    if chosen not in ids:
        raise InputInvalid("revision", _("is {value!r}, no SOP revision of {org}").format(
            value=chosen, org=office.org), _("one of {choices}").format(
                choices=", ".join(map(str, ids)) or "-"))
    if ids.index(chosen) == 0:
        raise InputInvalid("revision", _("is {org}'s first SOP revision: there is nothing "
                                         "before it to compare with").format(org=office.org),
                           _("give a later revision"))
    if isinstance(min_sample, bool) or not isinstance(min_sample, int) or min_sample < 1:
        raise InputInvalid("min_sample", _("is {value!r}").format(value=min_sample),
                           _("a whole number of at least 1"))
    previous = ids[ids.index(chosen) - 1]
    before, after = (office.report(since, until, revision=r, channel=channel, staff=staff,
                                   now=now) for r in (previous, chosen))
    # Each side against its own revision's standard times (a report shows the current's).
    standards = {r: {s.key: s.standard_time for s in office.sop(r).lifecycle}
                 for r in (previous, chosen)}
    before, after = (attrs.evolve(found, steps=tuple(
        attrs.evolve(s, standard=standards[r].get(s.step)) for s in found.steps))
        for r, found in ((previous, before), (chosen, after)))
    old = {s.step: s for s in before.steps}
    new = {s.step: s for s in after.steps}
    order = [*new, *(k for k in old if k not in new)]
    changes = tuple(StepChange(
        step=key, number=(new.get(key) or old[key]).number,
        before=old.get(key) or StepStats(step=key, number=new[key].number),
        after=new.get(key) or StepStats(step=key, number=old[key].number),
        min_sample=min_sample) for key in order)
    return Comparison(revision=chosen, previous=previous, before=before, after=after,
                      steps=changes, min_sample=min_sample)


class _Queries:
    """The report's SQL: aggregate queries over the ended visits of the period (the
    ``step_visits`` rows, read through their index on when they ended) and over the
    items' rows for the visits still open and the posted items."""

    def __init__(self, dialect: str, org: str, start: dt.datetime, end: dt.datetime,
                 cutoff: dt.datetime, steps: list[str],
                 standards: list[tuple[int, str, float]], by: str | None,
                 revision: int | None, channel: str | None, staff: str | None, *,
                 per_step: Mapping[str, _StepFacts] | None = None) -> None:
        self.dialect, self.org, self.start, self.end, self.cutoff = (
            dialect, org, start, end, cutoff)
        self.revision = revision
        # Per step: its standard time in each revision that has the step, and the
        # outcomes a visit of it can end with.
        self.per_step: Mapping[str, _StepFacts] = per_step or {}
        self.step_order = list(steps)
        sv, items, pubs = t.step_visits, t.items, t.publications
        self.items = items
        self.by = by
        # What selects items (the revision, the channel) applies to every part; the
        # staff member is who ended a visit, or for an open visit the item's assignee.
        self.item_filters: list[Any] = [items.c.org == org]
        visit_filters: list[Any] = [sv.c.org == org]
        if revision is not None:
            self.item_filters.append(items.c.sop_revision == revision)
            visit_filters.append(sv.c.sop_revision == revision)
        if channel is not None:
            self.item_filters.append(sa.exists().where(pubs.c.item_id == items.c.id,
                                                       pubs.c.channel == channel))
            visit_filters.append(sa.exists().where(pubs.c.item_id == sv.c.item_id,
                                                   pubs.c.channel == channel))
        # The ended visits the report counts: those that ended in the period (by the
        # staff member asked for).
        by_staff = [] if staff is None else [sv.c.left_by == staff]
        self.filters = [*visit_filters, sv.c.left_at >= start, sv.c.left_at < end, *by_staff]
        # Apart: a query of one step asks for that step instead. On SQLite such a query
        # walks the index by step and duration (which holds the end too): the period's
        # bounds are kept from choosing the index on the end instead, which would read
        # every table row.
        left = _unindexed(sv.c.left_at) if dialect == "sqlite" else sv.c.left_at
        self.ranked = [*visit_filters, left >= start, left < end, *by_staff]
        self.filters.append(sv.c.step.in_(steps))
        visit_filters.append(sv.c.step.in_(steps))
        self.source: Any = sv
        if by == "channel":
            self.source = sv.join(pubs, pubs.c.item_id == sv.c.item_id)
            group: Any = pubs.c.channel
        elif by == "staff":
            group = sv.c.left_by
        elif by == "revision":
            group = sa.cast(sv.c.sop_revision, sa.String)
        else:
            group = None  # one group, named "" in Python (a constant cannot be grouped by)
        self.group = group
        self.standard = _standard(standards, sv.c.sop_revision, sv.c.step)
        # The visits open at the end of the period: ended after it (``step_visits``)
        # or not yet ended (the item's own row), both begun before it.
        assigned = [] if staff is None else [items.c.assignee == staff]
        self.open_filters = (
            [*visit_filters, *self.item_filters, *assigned, sv.c.left_at >= end,
             sv.c.entered_at < end],
            [*self.item_filters, *assigned, items.c.state.in_(steps),
             items.c.step_started_at < end])
        self.standards = standards
        self.steps = set(steps)
        # On the working clock: when each completion with a standard ended, and whether
        # within it (the weeks' on-time shares; on the wall clock SQL counts them).
        self.working_within: list[tuple[dt.datetime, bool]] | None = None
        self.week_timed: dict[int, list[int]] = {}
        # On the wall clock by step, ``ended`` counts per week the completions with a
        # standard (``week_timed``, their on-time count left out) and says so here; the
        # breaches give those past it (``week_late``, filled by :meth:`breaches_sql`).
        self.late_from_breaches = False
        self.week_late: Counter[int] = Counter()
        # The items posted per week, when the lead times' pass counted them.
        self.posted_weeks: Counter[int] | None = None

    def _grp(self) -> Any:
        return (sa.literal("", sa.String) if self.group is None else self.group).label("grp")

    def _grouped(self, *columns: Any) -> list[Any]:
        return list(columns) if self.group is None else [self.group, *columns]

    # Completed visits ------------------------------------------------------------------

    def _completed(self) -> Any:
        sv = t.step_visits
        return (sa.select(self._grp(), sv.c.step, sv.c.item_id,
                          sv.c.entered_at.label("started_at"), sv.c.left_at.label("ended_at"),
                          sv.c.left_by.label("ended_by"), sv.c.seconds,
                          self.standard.label("standard"))
                .select_from(self.source).where(*self.filters))

    def _monday(self, zone: dt.tzinfo) -> dt.datetime:
        """The start (UTC) of the week the period starts in, from Monday in ``zone``."""
        local = self.start.astimezone(zone)
        return dt.datetime.combine(local.date() - dt.timedelta(days=local.weekday()),
                                   dt.time(0), zone).astimezone(dt.timezone.utc)

    def _week_of(self, column: Any, monday: dt.datetime) -> Any:
        anchor = sa.bindparam("anchor", monday, type_=t.UTCDateTime)
        seconds = _seconds(self.dialect, column, anchor)
        if self.dialect == "sqlite":
            return sa.cast(seconds / _WEEK, sa.Integer)  # never negative: truncation
        return sa.cast(sa.func.floor(seconds / _WEEK), sa.Integer)

    def ended(self, conn: Any, zone: dt.tzinfo) -> _Ended:
        """Per group and step: the durations and how many within the standard; how the
        visits ended; the reasons they were sent back; per week, the completions within
        the standard. Two passes over the visits: one grouping them, one ranking them."""
        if self.group is None:
            return self._ended_by_step(conn, zone)
        sv = t.step_visits
        # Only the visits sent back keep their reason: the others group by outcome alone.
        reason = sa.case((sv.c.outcome.in_(("reject", "rework")), sv.c.reason),
                         else_=sa.null()).label("why")
        week = self._week_of(sv.c.left_at, self._monday(zone)).label("week")
        standard = self.standard
        query = (sa.select(
            self._grp(), sv.c.step, sv.c.outcome, reason, week, sa.func.count(),
            sa.func.max(sv.c.seconds), sa.func.count(standard),
            sa.func.sum(sa.case((sv.c.seconds <= standard, 1), else_=0)),
        ).select_from(self.source).where(*self.filters)
            .group_by(*self._grouped(sv.c.step, sv.c.outcome, reason, week)))
        parts: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, None, None, None, 0])
        outcomes: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        reasons: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.week_timed = defaultdict(lambda: [0, 0])
        for grp, key, outcome, why, index, n, longest, timed, within in conn.execute(query):
            entry = parts[(grp, key)]
            entry[0] += int(n)
            if longest is not None and (entry[3] is None or longest > entry[3]):
                entry[3] = longest
            entry[4] += int(within or 0)
            outcomes[(grp, key)][outcome] = outcomes[(grp, key)].get(outcome, 0) + int(n)
            if why is not None:
                reasons[(key, outcome)][why] += int(n)
            self.week_timed[int(index)][0] += int(timed)
            self.week_timed[int(index)][1] += int(within or 0)
        return self._finished(conn, parts, outcomes, reasons)

    def _standard_of(self, key: str) -> Any:
        """The standard time (seconds) of the visits of one step: a constant when every
        revision the report reads agrees on it, else a ``CASE`` on the revision;
        ``None`` when the step has none in any of them."""
        facts = self.per_step.get(key)
        if facts is None:
            return None
        values = {rev: v for rev, v in facts.standards.items()
                  if self.revision is None or rev == self.revision}
        if not any(v is not None for v in values.values()):
            return None
        if len(set(values.values())) == 1:
            return sa.literal(next(iter(values.values())), sa.Float)
        return sa.case({rev: sa.literal(v, sa.Float) for rev, v in sorted(values.items())
                        if v is not None}, value=t.step_visits.c.sop_revision, else_=sa.null())

    def _against_standard(self, compare: Callable[[Any, Any], Any]) -> Any:
        """``compare(seconds, standard)`` over every step's visits in one condition: by
        step and constant where each step's revisions agree on its standard time (a
        comparison or two per visit, where the ``CASE`` takes several), with the
        smallest standard compared first, else against the ``CASE``."""
        sv = t.step_visits
        groups: dict[float, list[str]] = defaultdict(list)
        for key in self.step_order:
            standard = self._standard_of(key)
            if standard is None:
                continue
            if not isinstance(standard, sa.BindParameter):
                return compare(sv.c.seconds, self.standard)
            groups[standard.value or 0.0].append(key)
        if not groups:
            return sa.false()
        return sa.or_(*[sa.and_(compare(sv.c.seconds, sa.literal(value, sa.Float)),
                                sa.or_(*[sv.c.step == key for key in keys]))
                        for value, keys in sorted(groups.items())])

    def _timed(self) -> Any:
        """The count of the visits with a standard time, over every step: by the step
        alone when each step's revisions agree on whether it has one."""
        sv = t.step_visits
        standards = {key: self._standard_of(key) for key in self.step_order}
        if any(v is not None and not isinstance(v, sa.BindParameter)
               for v in standards.values()):
            return sa.func.count(self.standard)
        timed = [key for key, v in standards.items() if v is not None]
        if len(timed) == len(standards):
            return sa.func.count()
        return sa.func.count().filter(sv.c.step.in_(timed))

    def _week_bounds(self, zone: dt.tzinfo) -> list[dt.datetime]:
        """The starts of the period's weeks after its first (UTC): a visit that ended
        before the k-th of them ended in one of the first k weeks."""
        monday = self._monday(zone)
        weeks = int((self.end - monday).total_seconds() // _WEEK) + 1
        return [monday + dt.timedelta(weeks=w) for w in range(1, weeks)]

    def _before_weeks(self, column: Any, zone: dt.tzinfo, count: Any = None) -> list[Any]:
        """``count`` (of every row by default) of the rows whose ``column`` is before
        each week's start after the first (:func:`_per_week` turns them into counts per
        week): no sort."""
        count = sa.func.count() if count is None else count
        return [count.filter(column < sa.bindparam(f"week_{w}", b, type_=t.UTCDateTime))
                for w, b in enumerate(self._week_bounds(zone), start=1)]

    def _ended_by_step(self, conn: Any, zone: dt.tzinfo) -> _Ended:
        """:meth:`ended` for one group, grouped by step alone (a database sorts every row
        it groups by more than an index gives in order): the counts, maxima and shares
        within the standard, each outcome counted by a filter, and per week the
        completions with a standard counted before each week's start (the breaches
        give the late ones, :meth:`breaches_sql`). On SQLite one walk of the rank index
        per step, with that step's standard time as a constant where its revisions
        agree; on PostgreSQL one pass grouped by hashing."""
        sv = t.step_visits
        weeks = len(self._week_bounds(zone))
        parts: dict[tuple[str, str], list[Any]] = {}
        outcomes: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self.week_timed = defaultdict(lambda: [0, 0])
        self.late_from_breaches = True

        def columns(standard: Any, timed: Any, known: Sequence[str],
                    within: Any = None) -> list[Any]:
            found: list[Any] = [sa.func.count(), sa.func.max(sv.c.seconds)]
            if standard is not None:
                if within is None:
                    within = sv.c.seconds <= standard
                found += [timed, sa.func.count().filter(within)]
                found += self._before_weeks(sv.c.left_at, zone, timed)
            found += [sa.func.count().filter(sv.c.outcome == o) for o in known]
            return found

        def counted(key: str, row: Sequence[Any], timed: bool,
                    known: Sequence[str]) -> bool:
            """Take in one step's row; whether it ended visits of other outcomes."""
            n, longest = int(row[0]), row[1]
            rest = list(row[2:])
            within = 0
            if timed:
                total, within = int(rest[0]), int(rest[1] or 0)
                before = [int(v) for v in rest[2:2 + weeks]]
                rest = rest[2 + weeks:]
                for w, done in _per_week(before, total).items():
                    self.week_timed[w][0] += done
            parts[("", key)] = [n, None, None, longest, within]
            ends = {o: int(c) for o, c in zip(known, rest, strict=True) if c}
            outcomes[("", key)] = ends
            return sum(ends.values()) < n

        others: list[tuple[str, Sequence[str]]] = []
        known: Sequence[str]
        if self.dialect == "sqlite":
            for key in self.step_order:
                facts = self.per_step.get(key)
                known = facts.outcomes if facts is not None else TRIGGERS
                standard = self._standard_of(key)
                timed = sa.func.count() if isinstance(standard, sa.BindParameter) \
                    else sa.func.count(standard)
                query = (sa.select(*columns(standard, timed, known))
                         .select_from(self.source).where(*self.ranked, sv.c.step == key))
                row = conn.execute(query).one()
                if row[0] and counted(key, row, standard is not None, known):
                    others.append((key, known))
        else:
            within = self._against_standard(operators.le)
            query = (sa.select(sv.c.step,
                               *columns(self.standard, self._timed(), TRIGGERS, within))
                     .select_from(self.source).where(*self.filters).group_by(sv.c.step))
            for key, *row in conn.execute(query):
                if counted(key, row, True, TRIGGERS):
                    others.append((key, TRIGGERS))
        for key, known in others:
            # Outcomes that are no action of the engine's at that step (records written
            # by other software): counted one by one.
            query = (sa.select(sv.c.outcome, sa.func.count()).select_from(self.source)
                     .where(*self.ranked, sv.c.step == key, sv.c.outcome.not_in(known))
                     .group_by(sv.c.outcome))
            for outcome, n in conn.execute(query):
                outcomes[("", key)][outcome] = int(n)
        # The reasons of the visits sent back, read at the steps that sent some back.
        back = ("reject", "rework")
        returning = [key for (_g, key), ends in outcomes.items()
                     if any(ends.get(o) for o in back)]
        reasons: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        if returning:
            query = (sa.select(sv.c.step, sv.c.outcome, sv.c.reason, sa.func.count())
                     .select_from(self.source)
                     .where(*self.ranked, sv.c.step.in_(returning), sv.c.outcome.in_(back))
                     .group_by(sv.c.step, sv.c.outcome, sv.c.reason))
            for key, outcome, reason, n in conn.execute(query):
                reasons[(key, outcome)][reason] += int(n)
        return self._finished(conn, parts, outcomes, reasons)

    def _finished(self, conn: Any, parts: dict[tuple[str, str], list[Any]],
                  outcomes: dict[tuple[str, str], dict[str, int]],
                  reasons: Mapping[tuple[str, str], Mapping[str, int]]) -> _Ended:
        """The per-step statistics (with their nearest ranks), the outcomes and the
        reasons, most frequent first, from the counts of one pass over the visits."""
        if parts:
            for key, (median, p90) in self._nearest_ranks(conn, parts).items():
                parts[key][1], parts[key][2] = median, p90
        stats = {key: (Distribution(e[0], _td(e[1]), _td(e[2]), _td(e[3])), e[4])
                 for key, e in parts.items()}
        ordered = {key: sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
                   for key, found in reasons.items()}
        return stats, outcomes, ordered

    def _nearest_ranks(self, conn: Any, parts: Mapping[tuple[str, str], list[Any]]
                       ) -> dict[tuple[str, str], tuple[float, float]]:
        """Per group and step, the completions' durations at the nearest ranks ⌈n/2⌉
        and ⌈9n/10⌉ (``parts`` holds each group's count ``n`` first)."""
        sv = t.step_visits
        if self.dialect == "postgresql" and self.group is None:
            # One pass, each step's durations sorted apart (no sort of every row by step).
            keys = [key for _g, key in parts]
            query = sa.select(*[_ranked(sv.c.seconds).filter(sv.c.step == key)
                                for key in keys]).select_from(self.source).where(*self.filters)
            row = conn.execute(query).one()
            return {("", key): (float(values[0]), float(values[1]))
                    for key, values in zip(keys, row, strict=True)}
        if self.dialect == "postgresql":
            picked = _ranked(sv.c.seconds)
            query = (sa.select(self._grp(), sv.c.step, picked).select_from(self.source)
                     .where(*self.filters).group_by(*self._grouped(sv.c.step)))
            return {(grp, key): (float(values[0]), float(values[1]))
                    for grp, key, values in conn.execute(query)}
        return _sqlite_ranks(conn, self, parts)

    def breaches_sql(self, conn: Any, zone: dt.tzinfo) -> list[StepBreach]:
        """The ended visits past their standard time, the largest overrun first, each
        counted late in the week it ended in (for :meth:`weeks`)."""
        # There may be a breach for every tenth visit: the rows are read as the driver
        # gives them, with the times as text in UTC (the driver's own conversion of each
        # timestamp costs several times the parsing), and converted here to the values
        # the column types make.
        sv = t.step_visits
        sqlite = self.dialect == "sqlite"
        if sqlite:
            def moment(column: Any) -> Any:
                return sa.type_coerce(column, sa.String()) + "+00:00"
        else:
            def moment(column: Any) -> Any:
                return sa.func.to_char(sa.func.timezone("UTC", column),
                                       'YYYY-MM-DD HH24:MI:SS.US"+00:00"')
        # Text in this form compares as the times do: the week each breach ended in.
        bounds = [b.strftime(_UTC_TEXT + "+00:00") for b in self._week_bounds(zone)]
        # The titles: joined on PostgreSQL; on SQLite read afterwards in one range of
        # item ids (a lookup per breach costs more there).
        source: Any = self.source
        title: Any = sa.null()
        if not sqlite:
            source = source.join(self.items, self.items.c.id == sv.c.item_id, isouter=True)
            title = self.items.c.title

        def query(standard: Any, *where: Any, past: Any = None) -> Any:
            return (sa.select(sv.c.item_id, sv.c.step, sv.c.left_by, moment(sv.c.entered_at),
                              moment(sv.c.left_at), sv.c.seconds, standard, title)
                    .select_from(source)
                    .where(*where, sv.c.seconds > standard if past is None else past))

        rows: list[Any] = []
        if sqlite:
            # One walk of the rank index per step, from its standard time up.
            for key in self.step_order:
                standard = self._standard_of(key)
                if standard is not None:
                    rows += _bulk(conn, query(standard, *self.ranked, sv.c.step == key))
        else:
            # A visit of a step no revision has has no standard time: no step list.
            rows = _bulk(conn, query(self.standard, *self.ranked,
                                     past=self._against_standard(operators.gt)))
        titles = self._titles(conn, [row[0] for row in rows]) if sqlite else {}
        late: Counter[int] = Counter()
        after = bisect.bisect_right
        # Durations in whole microseconds, to the millisecond as :func:`_td` makes them
        # (``timedelta(seconds=round(x, 3))``): SQLite keeps the seconds to the
        # millisecond already, so ``round(x, 3)`` would give ``x``; a float of
        # milliseconds times 10^6 is within far less than a microsecond of its integer.
        parse = dt.datetime.fromisoformat
        span = dt.timedelta
        standards: dict[float, tuple[int, dt.timedelta]] = {}
        make = StepBreach
        title_of = titles.get
        keyed = []
        for item_id, step, actor, started, ended, took, limit_s, joined in rows:
            limit = standards.get(limit_s)
            if limit is None:
                micros = round(round(limit_s, 3) * 1_000_000)
                limit = standards[limit_s] = (micros, span(0, 0, micros))
            late[after(bounds, ended)] += 1
            micros = round((took if sqlite else round(took, 3)) * 1_000_000)
            begun = parse(started)
            # By overrun (the largest first), item and start: :func:`_breach_order`,
            # compared exactly (the times as text compare as the times do).
            keyed.append((limit[0] - micros, item_id, started, make(
                item_id, joined if joined is not None else title_of(item_id, ""), step,
                actor, begun, parse(ended), span(0, 0, micros), limit[1])))
        keyed.sort(key=operator.itemgetter(0, 1, 2))
        self.week_late = late
        return [k[3] for k in keyed]

    def step_stats_working(self, conn: Any, calendar: Any) -> tuple[
            dict[tuple[str, str], tuple[Distribution, int]], list[StepBreach]]:
        durations: dict[tuple[str, str], list[float]] = defaultdict(list)
        within: Counter[tuple[str, str]] = Counter()
        late: list[tuple[Any, float]] = []
        self.working_within = []
        for row in conn.execute(self._completed()):
            seconds = calendar.working_time(row.started_at, row.ended_at).total_seconds()
            durations[(row.grp, row.step)].append(seconds)
            if row.standard is not None:
                self.working_within.append((row.ended_at, seconds <= row.standard))
                if seconds <= row.standard:
                    within[(row.grp, row.step)] += 1
                else:
                    late.append((row, seconds))
        # The titles of the breaches only, in one range of item ids.
        titles = self._titles(conn, [row.item_id for row, _s in late])
        breaches = [_breach(row, seconds, titles.get(row.item_id, "")) for row, seconds in late]
        return ({key: (_distribution(values), within[key])
                 for key, values in durations.items()}, breaches)

    def _titles(self, conn: Any, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        items = self.items
        return dict(_bulk(conn, sa.select(items.c.id, items.c.title).where(
            items.c.org == self.org, items.c.id >= min(ids), items.c.id <= max(ids))))

    # Open visits -----------------------------------------------------------------------

    def open_visits(self, conn: Any, calendar: Any) -> tuple[dict[tuple[str, str], int],
                                                             list[StepBreach]]:
        """The visits still open at the end of the period, counted, and those of them
        already past their standard time."""
        sv, items, pubs = t.step_visits, self.items, t.publications
        if self.by == "channel":
            group: Any = pubs.c.channel
        elif self.by == "staff":
            group = sa.func.coalesce(items.c.assignee, "")  # whoever the item is assigned to
        elif self.by == "revision":
            group = sa.cast(items.c.sop_revision, sa.String)
        else:
            group = sa.literal("", sa.String)

        def with_channel(source: Any) -> Any:
            return source.join(pubs, pubs.c.item_id == items.c.id) \
                if self.by == "channel" else source

        ended_after, not_ended = self.open_filters
        later = (sa.select(group.label("grp"), sv.c.step, sv.c.item_id,
                           items.c.title, sv.c.entered_at.label("started_at"),
                           items.c.assignee.label("ended_by"),
                           self.standard.label("standard"))
                 .select_from(with_channel(sv.join(items, items.c.id == sv.c.item_id)))
                 .where(*ended_after))
        now = (sa.select(group.label("grp"), items.c.state.label("step"),
                         items.c.id.label("item_id"), items.c.title,
                         items.c.step_started_at.label("started_at"),
                         items.c.assignee.label("ended_by"),
                         _standard(self.standards, items.c.sop_revision,
                                   items.c.state).label("standard"))
               .select_from(with_channel(items)).where(*not_ended))
        counts: Counter[tuple[str, str]] = Counter()
        found = []
        for query in (later, now):
            for row in conn.execute(query):
                counts[(row.grp, row.step)] += 1
                if row.standard is None:
                    continue
                if calendar is None:
                    seconds = (self.cutoff - row.started_at).total_seconds()
                else:
                    seconds = calendar.working_time(row.started_at, self.cutoff).total_seconds()
                if seconds > row.standard:
                    found.append(StepBreach(
                        item_id=int(row.item_id), title=row.title, step=row.step,
                        actor=row.ended_by, started_at=row.started_at, ended_at=None,
                        duration=_td(seconds) or dt.timedelta(0),
                        standard=_td(row.standard) or dt.timedelta(0)))
        return dict(counts), found

    # Items -----------------------------------------------------------------------------

    def _posted(self) -> Any:
        # A posted item stays posted: its step began when it was posted.
        items = self.items
        return (sa.select(items.c.id, items.c.created_at,
                          items.c.step_started_at.label("posted_at"))
                .where(*self.item_filters, items.c.state == "posted",
                       items.c.step_started_at >= self.start,
                       items.c.step_started_at < self.end))

    def lead_time_sql(self, conn: Any, zone: dt.tzinfo) -> Distribution:
        """The lead times, and the items posted per week (kept for :meth:`weeks`): one
        pass over the posted items, counted before each week's start (and ranked by
        ``percentile_disc`` on PostgreSQL; on SQLite from one more read of their lead
        times)."""
        posted = self._posted().subquery("posted")
        seconds = _seconds(self.dialect, posted.c.posted_at, posted.c.created_at)
        weekly = self._before_weeks(posted.c.posted_at, zone)
        columns: list[Any] = [sa.func.count(), sa.func.max(seconds), *weekly]
        if self.dialect == "postgresql":
            columns.append(_ranked(seconds))
        row = conn.execute(sa.select(*columns)).one()
        n = int(row[0])
        self.posted_weeks = _per_week([int(v) for v in row[2:2 + len(weekly)]], n)
        if not n:
            return Distribution()
        if self.dialect == "postgresql":
            median, p90 = row[-1]
            return Distribution(n, _td(median), _td(p90), _td(row[1]))
        # SQLite sorts no faster than Python: one number per posted item, ranked here.
        return _distribution(value for (value,) in _bulk(conn, sa.select(seconds)))

    def lead_time_working(self, conn: Any, calendar: Any) -> Distribution:
        return _distribution([calendar.working_time(r.created_at, r.posted_at).total_seconds()
                              for r in conn.execute(self._posted())])

    def weeks(self, conn: Any, zone: dt.tzinfo) -> list[Week]:
        monday = self._monday(zone)

        def week_of(column: Any) -> Any:
            return self._week_of(column, monday)

        items = self.items
        created = (sa.select(sa.func.count(), *self._before_weeks(items.c.created_at, zone))
                   .where(*self.item_filters, items.c.created_at >= self.start,
                          items.c.created_at < self.end))
        total, *before = conn.execute(created).one()
        counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for week, n in _per_week([int(v) for v in before], int(total)).items():
            counts[week][0] = n
        if self.posted_weeks is None:
            posted_rows = self._posted().subquery("posted")
            posted_week = week_of(posted_rows.c.posted_at).label("week")
            posted = sa.select(posted_week, sa.func.count()).group_by(posted_week)
            self.posted_weeks = Counter({int(week): int(n)
                                         for week, n in conn.execute(posted)})
        for week, n in self.posted_weeks.items():
            counts[week][1] = n
        if self.working_within is None:
            late = self.week_late if self.late_from_breaches else None
            for week, (n, within) in self.week_timed.items():  # counted by ``ended``
                counts[week][2:] = [n, within if late is None else n - late[week]]
        else:
            for ended_at, within in self.working_within:
                week = int((ended_at - monday).total_seconds() // _WEEK)
                counts[week][2] += 1
                counts[week][3] += int(within)
        last = int((self.end - monday).total_seconds() // _WEEK)
        last -= 1 if (self.end - monday).total_seconds() % _WEEK == 0 else 0
        first_day = monday.astimezone(zone).date()
        return [Week(start=first_day + dt.timedelta(weeks=w), created=counts[w][0],
                     posted=counts[w][1], completed=counts[w][2], on_time=counts[w][3])
                for w in range(last + 1)]

    def channels(self, conn: Any) -> list[ChannelStats]:
        pubs = t.publications
        where = [pubs.c.org == self.org, pubs.c.updated_at >= self.start,
                 pubs.c.updated_at < self.end]
        states = (sa.select(pubs.c.channel, pubs.c.state, sa.func.count(),
                            sa.func.sum(pubs.c.attempts),
                            sa.func.sum(sa.case((pubs.c.attempts > 1, pubs.c.attempts - 1),
                                                else_=0)))
                  .where(*where).group_by(pubs.c.channel, pubs.c.state))
        count = sa.func.count().label("n")
        causes = (sa.select(pubs.c.channel, pubs.c.error_class, count)
                  .where(*where, pubs.c.error_class.is_not(None), pubs.c.state != "posted")
                  .group_by(pubs.c.channel, pubs.c.error_class)
                  .order_by(pubs.c.channel, count.desc(), pubs.c.error_class))
        found: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"states": {}, "attempts": 0, "retries": 0, "causes": []})
        for name, state, n, attempts, retries in conn.execute(states):
            entry = found[name]
            entry["states"][state] = int(n)
            entry["attempts"] += int(attempts or 0)
            entry["retries"] += int(retries or 0)
        for name, cause, n in conn.execute(causes):
            found[name]["causes"].append((cause, int(n)))
        return [ChannelStats(channel=name, records=sum(e["states"].values()),
                             states=e["states"], attempts=e["attempts"],
                             retries=e["retries"], causes=tuple(e["causes"]))
                for name, e in sorted(found.items())]


@attrs.frozen
class _StepFacts:
    """What the report's SQL needs to know of one step: its standard time (seconds,
    ``None`` for none) in each revision that has the step, and the outcomes a visit of
    it can end with."""

    standards: Mapping[int, float | None]
    outcomes: tuple[str, ...]


def _per_step(revisions: Iterable[Any]) -> dict[str, _StepFacts]:
    """Each step's :class:`_StepFacts` over the given SOP revisions (``(id, SOP)``
    pairs)."""
    standards: dict[str, dict[int, float | None]] = defaultdict(dict)
    ends: dict[str, set[str]] = defaultdict(set)
    for rev, sop in revisions:
        for step in sop.lifecycle:
            standards[step.key][rev] = (step.standard_time.total_seconds()
                                        if step.standard_time else None)
            # Its decision or ``complete``; a revision sent back to approval; a cancel.
            ends[step.key].update(step.decisions or ("complete",))
            ends[step.key].update(("revise", "cancel"))
    return {key: _StepFacts(standards[key], tuple(o for o in TRIGGERS if o in ends[key]))
            for key in standards}


def _standard(standards: Sequence[tuple[int, str, float]], revision: Any, step: Any) -> Any:
    """Each visit's standard time in seconds (its revision's, ``NULL`` if the step has
    none), as a ``CASE`` on the revision and the step: no join per row."""
    by_revision: dict[int, dict[str, float]] = defaultdict(dict)
    for rev, key, seconds in standards:
        by_revision[rev][key] = seconds
    if not by_revision:
        return sa.cast(sa.null(), sa.Float)
    return sa.case(
        {rev: sa.case({key: sa.literal(seconds, sa.Float) for key, seconds in steps.items()},
                      value=step, else_=sa.null())
         for rev, steps in sorted(by_revision.items())},
        value=revision, else_=sa.null())


def _sqlite_ranks(conn: Any, q: _Queries, parts: Mapping[tuple[str, str], list[Any]]
                  ) -> dict[tuple[str, str], tuple[float, float]]:
    """SQLite's nearest ranks: the index of ``step_visits`` in the order of the
    durations per step, walked to each rank by its offset, counting only the visits the
    report counts (a walk over index entries, no table rows)."""
    sv = t.step_visits
    filters = list(q.ranked)
    source = q.source
    grouped = q.group is not None
    if grouped:
        filters.append(q.group == sa.bindparam("g", type_=sa.String))
    at = (sa.select(sv.c.seconds).select_from(source)
          .where(*filters, sv.c.step == sa.bindparam("s", type_=sa.String))
          .order_by(sv.c.seconds).limit(1).offset(sa.bindparam("offset", type_=sa.Integer)))
    found = {}
    for (grp, key), entry in parts.items():
        n = int(entry[0])
        lo, hi = (n + 1) // 2, (n * 9 + 9) // 10
        values = {"g": grp, "s": key} if grouped else {"s": key}
        median = conn.execute(at, {**values, "offset": lo - 1}).scalar_one()
        p90 = conn.execute(at, {**values, "offset": hi - 1}).scalar_one()
        found[(grp, key)] = (median, p90)
    return found


def _distribution(values: Iterable[float]) -> Distribution:
    ordered = sorted(values)
    if not ordered:
        return Distribution()
    return Distribution(len(ordered), _td(_nearest_rank(ordered, 1, 2)),
                        _td(_nearest_rank(ordered, 9, 10)), _td(ordered[-1]))


@contextlib.contextmanager
def _beside(engine: sa.Engine, conn: sa.Connection) -> Iterator[sa.Connection]:
    """A second PostgreSQL connection in a read transaction on the snapshot of
    ``conn``'s (which must be ``REPEATABLE READ``): what it reads, ``conn`` reads too.
    Closed when the block ends."""
    snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
    if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):  # it is spliced into the statement
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    with engine.connect() as other:
        other = other.execution_options(isolation_level="REPEATABLE READ")
        with other.begin() as reading:
            other.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            _no_jit(other)
            yield other
            reading.rollback()  # a read: nothing of it stays


def _no_jit(conn: sa.Connection) -> None:
    """Each report query runs for a second at most: compiling it to machine code (JIT,
    on by default above a plan cost these queries reach) costs more than it saves. For
    ``conn``'s transaction only."""
    conn.exec_driver_sql("SET LOCAL jit = off")


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (if it runs) while many objects that hold no
    cycles are made; it runs again afterwards, and collects as usual then."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _bulk(conn: Any, query: Any) -> list[tuple[Any, ...]]:
    """The rows of a query that returns many (one per breach, per item), as tuples
    straight from the driver (processed by their column types): no row object each."""
    return Compiled(query, conn.dialect).rows(conn, {})


def _unindexed(column: Any) -> Any:
    """``+column``: the same value, which SQLite's planner does not look up in an index
    (its documented way to keep it from choosing one)."""
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _ranked(column: Any) -> Any:
    """PostgreSQL's nearest ranks ⌈n/2⌉ and ⌈9n/10⌉ of a column, as one array."""
    # An ordered-set aggregate sorts the values once. percentile_disc takes the value at
    # rank ⌈p·n⌉; p just under 1/2 and 9/10 keeps the float product from rounding up
    # past a whole rank (exact for n below 10^12).
    shares = sa.literal([0.5 - 1e-12, 0.9 - 1e-12], sa.ARRAY(sa.Float))
    return sa.func.percentile_disc(shares).within_group(column)


def _per_week(before: Sequence[int], total: int) -> Counter[int]:
    """The count of each week, from the counts before the start of each week after the
    first and the total."""
    cumulative = [0, *before, total]
    return Counter({w: cumulative[w + 1] - cumulative[w] for w in range(len(cumulative) - 1)
                    if cumulative[w + 1] > cumulative[w]})


def _breach_order(breach: StepBreach) -> tuple[float, int, dt.datetime]:
    """The order of a report's breaches: the largest overrun first."""
    return (-breach.overrun.total_seconds(), breach.item_id, breach.started_at)


def _breach(row: Any, seconds: float, title: str) -> StepBreach:
    duration = _td(seconds)
    standard = _td(row.standard)
    assert duration is not None
    assert standard is not None
    return StepBreach(item_id=int(row.item_id), title=title, step=row.step,
                  actor=row.ended_by, started_at=row.started_at, ended_at=row.ended_at,
                  duration=duration, standard=standard)


# -- rendering --------------------------------------------------------------------------

_STEP_HEADINGS = (N_("Step"), N_("Group"), N_("Standard"), N_("Completed"), N_("Median"),
                  N_("P90"), N_("Max"), N_("Within standard"), N_("Open"))
_BREACH_HEADINGS = (N_("Item"), N_("Title"), N_("Step"), N_("Actor"), N_("Started"),
                    N_("Took"), N_("Standard"), N_("Overrun"))
_CHANNEL_HEADINGS = (N_("Channel"), N_("Records"), N_("Posted"), N_("Success"),
                     N_("Attempts"), N_("Retries"), N_("Failure causes"))
_WEEK_HEADINGS = (N_("Week of"), N_("Created"), N_("Posted"), N_("On time"))


def _duration(value: dt.timedelta | None) -> str:
    return "-" if value is None else format_duration(value)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{math.floor(value * 1000 + 0.5) / 10:g}%"


def _sections(report: Report) -> list[tuple[str, Sequence[str], list[list[str]]]]:
    """The report as titled tables of text cells (in the current language)."""
    zone = zoneinfo.ZoneInfo(report.timezone)

    def when(value: dt.datetime | None) -> str:
        return "-" if value is None else value.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    steps = [[f"{s.number} {s.step}", s.group or "-", _duration(s.standard),
              str(s.completions), _duration(s.durations.median), _duration(s.durations.p90),
              _duration(s.durations.max),
              "-" if s.within_share is None else f"{s.within}/{s.completions} "
              f"({_share(s.within_share)})", str(s.open)] for s in report.steps]
    decisions = []
    for what, found in ((_("rejected at approval"), report.approval),
                        (_("sent back to production at recheck"), report.recheck)):
        if found is None:
            continue
        decisions.append([what, found.step, f"{found.returned}/{found.decided}",
                          _share(found.rate),
                          "; ".join(f"{reason or '-'} ({n})" for reason, n in found.reasons)
                          or "-"])
    lead = report.lead_time
    lead_rows = [[str(lead.count), _duration(lead.median), _duration(lead.p90),
                  _duration(lead.max)]]
    weeks = [[w.start.isoformat(), str(w.created), str(w.posted),
              "-" if w.on_time_share is None else f"{w.on_time}/{w.completed} "
              f"({_share(w.on_time_share)})"] for w in report.weeks]
    channels = [[c.channel, str(c.records), str(c.posted), _share(c.success_share),
                 str(c.attempts), str(c.retries),
                 "; ".join(f"{cause} ({n})" for cause, n in c.causes) or "-"]
                for c in report.channels]
    breaches = [[str(b.item_id), b.title, b.step, b.actor or "-", when(b.started_at),
                 _duration(b.duration) + ("" if b.ended_at else " " + _("(open)")),
                 _duration(b.standard), _duration(b.overrun)] for b in report.breaches]
    return [
        (_("Steps"), [_(h) for h in _STEP_HEADINGS], steps),
        (_("Decisions"), [_("Decision"), _("Step"), _("Returned"), _("Rate"), _("Reasons")],
         decisions),
        (_("Lead time from concept to posted"), [_("Items"), _("Median"), _("P90"), _("Max")],
         lead_rows),
        (_("Items per week"), [_(h) for h in _WEEK_HEADINGS], weeks),
        (_("Channels"), [_(h) for h in _CHANNEL_HEADINGS], channels),
        (_("Breaches of the standard time"), [_(h) for h in _BREACH_HEADINGS], breaches),
    ]


def _heading(report: Report) -> list[str]:
    zone = zoneinfo.ZoneInfo(report.timezone)
    last = (report.until - dt.timedelta(microseconds=1)).astimezone(zone)
    lines = [_("Evaluation report of {org}, {since} to {until}").format(
        org=report.org, since=report.since.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        until=last.strftime("%Y-%m-%d %H:%M"))]
    if report.clock == "working" and report.calendar is not None:
        cal = report.calendar
        lines.append(_("Durations in working time: {days}, {start}-{end} {zone}, public "
                       "holidays of {country}, {closed} closed days").format(
            days=", ".join(cal["workdays"]), start=cal["hours"][0], end=cal["hours"][1],
            zone=cal["timezone"], country=cal["holidays"] or _("no country"),
            closed=len(cal["closed"])))
    else:
        lines.append(_("Durations in wall-clock time (the SOP's clock)"))
    if report.filters:
        lines.append(_("Only: {filters}").format(filters=", ".join(
            f"{k}={v}" for k, v in report.filters.items())))
    return lines


def render(report: Report, format: str = "table") -> str:
    """The report as text: ``table`` (aligned columns for a terminal), ``md``
    (Markdown), ``csv`` (one table per section, a ``section`` column first), ``json``
    (:meth:`Report.to_dict`) or ``html`` (one self-contained page to print or attach:
    inline CSS, the charts inline as SVG when matplotlib is installed)."""
    if format == "json":
        return json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n"
    if format == "html":
        return _html(_heading(report), _sections(report), _inline_chart(report))
    return _write(_heading(report), _sections(report), format)


_CSS = """
body{font:10pt/1.35 system-ui,sans-serif;margin:1.5em;color:#1b1b1b}
h1{font-size:14pt;margin:0 0 .3em}h2{font-size:11pt;margin:1.2em 0 .3em}
p{margin:.15em 0}table{border-collapse:collapse;width:100%;font-size:9pt}
th,td{border:1px solid #c8c8c8;padding:2px 5px;text-align:left;vertical-align:top}
th{background:#eef2f8}.chart svg{width:100%;height:auto}.note{color:#555}
@media print{body{margin:0}h2{break-after:avoid}tr{break-inside:avoid}}
"""


def _inline_chart(report: Report) -> str | None:
    """The report's charts as SVG markup, or ``None`` without matplotlib."""
    from humasflow import charts

    if not charts.available():
        return None
    svg = charts.chart(report, "svg").decode("utf-8")
    return svg[svg.index("<svg"):]  # no XML declaration or doctype inside HTML


def _html(heading: list[str], sections: list[tuple[str, Sequence[str], list[list[str]]]],
          chart: str | None, *, charts: bool = True) -> str:
    """One self-contained page (inline CSS and SVG); every text from the record escaped."""
    from html import escape

    from humasflow.i18n import language

    out = [f'<!DOCTYPE html>\n<html lang="{escape(language())}">\n<head>\n'
           f'<meta charset="utf-8">\n<title>{escape(heading[0])}</title>\n'
           f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{escape(heading[0])}</h1>"]
    out += [f'<p class="note">{escape(line)}</p>' for line in heading[1:]]
    for title, headings, rows in sections:
        out.append(f"<h2>{escape(title)}</h2>")
        if not rows:
            out.append("<p>" + escape(_("None.")) + "</p>")
            continue
        out.append("<table>\n<tr>" + "".join(f"<th>{escape(h)}</th>" for h in headings)
                   + "</tr>")
        out += ["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                for row in rows]
        out.append("</table>")
    if chart is not None:
        title = escape(_("Charts"))
        out.append(f'<h2>{title}</h2>\n<div class="chart">{chart}</div>')
    elif charts:
        out.append('<p class="note">' + escape(_(
            "Charts need matplotlib, which is not installed: install the charts extra "
            "with: pip install 'humasflow[charts]'")) + "</p>")
    out.append("</body>\n</html>\n")
    return "\n".join(out)


def _signed_duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "-"
    sign = "-" if value < dt.timedelta(0) else "+"
    return sign + format_duration(abs(value))


def _signed_points(value: float | None) -> str:
    if value is None:
        return "-"
    points = math.floor(abs(value) * 1000 + 0.5) / 10
    return f"{'-' if value < 0 and points else '+'}{points:g} " + _("points")


def _comparison_sections(comparison: Comparison) -> list[
        tuple[str, Sequence[str], list[list[str]]]]:
    def side(stats: StepStats) -> list[str]:
        return [str(stats.completions), _duration(stats.standard),
                _duration(stats.durations.median),
                "-" if stats.within_share is None else _share(stats.within_share)]

    small = _("too few to read a trend (fewer than {n} on a side)").format(
        n=comparison.min_sample)

    def note(before: int, after: int) -> str:
        if not before or not after:
            return _("nothing to compare (no completion on a side)")
        return small if min(before, after) < comparison.min_sample else "-"

    rows = [[f"{c.number} {c.step}", *side(c.before), *side(c.after),
             _signed_duration(c.median_change), _signed_points(c.within_change),
             note(c.before.completions, c.after.completions)] for c in comparison.steps]
    old, new = comparison.before.lead_time, comparison.after.lead_time
    lead = [[str(old.count), _duration(old.median), str(new.count), _duration(new.median),
             _signed_duration(None if old.median is None or new.median is None
                              else new.median - old.median), note(old.count, new.count)]]
    decisions = []
    for what, before, after in (
            (_("rejected at approval"), comparison.before.approval,
             comparison.after.approval),
            (_("sent back to production at recheck"), comparison.before.recheck,
             comparison.after.recheck)):
        if before is None and after is None:
            continue
        b = before or Decisions(step=after.step if after else "")
        a = after or Decisions(step=b.step)
        decisions.append([what, f"{b.returned}/{b.decided}", _share(b.rate),
                          f"{a.returned}/{a.decided}", _share(a.rate),
                          _signed_points(None if a.rate is None or b.rate is None
                                         else a.rate - b.rate),
                          note(b.decided, a.decided)])
    rev = {"before": comparison.previous, "after": comparison.revision}
    before_n = _("Before (rev. {before}): n").format(**rev)
    after_n = _("After (rev. {after}): n").format(**rev)
    return [
        (_("Steps before and after the revision"),
         [_("Step"), before_n, _("Standard"), _("Median"), _("Within standard"), after_n,
          _("Standard"), _("Median"), _("Within standard"), _("Change in median"),
          _("Change in share within"), _("Note")], rows),
        (_("Lead time from concept to posted"),
         [before_n, _("Median"), after_n, _("Median"), _("Change in median"), _("Note")],
         lead),
        (_("Decisions"), [_("Decision"), before_n, _("Rate"), after_n, _("Rate"),
                          _("Change"), _("Note")], decisions),
    ]


def render_comparison(comparison: Comparison, format: str = "table") -> str:
    """A :class:`Comparison` as text, in the formats of :func:`render`."""
    if format == "json":
        return json.dumps(comparison.to_dict(), ensure_ascii=False, indent=2) + "\n"
    if format == "html":
        return _html(_comparison_heading(comparison), _comparison_sections(comparison), None,
                     charts=False)
    return _write(_comparison_heading(comparison), _comparison_sections(comparison), format)


def _comparison_heading(comparison: Comparison) -> list[str]:
    filters = {k: v for k, v in comparison.after.filters.items() if k != "revision"}
    after = comparison.after
    heading = _heading(attrs.evolve(after, filters=filters))
    zone = zoneinfo.ZoneInfo(after.timezone)
    last = (after.until - dt.timedelta(microseconds=1)).astimezone(zone)
    heading[0] = _("SOP revision {after} against revision {before}, {org}, {since} to "
                   "{until}").format(
        after=comparison.revision, before=comparison.previous, org=after.org,
        since=after.since.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        until=last.strftime("%Y-%m-%d %H:%M"))
    heading.append(_("Before: the items of revision {before}; after: the items of revision "
                     "{after}. n is the number of completions measured; with fewer than "
                     "{n} on a side a difference is noise, not a trend.").format(
        before=comparison.previous, after=comparison.revision, n=comparison.min_sample))
    return heading


def _write(heading: list[str], sections: list[tuple[str, Sequence[str], list[list[str]]]],
           format: str) -> str:
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for title, headings, rows in sections:
            writer.writerow([_("section"), *headings])
            for row in rows:
                writer.writerow([title, *(_safe_cell(c) for c in row)])
        return out.getvalue()
    lines = []
    if format == "md":
        lines += [f"# {heading[0]}", "", *heading[1:], ""]
        for title, headings, rows in sections:
            lines += [f"## {title}", ""]
            if not rows:
                lines += [_("None."), ""]
                continue
            lines.append("| " + " | ".join(headings) + " |")
            lines.append("|" + "|".join("---" for _h in headings) + "|")
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                      for row in rows]
            lines.append("")
        return "\n".join(lines)
    if format != "table":
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    lines += [*heading, ""]
    for title, headings, rows in sections:
        lines += [title, "-" * len(title)]
        if not rows:
            lines += [_("None."), ""]
            continue
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headings)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(headings, widths, strict=True)).rstrip())
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  for row in rows]
        lines.append("")
    return "\n".join(lines)


def _safe_cell(value: str) -> str:
    # A spreadsheet must show a cell, never run it (as the record's CSV export does).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") and value != "-" \
        else value
