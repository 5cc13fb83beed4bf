"""The working calendar: when an organisation works, so standard times can count only
working time.

A :class:`WorkingCalendar` knows the working days of the week, the working hours of a
day (wall-clock times in its zone), the country's public holidays (from the
`holidays <https://pypi.org/project/holidays/>`_ library), the organisation's own closed
days (collective leave) and extra open days:

>>> import datetime as dt
>>> cal = WorkingCalendar()                       # Mon-Fri 07:30-16:00, Asia/Jakarta, ID
>>> friday = dt.datetime(2026, 1, 9, 8, 50, tzinfo=dt.timezone.utc)    # 15:50 in Jakarta
>>> cal.add(friday, dt.timedelta(minutes=15))     # 10 minutes on Friday, 5 on Monday
datetime.datetime(2026, 1, 12, 0, 35, tzinfo=datetime.timezone.utc)
>>> cal.working_time(friday, dt.datetime(2026, 1, 12, 0, 35, tzinfo=dt.timezone.utc))
datetime.timedelta(seconds=900)

A day is a working day when it is open (listed in ``open``), or when it is one of the
working days of the week and neither a public holiday nor closed; a day listed as
closed is never a working day, even if it is also listed as open.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from humasflow import _input
from humasflow.errors import ConfigurationError
from humasflow.i18n import _

__all__ = ["DAYS", "WorkingCalendar"]

#: The day names of ``workdays``, Monday first (``datetime.date.weekday()`` order).
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# A deadline more than this far ahead means the calendar has (almost) no working time.
_HORIZON_DAYS = 3660
_UTC = dt.timezone.utc


@functools.lru_cache(maxsize=64)
def _public_holidays(country: str, year: int) -> frozenset[dt.date]:
    import holidays

    return frozenset(holidays.country_holidays(country, years=year))


def _days(value: Iterable[int | str]) -> frozenset[int]:
    return frozenset(DAYS.index(d) if isinstance(d, str) else int(d) for d in value)


def _time(value: dt.time | str) -> dt.time:
    return value if isinstance(value, dt.time) else dt.time.fromisoformat(value)


@attrs.frozen
class WorkingCalendar:
    """An organisation's working calendar.

    Attributes:
        timezone: The IANA zone the working hours are wall-clock times in.
        workdays: The working days of the week, as ``date.weekday()`` numbers (Monday
            is 0) or names (``"mon"``…).
        start: When a working day starts (wall time in ``timezone``).
        end: When it ends.
        holidays: The country whose public holidays are closed (an ISO code such as
            ``"ID"``), or ``None`` for none.
        closed: The organisation's own closed days (collective leave).
        open: Extra working days (a Saturday open day, a holiday worked through).
    """

    timezone: str = "Asia/Jakarta"
    workdays: frozenset[int] = attrs.field(default=frozenset(range(5)), converter=_days)
    start: dt.time = attrs.field(default=dt.time(7, 30), converter=_time)
    end: dt.time = attrs.field(default=dt.time(16, 0), converter=_time)
    holidays: str | None = "ID"
    closed: frozenset[dt.date] = attrs.field(default=frozenset(), converter=frozenset)
    open: frozenset[dt.date] = attrs.field(default=frozenset(), converter=frozenset)

    def __attrs_post_init__(self) -> None:
        if self.start >= self.end:
            raise ConfigurationError(_("the working day must start before it ends"))
        if not self.workdays and not self.open:
            raise ConfigurationError(_("a working calendar needs at least one working day"))
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(_("{value!r} is not a time zone (e.g. Asia/Jakarta)")
                                     .format(value=self.timezone)) from exc
        if self.holidays:
            try:
                _public_holidays(self.holidays, 2026)
            except NotImplementedError as exc:
                raise ConfigurationError(_(
                    "{code!r} is not a country whose public holidays are known (e.g. "
                    "\"ID\")").format(code=self.holidays)) from exc

    @classmethod
    def from_config(cls, section: Mapping[str, Any], *,
                    timezone: str | None = None) -> WorkingCalendar:
        """The calendar a configuration file's ``[calendar]`` section describes.

        Args:
            section: The section (``workdays``, ``hours``, ``holidays``, ``closed``,
                ``open``, ``timezone``), as :mod:`humasflow.config` checked it.
            timezone: The zone when the section names none (default Asia/Jakarta).
        """
        values: dict[str, Any] = {}
        if "workdays" in section:
            values["workdays"] = section["workdays"]
        if "hours" in section:
            values["start"], values["end"] = section["hours"]
        if "holidays" in section:
            values["holidays"] = section["holidays"] or None
        for key in ("closed", "open"):
            if key in section:
                values[key] = section[key]
        zone = section.get("timezone") or timezone
        if zone:
            values["timezone"] = zone
        return cls(**values)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The calendar's zone."""
        return zoneinfo.ZoneInfo(self.timezone)

    def is_working_day(self, day: dt.date) -> bool:
        """Whether ``day`` (a date in the calendar's zone) has working hours."""
        if day in self.closed:
            return False
        if day in self.open:
            return True
        if day.weekday() not in self.workdays:
            return False
        return not (self.holidays and day in _public_holidays(self.holidays, day.year))

    def _hours(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        zone = self.zone
        return (dt.datetime.combine(day, self.start, zone).astimezone(_UTC),
                dt.datetime.combine(day, self.end, zone).astimezone(_UTC))

    def _working_days(self, first: dt.date) -> Iterator[tuple[dt.datetime, dt.datetime]]:
        for n in range(_HORIZON_DAYS):
            day = first + dt.timedelta(days=n)
            if self.is_working_day(day):
                yield self._hours(day)

    def working_time(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """The working time between two aware instants (zero if ``end`` is not later)."""
        start, end = _input.moment("start", start), _input.moment("end", end)
        if end <= start:
            return dt.timedelta(0)
        zone = self.zone
        first = start.astimezone(zone).date()
        last = end.astimezone(zone).date()
        total = dt.timedelta(0)
        day = first
        while day <= last:
            if self.is_working_day(day):
                opens, closes = self._hours(day)
                overlap = min(closes, end) - max(opens, start)
                if overlap > dt.timedelta(0):
                    total += overlap
            day += dt.timedelta(days=1)
        return total

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The instant ``duration`` of working time after ``start`` (a deadline), in UTC.

        Time outside working hours does not count: a step started in the evening starts
        counting when the next working day opens.

        Raises:
            ConfigurationError: The calendar has no working time within ten years.
        """
        start = _input.moment("start", start).astimezone(_UTC)
        left = duration
        if left <= dt.timedelta(0):
            return start
        for opens, closes in self._working_days(start.astimezone(self.zone).date()):
            if closes <= start:
                continue
            begin = max(opens, start)
            if begin + left <= closes:
                return begin + left
            left -= closes - begin
        raise ConfigurationError(_("the working calendar has no working time in the ten "
                                   "years after {start}").format(start=start.isoformat()))

    def to_dict(self) -> dict[str, Any]:
        """The calendar as plain data (what a report says it used)."""
        return {"timezone": self.timezone,
                "workdays": [DAYS[d] for d in sorted(self.workdays)],
                "hours": [self.start.strftime("%H:%M"), self.end.strftime("%H:%M")],
                "holidays": self.holidays,
                "closed": [d.isoformat() for d in sorted(self.closed)],
                "open": [d.isoformat() for d in sorted(self.open)]}
