"""The working calendar: working time between two instants and deadlines in working
time, with known answers (Friday afternoon to Monday morning, weekends, a public
holiday, a closed day, an open day, across midnight, other zones); and an SOP whose
standard times use working time drives the deadlines, the late list, check_sla and the
inbox with the same calendar."""

from __future__ import annotations

import datetime as dt
from importlib import resources

import pytest

from humasflow.calendar import WorkingCalendar
from humasflow.errors import ConfigurationError, DefinitionError, InputInvalid
from humasflow.sop import BUNDLED_SOP, parse_sop

WIB = dt.timezone(dt.timedelta(hours=7))
MIN = dt.timedelta(minutes=1)


def wib(day: int, hour: int, minute: int = 0, month: int = 1) -> dt.datetime:
    """A time in Jakarta (January 2026: the 9th is a Friday, the 16th a public holiday)."""
    return dt.datetime(2026, month, day, hour, minute, tzinfo=WIB)


@pytest.fixture
def cal() -> WorkingCalendar:
    return WorkingCalendar()


def test_friday_afternoon_to_monday_morning_counts_only_working_minutes(cal):
    assert cal.working_time(wib(9, 15, 55), wib(12, 8, 0)) == 35 * MIN
    assert cal.add(wib(9, 15, 55), 10 * MIN) == wib(12, 7, 35)


def test_a_step_started_at_the_weekend_counts_from_monday_opening(cal):
    assert cal.add(wib(10, 10, 0), 5 * MIN) == wib(12, 7, 35)
    assert cal.working_time(wib(10, 8), wib(11, 15)) == dt.timedelta(0)


def test_a_public_holiday_is_not_working_time(cal):
    # Friday 16 January 2026 is Isra' Mi'raj.
    assert not cal.is_working_day(dt.date(2026, 1, 16))
    assert cal.add(wib(15, 15, 58), 5 * MIN) == wib(19, 7, 33)
    assert cal.working_time(wib(15, 15, 0), wib(19, 8, 0)) == 90 * MIN  # across it


def test_a_step_across_midnight_counts_the_evening_and_morning_hours(cal):
    assert cal.working_time(wib(12, 15, 0), wib(13, 8, 0)) == 90 * MIN
    assert cal.add(wib(12, 20, 0), 15 * MIN) == wib(13, 7, 45)


def test_closed_days_and_open_days_from_the_configuration():
    cal = WorkingCalendar.from_config({"closed": [dt.date(2026, 1, 13)],
                                       "open": [dt.date(2026, 1, 10)]})
    assert cal.add(wib(12, 15, 59), 5 * MIN) == wib(14, 7, 34)  # Tuesday closed
    assert cal.add(wib(9, 15, 55), 10 * MIN) == wib(10, 7, 35)  # Saturday open
    both = WorkingCalendar(closed={dt.date(2026, 1, 12)}, open={dt.date(2026, 1, 12)})
    assert not both.is_working_day(dt.date(2026, 1, 12))       # closed wins


def test_hours_workdays_and_holidays_from_the_configuration():
    cal = WorkingCalendar.from_config({"workdays": ["mon", "tue", "wed", "thu", "fri", "sat"],
                                       "hours": ["08:00", "12:00"], "holidays": ""})
    assert cal.add(wib(9, 11, 55), 10 * MIN) == wib(10, 8, 5)
    assert cal.is_working_day(dt.date(2026, 1, 16))            # no public holidays
    assert cal.to_dict()["hours"] == ["08:00", "12:00"]


