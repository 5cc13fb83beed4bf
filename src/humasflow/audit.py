"""The electronic record: verifying the hash chains and exporting the events.

Every stream (an item's history, or the organisation's own) is a chain: each event holds
the hash of the one before it, and the stream's head (sequence and hash) is kept on the
item's or organisation's row. :func:`verify` detects an edited, deleted, inserted or
reordered event.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from typing import IO

import attrs

from humasflow.models import Event
from humasflow.scrubbing import scrub, scrub_data

__all__ = ["AuditReport", "Finding", "export_csv", "export_jsonl", "verify"]

_COLUMNS = ("org", "stream", "seq", "at", "actor", "action", "from_state", "to_state", "note",
            "data", "prev_hash", "hash")


@attrs.frozen
class Finding:
    """One break in the record."""

    stream: str
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"{self.stream} #{self.seq}: {self.problem}"


@attrs.frozen
class AuditReport:
    """The result of :func:`verify`."""

    events: int
    streams: int
    findings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the record is intact."""
        return not self.findings


def verify(events: Iterable[Event], heads: Mapping[str, tuple[int, str]]) -> AuditReport:
    """Check every chain.

    Args:
        events: The events ordered by stream, then sequence.
        heads: Each stream's expected (last sequence, last hash).
    """
    findings: list[Finding] = []
    count = 0
    seen: set[str] = set()
    stream = None
    expected_seq, prev = 1, ""

    def close(name: str | None, last_seq: int, last_hash: str) -> None:
        if name is None:
            return
        head = heads.get(name)
        if head is None:
            findings.append(Finding(name, last_seq, "stream has events but no item or owner"))
        elif head != (last_seq, last_hash):
            findings.append(Finding(name, last_seq,
                                    f"stream ends at #{last_seq} but its head says #{head[0]}: "
                                    "events were deleted or added"))

    for event in events:
        count += 1
        if event.stream != stream:
            close(stream, expected_seq - 1, prev)
            stream, expected_seq, prev = event.stream, 1, ""
            seen.add(stream)
        if event.seq != expected_seq:
            findings.append(Finding(stream, event.seq,
                                    f"expected event #{expected_seq}: missing or reordered"))
        if event.prev_hash != prev:
            findings.append(Finding(stream, event.seq, "does not link to the event before it"))
        if event.compute_hash() != event.hash:
            findings.append(Finding(stream, event.seq, "content does not match its hash: edited"))
        expected_seq, prev = event.seq + 1, event.hash
    close(stream, expected_seq - 1, prev)
    for name, (seq, _) in sorted(heads.items()):
        if name not in seen and seq:
            findings.append(Finding(name, seq, "all events of this stream are missing"))
    return AuditReport(events=count, streams=len(seen), findings=tuple(findings))


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


def export_csv(events: Iterable[Event], out: IO[str]) -> int:
    """Write the events as CSV (``data`` as JSON text); return the number written."""
    writer = csv.DictWriter(out, fieldnames=_COLUMNS)
    writer.writeheader()
    n = 0
    for event in events:
        row = _row(event)
        row.pop("redacted", None)
        row["data"] = json.dumps(row["data"], ensure_ascii=False, sort_keys=True)
        writer.writerow(row)
        n += 1
    return n
