"""The electronic record is tamper-evident and exportable, on SQLite and PostgreSQL.

Each test changes the events table behind humasflow's back, the way someone with
database access could, and checks that ``verify()`` reports the break with the stream and
sequence number; the exports carry every event with hashes that verify when re-read.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import attrs
import pytest
import sqlalchemy as sa

from humasflow import Event
from humasflow.audit import verify
from humasflow.storage import schema


@pytest.fixture
def walked(office, image):
    """An item with six events, and the office."""
    item = office.new_item("Wisuda", by="rina")
    item = office.complete(item.id, by="rina", text="Selamat kepada para wisudawan")
    item = office.complete(item.id, by="rina", notes="Template wisuda")
    item = office.complete(item.id, by="rina", media=[image])
    item = office.reject(item.id, by="budi", reason="Logo kurang jelas")
    item = office.revise(item.id, by="rina", text="Selamat wisuda!")
    assert item.version == 6
    assert office.verify().ok
    return office, item


def sql(office, statement, **params):
    with office._store.engine.begin() as conn:
        return conn.execute(sa.text(statement), params)


def findings_for(report, stream):
    """The chain's findings in ``stream`` (not the rows it no longer explains)."""
    return [f for f in report.findings if f.stream == stream and not f.table]


def test_an_intact_record_verifies(walked):
    office, _ = walked
    report = office.verify()
    assert report.ok
    assert report.findings == ()
    assert report.events == len(list(office._store.events(office.org)))
    assert report.streams == 2  # the organisation's stream and the item's


def test_an_edited_note_is_found_at_its_sequence(walked):
    office, item = walked
    stream = f"item:{item.id}"
    sql(office, "UPDATE events SET note = 'Disetujui' WHERE stream = :s AND seq = 5", s=stream)
    report = office.verify()
    assert not report.ok
    assert [(f.seq, "edited" in f.problem) for f in findings_for(report, stream)] == [(5, True)]
    assert f"{stream} #5" in str(report.findings[0])


def test_an_edited_actor_event_of_the_organisation_is_found(walked):
    office, _ = walked
    sql(office, "UPDATE events SET data = :d WHERE stream = 'org' AND action = 'actor' "
        "AND seq = (SELECT MIN(seq) FROM events WHERE stream = 'org' AND action = 'actor')",
        d=json.dumps({"id": "rina", "name": "Rina", "email": "", "roles": ["coordinator"]}))
    report = office.verify()
    assert not report.ok
    # The edit is found at its sequence; the edited event no longer explains the
    # actor's row either, and nothing outside the organisation's stream is blamed.
    assert "edited" in report.findings[0].problem
    assert {f.stream for f in report.findings} == {"org"}


def test_a_deleted_middle_event_is_found(walked):
    office, item = walked
    stream = f"item:{item.id}"
    sql(office, "DELETE FROM events WHERE stream = :s AND seq = 3", s=stream)
    report = office.verify()
    assert not report.ok
    found = findings_for(report, stream)
    assert any(f.seq == 4 and "expected event #3" in f.problem for f in found)
    assert any(f.seq == 4 and "does not link" in f.problem for f in found)


def test_a_deleted_last_event_is_found_against_the_items_head(walked):
    office, item = walked
    stream = f"item:{item.id}"
    sql(office, "DELETE FROM events WHERE stream = :s AND seq = 6", s=stream)
    report = office.verify()
    assert not report.ok
    [finding] = findings_for(report, stream)
    assert finding.seq == 5
    assert "#6" in finding.problem


def test_all_events_of_a_stream_deleted_is_found(walked):
    office, item = walked
    stream = f"item:{item.id}"
    sql(office, "DELETE FROM events WHERE stream = :s", s=stream)
    report = office.verify()
    chain = [f for f in report.findings if not f.table]
    assert [(f.stream, f.seq) for f in chain] == [(stream, 6)]


def test_two_swapped_events_are_found(walked):
    office, item = walked
    stream = f"item:{item.id}"
    sql(office, "UPDATE events SET seq = -1 WHERE stream = :s AND seq = 3", s=stream)
    sql(office, "UPDATE events SET seq = 3 WHERE stream = :s AND seq = 4", s=stream)
    sql(office, "UPDATE events SET seq = 4 WHERE stream = :s AND seq = -1", s=stream)
    report = office.verify()
    assert not report.ok
    # Both moved events no longer match their hashes, and the next one no longer links.
    assert {f.seq for f in findings_for(report, stream)} == {3, 4, 5}


