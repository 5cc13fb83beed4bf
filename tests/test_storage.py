"""The store: ordered schema migrations, SQLite durability settings, UTC time columns and
the optimistic version check, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import zoneinfo

import attrs
import pytest
import sqlalchemy as sa

from humasflow import ConflictError, Event, Office, StorageError
from humasflow.storage import database_url, schema
from humasflow.storage.schema import MIGRATIONS, UTCDateTime
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock

JAKARTA = zoneinfo.ZoneInfo("Asia/Jakarta")


def migration_rows(store):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(schema.schema_migrations)
                            .order_by(schema.schema_migrations.c.version)).fetchall()


# -- migrations -----------------------------------------------------------------------------


LATEST = MIGRATIONS[-1][0]
VERSIONS = [m[0] for m in MIGRATIONS]


def test_migrations_are_numbered_one_by_one():
    assert list(range(1, len(MIGRATIONS) + 1)) == VERSIONS
    assert all(name for _, name, _ in MIGRATIONS)


def test_a_new_store_is_at_the_latest_schema_version(store):
    assert store.schema_version == LATEST
    assert [r.version for r in migration_rows(store)] == VERSIONS
    tables = set(sa.inspect(store.engine).get_table_names())
    assert set(schema.metadata.tables) <= tables


def test_opening_a_store_again_applies_nothing(store, store_url):
    before = migration_rows(store)
    again = Store(store_url)
    try:
        assert again.migrate() == LATEST
        assert migration_rows(again) == before  # same rows, same applied_at
    finally:
        again.close()


def test_a_store_opened_without_migrating_is_at_version_zero(store_url):
    store = Store(store_url, migrate=False)
    try:
        assert store.schema_version == 0
        assert store.migrate() == LATEST
        assert store.schema_version == LATEST
    finally:
        store.close()


def test_a_store_newer_than_this_humasflow_is_refused(store, store_url):
    with store.engine.begin() as conn:
        conn.execute(schema.schema_migrations.insert().values(
            version=LATEST + 1, name="from the future",
            applied_at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)))
    with pytest.raises(StorageError, match="upgrade humasflow") as caught:
        Store(store_url)
    assert f"version {LATEST + 1}" in str(caught.value)


def test_stores_opened_at_once_migrate_exactly_once(store_url):
    errors, stores = [], []
    barrier = threading.Barrier(4)

    def open_store():
        barrier.wait(timeout=30)
        try:
            stores.append(Store(store_url))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        assert len(migration_rows(stores[0])) == len(MIGRATIONS)
    finally:
        for s in stores:
            s.close()


def test_an_unknown_database_url_is_a_storage_error():
    with pytest.raises(StorageError, match="cannot open store"):
        Store("nosuchdb://somewhere/db")


@pytest.mark.parametrize(("target", "url"), [
    ("humas.db", "sqlite:///humas.db"),
    (":memory:", "sqlite://"),
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
])
def test_database_url_turns_paths_and_postgres_urls_into_sqlalchemy_urls(target, url):
    assert database_url(target) == url


# -- SQLite settings ------------------------------------------------------------------------


def test_sqlite_connections_use_wal_and_full_sync(tmp_path):
    store = Store(tmp_path / "humasflow.db")
    try:
        with store.engine.connect() as conn:
            pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                      for name in ("journal_mode", "synchronous", "foreign_keys",
                                   "busy_timeout")}
        assert pragma == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1,
                          "busy_timeout": 30000}
    finally:
        store.close()


def test_a_sqlite_write_transaction_takes_the_write_lock_at_once(tmp_path):
    """BEGIN IMMEDIATE: a writer queues at its start instead of failing half-way."""
    path = tmp_path / "humasflow.db"
    store = Store(path)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with store.writing(), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after the commit
        other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()


def test_a_sqlite_read_does_not_take_the_write_lock(tmp_path):
    path = tmp_path / "humasflow.db"
    store = Store(path)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with store.reading() as conn:
            conn.execute(sa.select(schema.orgs)).fetchall()
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()
        store.close()


# -- time -------------------------------------------------------------------------------------


def test_time_columns_read_back_as_aware_utc(store):
    local = dt.datetime(2026, 1, 5, 9, 30, 15, 123456, tzinfo=JAKARTA)
    office = Office(store, clock=SteerableClock(local), environ={})
    office.establish(by="Dekan")
    office.bootstrap_admin("admin", "Admin")
    office.add_actor("rina", "Rina", roles=["staff"], by="admin")
    item = office.new_item("Zona waktu", by="rina")
    stored = office.item(item.id)
    for value in (stored.created_at, stored.step_started_at, stored.due_at,
                  office.history(item.id)[0].at,
                  office.revisions()[0]["established_at"], office.revisions()[0]["effective_from"]):
        assert value.tzinfo is not None
        assert value.utcoffset() == dt.timedelta(0)
    assert stored.created_at == local
    assert stored.created_at.hour == 2  # 09:30 in Jakarta is 02:30 UTC
    assert stored.created_at.microsecond == 123456
    assert stored.due_at - stored.created_at == dt.timedelta(minutes=5)


def test_utc_datetime_refuses_naive_times():
    column = UTCDateTime()
    dialect = sa.create_engine("sqlite://").dialect
    with pytest.raises(ValueError, match="naive"):
        column.process_bind_param(dt.datetime(2026, 1, 5, 9, 0), dialect)
    aware = dt.datetime(2026, 1, 5, 9, 0, tzinfo=JAKARTA)
    assert column.process_bind_param(aware, dialect) == dt.datetime(2026, 1, 5, 2, 0)


# -- optimistic locking -----------------------------------------------------------------------


def test_applying_a_move_at_a_stale_version_is_a_conflict_and_writes_nothing(office):
    item = office.new_item("Versi", by="rina")
    item2, head = office._store.item_with_head(office.org, item.id)
    event = Event(org=office.org, stream="", seq=0, at=office.clock(), actor="rina",
                  action="revise", from_state="concept", to_state="concept",
                  data={"text": "x"})
    changed = attrs.evolve(item2, post=attrs.evolve(item2.post, text="x"))
    with pytest.raises(ConflictError) as caught, office._store.writing() as conn:
        office._store.apply(conn, changed, item2.version + 1, head, event, new_step=False)
    assert caught.value.expected_version == item2.version + 1
    assert office.item(item.id) == item2
    assert len(office.history(item.id)) == 1
    with office._store.writing() as conn:
        office._store.apply(conn, changed, item2.version, head, event, new_step=False)
    assert office.item(item.id).version == 2
    assert office.verify().ok


def test_a_stale_expected_version_from_a_form_is_a_conflict(office):
    item = office.new_item("Formulir", by="rina")
    office.complete(item.id, by="rina", text="Konsep")
    with pytest.raises(ConflictError):
        office.revise(item.id, by="rina", text="Dari formulir lama", expected_version=1)
    assert office.act(item.id, "revise", by="rina", text="Baru", expected_version=2).version == 3
