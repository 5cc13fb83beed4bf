"""SOP definitions: the procedure as data, and the loader that checks it.

An SOP file (TOML, see ``docs/sop-format.md``) holds the header facts of the signed
document, its roles and its steps. The steps that name an ``actor`` form the lifecycle
of one content item; the others (establishment, evaluation, control, improvement) are
carried out on the procedure itself. :func:`load_sop` turns a file into an :class:`SOP`
or raises :class:`~humasflow.errors.DefinitionError` naming the file, the key path, the
problem and what is expected.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from humasflow.errors import DefinitionError
from humasflow.i18n import N_, _
from humasflow.models import ADMIN_ROLE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "BUNDLED_SOP",
    "CLOCKS",
    "MAX_STANDARD_TIME",
    "OUTPUT_KINDS",
    "PHASES",
    "SOP",
    "Header",
    "Label",
    "Role",
    "Step",
    "bundled_sop",
    "load_sop",
    "parse_sop",
]

FORMAT_VERSION = 1
BUNDLED_SOP = "fisip-ub-social-media.toml"

#: The phases of an SOP, with their Indonesian and English names.
PHASES: Mapping[str, tuple[str, str]] = {
    "establishment": ("Penetapan", "Establishment"),
    "execution": ("Pelaksanaan", "Execution"),
    "evaluation": ("Evaluasi", "Evaluation"),
    "control": ("Pengendalian", "Control"),
    "improvement": ("Peningkatan", "Improvement"),
}

#: The outputs the engine knows how to require, and how a step supplies them (marked for
#: the catalog: translate a description with ``_()`` where it is shown).
OUTPUT_KINDS: Mapping[str, str] = {
    "concept": N_("the concept text of the post (text=...)"),
    "notes": N_("the technical notes: tools, templates, assets (notes=...)"),
    "design": N_("at least one design/video media reference (media=[...])"),
    "approval": N_("the coordinator's answer: approve, or reject with a reason"),
    "production": N_("at least one produced media reference (media=[...])"),
    "recheck": N_("the recheck result: pass, or rework with findings"),
    "publication": N_("a posting to every target channel"),
}
_DECISIONS = {"approval": ("approve", "reject"), "recheck": ("pass", "rework")}
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_TABLE_PATH = re.compile(r"^(steps|roles)\[(\d+)\](.*)$")
_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d)\s*$")
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400}

#: The longest standard time a step may have. A step that takes longer is not a step
#: of one content item's lifecycle; the bound also keeps every due time computable.
MAX_STANDARD_TIME = dt.timedelta(days=30)
#: The clocks standard times can be measured with (the header's ``clock``): ``wall``
#: counts every minute, ``working`` only the organisation's working time (see
#: :class:`humasflow.calendar.WorkingCalendar`).
CLOCKS = ("wall", "working")
#: Text limits of header facts the store keeps in columns of their own (characters).
_HEADER_LIMITS = {"number": 200, "title": 500, "approved_by.name": 200}
_SURROGATE = re.compile("[\ud800-\udfff]")


@attrs.frozen
class Label:
    """A text in Indonesian (``id``) and English (``en``)."""

    id: str
    en: str

    def get(self, lang: str = "en") -> str:
        """Return the text in ``lang`` ("id" or "en"), falling back to the other."""
        return (self.id or self.en) if lang == "id" else (self.en or self.id)


@attrs.frozen
class Role:
    """A role the SOP gives steps to (e.g. the PR coordinator)."""

    key: str
    name: Label


@attrs.frozen
class Step:
    """One numbered step of the SOP.

    Attributes:
        number: The step's number in the document.
        key: A short identifier, used as the state name of items in this step.
        phase: One of :data:`PHASES`.
        activity: What is done, in both languages.
        actor: The role that carries the step out; ``None`` for steps on the
            procedure itself (establishment, evaluation, …).
        standard_time: The standard time, or ``None``.
        output: The output kind (one of :data:`OUTPUT_KINDS`), or ``None``.
        output_label: The output's name in the document.
        equipment: What the step needs ("Kelengkapan").
        return_to: For decision steps: the step a rejection or failed recheck leads to.
    """

    number: int
    key: str
    phase: str
    activity: Label
    actor: str | None = None
    standard_time: dt.timedelta | None = None
    output: str | None = None
    output_label: Label | None = None
    equipment: tuple[Label, ...] = ()
    return_to: str | None = None

    @property
    def is_lifecycle(self) -> bool:
        """Whether content items pass through this step."""
        return self.actor is not None

    @property
    def decisions(self) -> tuple[str, str] | None:
        """The (positive, negative) outcomes of a decision step, else ``None``."""
        return _DECISIONS.get(self.output or "")


@attrs.frozen
class Header:
    """The header facts of the signed SOP document."""

    number: str
    title: Label
    #: From when the revision applies; ``None`` in a proposal (see
    #: :func:`humasflow.revision.propose`), which takes the date it is established with.
    effective: dt.date | None
    made: dt.date | None = None
    revised: dt.date | None = None
    institution: Label | None = None
    ministry: Label | None = None
    approved_by_name: str = ""
    approved_by_position: Label | None = None
    approved_by_nip: str = ""
    legal_basis: tuple[Label, ...] = ()
    qualifications: tuple[Label, ...] = ()
    related: tuple[Label, ...] = ()
    equipment: tuple[Label, ...] = ()
    warnings: tuple[Label, ...] = ()
    recording: Label | None = None
    timezone: str = "Asia/Jakarta"
    language: str | None = None
    clock: str = "wall"
    four_eyes: bool = True
    recheck_by_other: bool = False
    final_approval: bool = False


@attrs.frozen
class SOP:
    """A whole SOP definition.

    Attributes:
        header: The document's header facts.
        roles: The roles, by key.
        steps: All steps in document order.
        source: Where the definition was read from.
        data: The raw definition (stored with each registered revision).
    """

    header: Header
    roles: Mapping[str, Role]
    steps: tuple[Step, ...]
    source: str = "<string>"
    data: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    @property
    def lifecycle(self) -> tuple[Step, ...]:
        """The steps a content item passes through, in order."""
        return tuple(s for s in self.steps if s.is_lifecycle)

    def step(self, key: str) -> Step:
        """Return the step with this key."""
        for s in self.steps:
            if s.key == key:
                return s
        raise KeyError(key)

    def step_for_output(self, kind: str) -> Step | None:
        """Return the lifecycle step whose output is ``kind``, if any."""
        return next((s for s in self.lifecycle if s.output == kind), None)

    @property
    def digest(self) -> str:
        """A SHA-256 of the definition, to tell revisions apart."""
        blob = json.dumps(self.data, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


def bundled_sop() -> SOP:
    """Return the bundled SOP of FISIP Universitas Brawijaya (the default)."""
    text = resources.files("humasflow").joinpath("sops").joinpath(BUNDLED_SOP).read_text("utf-8")
    return parse_sop(text, source=f"humasflow/sops/{BUNDLED_SOP}")


def load_sop(path: str | Path) -> SOP:
    """Read and check an SOP file.

    Raises:
        DefinitionError: The file is missing, is not TOML, or breaks the format.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DefinitionError(str(path), "", _("cannot be read: {error}").format(
            error=exc.strerror)) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            str(path), "", _("is not UTF-8 text (byte {position} is {byte:#04x}); "
                             "is it the SOP's TOML file?").format(
                                 position=exc.start, byte=raw[exc.start]),
            _("a TOML text file in UTF-8")) from exc
    return parse_sop(text, source=str(path))


