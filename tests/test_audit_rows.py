"""``verify()`` checks the tables against the record, not only the event chains.

Each tampering test changes rows (or deletes them with their events, or truncates a
stream and fixes its head) behind humasflow's back, through SQLAlchemy on the store's
own engine, the way someone with database access could, and checks that ``verify()``
names the table, the row and the column group that no event explains. The anchor tests
rewrite the whole database consistently and check that an anchor kept outside it still
catches that. Everything runs on SQLite and PostgreSQL (the ``office`` fixture).
"""

from __future__ import annotations

import datetime as dt
import json

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from humasflow import Event, Office
from humasflow.errors import AnchorInvalid
from humasflow.storage import Store
from humasflow.storage import schema as t
from humasflow.storage.rows import EXCLUDED, row_digests
from humasflow.testing import item_ready_to_post, staffed_office


def sql(office: Office, statement: str, **params):
    with office._store.engine.begin() as conn:
        return conn.execute(sa.text(statement), params)


def core(office: Office, statement) -> None:
    with office._store.engine.begin() as conn:
        conn.execute(statement)


def row(office: Office, table: sa.Table, *where) -> dict:
    with office._store.engine.connect() as conn:
        return dict(conn.execute(sa.select(table).where(*where)).one()._mapping)


def rows_found(report) -> set[tuple[str, str, str]]:
    return {(f.table, f.row, f.group) for f in report.findings if f.table}


@pytest.fixture
def record(office, image):
    """A posted item ``p``, and an item ``q`` at the approval step; the record verifies."""
    p = item_ready_to_post(office, text="Selamat Dies Natalis ke-47!", media=[image]).id
    assert office.post(p, by="rina").done
    q = office.new_item("Wisuda", by="rina").id
    office.complete(q, by="rina", text="Selamat wisuda")
    office.complete(q, by="rina", notes="Template wisuda")
    office.complete(q, by="rina", media=[image])
    report = office.verify()
    assert report.ok, report.findings
    return office, p, q


# -- every tampering is reported with its table, row and column group ----------------------


def test_an_edited_item_state_is_found(record):
    office, _, q = record
    sql(office, "UPDATE items SET state = 'post' WHERE id = :q", q=q)
    report = office.verify()
    assert rows_found(report) == {("items", str(q), "state")}
    (finding,) = report.findings
    assert finding.stream == f"item:{q}"
    assert finding.seq == 4
    assert f"items row {q} [state]" in str(finding)


def test_an_edited_approval_digest_is_found(record):
    office, p, q = record
    sql(office, "UPDATE items SET approved_digest = :d WHERE id = :q", d="0" * 64, q=q)
    sql(office, "UPDATE items SET approved_digest = NULL WHERE id = :p", p=p)
    assert rows_found(office.verify()) == {("items", str(q), "approval"),
                                           ("items", str(p), "approval")}


def test_an_edited_text_is_found(record):
    office, p, _ = record
    post = row(office, t.items, t.items.c.id == p)["post"]
    core(office, t.items.update().where(t.items.c.id == p)
         .values(post={**post, "text": "Diskon 90% untuk semua!"}))
    assert rows_found(office.verify()) == {("items", str(p), "content")}


def test_edited_authors_produced_media_and_assignee_are_found(record):
    office, p, q = record
    core(office, t.items.update().where(t.items.c.id == q).values(authors=["budi"]))
    core(office, t.items.update().where(t.items.c.id == p)
         .values(produced=[{"source": "/etc/passwd", "alt": "", "kind": "image"}]))
    sql(office, "UPDATE items SET assignee = 'sari' WHERE id = :q", q=q)
    assert rows_found(office.verify()) == {("items", str(q), "authors"),
                                           ("items", str(p), "produced"),
                                           ("items", str(q), "assignee")}


def test_edited_actor_roles_name_and_email_are_found(record):
    office, _, _ = record
    sql(office, "UPDATE actors SET roles = 'coordinator,staff' WHERE id = 'rina'")
    sql(office, "UPDATE actors SET name = 'Budi S.', email = 'x@example.com' WHERE id = 'budi'")
    assert rows_found(office.verify()) == {("actors", "rina", "roles"),
                                           ("actors", "budi", "name"),
                                           ("actors", "budi", "email")}


