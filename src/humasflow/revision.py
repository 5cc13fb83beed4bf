"""Improving the procedure (SOP step 11): new revisions from precise changes, and the
difference between two revisions.

A proposal starts from a revision's definition and applies a list of change objects
(:class:`SetStandardTime`, :class:`SetActor`, :class:`AddStep`, :class:`RemoveStep`,
:class:`MoveStep`, :class:`SetHeader`); the result goes through the SOP loader, so a
proposal that breaks the definition is refused with the loader's error. Establishing
it is :meth:`humasflow.Office.establish`; items started before keep their revision.

>>> from humasflow import bundled_sop
>>> old = bundled_sop()
>>> new = propose(old, [SetStandardTime("approve", "30m"), MoveStep("prepare", after="design")])
>>> print(diff(old, new).text())
step approve: standard_time 10m -> 30m
step prepare: moved from 3 to 4
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from humasflow.i18n import _
from humasflow.sop import SOP, from_data

__all__ = ["AddStep", "Change", "MoveStep", "RemoveStep", "RevisionDiff", "SetActor",
           "SetHeader", "SetStandardTime", "diff", "propose"]


@attrs.frozen
class SetStandardTime:
    """Change a step's standard time (``"30m"``, ``"1h"``; ``None`` removes it)."""

    step: str
    standard_time: str | None


@attrs.frozen
class SetActor:
    """Change who carries a step out (for the approval step: who approves)."""

    step: str
    role: str


@attrs.frozen
class AddStep:
    """Add a step (its definition as in the SOP file) after another step."""

    definition: Mapping[str, Any]
    after: str


@attrs.frozen
class RemoveStep:
    """Remove a step."""

    step: str


@attrs.frozen
class MoveStep:
    """Move a step to just after another."""

    step: str
    after: str


@attrs.frozen
class SetHeader:
    """Change a header field (``number``, ``effective``, ``revised``…)."""

    field: str
    value: Any


Change = SetStandardTime | SetActor | AddStep | RemoveStep | MoveStep | SetHeader


def _index(steps: list[dict[str, Any]], key: str) -> int:
    for i, step in enumerate(steps):
        if step.get("key") == key:
            return i
    raise ValueError(_("the SOP has no step {step!r}; its steps: {steps}").format(
        step=key, steps=", ".join(str(s.get("key")) for s in steps)))


def propose(sop: SOP, changes: Iterable[Change]) -> SOP:
    """The SOP that ``changes`` make of ``sop``, checked by the SOP loader.

    Raises:
        ValueError: A change names a step that does not exist, or is not a change.
        DefinitionError: The changed definition is not a valid SOP.
    """
    data = copy.deepcopy(dict(sop.data))
    # A proposal applies from when it is established (or from the date a SetHeader of
    # "effective" gives), not from the date of the revision it was made from.
    data["sop"] = {k: v for k, v in data["sop"].items() if k != "effective"}
    steps: list[dict[str, Any]] = [dict(s) for s in data["steps"]]
    for n, change in enumerate(changes):
        if isinstance(change, SetStandardTime):
            step = steps[_index(steps, change.step)]
            if change.standard_time is None:
                step.pop("standard_time", None)
            else:
                step["standard_time"] = change.standard_time
        elif isinstance(change, SetActor):
            steps[_index(steps, change.step)]["actor"] = change.role
        elif isinstance(change, AddStep):
            at = _index(steps, change.after) + 1
            steps.insert(at, dict(change.definition))
        elif isinstance(change, RemoveStep):
            steps.pop(_index(steps, change.step))
        elif isinstance(change, MoveStep):
            moving = steps.pop(_index(steps, change.step))
            steps.insert(_index(steps, change.after) + 1, moving)
        elif isinstance(change, SetHeader):
            data["sop"] = {**data["sop"], change.field: change.value}
        else:
            raise ValueError(_("changes[{n}] is not a change: use SetStandardTime, SetActor, "
                               "AddStep, RemoveStep, MoveStep or SetHeader").format(n=n))
    for number, step in enumerate(steps, start=1):
        step["number"] = number
    data["steps"] = steps
    return from_data(data, source="proposed revision", proposal=True)


@attrs.frozen
class RevisionDiff:
    """What changed from one revision to another.

    Attributes:
        added: Keys of the steps only the new revision has.
        removed: Keys of the steps only the old revision has.
        moved: (key, old position, new position) of the steps whose place among the
            steps both revisions have changed.
        fields: (step key or ``"sop"``, field, old value, new value).
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    moved: tuple[tuple[str, int, int], ...] = ()
    fields: tuple[tuple[str, str, Any, Any], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.moved or self.fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON."""
        return {"added": list(self.added), "removed": list(self.removed),
                "moved": [{"step": k, "from": a, "to": b} for k, a, b in self.moved],
                "fields": [{"where": w, "field": f, "old": o, "new": n}
                           for w, f, o, n in self.fields]}

    def text(self) -> str:
        """One line per difference."""
        lines = [_("step {step}: added").format(step=k) for k in self.added]
        lines += [_("step {step}: removed").format(step=k) for k in self.removed]
        for where, field, old, new in self.fields:
            if where == "sop":
                lines.append(_("header: {field} {old} -> {new}").format(
                    field=field, old=_show(old), new=_show(new)))
            else:
                lines.append(_("step {step}: {field} {old} -> {new}").format(
                    step=where, field=field, old=_show(old), new=_show(new)))
        lines += [_("step {step}: moved from {old} to {new}").format(step=k, old=a, new=b)
                  for k, a, b in self.moved]
        return "\n".join(lines) if lines else _("no differences")


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


def _longest_common(a: list[str], b: list[str]) -> set[str]:
    """The steps of the longest common order of ``a`` and ``b``: the others moved."""
    table = [[0] * (len(b) + 1) for _row in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = (table[i + 1][j + 1] + 1 if a[i] == b[j]
                           else max(table[i + 1][j], table[i][j + 1]))
    kept, i, j = set(), 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            kept.add(a[i])
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return kept


def diff(old: SOP, new: SOP) -> RevisionDiff:
    """The precise difference between two SOP definitions."""
    a = {str(s["key"]): s for s in old.data["steps"]}
    b = {str(s["key"]): s for s in new.data["steps"]}
    added = tuple(k for k in b if k not in a)
    removed = tuple(k for k in a if k not in b)
    fields: list[tuple[str, str, Any, Any]] = []
    for key in (k for k in b if k in a):
        for field in sorted(set(a[key]) | set(b[key]) - {"number"}):
            if field != "number" and a[key].get(field) != b[key].get(field):
                fields.append((key, field, a[key].get(field), b[key].get(field)))
    header_a, header_b = old.data.get("sop", {}), new.data.get("sop", {})
    for field in sorted(set(header_a) | set(header_b)):
        if field == "effective" and header_b.get(field) is None:
            continue  # a proposal: it applies from when it is established
        if header_a.get(field) != header_b.get(field):
            fields.append(("sop", field, header_a.get(field), header_b.get(field)))
    common_a = [k for k in a if k in b]
    common_b = [k for k in b if k in a]
    kept = _longest_common(common_a, common_b)
    moved = tuple((k, int(a[k]["number"]), int(b[k]["number"])) for k in common_b
                  if k not in kept)
    return RevisionDiff(added=added, removed=removed, moved=moved, fields=tuple(fields))
