"""Standard times as a service level: an item whose step runs past its standard time is
overdue, the breach is reported once, and the timeline shows how long each step took.
Time is moved with a steerable clock, never slept, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from humasflow import hookimpl
from humasflow.errors import InputInvalid, Refused, RoleRequired
from humasflow.testing import plugin_registered

SECOND = dt.timedelta(seconds=1)


class BreachRecorder:
    """A plugin that records every standard_time_breached call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, dt.datetime, dt.datetime, int]] = []

    @hookimpl
    def standard_time_breached(self, office, item, step, due_at, now):
        self.calls.append((item.id, step.key, due_at, now, step.number))


@pytest.fixture
def breaches():
    recorder = BreachRecorder()
    with plugin_registered(recorder):
        yield recorder


def test_an_item_is_overdue_only_after_its_standard_time(office, clock):
    item = office.new_item("Tepat waktu", by="rina")
    assert item.due_at == item.step_started_at + dt.timedelta(minutes=5)
    clock.advance(minutes=5)
    assert office.overdue() == []  # exactly at the standard time is still on time
    assert office.items(overdue=True) == []
    clock.advance(SECOND)
    [breach] = office.overdue()
    assert (breach.item.id, breach.step, breach.due_at, breach.late_by) == (
        item.id, "concept", item.due_at, SECOND)
    assert [i.id for i in office.items(overdue=True)] == [item.id]
    assert office.item(item.id).is_overdue(clock())


def test_overdue_lists_items_by_due_time_and_skips_closed_ones(office, clock):
    first = office.new_item("Pertama", by="rina")
    clock.advance(minutes=1)
    second = office.new_item("Kedua", by="sari")
    cancelled = office.new_item("Batal", by="rina")
    office.cancel(cancelled.id, by="budi", reason="acara dibatalkan")
    clock.advance(minutes=10)
    assert [b.item.id for b in office.overdue()] == [first.id, second.id]
    assert [b.late_by for b in office.overdue()] == [dt.timedelta(minutes=6),
                                                     dt.timedelta(minutes=5)]


def test_a_new_step_gets_its_own_standard_time(office, clock):
    item = office.new_item("Langkah", by="rina")
    clock.advance(minutes=4)
    item = office.complete(item.id, by="rina", text="Konsep")
    assert item.state == "prepare"
    assert item.step_started_at == clock()
    assert item.due_at == clock() + dt.timedelta(minutes=10)
    clock.advance(minutes=3)
    item = office.revise(item.id, by="rina", text="Konsep 2")
    # A revision in place does not restart the step's clock.
    assert item.due_at == office.history(item.id)[-2].at + dt.timedelta(minutes=10)


def test_a_breach_is_reported_once(office, clock, breaches):
    item = office.new_item("Terlambat", by="rina")
    clock.advance(minutes=5)
    assert office.check_sla() == []
    assert breaches.calls == []
    clock.advance(SECOND)
    fired = office.check_sla()
    assert [b.item.id for b in fired] == [item.id]
    assert breaches.calls == [(item.id, "concept", item.due_at, clock(), 2)]
    clock.advance(minutes=30)
    assert office.check_sla() == []
    assert len(breaches.calls) == 1


def test_a_revision_in_place_does_not_report_the_same_breach_again(office, clock, breaches):
    item = office.new_item("Direvisi", by="rina")
    clock.advance(minutes=6)
    office.check_sla()
    office.revise(item.id, by="rina", text="Konsep baru")
    clock.advance(minutes=1)
    assert office.check_sla() == []
    assert len(breaches.calls) == 1


def test_the_next_late_step_is_reported_again(office, clock, breaches):
    item = office.new_item("Dua kali", by="rina")
    clock.advance(minutes=6)
    office.check_sla()
    office.complete(item.id, by="rina", text="Konsep")
    assert office.check_sla() == []  # the new step is on time
    clock.advance(minutes=10)
    assert office.check_sla() == []
    clock.advance(SECOND)
    assert [b.step for b in office.check_sla()] == ["prepare"]
    assert office.check_sla() == []
    assert [(c[0], c[1]) for c in breaches.calls] == [(item.id, "concept"), (item.id, "prepare")]


def test_a_step_visited_again_after_a_rejection_can_breach_again(office, clock, breaches, image):
    item = office.new_item("Ditolak", by="rina")
    item = office.complete(item.id, by="rina", text="Konsep")
    item = office.complete(item.id, by="rina", notes="Template")
    clock.advance(minutes=11)
    office.check_sla()
    item = office.complete(item.id, by="rina", media=[image])
    item = office.reject(item.id, by="budi", reason="Kurang jelas")
    assert item.state == "design"
    clock.advance(minutes=11)
    office.check_sla()
    assert [c[1] for c in breaches.calls] == ["design", "design"]


def test_check_sla_is_quiet_without_late_items(office, clock, breaches):
    office.new_item("Santai", by="rina")
    assert office.check_sla(clock() + dt.timedelta(minutes=4)) == []
    assert breaches.calls == []