def test_an_edited_sop_definition_is_found(record):
    office, _, _ = record
    rev = office.current_revision()
    definition = row(office, t.sop_revisions, t.sop_revisions.c.id == rev)["definition"]
    definition = json.loads(json.dumps(definition).replace('"four_eyes": true',
                                                           '"four_eyes": false'))
    core(office, t.sop_revisions.update().where(t.sop_revisions.c.id == rev)
         .values(definition=definition))
    assert rows_found(office.verify()) == {("sop_revisions", str(rev), "definition")}


def test_edited_channel_settings_publisher_and_credentials_are_found(record, tmp_path):
    office, _, _ = record
    core(office, t.channels.update().where(t.channels.c.name == "outbox")
         .values(settings={"path": str(tmp_path / "elsewhere")}))
    office.add_channel("tiktok", "manual", by="admin")
    sql(office, "UPDATE channels SET publisher = 'outbox' WHERE name = 'tiktok'")
    core(office, t.channels.update().where(t.channels.c.name == "tiktok")
         .values(credentials={"token": "OTHER_VARIABLE"}))
    assert rows_found(office.verify()) == {("channels", "outbox", "settings"),
                                           ("channels", "tiktok", "publisher"),
                                           ("channels", "tiktok", "credentials")}


def test_an_edited_publication_state_or_url_is_found(record):
    office, p, _ = record
    sql(office, "UPDATE publications SET state = 'pending' WHERE item_id = :p", p=p)
    sql(office, "UPDATE publications SET url = 'https://evil.example/1' WHERE item_id = :p",
        p=p)
    assert rows_found(office.verify()) == {("publications", f"{p}/outbox", "state"),
                                           ("publications", f"{p}/outbox", "outcome")}


def test_a_forged_posted_publication_of_an_unposted_channel_is_found(office, image):
    office.add_channel("tiktok", "manual", by="admin")
    p = item_ready_to_post(office, text="Halo", media=[image], channels=["tiktok"]).id
    office.post(p, by="rina")
    assert office.publications(p)["tiktok"].state == "waiting"
    sql(office, "UPDATE publications SET state = 'posted', platform_id = '1', "
        "url = 'https://www.tiktok.com/@fisipub/video/1' WHERE item_id = :p", p=p)
    assert rows_found(office.verify()) == {("publications", f"{p}/tiktok", "state"),
                                           ("publications", f"{p}/tiktok", "outcome")}


def test_an_item_deleted_with_all_its_events_is_found(record):
    office, _, q = record
    sql(office, "DELETE FROM publications WHERE item_id = :q", q=q)
    sql(office, "DELETE FROM events WHERE stream = :s", s=f"item:{q}")
    sql(office, "DELETE FROM items WHERE id = :q", q=q)
    report = office.verify()
    assert not report.ok
    (finding,) = report.findings
    assert (finding.table, finding.row, finding.stream) == ("items", str(q), "org")
    assert "deleted" in finding.problem


def test_a_deleted_actor_or_channel_is_found(record):
    office, _, _ = record
    office.add_actor("eko", "Eko", roles=["staff"], by="admin")
    office.add_channel("tiktok", "manual", by="admin")
    sql(office, "DELETE FROM actors WHERE id = 'eko'")
    sql(office, "DELETE FROM channels WHERE name = 'tiktok'")
    assert rows_found(office.verify()) == {("actors", "eko", ""), ("channels", "tiktok", "")}


def test_an_item_inserted_without_a_record_is_found(record):
    office, p, _ = record
    forged = row(office, t.items, t.items.c.id == p)
    forged.update(id=p + 100, version=0, head_hash="", key="forged-" + forged["key"][7:])
    core(office, t.items.insert().values(**forged))
    report = office.verify()
    found = rows_found(report)
    assert ("items", str(p + 100), "identity") in found


def truncate(office: Office, item_id: int, keep: int) -> None:
    """Delete the item's events after ``keep`` and make its head point at the last kept."""
    stream = f"item:{item_id}"
    sql(office, "DELETE FROM events WHERE stream = :s AND seq > :k", s=stream, k=keep)
    head = sql(office, "SELECT hash FROM events WHERE stream = :s AND seq = :k",
               s=stream, k=keep).scalar_one()
    sql(office, "UPDATE items SET version = :k, head_hash = :h WHERE id = :i",
        k=keep, h=head, i=item_id)