def test_the_hours_are_wall_times_in_the_calendar_s_zone():
    instant = dt.datetime(2026, 1, 9, 8, 10, tzinfo=dt.timezone.utc)  # 15:10 WIB, 16:10 WITA
    jakarta = WorkingCalendar()
    makassar = WorkingCalendar(timezone="Asia/Makassar")
    assert jakarta.add(instant, 10 * MIN) == instant + 10 * MIN
    assert makassar.add(instant, 10 * MIN) == dt.datetime(2026, 1, 11, 23, 40,
                                                          tzinfo=dt.timezone.utc)
    # Across a change to summer time the working day is still 07:30-16:00 local.
    berlin = WorkingCalendar(timezone="Europe/Berlin", holidays="DE")
    friday = dt.datetime(2026, 3, 27, 15, 0, tzinfo=dt.timezone.utc)  # 16:00 CET
    assert berlin.add(friday, 5 * MIN) == dt.datetime(2026, 3, 30, 5, 35,
                                                      tzinfo=dt.timezone.utc)  # 07:35 CEST


def test_a_deadline_is_returned_in_utc_and_naive_times_are_refused(cal):
    assert cal.add(wib(12, 8), MIN).tzinfo == dt.timezone.utc
    with pytest.raises(InputInvalid):
        cal.add(dt.datetime(2026, 1, 12, 8), MIN)


def test_a_calendar_that_cannot_work_is_refused():
    with pytest.raises(ConfigurationError):
        WorkingCalendar(start=dt.time(16), end=dt.time(8))
    with pytest.raises(ConfigurationError):
        WorkingCalendar(workdays=())
    with pytest.raises(ConfigurationError):
        WorkingCalendar(timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError):
        WorkingCalendar(holidays="XX")


# -- an SOP in working time --------------------------------------------------------------

def working_sop(clock: str = "working"):
    text = resources.files("humasflow").joinpath("sops", BUNDLED_SOP).read_text("utf-8")
    return parse_sop(text.replace("[sop]\n", f'[sop]\nclock = "{clock}"\n', 1))


def test_the_sop_says_which_clock_its_standard_times_use():
    assert working_sop().header.clock == "working"
    assert working_sop("wall").header.clock == "wall"
    with pytest.raises(DefinitionError, match="clock"):
        working_sop("sundial")


@pytest.fixture
def working_office(office, clock):
    office.establish(working_sop(), by="admin", effective=clock() - dt.timedelta(days=1))
    return office


def test_deadlines_late_lists_and_the_inbox_use_working_time(working_office, clock):
    office = working_office
    clock.set(wib(9, 15, 58))                                  # Friday, 2 minutes left
    item = office.new_item("Wisuda", by="rina")
    assert item.due_at == wib(12, 7, 33)                       # 5 working minutes
    clock.set(wib(11, 20, 0))                                  # Sunday evening
    assert office.overdue() == []
    assert office.check_sla() == []
    assert office.inbox("rina").of_kind("late") == []
    clock.set(wib(12, 7, 34))
    [breach] = office.overdue()
    assert (breach.item.id, breach.late_by) == (item.id, MIN)
    assert [b.item.id for b in office.check_sla()] == [item.id]
    assert [e.item_id for e in office.inbox("rina").of_kind("late")] == [item.id]
    office.complete(item.id, by="rina", text="Selamat kepada para wisudawan!")
    assert office.item(item.id).due_at == wib(12, 7, 44)       # prepare: 10 minutes


def test_an_sop_on_the_wall_clock_keeps_wall_deadlines(office, clock):
    clock.set(wib(9, 15, 58))
    item = office.new_item("Wisuda", by="rina")
    assert item.due_at == wib(9, 16, 3)


def test_the_office_uses_the_calendar_it_is_given(store, clock, tmp_path):
    from humasflow.office import Office
    from humasflow.testing import staffed_office

    cal = WorkingCalendar(start="09:00", end="10:00")
    media = tmp_path / "media" if store.is_postgres else None
    office = Office(store, clock=clock, environ={}, media_store=media, calendar=cal)
    office.establish(working_sop(), by="Dekan")
    staffed_office(office)
    assert office.calendar is cal
    assert office.for_org("fia").calendar is cal
    clock.set(wib(12, 9, 58))
    assert office.new_item("Rapat", by="rina").due_at == wib(13, 9, 3)
