"""Checks on what callers hand the office, before any of it reaches the store.

SQLite takes almost any string; PostgreSQL refuses NUL characters and values longer than
a ``VARCHAR`` column, and neither driver can encode a lone surrogate. Checking here, with
the same limits the schema has, makes both databases refuse the same values with the
same :class:`~humasflow.errors.InputInvalid`, and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from humasflow.errors import InputInvalid, ItemNotFound
from humasflow.i18n import _

# Limits in characters. Those of identifiers and names are the schema's column widths.
ORG_ID = 100
ACTOR_ID = 200
NAME = 300
EMAIL = 300
ROLES = 1000
CHANNEL = 100
PUBLISHER = 100
TITLE = 500
SOP_NUMBER = 200
URL = 2000
PLATFORM_ID = 200
LINK = 2000
MEDIA_SOURCE = 4096
MEDIA_ALT = 5000
SETTING = 2000
#: Free texts: post texts and variants, notes, answers, reasons, findings.
TEXT = 100_000

#: The earliest and latest moments humasflow takes (UTC): far enough from the ends of
#: :class:`datetime.datetime` that adding a lease or a standard time cannot overflow.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.timezone.utc)

#: The largest item or revision number a store can hold (a signed 64-bit integer).
MAX_ID = 2**63 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 controls, DEL and C1 controls: never part of an identifier.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def text(field: str, value: Any, limit: int = TEXT) -> str:
    """``value`` if it is a string the store can keep, else raise.

    Raises:
        TypeError: Not a string.
        InputInvalid: A NUL character, a lone surrogate, or longer than ``limit``.
    """
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise InputInvalid(field, _("contains a NUL character (at position {position})").format(
            position=value.index(chr(0))), _("remove it: no text may hold NUL"))
    found = _SURROGATE.search(value)
    if found:
        raise InputInvalid(
            field, _("contains a lone surrogate {char!r} (at position {position}), which is "
                     "not a character").format(char=found.group(), position=found.start()),
            _("it usually comes from bytes that were not valid UTF-8; give the text as "
              "proper Unicode"))
    if len(value) > limit:
        raise InputInvalid(field, _("is {length} characters long, more than the limit of "
                                    "{limit}").format(length=len(value), limit=limit),
                           _("shorten it"), limit=limit, length=len(value))
    return value


_ADDRESS = re.compile(r"[^@\s,;<>()\"']+@[^@\s,;<>()\"']+\.[^@\s,;<>()\"'.]+")


def email(field: str, value: Any) -> str:
    """One email address (or ``""``): ``local@domain.tld``, nothing around it, so that
    a message to the actor goes to that one address."""
    ident(field, value, EMAIL)
    if value and not _ADDRESS.fullmatch(value.strip()):
        raise InputInvalid(field, _("{value!r} is not one email address").format(
            value=value[:80]), _("give one address, like budi@ub.ac.id"))
    return str(value)


def ident(field: str, value: Any, limit: int) -> str:
    """An identifier or a one-line name: a :func:`text` without control characters."""
    text(field, value, limit)
    found = _CONTROL.search(value)
    if found:
        raise InputInvalid(field, _("contains the control character {char!r} (at position "
                                    "{position})").format(char=found.group(),
                                                          position=found.start()),
                           _("use printable characters only"))
    return str(value)


def web_url(field: str, value: Any, limit: int = URL) -> str:
    """An ``http://`` or ``https://`` address with a host (a post's public URL).

    Raises:
        TypeError: Not a string.
        InputInvalid: Another scheme, no host, spaces, or any :func:`ident` problem.
    """
    ident(field, value, limit)
    try:
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts, host = None, None
    if (parts is None or parts.scheme.lower() not in ("http", "https") or not host
            or any(c.isspace() for c in value)):
        raise InputInvalid(
            field, _("is {value!r}, which is not a web address (http:// or https:// and a "
                     "host)").format(value=value[:80]),
            _("give the post's public address, e.g. https://www.instagram.com/p/abc/"))
    return str(value)


def strings(field: str, value: Any, limit: int = SETTING) -> None:
    """Check every string inside plain data (mappings, lists, scalars), keys included."""
    if isinstance(value, str):
        text(field, value, limit)
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            if isinstance(key, str):
                ident(f"{field} key {key[:40]!r}", key, limit)
            strings(f"{field}[{key!r}]" if isinstance(key, str) else field, inner, limit)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for i, inner in enumerate(value):
            strings(f"{field}[{i}]", inner, limit)


def item_id(value: Any, org: str) -> int:
    """An item number: an ``int`` (or a string of digits); one no store can hold is not
    found, like any other unknown number."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"item_id must be an item's number, got {type(value).__name__}")
    if isinstance(value, str) and (not value.strip().isdigit() or not value.isascii()):
        raise ItemNotFound(value, org)
    number = int(value)
    if not 0 < number <= MAX_ID:
        raise ItemNotFound(str(number), org)
    return number


def moment(field: str, value: Any) -> dt.datetime:
    """An aware datetime within range that exists exactly once on its own clock.

    A time in a daylight-saving gap (it never happens on the local clock) and one in a
    fold (it happens twice) are refused: the first would be shifted silently, the second
    is ambiguous. Give such a time with an explicit UTC offset instead.

    Raises:
        TypeError: Not a datetime (a date, a string…).
        InputInvalid: Naive, out of range, in a gap or in a fold.
    """
    if not isinstance(value, dt.datetime):
        what = type(value).__name__
        hint = ("a date has no time of day: give datetime.combine(day, time, tzinfo=...)"
                if isinstance(value, dt.date) else
                "parse a string first, e.g. datetime.fromisoformat('2026-05-01T09:00+07:00')"
                if isinstance(value, str) else "give an aware datetime")
        raise TypeError(f"{field} must be an aware datetime, got {what} {value!r:.60}; {hint}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputInvalid(field, _("is the naive datetime {value}").format(
            value=value.isoformat()), _("give an aware one (with tzinfo), e.g. in UTC or the "
                                        "faculty's zone"))
    try:
        utc = value.astimezone(dt.timezone.utc)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise InputInvalid(field, _("is {value}, outside the times humasflow takes ({first} "
                                    "to {last})").format(value=value.isoformat(),
                                                         first=EARLIEST.year,
                                                         last=LATEST.year - 1),
                           _("give a real date"))
    zone = value.tzinfo
    back = utc.astimezone(zone)
    if back.replace(tzinfo=None) != value.replace(tzinfo=None):
        raise InputInvalid(
            field, _("is {value} in {zone}, a time the clocks skip there (daylight saving "
                     "starts)").format(value=value.replace(tzinfo=None).isoformat(" "),
                                       zone=zone),
            _("give a time that exists, e.g. {example}, or an explicit UTC offset").format(
                example=back.replace(tzinfo=None).isoformat(" ")))
    other = value.replace(fold=1 - value.fold)
    if other.utcoffset() != value.utcoffset():
        first, second = sorted([value.utcoffset(), other.utcoffset()],  # type: ignore[type-var]
                               reverse=True)
        raise InputInvalid(
            field, _("is {value} in {zone}, a time that happens twice there (daylight "
                     "saving ends)").format(value=value.replace(tzinfo=None).isoformat(" "),
                                            zone=zone),
            _("give it with an explicit UTC offset ({first} for the first, {second} for the "
              "second)").format(first=_offset(first), second=_offset(second)))
    return value


def _offset(delta: dt.timedelta | None) -> str:
    minutes = int((delta or dt.timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