def parse_sop(text: str, *, source: str = "<string>") -> SOP:
    """Parse an SOP definition from TOML text.

    Raises:
        DefinitionError: The text is not TOML or breaks the format.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_sop() takes the TOML text as a str, got {type(text).__name__}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(source, "", _("is not valid TOML: {error}").format(
            error=exc)) from exc
    except UnicodeError as exc:  # a lone surrogate in the text
        raise DefinitionError(source, "", _("is not valid text: it holds a lone surrogate"),
                              _("a TOML text file in UTF-8")) from exc
    return from_data(data, source=source)


def from_data(data: Mapping[str, Any], *, source: str = "<data>",
              proposal: bool = False) -> SOP:
    """Build an :class:`SOP` from an already parsed definition (e.g. a stored one).

    A ``proposal`` may leave the header's ``effective`` date out: it gets the date it is
    established with."""
    return _Reader(source, proposal=proposal).sop(data)


class _Reader:
    """Walks a parsed definition, raising errors that name the key path."""

    def __init__(self, source: str, *, proposal: bool = False) -> None:
        self.source = source
        self.proposal = proposal
        self.tables: dict[str, Any] = {}

    def fail(self, path: str, problem: str, expected: str = "") -> DefinitionError:
        return DefinitionError(self.source, path, problem, expected, where=self.where(path))

    def where(self, path: str) -> str:
        """``steps[2].standard_time`` as people count: ``step 3 (approve): standard_time``."""
        found = _TABLE_PATH.match(path)
        if found is None:
            return path
        array, index, rest = found.group(1), int(found.group(2)), found.group(3)
        entries = self.tables.get(array)
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        key = entry.get("key") if isinstance(entry, Mapping) else None
        what = _("step") if array == "steps" else _("role")
        if isinstance(key, str) and key.strip():
            place = _("{what} {number} ({key})").format(what=what, number=index + 1,
                                                        key=key.strip())
        else:
            place = _("{what} {number}").format(what=what, number=index + 1)
        rest = rest.lstrip(".")
        return f"{place}: {rest}" if rest else place

    def table(self, data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, Mapping):
            problem = _("is missing") if value is None else _is_a(value)
            raise self.fail(_join(path, key), problem, _("a table"))
        return value

    def text(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True
    ) -> str:
        value = data.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(_join(path, key), _is(value), _("a non-empty string"))
        return value.strip()

    def label(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True
    ) -> Label | None:
        value = data.get(key)
        if value is None and not required:
            return None
        return self.label_value(value, _join(path, key))

    def label_value(self, value: Any, path: str) -> Label:
        if isinstance(value, str) and value.strip():
            return Label(id=value.strip(), en=value.strip())
        if not isinstance(value, Mapping):
            raise self.fail(path, _is(value), _('a string or a table {id = "…", en = "…"}'))
        unknown = set(value) - {"id", "en"}
        if unknown:
            raise self.fail(_join(path, sorted(unknown)[0]), _("is not a known language"),
                            _('"id" or "en"'))
        id_ = self.text(value, "id", path, required=False)
        en = self.text(value, "en", path, required=False)
        if not (id_ or en):
            raise self.fail(path, _("has no text"), _('at least one of "id" and "en"'))
        return Label(id=id_ or en, en=en or id_)

    def labels(self, data: Mapping[str, Any], key: str, path: str) -> tuple[Label, ...]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.fail(_join(path, key), _is_a(value), _("an array"))
        return tuple(self.label_value(v, f"{_join(path, key)}[{i}]") for i, v in enumerate(value))

    def date(
        self, data: Mapping[str, Any], key: str, path: str, *, required: bool = True
    ) -> dt.date | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        raise self.fail(_join(path, key), _is(value), _("a date such as 2021-12-01"))

    def key(self, data: Mapping[str, Any], name: str, path: str) -> str:
        value = self.text(data, name, path)
        if not _KEY.match(value):
            raise self.fail(_join(path, name), _is_value(value),
                            _("lower-case letters, digits and _ , starting with a letter"))
        return value

    def sop(self, data: Mapping[str, Any]) -> SOP:
        if not isinstance(data, Mapping):
            raise self.fail("", _is_a(data), _("a table (the parsed SOP file)"))
        self.check_strings(data, "")
        fmt = data.get("format")
        if fmt != FORMAT_VERSION:
            raise self.fail("format", _is(fmt), f"format = {FORMAT_VERSION}")
        unknown = set(data) - {"format", "sop", "roles", "steps"}
        if unknown:
            raise self.fail(sorted(unknown)[0], _("is not a known top-level key"),
                            _("format, sop, roles or steps"))
        self.tables = {"steps": data.get("steps"), "roles": data.get("roles")}
        header = self.header(self.table(data, "sop", ""))
        roles = self.roles(data.get("roles"))
        steps = self.steps(data.get("steps"), roles)
        return SOP(header=header, roles=roles, steps=steps, source=self.source, data=data)

    def check_strings(self, value: Any, path: str) -> None:
        """Refuse NUL characters and lone surrogates anywhere: no store can keep them."""
        if isinstance(value, str):
            if "\x00" in value:
                raise self.fail(path, _("contains a NUL character"),
                                _("text without NUL (\\u0000)"))
            if _SURROGATE.search(value):
                raise self.fail(path, _("contains a lone surrogate"), _("proper Unicode text"))
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                self.check_strings(str(key), path)
                self.check_strings(inner, _join(path, str(key)))
        elif isinstance(value, list):
            for i, inner in enumerate(value):
                self.check_strings(inner, f"{path}[{i}]")

    def only(self, data: Mapping[str, Any], path: str, known: set[str], what: str) -> None:
        """Refuse keys the format does not know (a misspelt key must not pass silently)."""
        unknown = sorted(set(data) - known)
        if unknown:
            raise self.fail(_join(path, unknown[0]),
                            _("is not a known {what} key").format(what=what),
                            _one_of(sorted(known)))

    def header(self, h: Mapping[str, Any]) -> Header:
        p = "sop"
        self.only(h, p, {"number", "title", "effective", "made", "revised", "institution",
                         "ministry", "approved_by", "legal_basis", "qualifications", "related",
                         "equipment", "warnings", "recording", "timezone", "four_eyes",
                         "recheck_by_other", "final_approval", "language", "clock"}, "header")
        four_eyes = h.get("four_eyes", True)
        if not isinstance(four_eyes, bool):
            raise self.fail("sop.four_eyes", _is_value(four_eyes), _("true or false"))
        switches = {}
        for key in ("recheck_by_other", "final_approval"):
            switches[key] = h.get(key, False)
            if not isinstance(switches[key], bool):
                raise self.fail(f"sop.{key}", _is_value(switches[key]), _("true or false"))
        timezone = self.text(h, "timezone", p, required=False) or "Asia/Jakarta"
        try:
            import zoneinfo

            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise self.fail("sop.timezone", _("is {value!r}, an unknown time zone").format(
                value=timezone), _('an IANA zone such as "Asia/Jakarta"')) from exc
        language = self.text(h, "language", p, required=False) or None
        if language is not None and language not in ("id", "en"):
            raise self.fail("sop.language", _("is {value!r}").format(value=language),
                            _('"id" or "en"'))
        clock = self.text(h, "clock", p, required=False) or "wall"
        if clock not in CLOCKS:
            raise self.fail("sop.clock", _("is {value!r}").format(value=clock),
                            _('"wall" or "working"'))
        approved = h.get("approved_by", {})
        if not isinstance(approved, Mapping):
            raise self.fail("sop.approved_by", _is_a(approved), _("a table"))
        pa = "sop.approved_by"
        self.only(approved, pa, {"name", "position", "nip"}, "approved_by")
        effective = self.date(h, "effective", p, required=not self.proposal)
        title = _must(self.label(h, "title", p))
        for key, value in (("number", self.text(h, "number", p)), ("title", title.id),
                           ("approved_by.name", self.text(approved, "name", pa,
                                                          required=False))):
            limit = _HEADER_LIMITS[key]
            if len(value) > limit:
                raise self.fail(f"sop.{key}", _("is {length} characters long").format(
                    length=len(value)), _("at most {limit} characters").format(limit=limit))
        return Header(
            number=self.text(h, "number", p),
            title=title,
            effective=effective,
            made=self.date(h, "made", p, required=False),
            revised=self.date(h, "revised", p, required=False),
            institution=self.label(h, "institution", p, required=False),
            ministry=self.label(h, "ministry", p, required=False),
            approved_by_name=self.text(approved, "name", pa, required=False),
            approved_by_position=self.label(approved, "position", pa, required=False),
            approved_by_nip=self.text(approved, "nip", pa, required=False),
            legal_basis=self.labels(h, "legal_basis", p),
            qualifications=self.labels(h, "qualifications", p),
            related=self.labels(h, "related", p),
            equipment=self.labels(h, "equipment", p),
            warnings=self.labels(h, "warnings", p),
            recording=self.label(h, "recording", p, required=False),
            timezone=timezone,
            language=language,
            clock=clock,
            four_eyes=four_eyes,
            recheck_by_other=switches["recheck_by_other"],
            final_approval=switches["final_approval"],
        )

    def roles(self, value: Any) -> dict[str, Role]:
        if not isinstance(value, list) or not value:
            raise self.fail("roles", _("is missing") if value is None else _("is empty"),
                            _("at least one [[roles]] table"))
        roles: dict[str, Role] = {}
        for i, r in enumerate(value):
            path = f"roles[{i}]"
            if not isinstance(r, Mapping):
                raise self.fail(path, _is_a(r), _("a table"))
            self.only(r, path, {"key", "name"}, "role")
            key = self.key(r, "key", path)
            if key == ADMIN_ROLE:
                raise self.fail(f"{path}.key", f"is {key!r}, humasflow's built-in administrator "
                                "role", "another key for that role")
            if key in roles:
                raise self.fail(f"{path}.key", _("repeats the role {key!r}").format(key=key),
                                _("unique role keys"))
            roles[key] = Role(key=key, name=_must(self.label(r, "name", path)))
        return roles

    def steps(self, value: Any, roles: Mapping[str, Role]) -> tuple[Step, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("steps", _("is missing") if value is None else _("is empty"),
                            _("[[steps]] tables"))
        steps = [self.step(s, f"steps[{i}]", roles) for i, s in enumerate(value)]
        seen_keys: set[str] = set()
        for i, s in enumerate(steps):
            if s.key in seen_keys or s.key in ("posted", "cancelled"):
                raise self.fail(f"steps[{i}].key",
                                _("repeats or reserves the key {key!r}").format(key=s.key),
                                _("a unique key other than 'posted' and 'cancelled'"))
            seen_keys.add(s.key)
            if i and s.number <= steps[i - 1].number:
                raise self.fail(f"steps[{i}].number", _("is {value}").format(value=s.number),
                                _("a number greater than {number}").format(
                                    number=steps[i - 1].number))
        self.check_lifecycle(steps)
        return tuple(steps)

    def step(self, s: Any, path: str, roles: Mapping[str, Role]) -> Step:
        if not isinstance(s, Mapping):
            raise self.fail(path, _is_a(s), _("a table"))
        known = {"number", "key", "phase", "activity", "actor", "standard_time", "output",
                 "output_label", "equipment", "return_to"}
        unknown = set(s) - known
        if unknown:
            raise self.fail(_join(path, sorted(unknown)[0]), _("is not a known step key"),
                            ", ".join(sorted(known)))
        number = s.get("number")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise self.fail(f"{path}.number", _is_value(number), _("a positive whole number"))
        phase = self.text(s, "phase", path)
        if phase not in PHASES:
            raise self.fail(f"{path}.phase", _is_value(phase), _one_of(PHASES))
        actor = s.get("actor")
        if actor is not None and actor not in roles:
            raise self.fail(f"{path}.actor", _("is {value!r}, which is not a role").format(
                value=actor), _one_of(roles))
        output = s.get("output")
        if actor is not None and output not in OUTPUT_KINDS:
            raise self.fail(f"{path}.output", _is(output), _one_of(OUTPUT_KINDS))
        if actor is None and output is not None:
            raise self.fail(f"{path}.output", _("is set on a step without an actor"),
                            _("an actor for every step with an output"))
        standard = None
        if "standard_time" in s:
            standard = self.duration(s["standard_time"], f"{path}.standard_time")
        equipment = s.get("equipment", [])
        if not isinstance(equipment, list):
            raise self.fail(f"{path}.equipment", _is_a(equipment), _("an array"))
        return_to = s.get("return_to")
        if return_to is not None and output not in _DECISIONS:
            raise self.fail(f"{path}.return_to", _("is set on a step that decides nothing"),
                            _("return_to only on approval and recheck steps"))
        return Step(
            number=number,
            key=self.key(s, "key", path),
            phase=phase,
            activity=_must(self.label(s, "activity", path)),
            actor=actor,
            standard_time=standard,
            output=output,
            output_label=self.label(s, "output_label", path, required=False),
            equipment=tuple(
                self.label_value(e, f"{path}.equipment[{j}]") for j, e in enumerate(equipment)
            ),
            return_to=return_to,
        )

    def duration(self, value: Any, path: str) -> dt.timedelta:
        limit = MAX_STANDARD_TIME.days
        if isinstance(value, str):
            m = _DURATION.match(value)
            if m and int(m.group(1)) > 0:
                seconds = int(m.group(1)) * _UNITS[m.group(2)]
                if seconds > MAX_STANDARD_TIME.total_seconds():
                    raise self.fail(
                        path, _("is {value!r}, longer than the limit of {limit} days").format(
                            value=value, limit=limit),
                        _('a duration of at most "{limit}d"').format(limit=limit))
                return dt.timedelta(seconds=seconds)
        raise self.fail(path, _is_value(value), _('a duration such as "5m", "2h" or "1d"'))

    def check_lifecycle(self, steps: Sequence[Step]) -> None:
        life = [s for s in steps if s.is_lifecycle]
        index = {s.key: i for i, s in enumerate(life)}
        path_of = {s.key: f"steps[{i}]" for i, s in enumerate(steps)}
        if not life:
            raise self.fail("steps", _("has no step with an actor"),
                            _("the content steps, each with an actor and an output"))
        if life[-1].output != "publication":
            raise self.fail(f"{path_of[life[-1].key]}.output",
                            _("is {value!r} on the last content step").format(
                                value=life[-1].output),
                            _('"publication" (the posting step comes last)'))
        for kind in OUTPUT_KINDS:
            found = [s for s in life if s.output == kind]
            if len(found) > 1:
                raise self.fail(f"{path_of[found[1].key]}.output",
                                _("repeats the output {kind!r}").format(kind=kind),
                                _("each output kind at most once"))
        approval = next((s for s in life if s.output == "approval"), None)
        if approval is None:
            raise self.fail("steps", _("has no approval step"),
                            _('a step with output = "approval" before the posting step'))
        # The approval binds the concept and design, and what follows it relies on it:
        # an order the engine could never complete is refused here, not at the dead end.
        for s in life:
            if s.output in ("concept", "design") and index[s.key] > index[approval.key]:
                raise self.fail(f"{path_of[s.key]}.output",
                                _("is {value!r} after the approval step {step!r}").format(
                                    value=s.output, step=approval.key),
                                _("the concept and design steps before the approval (it "
                                  "approves them)"))
            if s.output in ("production", "recheck", "publication") and \
                    index[s.key] < index[approval.key]:
                raise self.fail(f"{path_of[s.key]}.output",
                                _("is {value!r} before the approval step {step!r}").format(
                                    value=s.output, step=approval.key),
                                _("the approval step before production, recheck and "
                                  "publication (they need an approved concept)"))
        recheck = next((s for s in life if s.output == "recheck"), None)
        production = next((s for s in life if s.output == "production"), None)
        if recheck is not None and production is not None and \
                index[recheck.key] < index[production.key]:
            raise self.fail(f"{path_of[recheck.key]}.output",
                            _("is 'recheck' before the production step {step!r}").format(
                                step=production.key),
                            _("a production step before the recheck (it rechecks the "
                              "produced content)"))
        for s in life:
            if s.return_to is None:
                continue
            where = f"{path_of[s.key]}.return_to"
            if s.return_to not in index:
                raise self.fail(where, _("is {value!r}, not a content step").format(
                    value=s.return_to), _("the key of an earlier content step"))
            if index[s.return_to] >= index[s.key]:
                raise self.fail(where, _("is {value!r}, which is not earlier").format(
                    value=s.return_to), _("the key of an earlier content step"))
            if s.output == "recheck" and index[s.return_to] <= index[approval.key]:
                raise self.fail(where, _("is {value!r}, before the approval").format(
                    value=s.return_to),
                    _("a step after the approval (revisions go through approval)"))
        if index[approval.key] == 0:
            raise self.fail(f"{path_of[approval.key]}", _("is the first content step"),
                            _("content steps before the approval"))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return {dict: "table", list: "array", str: "string", int: "number", float: "number",
            bool: "boolean"}.get(type(value), type(value).__name__)


def _is_a(value: Any) -> str:
    """What kind of value was found, as a loader problem ("is a string")."""
    kind = _kind(value)
    known = {"table": _("is a table"), "array": _("is an array"), "string": _("is a string"),
             "number": _("is a number"), "boolean": _("is a boolean")}
    return known.get(kind) or _("is a {kind}").format(kind=kind)


def _is(value: Any) -> str:
    """The value found, as a loader problem ("is missing", "is 'x'")."""
    if value is None:
        return _("is missing")
    return _is_value(value)


def _is_value(value: Any) -> str:
    """The value found, as a loader problem ("is 'x'")."""
    return _("is {value!r}").format(value=value)


def _one_of(choices: Sequence[str] | Mapping[str, Any]) -> str:
    """What is expected instead: one of a few names."""
    return _("one of {choices}").format(choices=", ".join(choices))


def _must(label: Label | None) -> Label:
    assert label is not None
    return label
