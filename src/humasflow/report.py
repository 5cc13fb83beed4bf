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
- Everything is computed in the database with aggregate SQL over the period's visits,
  read through their index on when they ended (``percentile_disc`` on PostgreSQL, an
  index by step and duration walked to each rank on SQLite, for the nearest ranks), on
  SQLite and PostgreSQL alike, when the SOP's standard times are on the wall clock; the
  lead times are ranked in Python from one number per posted item. When they are in
  working time (``clock = "working"``), the database gives one row per visit (its
  start and end) and each visit's working time is computed in Python with the
  office's :class:`~humasflow.calendar.WorkingCalendar`: working time depends on
  holidays and opening hours that SQL does not know.
- Per channel: the channel records (one per item and channel) of the items posted or
  being posted whose record last changed in the period: their states, attempts, and the
  causes of failures (the error class the publisher reported).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import zoneinfo
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from humasflow import _input
from humasflow.errors import InputInvalid
from humasflow.i18n import N_, _, format_duration
from humasflow.storage import schema as t
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

    with store.engine.connect() as conn:
        dialect = conn.dialect.name
        q = _Queries(dialect, org, start, end, cutoff, list(lifecycle), standards, by,
                     revision, channel, staff)
        ended, outcomes, reasons = q.ended(conn, zone)
        if calendar is None:
            steps = ended
            lead = q.lead_time_sql(conn, zone)
            breaches = q.breaches_sql(conn)
        else:
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

    every = sorted([*breaches, *open_breaches],
                   key=lambda b: (-b.overrun.total_seconds(), b.item_id, b.started_at))
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
                 revision: int | None, channel: str | None, staff: str | None) -> None:
        self.dialect, self.org, self.start, self.end, self.cutoff = (
            dialect, org, start, end, cutoff)
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
        self.filters = [*visit_filters, sv.c.left_at >= start, sv.c.left_at < end]
        if staff is not None:
            self.filters.append(sv.c.left_by == staff)
        # Apart: a query of one step asks for that step instead (SQLite would otherwise
        # sort what its index gives in order).
        self.ranked = list(self.filters)
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

    def _walked(self, query: Any) -> Any:
        # SQLite: read in the order of the rank index, which holds every column these
        # queries read: groups by step without sorting, and no table row read.
        return query.with_hint(t.step_visits, f"INDEXED BY {t.SQLITE_RANK_INDEX}", "sqlite")

    def _ended_by_step(self, conn: Any, zone: dt.tzinfo) -> _Ended:
        """:meth:`ended` for one group: grouped by step alone, each outcome and each
        week counted by a condition (a database sorts every row it groups by more than
        an index gives in order), the reasons from the visits sent back only."""
        sv = t.step_visits
        standard = self.standard
        within = sa.case((sv.c.seconds <= standard, 1), else_=0)
        monday = self._monday(zone)
        weeks = int((self.end - monday).total_seconds() // _WEEK) + 1
        bounds = [sa.bindparam(f"week_{w}", monday + dt.timedelta(weeks=w), type_=t.UTCDateTime)
                  for w in range(weeks + 1)]
        columns = [sv.c.step, sa.func.count(), sa.func.max(sv.c.seconds),
                   sa.func.count(standard), sa.func.sum(within)]
        columns += [sa.func.sum(sa.case((sv.c.outcome == o, 1), else_=0)) for o in TRIGGERS]
        columns.append(sa.func.sum(sa.case((sv.c.outcome.not_in(TRIGGERS), 1), else_=0)))
        for w in range(weeks):
            inside = sa.and_(sv.c.left_at >= bounds[w], sv.c.left_at < bounds[w + 1])
            columns += [sa.func.count(sa.case((inside, standard))),
                        sa.func.sum(sa.case((inside, within), else_=0))]
        query = self._walked(sa.select(*columns).select_from(self.source)
                             .where(*self.filters).group_by(sv.c.step))
        parts: dict[tuple[str, str], list[Any]] = {}
        outcomes: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self.week_timed = defaultdict(lambda: [0, 0])
        others = False
        for row in conn.execute(query):
            key, n, longest, _timed, inside_n = row[:5]
            parts[("", key)] = [int(n), None, None, longest, int(inside_n or 0)]
            counts = row[5:5 + len(TRIGGERS) + 1]
            outcomes[("", key)] = {o: int(c) for o, c in zip(TRIGGERS, counts, strict=False)
                                   if c}
            others = others or bool(counts[-1])
            for w in range(weeks):
                timed, on_time = row[6 + len(TRIGGERS) + 2 * w:8 + len(TRIGGERS) + 2 * w]
                if timed:
                    self.week_timed[w][0] += int(timed)
                    self.week_timed[w][1] += int(on_time or 0)
        # One more walk for the reasons of the visits sent back, and for the outcomes
        # that are no action of the engine's (records written by other software).
        back = sv.c.outcome.in_(("reject", "rework"))
        wanted = sa.or_(back, sv.c.outcome.not_in(TRIGGERS)) if others else back
        why = sa.case((back, sv.c.reason), else_=sa.null())
        query = (sa.select(sv.c.step, sv.c.outcome, why, sa.func.count())
                 .select_from(self.source).where(*self.filters, wanted)
                 .group_by(sv.c.step, sv.c.outcome, why))
        reasons: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for key, outcome, reason, n in conn.execute(self._walked(query)):
            if reason is not None:
                reasons[(key, outcome)][reason] += int(n)
            if outcome not in TRIGGERS:
                counted = outcomes[("", key)]
                counted[outcome] = counted.get(outcome, 0) + int(n)
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
        if self.dialect == "postgresql":
            # An ordered-set aggregate sorts each group's durations once. percentile_disc
            # takes the value at rank ⌈p·n⌉; p just under 1/2 and 9/10 keeps the float
            # product from rounding up past a whole rank (exact for n below 10^12).
            shares = sa.literal([0.5 - 1e-12, 0.9 - 1e-12], sa.ARRAY(sa.Float))
            picked = sa.func.percentile_disc(shares).within_group(sv.c.seconds)
            query = (sa.select(self._grp(), sv.c.step, picked).select_from(self.source)
                     .where(*self.filters).group_by(*self._grouped(sv.c.step)))
            return {(grp, key): (float(values[0]), float(values[1]))
                    for grp, key, values in conn.execute(query)}
        return _sqlite_ranks(conn, self, parts)

    def breaches_sql(self, conn: Any) -> list[StepBreach]:
        # There may be a breach for every tenth visit: the rows are read as the driver
        # gives them, the times converted here (the same values the column type makes),
        # and the titles read afterwards in one range of item ids, not one by one.
        sv = t.step_visits
        if self.dialect == "sqlite":
            def text(column: Any) -> Any:
                return sa.type_coerce(column, sa.String())

            def moment(value: str) -> dt.datetime:
                return dt.datetime.fromisoformat(value + "+00:00")
        else:
            # As text with its offset: the driver's own conversion of each timestamp
            # costs several times the parsing.
            def text(column: Any) -> Any:
                return sa.type_coerce(sa.cast(column, sa.Text), sa.String())

            def moment(value: str) -> dt.datetime:
                return dt.datetime.fromisoformat(value).astimezone(dt.timezone.utc)
        standard = self.standard
        query = (sa.select(sv.c.item_id, sv.c.step, sv.c.left_by, text(sv.c.entered_at),
                           text(sv.c.left_at), sv.c.seconds, standard)
                 .select_from(self.source).where(*self.filters, sv.c.seconds > standard))
        rows = conn.execute(query).fetchall()
        titles = self._titles(conn, [row[0] for row in rows])
        standards: dict[float, dt.timedelta] = {}
        make = StepBreach
        found = []
        for item_id, step, actor, started, ended, seconds, limit_s in rows:
            limit = standards.get(limit_s)
            if limit is None:
                limit = standards[limit_s] = dt.timedelta(seconds=round(float(limit_s), 3))
            found.append(make(item_id=int(item_id), title=titles.get(item_id, ""), step=step,
                              actor=actor, started_at=moment(started), ended_at=moment(ended),
                              duration=dt.timedelta(seconds=round(float(seconds), 3)),
                              standard=limit))
        return found

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
        return {item_id: title for item_id, title in conn.execute(
            sa.select(items.c.id, items.c.title)
            .where(items.c.org == self.org, items.c.id >= min(ids), items.c.id <= max(ids))
        ).all()}

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
        """The lead times, and the weeks the items were posted in (kept for
        :meth:`weeks`): one pass over the posted items, ranked here."""
        posted = self._posted().subquery("posted")
        seconds = _seconds(self.dialect, posted.c.posted_at, posted.c.created_at)
        week = self._week_of(posted.c.posted_at, self._monday(zone))
        self.posted_weeks = Counter()
        values = []
        for value, index in conn.execute(sa.select(seconds, week)).all():
            values.append(value)
            self.posted_weeks[int(index)] += 1
        return _distribution(values)

    def lead_time_working(self, conn: Any, calendar: Any) -> Distribution:
        return _distribution([calendar.working_time(r.created_at, r.posted_at).total_seconds()
                              for r in conn.execute(self._posted())])

    def weeks(self, conn: Any, zone: dt.tzinfo) -> list[Week]:
        monday = self._monday(zone)

        def week_of(column: Any) -> Any:
            return self._week_of(column, monday)

        items = self.items
        created_week = week_of(items.c.created_at).label("week")
        created = (sa.select(created_week, sa.func.count())
                   .where(*self.item_filters, items.c.created_at >= self.start,
                          items.c.created_at < self.end).group_by(created_week))
        counts: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for week, n in conn.execute(created):
            counts[int(week)][0] = int(n)
        if self.posted_weeks is None:
            posted_rows = self._posted().subquery("posted")
            posted_week = week_of(posted_rows.c.posted_at).label("week")
            posted = sa.select(posted_week, sa.func.count()).group_by(posted_week)
            self.posted_weeks = Counter({int(week): int(n)
                                         for week, n in conn.execute(posted)})
        for week, n in self.posted_weeks.items():
            counts[week][1] = n
        if self.working_within is None:
            for week, (n, within) in self.week_timed.items():  # counted by ``ended``
                counts[week][2:] = [n, within]
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
          .with_hint(sv, f"INDEXED BY {t.SQLITE_RANK_INDEX}", "sqlite")
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