def _forge(office, prev: Event, **changes):
    """A well-formed event, hashed correctly, chained to ``prev``."""
    forged = attrs.evolve(prev, seq=prev.seq + 1, prev_hash=prev.hash, actor="budi",
                          action="approve", note="approved", data={},
                          at=prev.at + dt.timedelta(minutes=1), **changes).sealed()
    row = {k: getattr(forged, k) for k in ("org", "stream", "seq", "actor", "action",
                                           "from_state", "to_state", "note", "prev_hash",
                                           "hash")}
    with office._store.engine.begin() as conn:
        conn.execute(schema.events.insert().values(**row, at=forged.at, data=forged.data))
    return forged


def test_a_forged_event_appended_to_a_stream_is_found(walked):
    office, item = walked
    stream = f"item:{item.id}"
    last = office.history(item.id)[-1]
    _forge(office, last, from_state="design", to_state="produce")
    report = office.verify()
    assert not report.ok
    [finding] = findings_for(report, stream)
    assert finding.seq == 7
    assert "#6" in finding.problem


def test_a_forged_stream_without_an_item_is_found(walked):
    office, item = walked
    first = office.history(item.id)[0]
    _forge(office, attrs.evolve(first, stream="item:999999", seq=0, hash=""))
    report = office.verify()
    assert [(f.stream, f.seq) for f in report.findings] == [("item:999999", 1)]


def test_a_rewritten_and_rehashed_chain_is_found_by_the_head(walked):
    office, item = walked
    stream = f"item:{item.id}"
    events = office.history(item.id)
    prev_hash = events[2].hash
    sql(office, "DELETE FROM events WHERE stream = :s AND seq > 3", s=stream)
    for event in events[3:]:
        rewritten = attrs.evolve(event, prev_hash=prev_hash,
                                 note=event.note.replace("Logo", "Warna")).sealed()
        with office._store.engine.begin() as conn:
            conn.execute(schema.events.insert().values(
                org=rewritten.org, stream=stream, seq=rewritten.seq, at=rewritten.at,
                actor=rewritten.actor, action=rewritten.action,
                from_state=rewritten.from_state, to_state=rewritten.to_state,
                note=rewritten.note, data=dict(rewritten.data),
                prev_hash=rewritten.prev_hash, hash=rewritten.hash))
        prev_hash = rewritten.hash
    report = office.verify()
    assert [(f.stream, f.seq) for f in report.findings] == [(stream, 6)]


# -- exports --------------------------------------------------------------------------------

COLUMNS = ["org", "stream", "seq", "at", "actor", "action", "from_state", "to_state", "note",
           "data", "prev_hash", "hash"]


def _event_from_export(row):
    return Event(org=row["org"], stream=row["stream"], seq=int(row["seq"]),
                 at=dt.datetime.fromisoformat(row["at"]), actor=row["actor"],
                 action=row["action"], from_state=row["from_state"] or None,
                 to_state=row["to_state"] or None, note=row["note"], data=row["data"],
                 prev_hash=row["prev_hash"], hash=row["hash"])


def test_jsonl_export_holds_every_event_and_its_hashes_verify(walked):
    office, _ = walked
    out = io.StringIO()
    count = office.export(out, format="jsonl")
    stored = list(office._store.events(office.org))
    lines = out.getvalue().splitlines()
    assert count == len(lines) == len(stored)
    rows = [json.loads(line) for line in lines]
    assert all(sorted(row) == sorted(COLUMNS) for row in rows)
    events = [_event_from_export(row) for row in rows]
    assert [e.hash for e in events] == [e.hash for e in stored]
    assert all(e.compute_hash() == e.hash for e in events)
    assert verify(events, office._store.heads(office.org)).ok


def test_csv_export_holds_every_event_and_its_hashes_verify(walked):
    office, item = walked
    out = io.StringIO()
    count = office.export(out, format="csv", item_id=item.id)
    assert count == item.version
    reader = csv.DictReader(io.StringIO(out.getvalue()))
    assert reader.fieldnames == COLUMNS
    rows = list(reader)
    assert len(rows) == count
    # In CSV an empty from_state is the create event's "none"; data is JSON text.
    events = [_event_from_export({**row, "data": json.loads(row["data"])}) for row in rows]
    assert [e.action for e in events] == ["create", "complete", "complete", "complete",
                                          "reject", "revise"]
    assert all(e.compute_hash() == e.hash for e in events)
    heads = {f"item:{item.id}": office._store.heads(office.org)[f"item:{item.id}"]}
    assert verify(events, heads).ok


def test_an_exported_record_shows_an_edit_made_after_export(walked):
    office, item = walked
    out = io.StringIO()
    office.export(out, format="jsonl", item_id=item.id)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    rows[1]["note"] = "changed after export"
    assert _event_from_export(rows[1]).compute_hash() != rows[1]["hash"]


def test_export_refuses_an_unknown_format(walked):
    office, _ = walked
    with pytest.raises(ValueError, match="jsonl"):
        office.export(io.StringIO(), format="xml")