def test_the_timeline_shows_each_steps_duration_and_flags_the_late_one(office, clock, image):
    item = office.new_item("Linimasa", by="rina")
    clock.advance(minutes=3)
    office.complete(item.id, by="rina", text="Konsep")
    clock.advance(minutes=12)
    office.complete(item.id, by="rina", notes="Template")
    clock.advance(minutes=4)
    office.revise(item.id, by="rina", text="Konsep final")  # in place: no new visit
    clock.advance(minutes=2)
    office.complete(item.id, by="rina", media=[image])
    clock.advance(minutes=7)
    now = clock()
    runs = office.timeline(item.id)
    assert [(r.step, r.number) for r in runs] == [("concept", 2), ("prepare", 3),
                                                  ("design", 4), ("approve", 5)]
    assert [r.duration(now) for r in runs] == [dt.timedelta(minutes=m) for m in (3, 12, 6, 7)]
    assert [r.over(now) for r in runs] == [None, dt.timedelta(minutes=2), None, None]
    assert [r.outcome for r in runs] == ["complete", "complete", "complete", None]
    assert [r.ended_by for r in runs] == ["rina", "rina", "rina", None]
    assert runs[-1].ended_at is None
    assert [r.standard for r in runs] == [dt.timedelta(minutes=m) for m in (5, 10, 10, 10)]
    clock.advance(minutes=5)
    assert runs[-1].over(clock()) == dt.timedelta(minutes=2)  # the open step, late by now


def test_the_timeline_counts_each_visit_after_a_loop_back(office, clock, image):
    item = office.new_item("Putaran", by="rina")
    office.complete(item.id, by="rina", text="Konsep")
    office.complete(item.id, by="rina", notes="Template")
    clock.advance(minutes=2)
    office.complete(item.id, by="rina", media=[image])
    clock.advance(minutes=15)
    office.reject(item.id, by="budi", reason="Warna")
    clock.advance(minutes=1)
    office.complete(item.id, by="rina", media=[image])
    runs = office.timeline(item.id)
    assert [r.step for r in runs] == ["concept", "prepare", "design", "approve", "design",
                                      "approve"]
    assert runs[3].outcome == "reject"
    assert runs[3].over(clock()) == dt.timedelta(minutes=5)
    assert runs[4].duration(clock()) == dt.timedelta(minutes=1)


# -- scheduled posts wait for their slot, not against the clock ----------------------------


def _at_posting(office, clock, image):
    from humasflow.testing import item_ready_to_post

    item = item_ready_to_post(office, text="Selamat!", media=[image])
    assert item.state == "post"
    return item


def test_an_item_waiting_for_its_scheduled_slot_is_not_overdue(office, clock, breaches, image):
    """Rule: at the posting step, the standard time runs from the scheduled time."""
    item = _at_posting(office, clock, image)
    slot = clock() + dt.timedelta(hours=10)  # e.g. 19:00 while it is 09:00
    office.schedule(item.id, slot, by="rina")
    clock.advance(minutes=6)  # past the posting step's 5 minutes

    waiting = office.item(item.id)
    assert waiting.post_at == slot
    assert waiting.is_scheduled(clock())
    assert waiting.deadline == slot + dt.timedelta(minutes=5)
    assert not waiting.is_overdue(clock())
    assert office.overdue() == []
    assert office.items(overdue=True) == []
    assert office.check_sla() == []
    assert breaches.calls == []

    clock.set(slot + dt.timedelta(minutes=5))
    assert office.overdue() == []  # the slot's own standard time is still running
    clock.advance(minutes=1)  # nobody posted it within 5 minutes of its slot: late
    [breach] = office.check_sla()
    assert (breach.item.id, breach.due_at, breach.late_by) == (
        item.id, slot + dt.timedelta(minutes=5), dt.timedelta(minutes=1))
    assert [i.id for i in office.items(overdue=True, limit=1)] == [item.id]
    assert len(breaches.calls) == 1


def test_a_schedule_in_the_past_is_refused_unless_asked_for(office, clock, image):
    item = _at_posting(office, clock, image)
    before = office.history(item.id)
    with pytest.raises(InputInvalid, match=r"at is .* which is in the past .*allow_past=True"):
        office.schedule(item.id, clock() - dt.timedelta(hours=1), by="rina")
    assert office.history(item.id) == before
    assert office.item(item.id).post_at is None
    # Earlier in the current minute is "now", not the past.
    office.schedule(item.id, clock().replace(second=0), by="rina")
    late = office.schedule(item.id, clock() - dt.timedelta(hours=1), by="rina",
                           allow_past=True)
    assert late.post_at == clock() - dt.timedelta(hours=1)
    assert late.deadline == late.due_at  # a slot gone by moves no deadline


def test_a_schedule_can_be_changed_and_removed_and_both_are_recorded(office, clock, image):
    item = _at_posting(office, clock, image)
    first = clock() + dt.timedelta(hours=10)
    later = clock() + dt.timedelta(hours=11)
    office.schedule(item.id, first, by="rina")
    moved = office.schedule(item.id, later, by="rina")
    assert moved.post_at == later
    change = office.history(item.id)[-1]
    assert (change.action, change.data["post_at"], change.data["previous"]) == (
        "schedule", later.isoformat(), first.isoformat())

    removed = office.schedule(item.id, None, by="rina")
    assert (removed.post_at, removed.post_by) == (None, None)
    gone = office.history(item.id)[-1]
    assert (gone.action, gone.actor, gone.data["previous"]) == ("unschedule", "rina",
                                                               later.isoformat())
    assert "post_at" not in gone.data
    assert office.run_due(later + dt.timedelta(minutes=1)) == []  # nothing posted
    with pytest.raises(Refused, match="has no schedule to remove"):
        office.unschedule(item.id, by="rina")
    with pytest.raises(RoleRequired):
        office.schedule(item.id, later, by="budi")
    office.schedule(item.id, later, by="rina")
    with pytest.raises(RoleRequired):
        office.unschedule(item.id, by="budi")
    office.unschedule(item.id, by="rina")
    # Without a schedule the posting step's standard time counts again.
    assert office.item(item.id).is_overdue(clock() + dt.timedelta(minutes=6))
    assert office.verify().ok