def test_a_truncated_stream_with_its_head_fixed_is_found(record):
    office, _, q = record
    truncate(office, q, 2)
    report = office.verify()
    assert not report.ok
    assert {f.table for f in report.findings} == {"items"}
    assert {("items", str(q), "state"), ("items", str(q), "content")} <= rows_found(report)


def test_a_consistent_rollback_of_a_stream_is_found_by_a_checkpoint(office):
    item = office.new_item("Dies Natalis", by="rina")
    office.complete(item.id, by="rina", text="Selamat Dies Natalis")
    before = row(office, t.items, t.items.c.id == item.id)
    office.complete(item.id, by="rina", notes="Template")
    anchor = office.anchor()  # a checkpoint: every stream's length and head
    # Roll the item back by one event consistently: event, head and row agree again.
    truncate(office, item.id, 2)
    values = {k: v for k, v in before.items() if k not in ("id", "version", "head_hash")}
    core(office, t.items.update().where(t.items.c.id == item.id).values(**values))
    report = office.verify()
    assert not report.ok
    assert [(f.stream, f.seq) for f in report.findings] == [(f"item:{item.id}", 3)]
    assert "checkpoint" in report.findings[0].problem
    assert not office.verify(anchor=anchor).ok


# -- an untouched record verifies, whatever happened to it ---------------------------------


def test_a_busy_untouched_record_verifies_clean(office, clock, image, tmp_path):
    office.add_channel("tiktok", "manual", settings={"instructions": "account @fisipub"},
                       by="admin")
    office.add_channel("threads", "manual", by="admin")
    office.add_actor("eko", "Eko Prasetyo", roles=["staff"], by="admin")
    office.add_actor("eko", "Eko Prasetyo", email="eko@example.ac.id", roles=["staff"], by="admin")
    office.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "outbox2")}, by="admin")

    # Every action kind on one item: reject, revise, rework, assign, post, skip, confirm.
    a = office.new_item("Dies Natalis", by="rina", channels=["outbox", "tiktok", "threads"])
    office.complete(a.id, by="rina", text="Selamat Dies Natalis")
    office.complete(a.id, by="rina", notes="Template")
    office.complete(a.id, by="rina", media=[image])
    office.reject(a.id, by="budi", reason="Logo kurang jelas")
    office.revise(a.id, by="rina", text="Selamat Dies Natalis ke-47")
    office.complete(a.id, by="rina", media=[image])
    office.approve(a.id, by="budi")
    office.complete(a.id, by="rina", media=[image])
    office.rework(a.id, by="sari", findings="Resolusi terlalu kecil")
    office.complete(a.id, by="rina", media=[image])
    office.assign(a.id, "eko", by="budi")
    office.pass_recheck(a.id, by="sari")
    report = office.post(a.id, by="rina")
    assert report.publications["tiktok"].state == "waiting"
    office.skip(a.id, "threads", by="budi", reason="Threads is not used this month")
    office.confirm(a.id, "tiktok", by="rina", not_posted=True)
    assert office.confirm(a.id, "tiktok", by="rina",
                          url="https://www.tiktok.com/@fisipub/video/1").done

    # Scheduled and posted by a pass; revised and cancelled; late and reported.
    b = item_ready_to_post(office, text="Wisuda", media=[image], channels=["outbox"]).id
    office.schedule(b, clock() + dt.timedelta(hours=1), by="rina")
    clock.advance(hours=2)
    assert [r.done for r in office.run_due()] == [True]
    c = office.new_item("Batal", by="rina", text="Draf")
    office.revise(c.id, by="rina", text="Draf kedua")
    office.cancel(c.id, by="budi", reason="Acara dibatalkan")
    d = office.new_item("Terlambat", by="sari")
    clock.advance(days=30)
    assert office.check_sla()
    office.anchor()
    office.complete(d.id, by="sari", text="Akhirnya")
    office.establish(by="admin")

    report = office.verify()
    assert report.ok, report.findings
    assert report.rows >= 4 + 4 + 3 + 2  # items, actors, channels, revisions (+ records)
    assert report.checkpoints == 1


