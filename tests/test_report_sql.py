"""The report's SQL against the same figures computed in plain Python from the same
visits, on SQLite and PostgreSQL: a month of visits under two SOP revisions whose
standard times differ (one step has none in the second), several weeks with visits
ending exactly at a week's start, outcomes no action of the engine gives, equal
overruns, and visits still open at the end of the period."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from importlib import resources

import pytest
import sqlalchemy as sa

from humasflow.report import Distribution
from humasflow.sop import BUNDLED_SOP, parse_sop
from humasflow.storage import schema as t

UTC = dt.timezone.utc
WIB = dt.timezone(dt.timedelta(hours=7))
SINCE, UNTIL = dt.date(2026, 1, 1), dt.date(2026, 1, 31)
START = dt.datetime(2026, 1, 1, tzinfo=WIB).astimezone(UTC)
END = dt.datetime(2026, 2, 1, tzinfo=WIB).astimezone(UTC)
MONDAY = dt.datetime(2025, 12, 29, tzinfo=WIB).astimezone(UTC)  # the period's first week
WEEK = dt.timedelta(weeks=1)
STEPS = ("concept", "prepare", "design", "approve", "produce", "recheck", "post")
#: Standard times (seconds) per revision: 1 is the bundled SOP; 2 doubles the concept's
#: and has none for the preparation.
STANDARDS = {1: {"concept": 300, "prepare": 600, "design": 600, "approve": 600,
                 "produce": 600, "recheck": 900, "post": 300}}
STANDARDS[2] = {**STANDARDS[1], "concept": 600, "prepare": None}
OUTCOMES = {"approve": ("approve", "reject", "cancel"), "recheck": ("pass", "rework"),
            # Written by other software: no action of the engine's at these steps.
            "post": ("complete", "posted"), "concept": ("complete", "reject", "imported")}


def second_revision():
    text = resources.files("humasflow").joinpath("sops", BUNDLED_SOP).read_text("utf-8")
    text = text.replace('standard_time = "5m"', 'standard_time = "10m"', 1)
    head, rest = text.split('key = "prepare"', 1)
    rest = rest.replace('standard_time = "10m"\n', "", 1)
    return parse_sop(head + 'key = "prepare"' + rest)


@pytest.fixture
def visits(office, clock):
    """About 600 visits, written as rows, of eight items: four under each revision, each
    still at its concept (since the start of the clock, 5 January)."""
    items = {office.new_item(f"Item {n}", by="rina").id: 1 for n in range(4)}
    assert office.establish(second_revision(), by="admin", effective=clock()) == 2
    items.update({office.new_item(f"Item {n}", by="rina").id: 2 for n in range(4, 8)})
    clock.advance(days=40)  # the report is made after the period
    rng = random.Random(5)  # repeatable synthetic records
    rows = []
    for n in range(600):
        step = rng.choice(STEPS)
        if n % 100 == 1:
            # Still open at the end of the period: 20 minutes of it in the period.
            left = END + dt.timedelta(minutes=10)
        elif n % 50 == 0:
            # Ends exactly at the start of a week (Monday 00:00 in Jakarta).
            left = MONDAY + WEEK * rng.randrange(1, 5)
        else:
            left = START - dt.timedelta(days=2) + dt.timedelta(
                seconds=rng.randrange(0, 36 * 86400))
        # Whole minutes mostly (equal overruns), some to the millisecond.
        seconds = rng.choice((60 * rng.randrange(1, 40), rng.randrange(60_000, 2_400_000) / 1000))
        if left > END:
            seconds = 30 * 60
        outcome = rng.choice(OUTCOMES.get(step, ("complete",)))
        reason = rng.choice(("logo", "typo", "warna")) if outcome in ("reject", "rework") else ""
        item = rng.choice(list(items))
        rows.append({"org": office.org, "item_id": item, "step": step,
                     "sop_revision": items[item],
                     "entered_at": left - dt.timedelta(seconds=seconds), "left_at": left,
                     "left_by": rng.choice(("rina", "sari", "budi")), "outcome": outcome,
                     "reason": reason, "seconds": seconds})
    with office._store.engine.begin() as conn:
        conn.execute(t.step_visits.insert(), rows)
    titles = {item: office.item(item) for item in items}
    assert {(i.title, i.assignee, i.state) for i in titles.values()} == {
        (f"Item {n}", "rina", "concept") for n in range(8)}
    return rows, titles


def nearest(ordered, numerator, denominator):
    return ordered[max(0, -(-len(ordered) * numerator // denominator) - 1)]


def td(seconds):
    return dt.timedelta(seconds=round(seconds, 3))


def expected(rows, titles, revision=None):
    """The report's figures, computed here from the rows."""
    ended = [r for r in rows if START <= r["left_at"] < END
             and (revision is None or r["sop_revision"] == revision)]
    steps = {}
    for key in STEPS:
        mine = [r for r in ended if r["step"] == key]
        if not mine:
            continue
        ordered = sorted(r["seconds"] for r in mine)
        timed = [r for r in mine if STANDARDS[r["sop_revision"]][key] is not None]
        steps[key] = {
            "durations": Distribution(len(ordered), td(nearest(ordered, 1, 2)),
                                      td(nearest(ordered, 9, 10)), td(ordered[-1])),
            "within": sum(r["seconds"] <= STANDARDS[r["sop_revision"]][key] for r in timed),
            "outcomes": dict(Counter(r["outcome"] for r in mine))}
    weeks = defaultdict(lambda: [0, 0])
    breaches = []
    for r in ended:
        standard = STANDARDS[r["sop_revision"]][r["step"]]
        if standard is None:
            continue
        week = weeks[(r["left_at"] - MONDAY) // WEEK]
        week[0] += 1
        week[1] += r["seconds"] <= standard
        if r["seconds"] > standard:
            breaches.append((r["item_id"], titles[r["item_id"]].title, r["step"], r["left_by"],
                             r["entered_at"], r["left_at"], td(r["seconds"]), td(standard)))
    # Open at the end: begun before it and ended after it, or not ended (each item's
    # concept); measured until the end, by who the item is assigned to.
    still = [(r["item_id"], r["sop_revision"], r["step"], r["entered_at"]) for r in rows
             if r["entered_at"] < END <= r["left_at"]]
    still += [(i.id, i.sop_revision, i.state, i.step_started_at) for i in titles.values()]
    for item_id, rev, step, began in still:
        standard = STANDARDS[rev][step]
        seconds = (END - began).total_seconds()
        if (revision is None or rev == revision) and standard is not None \
                and seconds > standard:
            item = titles[item_id]
            breaches.append((item_id, item.title, step, item.assignee, began, None,
                             td(seconds), td(standard)))
    breaches.sort(key=lambda b: (b[7] - b[6], b[0], b[4]))
    reasons = Counter((r["step"], r["outcome"], r["reason"]) for r in ended
                      if r["outcome"] in ("reject", "rework"))
    return steps, dict(weeks), breaches, reasons


@pytest.mark.parametrize("revision", [None, 1, 2])
def test_the_report_gives_what_the_visits_give(office, visits, revision):
    rows, titles = visits
    steps, weeks, breaches, reasons = expected(rows, titles, revision)
    report = office.report(SINCE, UNTIL, revision=revision)
    assert report.until == END
    found = {s.step: s for s in report.steps if s.completions}
    assert set(found) == set(steps)
    for key, want in steps.items():
        assert found[key].durations == want["durations"], key
        assert found[key].within == want["within"], key
        assert found[key].outcomes == want["outcomes"], key
    assert [(b.item_id, b.title, b.step, b.actor, b.started_at, b.ended_at, b.duration,
             b.standard) for b in report.breaches] == breaches
    assert len(report.breaches) > 40
    assert sum(b.ended_at is None for b in report.breaches) >= 1
    # Each week from the Monday the period starts in.
    assert [w.start for w in report.weeks][:2] == [dt.date(2025, 12, 29), dt.date(2026, 1, 5)]
    assert {n: (w.completed, w.on_time) for n, w in enumerate(report.weeks)
            if w.completed} == {n: tuple(v) for n, v in weeks.items()}
    assert report.approval.reasons == tuple(sorted(
        ((why, n) for (step, outcome, why), n in reasons.items()
         if step == "approve" and outcome == "reject"), key=lambda kv: (-kv[1], kv[0])))
    assert report.recheck.reasons == tuple(sorted(
        ((why, n) for (step, outcome, why), n in reasons.items()
         if step == "recheck" and outcome == "rework"), key=lambda kv: (-kv[1], kv[0])))


def test_a_visit_ending_at_a_weeks_start_counts_in_that_week(office, visits):
    rows, _titles = visits
    report = office.report(SINCE, UNTIL)
    at_start = [r for r in rows if r["left_at"] == MONDAY + 2 * WEEK
                and STANDARDS[r["sop_revision"]][r["step"]] is not None]
    assert at_start
    before = sum(1 for r in rows if MONDAY + WEEK <= r["left_at"] < MONDAY + 2 * WEEK
                 and STANDARDS[r["sop_revision"]][r["step"]] is not None)
    assert report.weeks[1].completed == before
    with office._store.engine.begin() as conn:
        sv = t.step_visits
        conn.execute(sa.delete(sv).where(sv.c.left_at == MONDAY + 2 * WEEK))
    again = office.report(SINCE, UNTIL)
    assert again.weeks[1].completed == report.weeks[1].completed
    assert again.weeks[2].completed == report.weeks[2].completed - len(at_start)


@pytest.mark.parametrize(
    "store_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_the_second_reader_on_postgresql_reads_the_first_ones_snapshot(office, store):
    """On PostgreSQL the report reads on two connections at once: the second one sees
    what the first one's snapshot holds, not what was committed after it."""
    from humasflow.report import _beside

    count = sa.select(sa.func.count()).select_from(t.items)
    with store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        before = conn.execute(count).scalar_one()
        office.new_item("Committed after the snapshot", by="rina")
        with _beside(store.engine, conn) as other:
            assert other.execute(count).scalar_one() == before
        conn.rollback()
    with store.engine.connect() as fresh:
        assert fresh.execute(count).scalar_one() == before + 1
