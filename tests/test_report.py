"""The evaluation report: synthetic records with known answers, on SQLite and
PostgreSQL. Per step: completions, nearest-rank median and 90th percentile, maximum,
share within the standard, visits still open at the end of the period; rejections at
approval and rework at recheck with their reasons; lead time; items per week; channels;
the breaches; the working clock; the period's bounds; and every output format."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from importlib import resources

import pytest

from humasflow.errors import InputInvalid, PlatformError
from humasflow.report import Distribution, Report, StepBreach, render
from humasflow.sop import BUNDLED_SOP, parse_sop
from humasflow.testing import FakePublisher, fake_publisher_plugin, plugin_registered

WIB = dt.timezone(dt.timedelta(hours=7))
M = dt.timedelta(minutes=1)
DAY = dt.date(2026, 1, 5)  # a Monday; the clock starts at 09:00 in Jakarta


def walk(office, clock, image, title, by, steps, *, channels=("outbox",)):
    """Move a new item through the SOP, spending ``minutes`` at each step in turn:
    ``steps`` is a list of (minutes, action[, note]) for concept, prepare, design,
    approve, …, post."""
    item = office.new_item(title, by=by, channels=list(channels))
    for entry in steps:
        minutes, action, *note = entry
        clock.advance(minutes=minutes)
        state = office.item(item.id).state
        if action == "post":
            office.post(item.id, by=by)
        elif action == "reject":
            office.reject(item.id, by="budi", reason=note[0])
        elif action == "approve":
            office.approve(item.id, by="budi")
        elif action == "rework":
            office.rework(item.id, by="sari", findings=note[0])
        elif action == "pass":
            office.pass_recheck(item.id, by="sari")
        else:
            output = {"concept": {"text": f"{title}: selamat!"}, "prepare": {"notes": "Canva"},
                      "design": {"media": [image]}, "produce": {"media": [image]}}[state]
            office.complete(item.id, by=by, **output)
    return item.id


@pytest.fixture
def records(office, clock, image):
    """Three posted items and one still at its concept; what the answers below follow."""
    a = walk(office, clock, image, "A", "rina", [
        (3, "c"), (8, "c"), (5, "c"), (12, "approve"), (9, "c"), (10, "pass"), (2, "post")])
    b = walk(office, clock, image, "B", "sari", [
        (7, "c"), (8, "c"), (5, "c"), (12, "reject", "logo kurang jelas"), (5, "c"),
        (2, "approve"), (9, "c"), (20, "rework", "warna salah"), (4, "c"), (3, "pass"),
        (2, "post")])
    c = walk(office, clock, image, "C", "rina", [
        (11, "c"), (8, "c"), (5, "c"), (4, "approve"), (9, "c"), (10, "pass"), (2, "post")])
    d = office.new_item("D", by="rina").id
    clock.advance(minutes=60)
    return a, b, c, d


def step(report: Report, key: str, group: str = ""):
    return next(s for s in report.steps if s.step == key and s.group == group)


def test_per_step_durations_against_the_standard(office, records):
    report = office.report(DAY, DAY)
    assert report.clock == "wall"
    assert report.calendar is None
    concept = step(report, "concept")
    assert concept.durations == Distribution(3, 7 * M, 11 * M, 11 * M)
    assert (concept.standard, concept.within, concept.within_share, concept.open) == (
        5 * M, 1, 1 / 3, 1)
    approve = step(report, "approve")
    assert approve.durations == Distribution(4, 4 * M, 12 * M, 12 * M)
    assert (approve.within, approve.outcomes) == (2, {"approve": 3, "reject": 1})
    recheck = step(report, "recheck")
    assert recheck.durations == Distribution(4, 10 * M, 20 * M, 20 * M)
    assert recheck.within == 3
    assert step(report, "produce").durations == Distribution(4, 9 * M, 9 * M, 9 * M)
    assert [s.step for s in report.steps] == ["concept", "prepare", "design", "approve",
                                              "produce", "recheck", "post"]


def test_rejections_rework_lead_time_and_weeks(office, records):
    report = office.report(DAY, DAY)
    assert (report.approval.decided, report.approval.returned, report.approval.rate) == (
        4, 1, 0.25)
    assert report.approval.reasons == (("logo kurang jelas", 1),)
    assert (report.recheck.step, report.recheck.rate, report.recheck.reasons) == (
        "recheck", 0.25, (("warna salah", 1),))
    assert report.lead_time == Distribution(3, 49 * M, 77 * M, 77 * M)
    [week] = report.weeks
    assert (week.start, week.created, week.posted) == (DAY, 4, 3)
    # 7 + 11 + 7 completions; late: A's approval, B's concept, approval and recheck, C's
    # concept.
    assert (week.completed, week.on_time, week.on_time_share) == (25, 20, 0.8)
    [outbox] = report.channels
    assert (outbox.channel, outbox.records, outbox.posted, outbox.success_share,
            outbox.retries) == ("outbox", 3, 3, 1.0, 0)


def test_breaches_with_item_step_actor_and_overrun(office, records, clock):
    a, b, c, d = records
    report = office.report(DAY, DAY)
    found = [(x.item_id, x.step, x.actor, x.overrun) for x in report.breaches]
    assert found == [
        (d, "concept", "rina", 55 * M),          # still open: measured until now
        (c, "concept", "rina", 6 * M),
        (b, "recheck", "sari", 5 * M),
        (a, "approve", "budi", 2 * M),
        (b, "concept", "sari", 2 * M),
        (b, "approve", "budi", 2 * M),
    ]
    assert report.breaches[0].ended_at is None
    assert isinstance(report.breaches[1], StepBreach)


def test_the_period_counts_visits_that_ended_in_it(office, records, clock):
    a, *_ = records
    start = office.history(a)[0].at
    early = office.report(start, start + 10 * M)      # A's concept ended at +3
    assert step(early, "concept").completions == 1
    assert step(early, "prepare").open == 1           # A was preparing at the end
    assert early.lead_time == Distribution()
    # Dates are days in the SOP's zone, the last one included.
    assert early.since == start
    day = office.report(DAY, DAY)
    assert (day.since, day.until) == (dt.datetime(2026, 1, 5, tzinfo=WIB),
                                      dt.datetime(2026, 1, 6, tzinfo=WIB))
    before = office.report(dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    assert [s.completions for s in before.steps] == [0] * 7
    assert before.breaches == ()


def test_by_staff_revision_and_filters(office, records):
    report = office.report(DAY, DAY, by="staff")
    assert step(report, "concept", "rina").completions == 2
    assert step(report, "concept", "sari").completions == 1
    assert step(report, "concept", "rina").open == 1       # D, assigned to rina
    assert all(s.group for s in report.steps)
    assert step(report, "approve", "budi").completions == 4
    only = office.report(DAY, DAY, staff="sari")
    assert step(only, "concept").completions == 1
    assert only.filters == {"staff": "sari"}
    by_rev = office.report(DAY, DAY, by="revision")
    assert {s.group for s in by_rev.steps} == {"1"}
    assert step(office.report(DAY, DAY, revision=99), "concept").completions == 0
    assert step(office.report(DAY, DAY, by="channel"), "concept", "outbox").completions == 3
    with pytest.raises(InputInvalid):
        office.report(DAY, DAY, by="colour")
    with pytest.raises(InputInvalid):
        office.report(DAY, dt.date(2026, 1, 1))
    with pytest.raises(InputInvalid):
        office.report(DAY, DAY, channel="tiktok")


def test_channel_failures_retries_and_causes(office, clock, image):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("x", "fake", by="admin")
        plugin.publishers["x"] = FakePublisher(channel="x",
                                               fail_with=PlatformError("server down"))
        walk(office, clock, image, "E", "rina", [
            (3, "c"), (8, "c"), (5, "c"), (4, "approve"), (9, "c"), (10, "pass"),
            (2, "post")], channels=("x", "outbox"))
        report = office.report(DAY, DAY, by="channel")
    channels = {c.channel: c for c in report.channels}
    assert channels["outbox"].posted == 1
    x = channels["x"]
    assert (x.records, x.posted, x.success_share) == (1, 0, 0.0)
    assert [cause for cause, _n in x.causes] == ["PlatformError"]
    assert {s.group for s in report.steps} == {"outbox", "x"}


# -- the working clock --------------------------------------------------------------------

def working_sop():
    text = resources.files("humasflow").joinpath("sops", BUNDLED_SOP).read_text("utf-8")
    return parse_sop(text.replace("[sop]\n", '[sop]\nclock = "working"\n', 1))


def test_on_the_working_clock_friday_to_monday_is_not_a_breach(office, clock, image):
    office.establish(working_sop(), by="admin", effective=clock() - dt.timedelta(days=1))
    clock.set(dt.datetime(2026, 1, 9, 15, 58, tzinfo=WIB))     # Friday
    item = office.new_item("Wisuda", by="rina")
    clock.set(dt.datetime(2026, 1, 12, 7, 31, tzinfo=WIB))     # Monday: 3 working minutes
    office.complete(item.id, by="rina", text="Selamat!")
    clock.set(dt.datetime(2026, 1, 15, 15, 50, tzinfo=WIB))    # Thursday, before a holiday
    office.complete(item.id, by="rina", notes="Canva")
    clock.set(dt.datetime(2026, 1, 19, 7, 45, tzinfo=WIB))     # Monday after it
    report = office.report(dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert report.clock == "working"
    assert report.calendar["holidays"] == "ID"
    assert step(report, "concept").durations.max == 3 * M
    assert step(report, "concept").within == 1
    # prepare: 10 minutes on the 12th from 07:31 on... wall time is days; working time:
    # 12th 07:31-16:00, 13th, 14th, 15th to 15:50 (16 Jan is Isra' Mi'raj).
    prepare = step(report, "prepare").durations.max
    assert prepare == dt.timedelta(hours=8, minutes=29) + 2 * dt.timedelta(
        hours=8, minutes=30) + dt.timedelta(hours=8, minutes=20)
    [late, open_design] = sorted(report.breaches, key=lambda b: b.step, reverse=True)
    assert late.step == "prepare"
    # design, still open: from Thursday 15:50 to Monday 07:45 is 10 + 15 working minutes.
    assert (open_design.step, open_design.duration) == ("design", 25 * M)
    assert office.overdue()[0].late_by == 15 * M                # the late list agrees


# -- outputs ------------------------------------------------------------------------------

def test_every_format_carries_the_report(office, records):
    report = office.report(DAY, DAY)
    data = json.loads(render(report, "json"))
    assert data["clock"] == "wall"
    assert data["steps"][0]["completions"] == 3
    assert data["steps"][0]["durations"]["median"] == 420.0
    assert data["approval"]["rate"] == 0.25
    assert data["breaches"][0]["overrun"] == 3300.0
    table = render(report)
    assert "wall-clock" in table
    assert "logo kurang jelas (1)" in table
    md = render(report, "md")
    assert md.startswith("# Evaluation report of default")
    assert "| 2 concept | - | 5m | 3 | 7m | 11m | 11m | 1/3 (33.3%) | 1 |" in md
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert rows[0][:3] == ["section", "Step", "Group"]
    assert ["Steps", "2 concept", "-", "5m", "3", "7m", "11m", "11m", "1/3 (33.3%)", "1"] \
        in rows
    with pytest.raises(ValueError, match="format"):
        render(report, "pdf")


def test_csv_cells_never_run_as_formulas(office, clock, image):
    walk(office, clock, image, "=HYPERLINK(1)", "rina", [
        (3, "c"), (8, "c"), (5, "c"), (12, "reject", "=cmd|' /C calc'!A0")])
    text = render(office.report(DAY, DAY), "csv")
    assert "'=cmd" in text
    assert "'=HYPERLINK" in text