def test_every_row_digest_is_taken_from_the_metadata():
    # A column added to a tracked table later is covered without a change to the list.
    values = {c.name: None for c in t.items.columns}
    groups = row_digests("items", values)
    assert "version" not in groups
    assert "breach_reported" not in groups
    assert {"identity", "state", "content", "approval", "authors", "produced", "assignee",
            "step", "schedule"} <= set(groups)
    assert EXCLUDED["publications"] >= {"lease_until", "claimed_by", "progress"}
    with pytest.raises(ValueError, match="post_by"):
        row_digests("items", {"post_at": None})


# -- anchors --------------------------------------------------------------------------------


def rewrite(office: Office, text: str) -> None:
    """Replace the whole record with another, consistent one (as a database owner could)."""
    with office._store.engine.begin() as conn:
        for table in ("publications", "events", "items", "channels", "actors",
                      "sop_revisions"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(sa.text("UPDATE orgs SET version = 0, head_hash = ''"))
    office._revisions.clear()
    office._engines.clear()
    office.establish(by="admin")
    staffed_office(office)
    item = office.new_item("Dies Natalis", by="rina")
    office.complete(item.id, by="rina", text=text)


def test_a_rewrite_of_the_whole_database_is_caught_by_an_anchor(office, tmp_path):
    item = office.new_item("Dies Natalis", by="rina")
    office.complete(item.id, by="rina", text="Selamat Dies Natalis")
    anchor = office.anchor()
    assert {"org", "store", "time", "seq", "hash", "digest"} <= set(anchor)
    assert office.verify(anchor=anchor).ok
    path = tmp_path / "anchor.json"
    path.write_text(json.dumps(anchor), encoding="utf-8")

    rewrite(office, "Diskon 90% untuk semua!")
    assert office.verify().ok  # consistent in itself...
    report = office.verify(anchor=path)  # ...but not what was anchored
    assert not report.ok
    assert any("does not extend the anchor" in f.problem for f in report.findings)


def test_a_legitimate_later_action_still_verifies_against_the_anchor(office, image):
    item = office.new_item("Dies Natalis", by="rina")
    anchor = office.anchor()
    office.complete(item.id, by="rina", text="Selamat Dies Natalis")
    office.add_actor("eko", "Eko", roles=["staff"], by="admin")
    office.new_item("Wisuda", by="rina")
    later = office.anchor()
    assert later["seq"] > anchor["seq"]
    assert office.verify(anchor=anchor).ok
    assert office.verify(anchor=later).ok


def test_an_anchor_that_cannot_be_used_is_refused(office, tmp_path):
    with pytest.raises(AnchorInvalid, match="cannot be read"):
        office.verify(anchor=tmp_path / "missing.json")
    anchor = office.anchor()
    with pytest.raises(AnchorInvalid, match="organisation 'other'"):
        office.verify(anchor={**anchor, "org": "other"})
    with pytest.raises(AnchorInvalid, match="integer 'seq'"):
        office.verify(anchor={"org": office.org})
    forged = {**anchor, "digest": "0" * 64}
    assert "digest" in office.verify(anchor=forged).findings[0].problem


# -- stores written before rows were digested ------------------------------------------------


def strip_to_legacy(office: Office) -> None:
    """Make the record look like one written before events carried row digests: no
    ``rows`` in any event, no item creations in the organisation's stream, chains and
    heads recomputed, the schema back at version 2."""
    with office._store.engine.begin() as conn:
        events = [dict(r._mapping) for r in conn.execute(
            sa.select(t.events).order_by(t.events.c.stream, t.events.c.seq))]
        conn.execute(t.events.delete())
        heads: dict[str, tuple[int, str]] = {}
        for e in events:
            if e["stream"] == "org" and e["action"] == "item":
                continue
            seq, prev = heads.get(e["stream"], (0, ""))
            data = {k: v for k, v in e["data"].items() if k != "rows"}
            event = Event(org=e["org"], stream=e["stream"], seq=seq + 1, at=e["at"],
                          actor=e["actor"], action=e["action"], from_state=e["from_state"],
                          to_state=e["to_state"], note=e["note"], data=data, prev_hash=prev)
            event = event.sealed()
            heads[e["stream"]] = (event.seq, event.hash)
            values = {**attrs.asdict(event), "data": dict(event.data)}
            conn.execute(t.events.insert().values(**values))
        for stream, (seq, head) in heads.items():
            if stream == "org":
                conn.execute(t.orgs.update().values(version=seq, head_hash=head))
            else:
                conn.execute(t.items.update().where(t.items.c.id == int(stream[5:]))
                             .values(version=seq, head_hash=head))
        conn.execute(t.schema_migrations.delete().where(t.schema_migrations.c.version > 2))


def test_a_store_written_before_row_digests_verifies_after_its_migration(office, image,
                                                                          store_url, clock):
    p = item_ready_to_post(office, text="Halo", media=[image]).id
    office.post(p, by="rina")
    strip_to_legacy(office)
    assert not office.verify().ok  # no event explains the rows yet

    migrated = Office(Store(store_url), clock=clock, environ={})
    try:
        assert migrated._store.schema_version == t.MIGRATIONS[-1][0]
        assert migrated.verify().ok
        baseline = [e for e in migrated._store.events(office.org, "org")
                    if e.action == "baseline"]
        assert len(baseline) == 1
        migrated.complete(migrated.new_item("Baru", by="rina").id, by="rina", text="x")
        assert migrated.verify().ok
        sql(migrated, "UPDATE items SET state = 'post' WHERE id = :p", p=p)
        assert rows_found(migrated.verify()) == {("items", str(p), "state")}
    finally:
        migrated.close()


def test_a_claimed_channel_in_flight_without_an_event_verifies(office, clock, image):
    # Claims, leases and heartbeats are not events: an attempt in flight is explained.
    p = item_ready_to_post(office, text="Halo", media=[image]).id
    office._store.ensure_publications(office.org, p, ["outbox"], clock())
    assert office.verify().ok
    item = office.item(p)
    claimed = office._store.claim(office.org, p, "outbox", "worker-1", clock(),
                                 clock() + dt.timedelta(minutes=15),
                                 gate=(item.state, item.content_digest))
    assert claimed is not None
    assert claimed.state == "in_flight"
    assert office._store.renew_lease(office.org, p, "outbox", "worker-1", claimed.attempts,
                                    clock() + dt.timedelta(minutes=30))
    assert office.verify().ok
    sql(office, "UPDATE publications SET state = 'posted' WHERE item_id = :p", p=p)
    assert rows_found(office.verify()) == {("publications", f"{p}/outbox", "state")}


# -- the write's single encodings hash exactly what the record's definitions hash ------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(st.characters(blacklist_categories=("Cs",)))
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), inner,
                      max_size=4),
    max_leaves=12)
