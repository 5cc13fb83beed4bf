"""The electronic record: verifying the hash chains and exporting the events.

Every stream (an item's history, or the organisation's own) is a chain: each event holds
the hash of the one before it, and the stream's head (sequence and hash) is kept on the
item's or organisation's row. :func:`verify` detects an edited, deleted, inserted or
reordered event; given the organisation's rows it also checks that each row is what the
latest event that wrote it says (see :mod:`humasflow.storage.rows`), that every item's
creation is in the organisation's stream, and that every checkpoint's recorded stream
heads are still there. An anchor (a checkpoint's sequence and hash kept outside the
database) catches a rewrite of the whole record.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

import attrs

from humasflow.i18n import _
from humasflow.models import Event
from humasflow.scrubbing import scrub, scrub_data
from humasflow.storage.rows import (
    INITIAL_PUBLICATION,
    TRACKED,
    heads_digest,
    row_digests,
    row_key,
)

__all__ = ["AuditReport", "Finding", "export_csv", "export_jsonl", "verify"]

_COLUMNS = ("org", "stream", "seq", "at", "actor", "action", "from_state", "to_state", "note",
            "data", "prev_hash", "hash")


@attrs.frozen
class Finding:
    """One break in the record.

    Attributes:
        stream: The stream the break is in, or that should explain the row.
        seq: The event's sequence number (for a row: of the latest event that explains
            that part of it, 0 if none does).
        problem: What is wrong.
        table: For a row the events do not explain: its table (``items``, ``actors``…).
        row: The row's key (``"12"``, ``"12/outbox"``, an actor's id…).
        group: The column group that differs (``state``, ``content``, ``roles``…).
    """

    stream: str
    seq: int
    problem: str
    table: str = ""
    row: str = ""
    group: str = ""

    def __str__(self) -> str:
        if self.table and self.group:
            message = _("{table} row {row} [{group}] ({stream} #{seq}): {problem}")
        elif self.table:
            message = _("{table} row {row} ({stream} #{seq}): {problem}")
        else:
            message = _("{stream} #{seq}: {problem}")
        return message.format(table=self.table, row=self.row, group=self.group,
                              stream=self.stream, seq=self.seq, problem=self.problem)


@attrs.frozen
class AuditReport:
    """The result of :func:`verify`."""

    events: int
    streams: int
    findings: tuple[Finding, ...] = ()
    #: How many table rows were checked against the record.
    rows: int = 0
    #: How many checkpoints (and anchors) the streams were checked against.
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        """Whether the record is intact."""
        return not self.findings


# Which stream may explain a row of each table.
_ORG_TABLES = ("actors", "channels", "sop_revisions", "corrective_actions")
_ITEM_TABLES = ("items", "publications")
_CLAIMABLE = ("pending", "failed")


def _item_of(key: str) -> str:
    return f"item:{key.split('/', 1)[0]}"


def verify(events: Iterable[Event], heads: Mapping[str, tuple[int, str]],
           tables: Mapping[str, Iterable[Mapping[str, Any]]] | None = None, *,
           anchor: Mapping[str, Any] | None = None,
           progress: Callable[[int], None] | None = None) -> AuditReport:
    """Check every chain, and (given ``tables``) every row against the record.

    Args:
        events: The events ordered by stream, then sequence.
        heads: Each stream's expected (last sequence, last hash).
        tables: The organisation's current rows by table (see
            :data:`humasflow.storage.rows.TRACKED`); each row must be what the latest
            event that wrote it says it became.
        anchor: An anchor written earlier (:meth:`humasflow.Office.anchor`): the
            record must still extend it.
        progress: Called with the number of events checked so far, every thousand
            events and at the end (for a progress display).
    """
    findings: list[Finding] = []
    count = 0
    seen: set[str] = set()
    stream = None
    expected_seq, prev = 1, ""
    hashes: dict[str, list[str]] = {}
    # (table, key) -> group -> (stream, order, seq, digest); order ranks the candidates.
    explained: dict[tuple[str, str], dict[str, tuple[str, int, int, str]]] = {}
    created: dict[str, tuple[int, str]] = {}  # item stream -> (org seq, first hash)
    checkpoints: list[tuple[int, Mapping[str, Any]]] = []
    # The step visits the events say ended (see :func:`_check_visits`): per item stream,
    # its last move (the step it entered, and when); each visit to the seq that ended it.
    derive_visits = tables is not None and "step_visits" in tables
    moved: dict[str, tuple[str | None, Any]] = {}
    visits: dict[tuple[Any, ...], list[int]] = {}

    def close(name: str | None, last_seq: int, last_hash: str) -> None:
        if name is None:
            return
        head = heads.get(name)
        if head is None:
            findings.append(Finding(name, last_seq, _("stream has events but no item or owner")))
        elif head != (last_seq, last_hash):
            findings.append(Finding(name, last_seq, _(
                "stream ends at #{last} but its head says #{head}: events were deleted or "
                "added").format(last=last_seq, head=head[0])))

    def explain(table: str, key: str, groups: Mapping[str, Any], source: str, order: int,
                seq: int) -> None:
        known = explained.setdefault((table, key), {})
        for group, digest in groups.items():
            current = known.get(group)
            if current is None or current[1] <= order:
                known[group] = (source, order, seq, str(digest))

    def learn(event: Event) -> None:
        data = event.data if isinstance(event.data, Mapping) else {}
        written = data.get("rows")
        in_org = event.stream == "org"
        if in_org and event.action in ("checkpoint", "baseline"):
            checkpoints.append((event.seq, data.get("streams") or {}))
        if in_org and event.action == "item":
            created[str(data.get("stream"))] = (event.seq, str(data.get("hash")))
        if in_org and event.action == "baseline":
            for name in data.get("items") or ():
                created.setdefault(f"item:{name}", (event.seq, ""))
        if not isinstance(written, Mapping):
            return
        streams = data.get("streams") or {}
        for table, keyed in written.items():
            if not isinstance(keyed, Mapping):
                continue
            for key, groups in keyed.items():
                if not isinstance(groups, Mapping):
                    continue
                if table in _ORG_TABLES and in_org:
                    explain(table, str(key), groups, "org", event.seq, event.seq)
                elif table in _ITEM_TABLES and event.stream == _item_of(str(key)):
                    explain(table, str(key), groups, event.stream, 2 * event.seq, event.seq)
                elif table in _ITEM_TABLES and in_org and event.action == "baseline":
                    # A baseline stands at the item's length when it was taken.
                    at = streams.get(_item_of(str(key)), [0])[0]
                    explain(table, str(key), groups, "org", 2 * int(at) + 1, event.seq)

    for event in events:
        count += 1
        if progress is not None and not count % 1000:
            progress(count)
        if event.stream != stream:
            close(stream, expected_seq - 1, prev)
            stream, expected_seq, prev = event.stream, 1, ""
            seen.add(stream)
        if event.seq != expected_seq:
            findings.append(Finding(stream, event.seq, _(
                "expected event #{seq}: missing or reordered").format(seq=expected_seq)))
        if event.prev_hash != prev:
            findings.append(Finding(stream, event.seq,
                                    _("does not link to the event before it")))
        if event.compute_hash() != event.hash:
            findings.append(Finding(stream, event.seq,
                                    _("content does not match its hash: edited")))
        hashes.setdefault(stream, []).append(event.hash)
        expected_seq, prev = event.seq + 1, event.hash
        learn(event)
        if derive_visits and stream.startswith("item:") and (
                event.action == "create" or event.from_state != event.to_state):
            entered = moved.get(stream)
            if entered is not None:
                visits.setdefault((stream, entered[0], entered[1], event.at, event.actor,
                                   event.action, event.note), []).append(event.seq)
            moved[stream] = (event.to_state, event.at)
    close(stream, expected_seq - 1, prev)
    for name, (seq, _hash) in sorted(heads.items()):
        if name not in seen and seq:
            findings.append(Finding(name, seq, _("all events of this stream are missing")))

    def hash_at(name: str, seq: int) -> str | None:
        chain = hashes.get(name, [])
        return chain[seq - 1] if 0 < seq <= len(chain) else None

    for at, streams in checkpoints:
        for name, head in sorted(streams.items()):
            seq, digest = int(head[0]), str(head[1])
            if hash_at(name, seq) != digest:
                findings.append(Finding(name, seq, _(
                    "the checkpoint at org #{at} recorded this stream at #{seq}; the stream no "
                    "longer holds that event: truncated or rewritten").format(at=at, seq=seq)))
    if anchor is not None:
        findings.extend(_check_anchor(anchor, hash_at, dict(checkpoints)))

    rows = 0
    if tables is not None:
        rows = _check_rows(tables, explained, created, hash_at, findings)
        if derive_visits:
            rows += _check_visits(tables["step_visits"], visits, tables.get("items", ()),
                                  findings)
    if progress is not None:
        progress(count)
    return AuditReport(events=count, streams=len(seen), findings=tuple(findings), rows=rows,
                       checkpoints=len(checkpoints) + (anchor is not None))


def _check_anchor(anchor: Mapping[str, Any], hash_at: Any,
                  checkpoints: Mapping[int, Mapping[str, Any]]) -> list[Finding]:
    try:
        seq, digest = int(anchor["seq"]), str(anchor["hash"])
    except (KeyError, TypeError, ValueError):
        return [Finding("org", 0, _("the anchor has no valid 'seq' and 'hash'"))]
    if hash_at("org", seq) != digest:
        return [Finding("org", seq, _("the record does not extend the anchor: the "
                                      "organisation's stream no longer holds the anchored "
                                      "event (rewritten or truncated)"))]
    streams = checkpoints.get(seq)
    if streams is None:
        return [Finding("org", seq, _("the anchored event is not a checkpoint"))]
    if anchor.get("digest") not in (None, heads_digest(streams)):
        return [Finding("org", seq,
                        _("the anchor's digest does not match its checkpoint's heads"))]
    return []


def _check_rows(tables: Mapping[str, Iterable[Mapping[str, Any]]],
                explained: Mapping[tuple[str, str], Mapping[str, tuple[str, int, int, str]]],
                created: Mapping[str, tuple[int, str]], hash_at: Any,
                findings: list[Finding]) -> int:
    count = 0
    present: set[tuple[str, str]] = set()
    initial = row_digests("publications", INITIAL_PUBLICATION)
    for table in TRACKED:
        for row in tables.get(table, ()):
            count += 1
            key = row_key(table, row)
            present.add((table, key))
            stream = _item_of(key) if table in _ITEM_TABLES else "org"
            known = explained.get((table, key), {})
            for group, digest in row_digests(table, row).items():
                if table == "publications" and group == "identity":
                    continue  # the key itself: the item's own record holds the row
                entry = known.get(group)
                want = entry[3] if entry else (initial.get(group) if table == "publications"
                                               else None)
                seq = entry[2] if entry else 0
                if want == digest:
                    continue
                # A claim is not an event: in flight follows a claimable state.
                if ((table, group) == ("publications", "state") and row["state"] == "in_flight"
                        and want in {row_digests(table, {"state": s})["state"]
                                     for s in _CLAIMABLE}):
                    continue
                if want is None:
                    problem = _("no event records this row's {group!r}: changed outside "
                                "humasflow")
                else:
                    problem = _("its {group!r} is not what the record says it became: changed "
                                "outside humasflow")
                findings.append(Finding(entry[0] if entry else stream, seq,
                                        problem.format(group=group),
                                        table=table, row=key, group=group))
            if table == "items":
                origin = created.get(stream)
                if origin is None:
                    findings.append(Finding("org", 0, _("the item's creation is not recorded "
                                                        "in the organisation's stream"),
                                            table=table, row=key, group="identity"))
                elif origin[1] and hash_at(stream, 1) != origin[1]:
                    findings.append(Finding("org", origin[0], _("the item's first event is "
                                                                "not the one its creation "
                                                                "record names"),
                                            table=table, row=key, group="identity"))
    for name, (seq, _hash) in sorted(created.items()):
        key = name.split(":", 1)[1]
        if ("items", key) not in present:
            findings.append(Finding("org", seq, _("the organisation's stream records this "
                                                  "item's creation, but its row is gone: "
                                                  "deleted"),
                                    table="items", row=key))
    for (table, key), groups in sorted(explained.items()):
        if (table, key) not in present and not (table == "items" and f"item:{key}" in created):
            entry = max(groups.values(), key=lambda e: e[1])
            findings.append(Finding(entry[0], entry[2], _("the record wrote this row, but it "
                                                          "is gone: deleted"),
                                    table=table, row=key))
    return count


def _check_visits(stored: Iterable[Mapping[str, Any]],
                  derived: Mapping[tuple[Any, ...], list[int]],
                  items: Iterable[Mapping[str, Any]], findings: list[Finding]) -> int:
    """Each stored step visit must be one the events say ended (its step, when it began
    and ended, who ended it, how and why), measured as long as it lasted and against its
    item's SOP revision; and each visit the events ended must be stored."""
    revisions = {int(row["id"]): row.get("sop_revision") for row in items}
    missing = {key: list(seqs) for key, seqs in derived.items()}
    count = 0
    for row in stored:
        count += 1
        stream = f"item:{row['item_id']}"
        key = (stream, row["step"], row["entered_at"], row["left_at"], row["left_by"],
               row["outcome"], row["reason"])
        name = f"{row['item_id']}/{row['step']}/{row['left_at'].isoformat()}"
        seqs = missing.get(key)
        seq = seqs.pop(0) if seqs else None
        if seq is None:
            findings.append(Finding(stream, 0, _(
                "no event ends this step visit: changed outside humasflow"),
                table="step_visits", row=name))
            continue
        lasted = (row["left_at"] - row["entered_at"]).total_seconds()
        if abs(float(row["seconds"]) - lasted) > 0.0015 \
                or revisions.get(int(row["item_id"]), row["sop_revision"]) != row["sop_revision"]:
            findings.append(Finding(stream, seq, _(
                "this step visit's duration or SOP revision is not what the record says: "
                "changed outside humasflow"), table="step_visits", row=name))
    left_over = [(key, seq) for key, seqs in missing.items() for seq in seqs]
    for (stream, step, _entered, left, *_rest), seq in sorted(
            left_over, key=lambda kv: (kv[0][0], kv[1])):
        findings.append(Finding(stream, seq, _(
            "this event ends a step visit whose row is gone: deleted"),
            table="step_visits", row=f"{stream.split(':', 1)[1]}/{step}/{left.isoformat()}"))
    return count


