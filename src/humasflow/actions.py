"""Corrective actions (SOP step 10, "Pengendalian"): what was found, what is done about
it, by whom and by when.

An action is recorded against a report's period, a breach (an item's step) or an item.
Each change is an event in the organisation's hash-chained stream, and
:func:`humasflow.audit.verify` checks the ``corrective_actions`` rows against them.
The coordinating role (the role that approves in the SOP) and administrators record and
close actions; an action's owner may update it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import IO, Any

import attrs

from humasflow.i18n import _

__all__ = ["STATUSES", "SUBJECTS", "CorrectiveAction", "export_actions_csv",
           "export_actions_json", "parse_due"]

#: An action's statuses: ``open`` until it is ``done`` or ``dropped``.
STATUSES = ("open", "done", "dropped")
#: What an action is recorded against.
SUBJECTS = ("report", "breach", "item")

_FIELDS = ("id", "subject", "target", "finding", "action", "owner", "due", "status",
           "closing_note", "created_by", "created_at", "updated_at")


@attrs.frozen
class CorrectiveAction:
    """One corrective action.

    Attributes:
        id: Its number in the organisation (1, 2, …).
        subject: ``report``, ``breach`` or ``item``.
        target: The period (``2026-01-01/2026-01-31``), the breach (``12/approve``) or
            the item (``12``).
        finding: What went wrong.
        action: What is to be done about it.
        owner: The actor who carries it out.
        due: By when (a date in the office's zone).
        status: One of :data:`STATUSES`.
        closing_note: What was done, when closed.
    """

    id: int
    subject: str
    target: str
    finding: str
    action: str
    owner: str
    due: dt.date
    status: str
    closing_note: str
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    org: str = ""

    def is_overdue(self, today: dt.date) -> bool:
        """Whether it is still open after its due date (``today`` in the office's zone)."""
        return self.status == "open" and today > self.due

    def to_dict(self) -> dict[str, Any]:
        """Plain data (dates as ISO text), for JSON."""
        values = {name: getattr(self, name) for name in _FIELDS}
        for name in ("due", "created_at", "updated_at"):
            values[name] = values[name].isoformat()
        return values

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CorrectiveAction:
        """From a ``corrective_actions`` row."""
        return cls(**{name: row[name] for name in _FIELDS}, org=row["org"])


def parse_due(value: dt.date | str, field: str = "due") -> dt.date:
    """A due date from a date or ISO text (``2026-02-15``).

    Raises:
        ValueError: Not a date.
    """
    if isinstance(value, dt.datetime):
        raise ValueError(_("{field} must be a date (e.g. 2026-02-15), not a date and "
                           "time").format(field=field))
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(_("{field} {value!r} is not a date: write it as YYYY-MM-DD, e.g. "
                           "2026-02-15").format(field=field, value=value)) from None


#: What a spreadsheet reads as the start of a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def export_actions_csv(actions: Iterable[CorrectiveAction], out: IO[str]) -> int:
    """Write the actions as CSV; a cell that would start a formula gets a leading
    ``'``. Returns the number written."""
    writer = csv.DictWriter(out, fieldnames=_FIELDS)
    writer.writeheader()
    n = 0
    for action in actions:
        writer.writerow({k: _cell(v) for k, v in action.to_dict().items()})
        n += 1
    return n


def export_actions_json(actions: Iterable[CorrectiveAction], out: IO[str]) -> int:
    """Write the actions as a JSON list; returns the number written."""
    data = [a.to_dict() for a in actions]
    out.write(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    return len(data)