_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(_texts, _json, max_size=5), note=_texts,
       states=st.tuples(st.none() | _texts, st.none() | _texts), seq=st.integers(1, 2**40))
def test_an_event_sealed_in_one_copy_has_the_hash_its_body_has(data, note, states, seq):
    """Event.sealed_as puts the body's canonical JSON together from the data's text: the
    hash is the one compute_hash() gives, and the text is the data."""
    at = dt.datetime(2026, 3, 1, 8, 30, 0, 123456, tzinfo=dt.timezone.utc)
    draft = Event(org="fisip-ü", stream="", seq=0, at=at, actor="rina \u00e9", action="complete",
                  from_state=states[0], to_state=states[1], note=note)
    sealed, text = draft.sealed_as(stream="item:7", seq=seq, prev_hash="ab" * 32, data=data)
    reference = attrs.evolve(draft, stream="item:7", seq=seq, prev_hash="ab" * 32,
                             data=data).sealed()
    assert sealed == reference
    assert json.loads(text) == data


@settings(max_examples=200, deadline=None)
@given(post=st.dictionaries(_texts, _json, max_size=5), produced=st.lists(_json, max_size=3),
       outputs=st.dictionaries(_texts, _json, max_size=5), approved=st.none() | _texts)
def test_the_content_digest_of_encoded_values_is_the_content_digest(post, produced, outputs,
                                                                    approved):
    """A write encodes the post, produced media and outputs once, for the row digests and
    the content digest: the digest is the one of the values themselves."""
    from humasflow.models import content_digest, content_digest_of_json
    from humasflow.storage.rows import encode_json

    assert content_digest_of_json(encode_json(post), encode_json(produced),
                                  encode_json(outputs), approved) == content_digest(
        post, produced, outputs, approved)
    values = {"title": "t", "post": post, "outputs": outputs, "produced": produced}
    encoded = {k: encode_json(v) for k, v in values.items() if k != "title"}
    assert row_digests("items", values, encoded=encoded) == row_digests("items", values)
