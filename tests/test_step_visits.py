"""Step visits kept as rows (migration 12), on SQLite and PostgreSQL: each move writes
the visit it ends in its own transaction (and loses it with it); a store written before
the migration gets its visits from its events and gives the report the live path gives;
``verify(visits=True)`` derives them again and finds one changed or deleted."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from humasflow.errors import ConflictError
from humasflow.office import Office
from humasflow.storage import schema as t
from humasflow.storage.store import Store

M = dt.timedelta(minutes=1)
DAY = dt.date(2026, 1, 5)


def visits(office) -> list[dict]:
    sv = t.step_visits
    with office._store.engine.connect() as conn:
        rows = conn.execute(sa.select(sv).where(sv.c.org == office.org)
                            .order_by(sv.c.item_id, sv.c.left_at, sv.c.step))
        return [dict(r._mapping) for r in rows]


def walk(office, clock, image) -> list[int]:
    """Two items through the SOP (one rejected once and reworked once, one cancelled at
    its design), one left at approval, one at its concept."""
    def concept(title, by="rina"):
        item = office.new_item(title, by=by, channels=["outbox"])
        clock.advance(minutes=4)
        office.complete(item.id, by=by, text=f"{title}: selamat!")
        clock.advance(minutes=12)
        office.complete(item.id, by=by, notes="Canva")
        return item.id

    a = concept("A")
    clock.advance(minutes=3)
    office.complete(a, by="rina", media=[image])
    clock.advance(minutes=25)
    office.reject(a, by="budi", reason="logo kurang jelas")
    clock.advance(minutes=6)
    office.revise(a, by="rina", text="A: selamat, lagi!")  # no move: the visit goes on
    clock.advance(minutes=2)
    office.complete(a, by="rina", media=[image])
    clock.advance(minutes=4)
    office.approve(a, by="budi")
    clock.advance(minutes=9)
    office.complete(a, by="rina", media=[image])
    clock.advance(minutes=30)
    office.rework(a, by="sari", findings="warna salah")
    clock.advance(minutes=5)
    office.complete(a, by="rina", media=[image])
    clock.advance(minutes=3)
    office.pass_recheck(a, by="sari")
    clock.advance(minutes=2)
    office.post(a, by="rina")
    b = concept("B", by="sari")
    clock.advance(minutes=1)
    office.cancel(b, by="budi", reason="acara batal")
    c = concept("C")
    clock.advance(minutes=2)
    office.complete(c, by="rina", media=[image])
    d = office.new_item("D", by="rina").id
    clock.advance(minutes=40)
    return [a, b, c, d]


def test_each_move_writes_the_visit_it_ends(office, clock, image):
    item = office.new_item("A", by="rina", channels=["outbox"])
    created = office.item(item.id).step_started_at
    clock.advance(minutes=7)
    office.revise(item.id, by="rina", text="draft")  # the same step: no visit ends
    assert visits(office) == []
    clock.advance(minutes=2)
    office.complete(item.id, by="rina", text="A: selamat!")
    [row] = visits(office)
    assert row == {"org": office.org, "item_id": item.id,
                   "sop_revision": office.item(item.id).sop_revision, "step": "concept",
                   "entered_at": created, "left_at": created + 9 * M, "left_by": "rina",
                   "outcome": "complete", "reason": "", "seconds": 540.0}
    # The step the item is at now is its own row's: no visit until it moves on.
    assert office.item(item.id).step_started_at == created + 9 * M


def test_a_move_that_conflicts_leaves_no_visit(office, clock):
    item = office.new_item("A", by="rina", channels=["outbox"])
    clock.advance(minutes=3)
    office.complete(item.id, by="rina", text="A: selamat!")
    before = visits(office)
    # Another writer's event holds the next place in the item's stream: the move's
    # event cannot be appended after its visit and its item update were written.
    head = office.history(item.id)[-1]
    with office._store.engine.begin() as conn:
        conn.execute(t.events.insert().values(
            org=office.org, stream=f"item:{item.id}", seq=head.seq + 1, at=head.at,
            actor="sari", action="revise", from_state="prepare", to_state="prepare",
            note="", data={}, prev_hash=head.hash, hash="x" * 64))
    clock.advance(minutes=5)
    with pytest.raises(ConflictError):
        office.complete(item.id, by="rina", notes="Canva")
    assert visits(office) == before  # rolled back with the move
    assert office.item(item.id).state == "prepare"


def test_a_stale_move_writes_no_visit(office, clock):
    item = office.new_item("A", by="rina", channels=["outbox"])
    store = office._store
    stale = store.item(office.org, item.id)
    clock.advance(minutes=3)
    office.complete(item.id, by="rina", text="A: selamat!")
    before = visits(office)
    moved = office.item(item.id)
    event_store = office.history(item.id)[-1]
    with pytest.raises(ConflictError), store.writing() as conn:
        store.apply(conn, moved, stale.version, event_store.prev_hash, event_store,
                    new_step=True)
    assert visits(office) == before


def test_a_store_written_before_migration_12_gives_the_same_report(office, store,
                                                                  store_url, clock,
                                                                  image):
    walk(office, clock, image)
    live = visits(office)
    assert [v["outcome"] for v in live if v["item_id"] == 1] == [
        "complete", "complete", "complete", "reject", "complete", "approve", "complete",
        "rework", "complete", "pass", "complete"]
    reports = [office.report(DAY, DAY, by=by) for by in (None, "staff", "revision")]
    assert office.verify(visits=True).ok
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE step_visits"))
        conn.execute(t.schema_migrations.delete().where(t.schema_migrations.c.version >= 12))
    old = Store(store_url, migrate=False)
    try:
        assert old.schema_version == 11
    finally:
        old.close()
    migrated = Office(Store(store_url), clock=clock, environ={}, media_store=office.media)
    try:
        assert migrated.schema_version == t.MIGRATIONS[-1][0] == 13
        assert visits(migrated) == live
        assert [migrated.report(DAY, DAY, by=by) for by in (None, "staff", "revision")] \
            == reports
        assert migrated.verify(visits=True).ok
        # The live path goes on from the derived rows.
        item = migrated.new_item("E", by="rina", channels=["outbox"])
        clock.advance(minutes=6)
        migrated.complete(item.id, by="rina", text="E: selamat!")
        assert visits(migrated)[-1]["item_id"] == item.id
        assert migrated.verify(visits=True).ok
    finally:
        migrated.close()


def test_migration_13_puts_what_a_breach_shows_in_the_sqlite_rank_index(
        office, store, store_url, clock, image):
    walk(office, clock, image)
    clock.advance(days=1)  # the items left at their steps are breaches too
    report = office.report(DAY, DAY)
    assert report.breaches

    def columns(conn):
        return [row[2] for row in conn.execute(sa.text(
            f"PRAGMA index_info({t.SQLITE_RANK_INDEX})"))]

    with store.engine.begin() as conn:
        if not store.is_postgres:
            assert columns(conn)[-3:] == ["item_id", "entered_at", "left_by"]
            # The index as migration 12 made it.
            conn.execute(sa.text(f"DROP INDEX {t.SQLITE_RANK_INDEX}"))
            conn.execute(sa.text(f"CREATE INDEX {t.SQLITE_RANK_INDEX} ON step_visits "
                                 "(org, step, seconds, left_at, sop_revision, outcome)"))
        conn.execute(t.schema_migrations.delete().where(t.schema_migrations.c.version >= 13))
    migrated = Office(Store(store_url), clock=clock, environ={}, media_store=office.media)
    try:
        assert migrated.schema_version == 13
        if not store.is_postgres:
            with migrated._store.engine.connect() as conn:
                assert columns(conn) == ["org", "step", "seconds", "left_at", "sop_revision",
                                         "outcome", "item_id", "entered_at", "left_by"]
        assert migrated.report(DAY, DAY) == report
    finally:
        migrated.close()


def test_verify_with_visits_finds_a_visit_changed_or_deleted(office, clock, image):
    walk(office, clock, image)
    assert office.verify(visits=True).ok
    sv = t.step_visits
    with office._store.engine.begin() as conn:
        conn.execute(sv.update().where(sv.c.item_id == 1, sv.c.step == "approve",
                                       sv.c.outcome == "reject").values(seconds=60.0))
        conn.execute(sv.delete().where(sv.c.item_id == 3, sv.c.step == "concept"))
        conn.execute(sv.update().where(sv.c.item_id == 1, sv.c.step == "recheck",
                                       sv.c.outcome == "pass").values(left_by="budi"))
    # The record itself is intact: the visits are derived from it, not part of it.
    assert office.verify().ok
    report = office.verify(visits=True)
    found = sorted((f.table, f.row.split("/")[:2], f.problem.split(":")[0])
                   for f in report.findings)
    assert found == [
        ("step_visits", ["1", "approve"], "this step visit's duration or SOP revision is "
                                          "not what the record says"),
        ("step_visits", ["1", "recheck"], "no event ends this step visit"),
        ("step_visits", ["1", "recheck"], "this event ends a step visit whose row is gone"),
        ("step_visits", ["3", "concept"], "this event ends a step visit whose row is gone"),
    ]
    if not office._store.is_postgres:  # the CLI runs on the file
        from click.testing import CliRunner

        from humasflow.cli import cli

        plain = CliRunner().invoke(cli, ["--db", office.location, "--lang", "en", "audit",
                                         "verify"], env={})
        assert plain.exit_code == 0, plain.output
        checked = CliRunner().invoke(cli, ["--db", office.location, "--lang", "en", "audit",
                                           "verify", "--visits"], env={})
        assert checked.exit_code == 1, checked.output
        assert checked.output.count("BROKEN") == 4


def test_the_report_reads_the_visits_not_the_events(office, clock, image):
    # A visit's row is what the report counts: changed there, the report changes too.
    walk(office, clock, image)
    before = office.report(DAY, DAY)
    concept = next(s for s in before.steps if s.step == "concept")
    sv = t.step_visits
    with office._store.engine.begin() as conn:
        conn.execute(sv.delete().where(sv.c.step == "concept", sv.c.item_id == 1))
    after = office.report(DAY, DAY)
    assert next(s for s in after.steps if s.step == "concept").completions \
        == concept.completions - 1