def _row(event: Event) -> dict[str, object]:
    body = event.body()
    body["hash"] = event.hash
    # Secrets are scrubbed before events are written; this keeps one an older version
    # recorded out of the export too (its hash then no longer matches the text shown).
    note, data = scrub(event.note), scrub_data(body["data"])
    if note != event.note or data != body["data"]:
        body.update(note=note, data=data, redacted=True)
    return body


def export_jsonl(events: Iterable[Event], out: IO[str]) -> int:
    """Write one JSON object per event; return the number written.

    An event recorded with a secret in it (by a version before scrubbing) is written
    with the secret replaced and ``"redacted": true``.
    """
    n = 0
    for event in events:
        out.write(json.dumps(_row(event), ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n


#: What a spreadsheet reads as the start of a formula (or hides one behind).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a
    leading apostrophe (``'=SUM(A1)``), so opening the export never runs it."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def export_csv(events: Iterable[Event], out: IO[str]) -> int:
    """Write the events as CSV (``data`` as JSON text); return the number written.

    A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    is written with a leading ``'``, so that a spreadsheet opening the file shows it
    instead of evaluating it as a formula. The JSON lines export keeps every value as
    recorded (it is the one to verify hashes against).
    """
    writer = csv.DictWriter(out, fieldnames=_COLUMNS)
    writer.writeheader()
    n = 0
    for event in events:
        row = _row(event)
        row.pop("redacted", None)
        row["data"] = json.dumps(row["data"], ensure_ascii=False, sort_keys=True)
        writer.writerow({key: _cell(value) for key, value in row.items()})
        n += 1
    return n
