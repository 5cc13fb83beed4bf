"""The store: SQLAlchemy Core over a SQLite file or a PostgreSQL server, one code path.

Every write happens in one short transaction. An item's row is updated only if its
``version`` is still the one that was read (optimistic locking), together with the
append of its next hash-chained event, so a concurrent change gives
:class:`~humasflow.errors.ConflictError` and never a lost update.

SQLite files are opened in WAL mode with ``synchronous=FULL`` (a committed action
survives a power cut) and write transactions start with ``BEGIN IMMEDIATE`` so that
writers queue instead of failing half-way. A writer waits at most ``busy_timeout``
seconds for another's lock (on PostgreSQL this is the ``lock_timeout``); then the action
fails with :class:`~humasflow.errors.StoreLocked` and nothing is written. Reading never
waits for a writer, and opening a store that is up to date takes no write lock.

Every driver error leaves the store as a :class:`~humasflow.errors.StorageError` that
says what happened (a locked database, a file that is not a database, a refused value).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import attrs
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine

from humasflow.errors import ConflictError, ItemChanged, StorageError, StoreLocked
from humasflow.i18n import _
from humasflow.models import (
    Actor,
    ChannelConfig,
    ContentItem,
    Event,
    PostContent,
    Publication,
    content_digest_of_json,
)
from humasflow.storage import rows
from humasflow.storage import schema as t
from humasflow.storage.driver import Compiled

__all__ = ["DEFAULT_BUSY_TIMEOUT", "Store", "database_url"]

#: How long (seconds) a writer waits for another's lock before giving up.
DEFAULT_BUSY_TIMEOUT = 30.0


def database_url(target: str | Path) -> str:
    """Turn a file path or a URL into an SQLAlchemy URL.

    ``"humas.db"`` becomes ``"sqlite:///humas.db"``; ``postgresql://…`` URLs use the
    psycopg (3) driver.
    """
    text = str(target)
    if text == ":memory:":
        return "sqlite://"
    if "://" not in text:
        return f"sqlite:///{text}"
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    return text


class Store:
    """Durable storage of organisations, SOP revisions, actors, items and records.

    Args:
        target: A SQLite file path, an SQLAlchemy URL, or an :class:`Engine`.
        migrate: Bring the schema up to date on open (default). A store that is up to
            date is only read.
        busy_timeout: How many seconds a write waits for a lock another connection
            holds before it fails with :class:`~humasflow.errors.StoreLocked` (SQLite's
            busy timeout, PostgreSQL's ``lock_timeout``). Default 30; 0 fails at once.

    Raises:
        StorageError: The store cannot be opened (not a database, a directory, locked
            while it needs migrating…).
    """

    def __init__(self, target: str | Path | Engine, *, migrate: bool = True,
                 busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        if (isinstance(busy_timeout, bool) or not isinstance(busy_timeout, (int, float))
                or not 0 <= busy_timeout <= 86400):
            raise ValueError(_("busy_timeout is {value!r}; give seconds from 0 to 86400")
                             .format(value=busy_timeout))
        self.busy_timeout = float(busy_timeout)
        if isinstance(target, Engine):
            self.engine = target
        else:
            if not str(target).strip():
                raise StorageError(_("the store's target is empty; give a SQLite file path "
                                     "(e.g. humasflow.db), ':memory:' or a database URL"))
            url = database_url(target)
            path = sa.engine.make_url(url).database if url.startswith("sqlite") else None
            if path and path != ":memory:" and Path(path).is_dir():
                raise StorageError(_("cannot open the store {path!r}: it is a directory; give "
                                     "the path of a SQLite file (e.g. humasflow.db) in it")
                                   .format(path=path))
            if path and path != ":memory:" and not Path(path).expanduser().parent.is_dir():
                folder = str(Path(path).expanduser().parent)
                raise StorageError(_(
                    "cannot open the store {path!r}: the folder {folder!r} does not exist; "
                    "create it first (mkdir -p {folder}), or give a path in a folder that "
                    "exists").format(path=path, folder=folder))
            options: dict[str, Any] = {}
            if url in ("sqlite://", "sqlite:///:memory:"):
                # One shared connection, or every connection would see its own empty database.
                options = {"poolclass": sa.pool.StaticPool,
                           "connect_args": {"check_same_thread": False}}
            try:
                self.engine = sa.create_engine(url, **options)
            except ImportError as exc:
                if url.split("://", 1)[0] == "postgresql+psycopg":
                    raise StorageError(_(
                        "cannot open the store {url!r}: the PostgreSQL driver (psycopg) is "
                        "not installed; install it with: pip install 'humasflow[postgres]'")
                        .format(url=_safe(url))) from exc
                raise StorageError(_("cannot open store {url!r}: {error}").format(
                    url=_safe(url), error=exc)) from exc
            except sa.exc.ArgumentError as exc:
                raise StorageError(_("cannot open store {url!r}: {error}").format(
                    url=_safe(url), error=exc)) from exc
        self.target = _safe(self.engine.url.render_as_string(hide_password=False))
        if self.engine.dialect.name == "sqlite":
            self.target = self.engine.url.database or ":memory:"
            _tune_sqlite(self.engine, self.busy_timeout)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        if self.is_postgres:
            _tune_postgres(self.engine, self.busy_timeout)
        # SQLite has one writer at a time: this process's writers queue here, woken the
        # moment the lock is free, instead of in SQLite's busy handler, which sleeps in
        # steps of up to 100 ms. The database's own lock still guards other processes.
        self._write_lock = None if self.is_postgres else threading.RLock()
        # With it, SQLite's writes share one connection, open until the store is closed.
        # PostgreSQL's writers run side by side: the first to find this lock free takes
        # the kept connection, the others take one from the pool and never wait.
        self._kept_lock = threading.Lock() if self.is_postgres else None
        self._writer: Connection | None = None
        self._writer_busy = False
        _OPEN_STORES.add(self)
        if migrate:
            try:
                self.migrate()
            except BaseException:
                # No Store is returned, so nobody could close the connections it opened.
                if not isinstance(target, Engine):
                    self.engine.dispose()
                raise

    def close(self) -> None:
        """Release the store's connections."""
        _OPEN_STORES.discard(self)
        lock = self._write_lock or self._kept_lock
        if lock is not None and lock.acquire(timeout=self.busy_timeout):
            try:
                if self._writer is not None:
                    with contextlib.suppress(Exception):
                        self._writer.close()
                    self._writer = None
            finally:
                lock.release()
        self.engine.dispose()

    @property
    def _driven(self) -> _DrivenStatements:
        """The statements of one action, compiled for this store's dialect."""
        built: _DrivenStatements | None = self.__dict__.get("_driven_statements")
        if built is None:
            built = self.__dict__["_driven_statements"] = _DrivenStatements(self.engine.dialect)
        return built

    @property
    def uuid(self) -> str:
        """The store's identity: a UUID made when the store was created (or migrated)."""
        cached: str | None = getattr(self, "_uuid", None)
        if cached is None:
            with self.reading() as conn:
                cached = str(conn.execute(sa.select(t.store_meta.c.value)
                                          .where(t.store_meta.c.key == "uuid")).scalar_one())
            self._uuid = cached
        return cached

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read: on SQLite one transaction (one snapshot of the file); on PostgreSQL
        each statement on its own (autocommit), which sees what was committed when it
        began, as every statement of a ``READ COMMITTED`` transaction does, without the
        round trips of ``BEGIN`` and ``COMMIT``. Reads that need one snapshot across
        statements on PostgreSQL take ``REPEATABLE READ`` themselves (:meth:`record`,
        the evaluation report)."""
        try:
            with self.engine.connect() as conn:
                if self.is_postgres:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                with conn.begin():
                    yield conn
        except _DRIVER_ERRORS as exc:
            raise self._error(exc, "read") from exc

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on any error.

        On SQLite the writers of one :class:`Store` take turns on an in-process lock
        before ``BEGIN IMMEDIATE``, waiting for it at most ``busy_timeout`` seconds.

        Raises:
            StoreLocked: The write lock stayed taken longer than the busy timeout.
        """
        lock = self._write_lock
        if lock is None:
            kept = self._kept_lock
            assert kept is not None
            if not kept.acquire(blocking=False):
                # Another thread's write holds the kept connection (or this thread's,
                # one level up): a connection from the pool, without waiting.
                with self._writing() as conn:
                    yield conn
                return
            try:
                with self._kept_writer() as conn:
                    yield conn
            finally:
                kept.release()
            return
        if not lock.acquire(timeout=self.busy_timeout):
            raise StoreLocked(self.target, self.busy_timeout)
        try:
            if self._writer_busy:
                # A write begun inside another on this thread: a connection of its own.
                with self._writing() as conn:
                    yield conn
                return
            self._writer_busy = True
            try:
                with self._kept_writer() as conn:
                    yield conn
            finally:
                self._writer_busy = False
        finally:
            lock.release()

    @contextmanager
    def _kept_writer(self) -> Iterator[Connection]:
        """A transaction on the store's write connection, kept open between writes (only
        with the write lock, or on PostgreSQL the kept connection's lock, held): no pool
        round trip per action."""
        conn = self._writer
        try:
            if conn is None:
                conn = self._writer = self.engine.connect().execution_options(
                    humasflow_write=True)
            rows.take(conn)  # nothing left over from an earlier transaction
            with conn.begin():
                yield conn
            rows.take(conn)
        except BaseException as exc:
            # After any failure the next write starts on a fresh connection.
            self._writer = None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            if isinstance(exc, _DRIVER_ERRORS):
                raise self._error(exc, "written") from exc
            raise

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(humasflow_write=True)
                rows.take(conn)  # nothing left over from an earlier transaction
                try:
                    with conn.begin():
                        yield conn
                finally:
                    rows.take(conn)
        except _DRIVER_ERRORS as exc:
            raise self._error(exc, "written") from exc

    def _error(self, exc: Exception, doing: str) -> StorageError:
        """The :class:`StorageError` that says what a driver error means."""
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        target = self.target
        if _is_locked(orig):
            return StoreLocked(self.target, self.busy_timeout, postgres=self.is_postgres)
        if isinstance(exc, (sa.exc.DataError, OverflowError)) or isinstance(
                orig, sqlite3.DataError) or (
                type(orig).__name__ == "DataError" or _sqlstate(orig).startswith("22")):
            return StorageError(_(
                "the store {target} refused a value: {error}; nothing was written (the value "
                "is not one humasflow checks: report it, with the action that failed)").format(
                    target=target, error=first))
        if isinstance(exc, sa.exc.IntegrityError):
            return StorageError(_(
                "the store {target} refused the change because someone else made a "
                "conflicting one at the same moment ({error}); nothing was written: try "
                "again").format(target=target, error=first))
        if "file is not a database" in first:
            return StorageError(_(
                "the store {target} is not a humasflow store: the file is not a SQLite "
                "database; point --db at a humasflow store, or at a new file to create one "
                "with `humasflow init`").format(target=target))
        missing = _MISSING_DATABASE.search(first)
        if missing is not None or _sqlstate(orig) == "3D000":
            url = self.engine.url
            name = missing.group(1) if missing is not None else url.database
            server = f"{url.host or 'localhost'}:{url.port or 5432}"
            return StorageError(_(
                "the store {target} does not exist: the PostgreSQL server {server} has no "
                "database {name!r}; create it (createdb {name}, or CREATE DATABASE), or "
                "point the URL at a database that exists").format(
                    target=self.target, server=server, name=name))
        if "unable to open database file" in first:
            return StorageError(_(
                "cannot open the store {target}: its folder does not exist, it is a "
                "directory, or this user may not open it").format(target=target))
        if "readonly database" in first:
            return StorageError(_(
                "the store {target} cannot be written: the file (or its folder) is "
                "read-only for this user").format(target=target))
        if doing == "read":
            message = _("the store {target} cannot be read: {error}")
        elif doing == "written":
            message = _("the store {target} cannot be written: {error}")
        else:
            message = _("the store {target} cannot be {doing}: {error}")
        return StorageError(message.format(target=target, doing=doing, error=first))

    # -- migrations ---------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version the store is at (0 for an empty database)."""
        with self.reading() as conn:
            if not sa.inspect(conn).has_table("schema_migrations"):
                return 0
            return int(conn.execute(sa.select(sa.func.max(t.schema_migrations.c.version)))
                       .scalar() or 0)

    def migrate(self) -> int:
        """Apply the migrations the store lacks, in order; return the new version.

        Safe when several processes start at once: PostgreSQL takes an advisory lock,
        SQLite an immediate write lock.
        """
        latest = t.MIGRATIONS[-1][0]
        # The usual case, a store already up to date, is only read: opening it takes no
        # write lock, so read-only commands never wait for a busy writer.
        with self.reading() as conn:
            current = self._version(conn)
        if current > latest:
            raise _too_new(current, latest)
        if current == latest:
            return latest
        if current == 0 and not self.is_postgres:
            with self.reading() as conn:
                others = sorted(sa.inspect(conn).get_table_names())
            if others:
                # A SQLite file is one application's database: never add tables to another's.
                raise StorageError(_(
                    "the store {target} is not a humasflow store: it is the SQLite "
                    "database of something else (tables: {tables}); "
                    "point --db at a humasflow store, or at a new file").format(
                        target=self.target, tables=", ".join(others[:5])))
        with self.writing() as conn:
            if self.is_postgres:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7148101)"))
            if not sa.inspect(conn).has_table("schema_migrations"):
                t.schema_migrations.create(conn)
            current = self._version(conn)
            if current > latest:
                raise _too_new(current, latest)
            for version, name, apply in t.MIGRATIONS:
                if version > current:
                    apply(conn)
                    conn.execute(t.schema_migrations.insert().values(
                        version=version, name=name, applied_at=_utcnow()))
        return latest

    @staticmethod
    def _version(conn: Connection) -> int:
        if not sa.inspect(conn).has_table("schema_migrations"):
            return 0
        return int(conn.execute(sa.select(sa.func.max(t.schema_migrations.c.version)))
                   .scalar() or 0)

    def _upsert(self, conn: Connection, table: sa.Table, keys: Mapping[str, Any],
                values: Mapping[str, Any], *, replace: bool = True) -> None:
        """Insert a row, or (its key already there) update it with ``values`` (or, unless
        ``replace``, leave it), in one statement: two first creations at the same moment
        cannot both insert and one of them fail."""
        dialect = self.engine.dialect.name
        if dialect in ("postgresql", "sqlite"):
            insert = _dialect_insert(dialect)(table)
            statement = insert.values(**keys, **values)
            if replace:
                statement = statement.on_conflict_do_update(index_elements=list(keys),
                                                            set_=dict(values))
            else:
                statement = statement.on_conflict_do_nothing(index_elements=list(keys))
            conn.execute(statement)
            return
        where = [table.c[k] == v for k, v in keys.items()]
        if replace:
            if conn.execute(table.update().where(*where).values(**values)).rowcount:
                return
        elif conn.execute(sa.select(*[table.c[k] for k in keys]).where(*where)).first():
            return
        conn.execute(table.insert().values(**keys, **values))

    # -- organisations ------------------------------------------------------------------

    def ensure_org(self, org: str, *, name: str = "", timezone: str = "Asia/Jakarta") -> None:
        """Create the organisation if it does not exist yet."""
        with self.reading() as conn:
            if conn.execute(sa.select(t.orgs.c.id).where(t.orgs.c.id == org)).first():
                return  # the common case takes no write lock
        with self.writing() as conn:
            # Two first opens of a new organisation at once: the second inserts nothing.
            self._upsert(conn, t.orgs, {"id": org}, {"name": name or org, "timezone": timezone,
                                                     "version": 0, "head_hash": ""},
                         replace=False)

    def orgs(self) -> list[str]:
        """The ids of all organisations in the store."""
        with self.reading() as conn:
            return list(conn.execute(sa.select(t.orgs.c.id).order_by(t.orgs.c.id)).scalars())

    def lock_org(self, conn: Connection, org: str) -> None:
        """Lock the organisation's row until ``conn``'s transaction ends, so that checks of
        who administers and the change they allow are one (a SQLite write transaction
        holds the whole database anyway)."""
        conn.execute(sa.select(t.orgs.c.id).where(t.orgs.c.id == org).with_for_update())

    def append_org_event(self, conn: Connection, event: Event) -> Event:
        """Append ``event`` to the organisation's own stream inside ``conn``'s transaction.

        The event carries the digests of the rows written before it in the transaction.
        """
        return append_org_event(conn, event)

    def checkpoint(self, conn: Connection, event: Event) -> Event:
        """Append a ``checkpoint`` to the organisation's stream recording every item
        stream's length and head (``data["streams"]``) and their digest."""
        return append_org_event(conn, checkpoint_event(conn, event))

    def record(self, org: str, *, visits: bool = False,
               ) -> tuple[list[Event], dict[str, tuple[int, str]],
                          dict[str, list[dict[str, Any]]]]:
        """The organisation's events, stream heads and tracked rows, read in one snapshot
        (for :func:`humasflow.audit.verify`); with ``visits``, its step visits too."""
        try:
            with self.engine.connect() as conn:
                if self.is_postgres:
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    query = (sa.select(t.events).where(t.events.c.org == org)
                             .order_by(t.events.c.stream, t.events.c.seq, t.events.c.id))
                    events = [_event(r) for r in conn.execute(query)]
                    tables = rows.current_rows(conn, org)
                    if visits:
                        # Derived from the events: verify derives them again.
                        derived = sa.select(t.step_visits).where(t.step_visits.c.org == org)
                        tables["step_visits"] = [dict(r._mapping)
                                                 for r in conn.execute(derived)]
                    return events, _heads(conn, org), tables
        except sa.exc.OperationalError as exc:
            raise StorageError(_("the store cannot be read: {error}").format(
                error=exc.orig)) from exc

    # -- SOP revisions ------------------------------------------------------------------

    def add_sop_revision(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Insert an SOP revision; return its id."""
        row = conn.execute(t.sop_revisions.insert().values(**values)
                           .returning(*t.sop_revisions.c)).one()
        rows.stash(conn, "sop_revisions", str(row.id), dict(row._mapping))
        return int(row.id)

    def sop_revisions(self, org: str,
                      conn: Connection | None = None) -> list[Mapping[str, Any]]:
        """The organisation's SOP revisions, oldest first."""
        query = (sa.select(t.sop_revisions).where(t.sop_revisions.c.org == org)
                 .order_by(t.sop_revisions.c.id))
        if conn is not None:
            return [dict(r._mapping) for r in conn.execute(query)]
        with self.reading() as c:
            return [dict(r._mapping) for r in c.execute(query)]

    def sop_revision(self, revision_id: int) -> Mapping[str, Any] | None:
        """One SOP revision by id."""
        with self.reading() as conn:
            row = conn.execute(sa.select(t.sop_revisions)
                               .where(t.sop_revisions.c.id == revision_id)).first()
            return dict(row._mapping) if row else None

    # -- actors -------------------------------------------------------------------------

    def put_actor(self, conn: Connection, actor: Actor) -> None:
        """Insert or replace an actor and their roles."""
        values = {"name": actor.name, "email": actor.email,
                  "roles": ",".join(sorted(actor.roles)), "active": actor.active,
                  "language": actor.language}
        self._upsert(conn, t.actors, {"org": actor.org, "id": actor.id}, values)
        self._stash_row(conn, t.actors, actor.id,
                        t.actors.c.org == actor.org, t.actors.c.id == actor.id)

    def _stash_row(self, conn: Connection, table: sa.Table, key: str,
                   *where: Any) -> None:
        """Digest a row as it now stands, for the event recording its change."""
        row = conn.execute(sa.select(table).where(*where)).one()
        rows.stash(conn, table.name, key, dict(row._mapping))

    def actor(self, org: str, actor_id: str, conn: Connection | None = None) -> Actor | None:
        """One actor of the organisation, or ``None``."""
        params = {"b_org": org, "b_id": actor_id}
        if conn is None:
            with self.reading() as c:
                row = c.execute(_SELECT_ACTOR, params).first()
        else:
            row = conn.execute(_SELECT_ACTOR, params).first()
        return _actor(row) if row else None

    def actors(self, org: str, conn: Connection | None = None) -> list[Actor]:
        """All actors of the organisation."""
        query = sa.select(t.actors).where(t.actors.c.org == org).order_by(t.actors.c.id)
        if conn is not None:
            return [_actor(r) for r in conn.execute(query)]
        with self.reading() as c:
            return [_actor(r) for r in c.execute(query)]

    # -- items --------------------------------------------------------------------------

    def create_item(self, conn: Connection, item: ContentItem, event: Event) -> tuple[int, Event]:
        """Insert a new item with its first event; return the new id and sealed event."""
        values = _item_values(item)
        values.pop("id")
        row = conn.execute(t.items.insert().values(**values, head_hash="")
                           .returning(*t.items.c)).one()
        new_id = int(row.id)
        written = {"items": {str(new_id): rows.row_digests("items", dict(row._mapping))}}
        sealed = attrs.evolve(event, stream=f"item:{new_id}", seq=1, prev_hash="",
                              data=rows.with_rows(event.data, written)).sealed()
        conn.execute(t.items.update().where(t.items.c.id == new_id)
                     .values(head_hash=sealed.hash))
        conn.execute(t.events.insert().values(**_event_row(sealed)))
        # The organisation's stream records every creation, so an item deleted together
        # with all its events is still found missing.
        self.append_org_event(conn, Event(
            org=item.org, stream="org", seq=0, at=event.at, actor=event.actor,
            action="item", data={"item": new_id, "stream": sealed.stream,
                                 "hash": sealed.hash}))
        return new_id, sealed

    def item(self, org: str, item_id: int, conn: Connection | None = None) -> ContentItem | None:
        """One item of the organisation, or ``None`` (also for another org's item)."""
        query = sa.select(t.items).where(t.items.c.id == item_id, t.items.c.org == org)
        if conn is None:
            with self.reading() as c:
                row = c.execute(query).first()
        else:
            row = conn.execute(query).first()
        return _item(row) if row else None

    def item_with_head(self, org: str, item_id: int) -> tuple[ContentItem, str] | None:
        """An item together with the hash of its latest event."""
        with self.reading() as conn:
            row = conn.execute(_SELECT_ITEM, {"b_id": item_id, "b_org": org}).first()
            return (_item(row), row.head_hash) if row else None

    def snapshot(self, conn: Connection, org: str, item_id: int,
                 actor_id: str) -> tuple[Actor | None, tuple[ContentItem, str] | None]:
        """The acting actor and the item with its head hash, read in ``conn``.

        The item's row stays locked until the transaction ends (PostgreSQL: ``FOR
        UPDATE``; SQLite's write transaction holds the database), so a posting claim
        cannot slip in between an action's checks and its write.
        """
        actor, found, _ = self.snapshot_with_org(conn, org, item_id, actor_id)
        return actor, found

    def snapshot_with_org(self, conn: Connection, org: str, item_id: int, actor_id: str,
                          ) -> tuple[Actor | None, tuple[ContentItem, str] | None, int | None]:
        """:meth:`snapshot`, and the version of the organisation's stream (which every
        change of its channels, actors or SOP advances), read in the same statement;
        ``None`` if there is no such item."""
        row = self._driven.snapshot.first(conn, {"b_id": item_id, "b_org": org,
                                                 "b_actor": actor_id})
        if row is None:  # no such item: say whether the actor exists, for the right error
            return self.actor(org, actor_id, conn), None, None
        actor = None
        if row.a_id is not None:
            actor = Actor(id=row.a_id, name=row.a_name, email=row.a_email,
                          roles=frozenset(r for r in row.a_roles.split(",") if r), org=org,
                          active=bool(row.a_active), language=row.a_language)
        return actor, (_item(row), row.head_hash), row.o_version

    def posted_between(self, org: str, since: dt.datetime,
                       until: dt.datetime) -> list[tuple[ContentItem, dict[str, str]]]:
        """The items posted after ``since`` until ``until`` (by when they reached the
        posted state), oldest first, each with its channels' public URLs."""
        i, p = t.items.c, t.publications.c
        query = (sa.select(t.items).where(i.org == org, i.state == "posted",
                                          i.step_started_at > since,
                                          i.step_started_at <= until)
                 .order_by(i.step_started_at, i.id))
        with self.reading() as conn:
            found = [_item(r) for r in conn.execute(query)]
            urls: dict[int, dict[str, str]] = {item.id: {} for item in found}
            if found:
                for row in conn.execute(
                        sa.select(p.item_id, p.channel, p.url).where(
                            p.org == org, p.item_id.in_(list(urls)), p.url.is_not(None))
                        .order_by(p.item_id, p.channel)):
                    urls[row.item_id][row.channel] = row.url
        return [(item, urls[item.id]) for item in found]

    def items(
        self,
        org: str,
        *,
        states: Sequence[str] = (),
        assignee: str | None = None,
        overdue_at: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[ContentItem]:
        """The organisation's items, newest first, filtered.

        ``overdue_at`` keeps the items late at that time
        (:meth:`~humasflow.models.ContentItem.is_overdue`): an item waiting for a
        posting time still to come is not late.
        """
        query = sa.select(t.items).where(t.items.c.org == org)
        if states:
            query = query.where(t.items.c.state.in_(list(states)))
        if assignee is not None:
            query = query.where(t.items.c.assignee == assignee)
        if overdue_at is not None:
            # A first cut in SQL; the deadline of a scheduled item is judged below.
            query = query.where(t.items.c.due_at < overdue_at,
                                t.items.c.state.not_in(["posted", "cancelled"]),
                                sa.or_(t.items.c.post_at.is_(None),
                                       t.items.c.post_at < overdue_at))
        query = query.order_by(t.items.c.id.desc())
        if limit is not None and overdue_at is None:
            query = query.limit(limit)
        with self.reading() as conn:
            found = [_item(r) for r in conn.execute(query)]
        if overdue_at is not None:
            found = [i for i in found if i.is_overdue(overdue_at)][:limit]
        return found

    def apply(self, conn: Connection, item: ContentItem, expected_version: int,
              prev_hash: str, event: Event, *, new_step: bool) -> Event:
        """Record a move: update the item if still at ``expected_version``, append its event.

        Raises:
            ConflictError: The item changed since it was read; nothing was written.
        """
        values, encoded = _move_values(item)
        if new_step:
            # A new step: the breach report and any posting schedule start afresh.
            values.update(step_started_at=item.step_started_at, due_at=item.due_at,
                          breach_reported=None, post_at=None, post_by=None)
        written = rows.take(conn)
        written.setdefault("items", {})[str(item.id)] = rows.row_digests("items", values,
                                                                          encoded=encoded)
        sealed, data_json = event.sealed_as(stream=f"item:{item.id}",
                                            seq=expected_version + 1, prev_hash=prev_hash,
                                            data=rows.with_rows(event.data, written))
        # The JSON columns are written as the text already encoded for the digests.
        values.update(encoded, version=sealed.seq, head_hash=sealed.hash,
                      b_id=item.id, b_org=item.org, b_version=expected_version)
        hot = self._driven
        if new_step:
            # The visit the move ends, from the item's row before the update (its step
            # and when it began there), under the same version check.
            values.update(v_at=event.at, v_by=event.actor, v_outcome=event.action,
                          v_reason=event.note)
        if hot.moves is not None:
            # PostgreSQL: the visit, the update and the event in one statement (one round
            # trip instead of three), the event inserted only if the update matched.
            values.update(_event_binds(sealed, data_json))
            if _appended(hot.moves[new_step], conn, values) != 1:
                raise ConflictError(str(item.id), expected_version)
            return sealed
        if new_step and hot.insert_visit.rowcount(conn, values) != 1:
            raise ConflictError(str(item.id), expected_version)
        updated = (hot.update_new_step if new_step else hot.update_same_step).rowcount(
            conn, values)
        if updated != 1:
            raise ConflictError(str(item.id), expected_version)
        try:
            hot.insert_event.rowcount(conn, {**_event_row(sealed), "data": data_json})
        except sa.exc.IntegrityError as exc:
            raise ConflictError(str(item.id), expected_version) from exc
        return sealed

    def set_assignee(self, conn: Connection, org: str, item_id: int,
                     assignee: str | None) -> None:
        """Change who is responsible for an item (the caller records the event)."""
        conn.execute(t.items.update().where(t.items.c.id == item_id, t.items.c.org == org)
                     .values(assignee=assignee))
        rows.stash(conn, "items", str(item_id), {"assignee": assignee})

    def mark_breach(self, org: str, item_id: int, version: int) -> bool:
        """Mark the item's current step as reported late; ``False`` if already reported."""
        with self.writing() as conn:
            updated = conn.execute(
                t.items.update()
                .where(t.items.c.id == item_id, t.items.c.org == org,
                       t.items.c.version == version,
                       # apply() clears the mark when the item enters a new step; an
                       # action that keeps the step (a revision in place) keeps the breach.
                       t.items.c.breach_reported.is_(None))
                .values(breach_reported=version))
            return updated.rowcount == 1

    # -- events -------------------------------------------------------------------------

    def events(self, org: str, stream: str | None = None) -> Iterator[Event]:
        """The organisation's events, by stream then sequence (or one stream)."""
        query = sa.select(t.events).where(t.events.c.org == org)
        if stream is not None:
            query = query.where(t.events.c.stream == stream)
        query = query.order_by(t.events.c.stream, t.events.c.seq, t.events.c.id)
        with self.reading() as conn:
            rows = conn.execute(query).fetchall()
        return (_event(r) for r in rows)

    def heads(self, org: str) -> dict[str, tuple[int, str]]:
        """Each stream's expected (last seq, last hash), from the items and org rows."""
        with self.reading() as conn:
            return _heads(conn, org)

    # -- channels and publications ------------------------------------------------------

    def put_channel(self, conn: Connection, channel: ChannelConfig) -> None:
        """Insert or replace a channel configuration."""
        values = {"publisher": channel.publisher, "settings": dict(channel.settings),
                  "credentials": dict(channel.credentials), "active": channel.active}
        self._upsert(conn, t.channels, {"org": channel.org, "name": channel.name}, values)
        self._stash_row(conn, t.channels, channel.name,
                        t.channels.c.org == channel.org, t.channels.c.name == channel.name)

    def put_action(self, conn: Connection, values: Mapping[str, Any]) -> dict[str, Any]:
        """Insert or replace a corrective action (``values`` hold the whole row)."""
        keys = {"org": values["org"], "id": values["id"]}
        self._upsert(conn, t.corrective_actions, keys,
                     {k: v for k, v in values.items() if k not in keys})
        table = t.corrective_actions
        self._stash_row(conn, table, str(values["id"]), table.c.org == values["org"],
                        table.c.id == values["id"])
        row = conn.execute(sa.select(table).where(table.c.org == values["org"],
                                                  table.c.id == values["id"])).one()
        return dict(row._mapping)

    def actions(self, org: str, conn: Connection | None = None) -> list[dict[str, Any]]:
        """The organisation's corrective actions, by id."""
        table = t.corrective_actions
        query = sa.select(table).where(table.c.org == org).order_by(table.c.id)
        if conn is not None:
            return [dict(r._mapping) for r in conn.execute(query)]
        with self.reading() as c:
            return [dict(r._mapping) for r in c.execute(query)]

    def channels(self, org: str, conn: Connection | None = None) -> dict[str, ChannelConfig]:
        """The organisation's channels by name."""
        if conn is None:
            with self.reading() as c:
                rows = c.execute(_SELECT_CHANNELS, {"b_org": org}).fetchall()
        else:
            rows = conn.execute(_SELECT_CHANNELS, {"b_org": org}).fetchall()
        return {r.name: ChannelConfig(name=r.name, publisher=r.publisher,
                                      settings=r.settings, credentials=r.credentials,
                                      org=r.org, active=bool(r.active)) for r in rows}

    def publications(self, org: str, item_id: int,
                     conn: Connection | None = None) -> dict[str, Publication]:
        """The per-channel records of one item."""
        params = {"b_org": org, "b_item": item_id}
        if conn is None:
            with self.reading() as c:
                rows = self._driven.publications.all(c, params)
        else:
            rows = self._driven.publications.all(conn, params)
        return {r.channel: _publication(r) for r in rows}

    def posting_state(self, org: str, item_id: int, conn: Connection | None = None,
                      ) -> tuple[ContentItem, str, dict[str, Publication]] | None:
        """An item, the hash of its latest event and its per-channel records, read
        together (one snapshot); ``None`` if the organisation has no such item."""
        if conn is None:
            with self.reading() as c:
                return self.posting_state(org, item_id, c)
        row = self._driven.item.first(conn, {"b_id": item_id, "b_org": org})
        if row is None:
            return None
        return _item(row), row.head_hash, self.publications(org, item_id, conn)

    def ensure_publications(self, org: str, item_id: int, channels: Sequence[str],
                            now: dt.datetime) -> None:
        """Create a ``pending`` record for each channel that has none yet."""
        query = sa.select(t.publications.c.channel).where(t.publications.c.item_id == item_id)
        with self.reading() as conn:
            if set(channels) <= set(conn.execute(query).scalars()):
                return  # the usual case on a retry: no write transaction needed
        with self.writing() as conn:
            # Lock the item's row first: two workers starting the same item would
            # otherwise both see no record and both insert (a key violation on PostgreSQL).
            conn.execute(sa.select(t.items.c.id).where(t.items.c.id == item_id)
                         .with_for_update())
            self.add_publications(conn, org, item_id, channels, now)

    def add_publications(self, conn: Connection, org: str, item_id: int,
                         channels: Sequence[str], now: dt.datetime) -> None:
        """Create a ``pending`` record for each channel that has none yet, in ``conn``'s
        transaction, which must hold the item's row locked (it updated or selected it
        for update): otherwise two writers could both insert."""
        # Read first, then insert only what is missing: not ``INSERT … ON CONFLICT``,
        # which on PostgreSQL waits for a transaction that changed an existing record
        # and has not committed (a channel's outcome being recorded), while that one
        # waits for the item's row this transaction holds: a deadlock.
        have = set(conn.execute(sa.select(t.publications.c.channel)
                                .where(t.publications.c.item_id == item_id)).scalars())
        missing = [c for c in dict.fromkeys(channels) if c not in have]
        if missing:
            conn.execute(t.publications.insert(), [
                {"item_id": item_id, "channel": c, "org": org, "state": "pending",
                 "attempts": 0, "updated_at": now, "progress": {}} for c in missing])

    def claim(self, org: str, item_id: int, channel: str, worker: str, now: dt.datetime,
              lease_until: dt.datetime, *, gate: tuple[str, str],
              due: dt.datetime | None = None) -> Publication | None:
        """Take one channel's next attempt: :meth:`claim_channels` for one channel; its
        record in flight, or ``None`` if it was not claimable.

        Raises:
            ItemChanged: The item moved or changed since it was checked; nothing was
                claimed.
        """
        return self.claim_channels(org, item_id, [channel], worker, now, lease_until,
                                   gate=gate, due=due).get(channel)

    def claim_channels(self, org: str, item_id: int, channels: Sequence[str], worker: str,
                       now: dt.datetime, lease_until: dt.datetime, *, gate: tuple[str, str],
                       due: dt.datetime | None = None) -> dict[str, Publication]:
        """Take the next attempt of each of the item's ``channels`` that can be taken, in
        one transaction, recording them in flight before any call.

        Only a ``pending`` record, or a ``failed`` one whose retry time has come (by
        ``due``, default ``now``), can be claimed; the conditional update makes each
        claim exclusive between workers. A channel another worker holds (or whose row
        another transaction has locked, on PostgreSQL) is left out, not waited for.

        ``gate`` is the (state, :attr:`~humasflow.models.ContentItem.content_digest`) the
        posting checks saw. The claims hold only if the item still has both, checked in
        this transaction with the item's row locked (PostgreSQL: ``FOR SHARE``, which an
        action's ``FOR UPDATE`` waits for; SQLite: the write transaction), so a revise or
        cancel either commits first and nothing is claimed, or waits for it and then sees
        the channels in flight and is refused.

        Returns:
            The records claimed, in flight, by channel (empty: none could be claimed).

        Raises:
            ItemChanged: The item moved or changed since it was checked; nothing was
                claimed.
        """
        if not channels:
            return {}
        params = {"b_org": org, "b_item": item_id, "b_channels": list(channels),
                  "b_due": due or now}
        hot = _ClaimStatements.get(self)
        with self.writing() as conn:
            # The channels' rows first, then the item's: the order every other writer of
            # both (outcome recording) takes too, so the two cannot deadlock.
            found = list(conn.execute(hot.claimable, params).scalars())
            if not found:
                return {}
            state, digest = gate
            if conn.execute(hot.gate, {"b_id": item_id, "b_org": org, "b_state": state,
                                       "b_digest": digest}).first() is None:
                raise ItemChanged(str(item_id), channels[0] if len(channels) == 1 else "")
            values = {**params, "b_channels": found, "b_worker": worker,
                      "b_lease": lease_until, "b_now": now}
            if hot.returning:
                claimed = conn.execute(hot.take, values).fetchall()
            else:
                conn.execute(hot.take, values)
                claimed = conn.execute(hot.taken, values).fetchall()
            return {row.channel: _publication(row) for row in sorted(
                claimed, key=lambda r: r.channel) if row.claimed_by == worker
                and row.state == "in_flight"}

    def update_publication(self, conn: Connection, org: str, item_id: int, channel: str,
                           values: Mapping[str, Any], *, states: Sequence[str] = (),
                           claimed_by: str | None = None) -> bool:
        """Change one channel's record if it is in one of ``states`` (and held by
        ``claimed_by``); return whether it changed."""
        statement = self._driven.update_publication(tuple(values), len(states),
                                                    claimed_by is not None)
        params = _publication_params(values, org, item_id, channel, states, claimed_by)
        changed = statement.rowcount(conn, params) == 1
        if changed:
            rows.stash(conn, "publications", f"{item_id}/{channel}", values)
        return changed

    def settle_publication(self, conn: Connection, org: str, item_id: int, channel: str,
                           values: Mapping[str, Any], *, states: Sequence[str] = (),
                           claimed_by: str | None = None,
                           attempt: int | None = None) -> Publication | None:
        """:meth:`update_publication`, only while the record's attempt is number
        ``attempt`` (when given); return the record as changed, or ``None`` if it did
        not change. Read back by the update itself where the database can
        (``RETURNING``)."""
        returning = bool(self.engine.dialect.update_returning)
        statement = self._driven.update_publication(
            tuple(values), len(states), claimed_by is not None, attempt=attempt is not None,
            returning=returning)
        params = _publication_params(values, org, item_id, channel, states, claimed_by,
                                     attempt)
        if returning:
            row = statement.first(conn, params)
        else:
            row = self._driven.publication.first(conn, params) if statement.rowcount(
                conn, params) == 1 else None
        if row is None:
            return None
        rows.stash(conn, "publications", f"{item_id}/{channel}", values)
        return _publication(row)

    def save_progress(self, org: str, item_id: int, channel: str, worker: str,
                      progress: Mapping[str, Any], *, lease_until: dt.datetime | None = None,
                      attempt: int | None = None) -> bool:
        """Persist a multi-step publisher's progress at once (its own transaction).

        It is saved only while ``worker`` holds the channel's in-flight attempt (number
        ``attempt``, when given); with ``lease_until`` the lease is renewed as well.

        Returns:
            Whether it was saved; ``False`` means the claim was lost.
        """
        values: dict[str, Any] = {"progress": dict(progress)}
        if lease_until is not None:
            values["lease_until"] = lease_until
        with self.writing() as conn:
            if attempt is not None:
                held = self.publication_for_update(conn, org, item_id, channel)
                if held is None or held.attempts != attempt:
                    return False
            return self.update_publication(conn, org, item_id, channel, values,
                                           states=("in_flight",), claimed_by=worker)

    def expired_leases(self, org: str, now: dt.datetime,
                       item_id: int | None = None) -> list[Publication]:
        """In-flight records whose worker stopped answering (lease ran out)."""
        p = t.publications.c
        query = sa.select(t.publications).where(p.org == org, p.state == "in_flight",
                                                p.lease_until < now)
        if item_id is not None:
            query = query.where(p.item_id == item_id)
        with self.reading() as conn:
            return [_publication(r) for r in conn.execute(query)]

    def renew_lease(self, org: str, item_id: int, channel: str, worker: str, attempt: int,
                    lease_until: dt.datetime) -> bool:
        """Extend an in-flight attempt's lease while ``worker`` still holds attempt number
        ``attempt``; ``False`` means the claim was lost (it ran out and was taken over)."""
        with self.writing() as conn:
            return self._driven.renew_lease.rowcount(conn, {
                "b_org": org, "b_item": item_id, "b_channel": channel, "b_worker": worker,
                "b_attempt": attempt, "lease_until": lease_until}) == 1

    def publication_for_update(self, conn: Connection, org: str, item_id: int,
                               channel: str) -> Publication | None:
        """One channel's record, locked until ``conn``'s transaction ends (a row lock on
        PostgreSQL; a SQLite write transaction holds the whole database anyway)."""
        row = self._driven.publication_locked.first(
            conn, {"b_org": org, "b_item": item_id, "b_channel": channel})
        return _publication(row) if row is not None else None

    def due_for_posting(self, org: str | None, now: dt.datetime,
                        limit: int = 100) -> list[tuple[str, int, str]]:
        """(org, item id, authorising actor) of items a posting pass has work for.

        An ``unknown`` channel counts only when its next look-up is due
        (``next_attempt_at``): one whose platform cannot be searched has none and waits
        for a person, and a look-up that could not tell is repeated with a backoff. So
        items that wait only for a person never come back on every pass, and cannot fill
        a batch and starve the others.
        """
        i, p = t.items.c, t.publications.c
        records = sa.select(p.item_id).where(p.item_id == i.id)
        work = sa.or_(
            # Never tried, or every channel settled and the item still to be closed.
            ~sa.exists(records.where(p.state.not_in(["posted", "skipped"]))),
            sa.exists(records.where(sa.or_(
                p.state == "pending",
                sa.and_(p.state.in_(["failed", "unknown"]), p.next_attempt_at <= now),
                sa.and_(p.state == "in_flight", p.lease_until < now)))),
        )
        query = (sa.select(i.org, i.id, i.post_by)
                 .where(i.post_at <= now, i.state.not_in(["posted", "cancelled"]), work)
                 .order_by(i.post_at, i.id).limit(limit))
        if org is not None:
            query = query.where(i.org == org)
        with self.reading() as conn:
            return [(r.org, r.id, r.post_by) for r in conn.execute(query)]

    def pending_media_import(self, org: str) -> bool:
        """Whether the organisation's media recorded by path still wait to be imported."""
        with self.reading() as conn:
            row = conn.execute(sa.select(t.media_imports.c.done_at)
                               .where(t.media_imports.c.org == org)).first()
        return row is not None and row.done_at is None

    def finish_media_import(self, conn: Connection, org: str, at: dt.datetime) -> None:
        """Record that the organisation's media were imported."""
        conn.execute(t.media_imports.update().where(t.media_imports.c.org == org)
                     .values(done_at=at))

    def append_item_event(self, conn: Connection, event: Event, item_id: int, *,
                          head: Any = None) -> Event:
        """Append an event that does not move the item (publishing outcomes, schedules).

        The item's row is locked for the append, so concurrent appends queue instead of
        conflicting, and the event's ``from_state``/``to_state`` are the state the item
        is in at that moment, whatever the caller read before. ``head``: the item's
        ``version``, ``head_hash`` and ``state`` as an update in this transaction
        returned them (the row is locked already: it is not read again).
        """
        hot = self._driven
        row = head if head is not None else hot.item_head.first(conn, {"b_id": item_id})
        if row is None:
            raise sa.exc.NoResultFound("No row was found when one was required")
        # The state as it is now, with the row locked: the caller's snapshot may be older
        # than an action that moved the item meanwhile.
        sealed, data_json = attrs.evolve(event, from_state=row.state, to_state=row.state) \
            .sealed_as(stream=f"item:{item_id}", seq=row.version + 1, prev_hash=row.head_hash,
                       data=rows.with_rows(event.data, rows.take(conn)))
        head = {"version": sealed.seq, "head_hash": sealed.hash, "b_id": item_id,
                "b_version": row.version}
        if hot.append is not None:  # PostgreSQL: both in one statement, one round trip
            if _appended(hot.append, conn, {**head, **_event_binds(sealed, data_json)}) != 1:
                raise ConflictError(str(item_id), row.version)
            return sealed
        hot.bump_head.rowcount(conn, head)
        hot.insert_event.rowcount(conn, {**_event_row(sealed), "data": data_json})
        return sealed

    # -- emailed answers --------------------------------------------------------------

    def item_by_key(self, key: str) -> tuple[str, int] | None:
        """The organisation and number of the item with the global ``key``, if any."""
        with self.reading() as conn:
            row = conn.execute(sa.select(t.items.c.org, t.items.c.id)
                               .where(t.items.c.key == key)).first()
        return (row.org, row.id) if row is not None else None

    def mail_reply(self, key: str) -> str | None:
        """The outcome recorded for the reply whose Message-ID digest is ``key``."""
        with self.reading() as conn:
            return conn.execute(sa.select(t.mail_replies.c.outcome)
                                .where(t.mail_replies.c.key == key)).scalar()

    def token_used(self, nonce: str) -> bool:
        """Whether an answer with the approval token ``nonce`` was accepted."""
        with self.reading() as conn:
            return conn.execute(sa.select(t.mail_tokens.c.nonce)
                                .where(t.mail_tokens.c.nonce == nonce)).first() is not None

    def _insert_once(self, conn: Connection, table: sa.Table, values: Mapping[str, Any]) -> bool:
        """Insert ``values`` unless a row with the same key is there (or is being
        inserted by a transaction not yet committed, which this one waits for)."""
        insert = _dialect_insert("postgresql" if self.is_postgres else "sqlite")(table)
        key = next(iter(table.primary_key.columns))
        # RETURNING, not rowcount: some drivers report -1 for an insert that did nothing.
        done = conn.execute(insert.values(**values).on_conflict_do_nothing().returning(key))
        return done.first() is not None

    def claim_mail_reply(self, conn: Connection, *, key: str, org: str, message_id: str,
                         item_id: int | None, outcome: str, at: dt.datetime) -> bool:
        """Claim the reply ``key`` in ``conn``'s transaction; ``False`` if it was claimed."""
        return self._insert_once(conn, t.mail_replies, {
            "key": key, "org": org, "message_id": message_id[:998], "item_id": item_id,
            "outcome": outcome, "processed_at": at})

    def claim_mail_token(self, conn: Connection, *, nonce: str, org: str, item_id: int,
                         reply_key: str, at: dt.datetime) -> bool:
        """Claim the approval token ``nonce``; ``False`` if an answer used it already."""
        return self._insert_once(conn, t.mail_tokens, {
            "nonce": nonce, "org": org, "item_id": item_id, "reply_key": reply_key,
            "used_at": at})

    # -- the mail queue -------------------------------------------------------------

    def queue_mail(self, conn: Connection, rows_: Sequence[Mapping[str, Any]]) -> int:
        """Insert mail queue rows in ``conn``'s transaction; returns how many."""
        if rows_:
            conn.execute(t.mail_queue.insert(), [dict(r) for r in rows_])
        return len(rows_)

    def obsolete_mail(self, conn: Connection, org: str, kind: str, item_id: int,
                      reason: str) -> int:
        """Mark the queued rows of ``kind`` about an item obsolete (a newer one replaces
        them), in ``conn``'s transaction; returns how many."""
        q = t.mail_queue.c
        done = conn.execute(t.mail_queue.update()
                            .where(q.org == org, q.kind == kind, q.item_id == item_id,
                                   q.status == "queued")
                            .values(status="obsolete", last_error=reason))
        return int(done.rowcount or 0)

    def last_mail(self, conn: Connection, org: str, kind: str) -> dict[str, Any] | None:
        """The latest row of ``kind`` queued (any status), in ``conn``."""
        q = t.mail_queue.c
        row = conn.execute(sa.select(t.mail_queue).where(q.org == org, q.kind == kind)
                           .order_by(q.id.desc()).limit(1)).first()
        return dict(row._mapping) if row is not None else None

    def mark_credential_warned(self, org: str, reference: str, expires_at: dt.datetime,
                               since: dt.datetime, now: dt.datetime) -> bool:
        """Note that the holders of ``reference`` (expiring at ``expires_at``) were warned
        at ``now``; ``False`` if they were warned at ``since`` or later already (or the
        expiry changed meanwhile)."""
        e = t.credential_expiries.c
        with self.writing() as conn:
            done = conn.execute(t.credential_expiries.update().where(
                e.org == org, e.reference == reference, e.expires_at == expires_at,
                sa.or_(e.warned_for.is_(None), e.warned_for < since))
                .values(warned_for=now))
            return bool(done.rowcount)

    def mail_rows(self, org: str, *, status: str | None = None, limit: int = 100,
                  ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        """Mail queue rows of ``org``, newest first (or the rows ``ids``)."""
        q = t.mail_queue.c
        query = sa.select(t.mail_queue).where(q.org == org)
        if status is not None:
            query = query.where(q.status == status)
        if ids is not None:
            query = query.where(q.id.in_(list(ids)))
        query = query.order_by(q.id.desc()).limit(limit)
        with self.reading() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def due_mail(self, org: str, now: dt.datetime, limit: int) -> list[dict[str, Any]]:
        """Rows of ``org`` due for an attempt: queued and due, or held by a sender
        whose claim ran out; oldest due first."""
        q = t.mail_queue.c
        query = (sa.select(t.mail_queue)
                 .where(q.org == org, q.status.in_(("queued", "sending")),
                        q.next_attempt_at <= now)
                 .order_by(q.next_attempt_at, q.id).limit(limit))
        with self.reading() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def claim_mail(self, row_id: int, attempts: int, now: dt.datetime,
                   until: dt.datetime) -> bool:
        """Claim a due row for one attempt (status ``sending`` until ``until``);
        ``False`` when another sender claimed or finished it meanwhile."""
        q = t.mail_queue.c
        with self.writing() as conn:
            done = conn.execute(
                t.mail_queue.update()
                .where(q.id == row_id, q.attempts == attempts,
                       q.status.in_(("queued", "sending")), q.next_attempt_at <= now)
                .values(status="sending", next_attempt_at=until))
            return bool(done.rowcount == 1)

    def finish_mail(self, row_id: int, values: Mapping[str, Any]) -> None:
        """Record the outcome of a claimed row's attempt."""
        q = t.mail_queue.c
        with self.writing() as conn:
            conn.execute(t.mail_queue.update()
                         .where(q.id == row_id, q.status == "sending").values(**values))

    # -- credential expiry times ------------------------------------------------------

    def credential_expiries(self, org: str,
                            conn: Connection | None = None) -> dict[str, Mapping[str, Any]]:
        """The organisation's known credential expiry times, by reference."""
        query = sa.select(t.credential_expiries).where(t.credential_expiries.c.org == org)
        if conn is None:
            with self.reading() as c:
                rows = list(c.execute(query))
        else:
            rows = list(conn.execute(query))
        return {r.reference: dict(r._mapping) for r in rows}

    def put_credential_expiry(self, conn: Connection, org: str, reference: str,
                              values: Mapping[str, Any]) -> None:
        """Insert or replace the expiry record of one credential reference (a new expiry
        time is warned about afresh)."""
        e = t.credential_expiries.c
        if "expires_at" in values:
            values = {**values, "warned_for": None}
        updated = conn.execute(t.credential_expiries.update()
                               .where(e.org == org, e.reference == reference)
                               .values(**values))
        if updated.rowcount == 0:
            conn.execute(t.credential_expiries.insert().values(org=org, reference=reference,
                                                               **values))

    def set_post_at(self, conn: Connection, org: str, item_id: int,
                    when: dt.datetime | None, by: str | None, *,
                    gate: tuple[str, str] | None = None) -> Any:
        """Set (or clear) when the item is due to be posted, and by whose authority.

        With ``gate`` (state, content digest), only while the item still has both.

        Returns:
            The item's ``version``, ``head_hash`` and ``state`` after the update, where
            the database returns them (for :meth:`append_item_event`'s ``head``), else
            ``None``.

        Raises:
            ItemChanged: The item moved or changed since ``gate`` was read.
        """
        i = t.items.c
        query = t.items.update().where(i.id == item_id, i.org == org)
        if gate is not None:
            query = query.where(i.state == gate[0], i.content_digest == gate[1])
        query = query.values(post_at=when, post_by=by)
        returning = bool(self.engine.dialect.update_returning)
        result = conn.execute(query.returning(i.version, i.head_hash, i.state)
                              if returning else query)
        head = result.first() if returning else None
        if (head is None if returning else result.rowcount != 1) and gate is not None:
            raise ItemChanged(str(item_id))
        rows.stash(conn, "items", str(item_id), {"post_at": when, "post_by": by})
        return head


def _heads(conn: Connection, org: str) -> dict[str, tuple[int, str]]:
    heads = {f"item:{r.id}": (r.version, r.head_hash) for r in conn.execute(
        sa.select(t.items.c.id, t.items.c.version, t.items.c.head_hash)
        .where(t.items.c.org == org))}
    org_row = conn.execute(sa.select(t.orgs.c.version, t.orgs.c.head_hash)
                           .where(t.orgs.c.id == org)).first()
    if org_row is not None and org_row.version:
        heads["org"] = (org_row.version, org_row.head_hash)
    return heads


def append_org_event(conn: Connection, event: Event) -> Event:
    """Append ``event`` to its organisation's stream in ``conn``'s transaction (also used
    by migrations, which have no :class:`Store`)."""
    row = conn.execute(
        sa.select(t.orgs.c.version, t.orgs.c.head_hash)
        .where(t.orgs.c.id == event.org).with_for_update()
    ).one()
    sealed = attrs.evolve(event, stream="org", seq=row.version + 1,
                          prev_hash=row.head_hash,
                          data=rows.with_rows(event.data, rows.take(conn))).sealed()
    updated = conn.execute(
        t.orgs.update()
        .where(t.orgs.c.id == event.org, t.orgs.c.version == row.version)
        .values(version=sealed.seq, head_hash=sealed.hash))
    if updated.rowcount != 1:
        raise ConflictError(f"org:{event.org}", row.version)
    conn.execute(t.events.insert().values(**_event_row(sealed)))
    return sealed


def checkpoint_event(conn: Connection, event: Event) -> Event:
    """``event`` with every item stream's (length, head) of its organisation in
    ``data["streams"]`` and their digest in ``data["digest"]``."""
    query = (sa.select(t.items.c.id, t.items.c.version, t.items.c.head_hash)
             .where(t.items.c.org == event.org).order_by(t.items.c.id))
    streams = {f"item:{r.id}": [r.version, r.head_hash] for r in conn.execute(query)}
    return attrs.evolve(event, data={**event.data, "streams": streams,
                                     "digest": rows.heads_digest(streams)})


def _dialect_insert(dialect: str) -> Any:
    """The ``INSERT … ON CONFLICT`` builder of ``dialect``, imported when first needed:
    each dialect's module costs tens of milliseconds, and a store uses one."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def record_baseline(conn: Connection, note: str) -> int:
    """Append a ``baseline`` to every organisation's stream: the digests of its rows as
    they stand now (a checkpoint too), for rows no event has digested yet.

    For migrations: a store written before rows were digested, or a migration that adds
    a column to a tracked table, records one so that :func:`humasflow.audit.verify`
    explains today's rows. Returns how many organisations got one.
    """
    done = 0
    for org in list(conn.execute(sa.select(t.orgs.c.id).order_by(t.orgs.c.id)).scalars()):
        current = rows.current_rows(conn, org)
        if not any(current.values()):
            continue
        digests = {table: {rows.row_key(table, r): rows.row_digests(table, r) for r in found}
                   for table, found in current.items() if found}
        event = checkpoint_event(conn, Event(
            org=org, stream="org", seq=0, at=_utcnow(), actor="humasflow", action="baseline",
            note=note, data={"rows": digests, "items": [r["id"] for r in current["items"]]}))
        append_org_event(conn, event)
        done += 1
    return done


# Statements built once: the hot path (one action) only binds values to them.
_SELECT_ITEM = sa.select(t.items).where(t.items.c.id == sa.bindparam("b_id"),
                                        t.items.c.org == sa.bindparam("b_org"))
_SELECT_ACTOR = sa.select(t.actors).where(t.actors.c.org == sa.bindparam("b_org"),
                                          t.actors.c.id == sa.bindparam("b_id"))
_SELECT_SNAPSHOT = (
    sa.select(t.items, t.actors.c.id.label("a_id"), t.actors.c.name.label("a_name"),
              t.actors.c.email.label("a_email"), t.actors.c.roles.label("a_roles"),
              t.actors.c.active.label("a_active"), t.actors.c.language.label("a_language"),
              t.orgs.c.version.label("o_version"))
    .select_from(t.items.join(t.orgs, t.orgs.c.id == t.items.c.org)
                 .outerjoin(t.actors, sa.and_(t.actors.c.org == t.items.c.org,
                                              t.actors.c.id == sa.bindparam("b_actor"))))
    .where(t.items.c.id == sa.bindparam("b_id"), t.items.c.org == sa.bindparam("b_org")))
_SELECT_SNAPSHOT_LOCKED = _SELECT_SNAPSHOT.with_for_update(of=t.items)
_SELECT_CHANNELS = (sa.select(t.channels).where(t.channels.c.org == sa.bindparam("b_org"))
                    .order_by(t.channels.c.name))


class _ClaimStatements:
    """The statements of :meth:`Store.claim_channels`, built once per dialect."""

    _built: ClassVar[dict[tuple[bool, bool], _ClaimStatements]] = {}

    def __init__(self, postgres: bool, returning: bool) -> None:
        p, i = t.publications.c, t.items.c
        claimable = sa.or_(p.state == "pending", sa.and_(
            p.state == "failed", p.next_attempt_at <= sa.bindparam("b_due")))
        of_item = sa.and_(p.org == sa.bindparam("b_org"), p.item_id == sa.bindparam("b_item"),
                          p.channel.in_(sa.bindparam("b_channels", expanding=True)))
        self.claimable = sa.select(p.channel).where(of_item, claimable)
        self.gate = sa.select(i.id).where(
            i.id == sa.bindparam("b_id"), i.org == sa.bindparam("b_org"),
            i.state == sa.bindparam("b_state"), i.content_digest == sa.bindparam("b_digest"))
        if postgres:
            self.claimable = self.claimable.with_for_update(skip_locked=True)
            self.gate = self.gate.with_for_update(read=True)
        take = (t.publications.update().where(of_item, claimable)
                .values(state="in_flight", attempts=p.attempts + 1,
                        claimed_by=sa.bindparam("b_worker"),
                        lease_until=sa.bindparam("b_lease"), next_attempt_at=None,
                        updated_at=sa.bindparam("b_now")))
        self.returning = returning
        self.take = take.returning(*t.publications.c) if returning else take
        self.taken = sa.select(t.publications).where(of_item)

    @classmethod
    def get(cls, store: Store) -> _ClaimStatements:
        key = (store.is_postgres, bool(store.engine.dialect.update_returning))
        built = cls._built.get(key)
        if built is None:
            built = cls._built[key] = cls(*key)
        return built


def _json_text(name: str, postgres: bool) -> Any:
    """A bind of JSON already encoded: the text as it is (SQLite keeps JSON as text),
    cast to ``json`` on PostgreSQL."""
    bind = sa.bindparam(name, type_=sa.Text())
    return sa.cast(bind, sa.JSON) if postgres else bind


def _update_item(columns: Sequence[str], postgres: bool) -> sa.Update:
    c = t.items.c
    return (t.items.update()
            .where(c.id == sa.bindparam("b_id"), c.org == sa.bindparam("b_org"),
                   c.version == sa.bindparam("b_version"))
            .values({name: _json_text(name, postgres) if name in _ENCODED_COLUMNS
                     else sa.bindparam(name, type_=c[name].type) for name in columns}))


_MOVE_COLUMNS = ("title", "state", "version", "head_hash", "post", "produced", "outputs",
                 "authors", "approved_digest", "assignee", "content_digest")
#: The JSON columns a move writes as text it encoded once (:func:`_move_values`).
_ENCODED_COLUMNS = ("post", "produced", "outputs", "authors")


@attrs.frozen
class _HotStatements:
    """The statements of one move, built once per dialect."""

    update_same_step: sa.Update
    update_new_step: sa.Update
    insert_event: sa.Insert
    insert_visit: sa.Insert

    @classmethod
    def build(cls, postgres: bool) -> _HotStatements:
        event_columns = {c.name: sa.bindparam(c.name, type_=c.type)
                         for c in t.events.c if c.name != "id"}
        event_columns["data"] = _json_text("data", postgres)
        return cls(
            update_same_step=_update_item(_MOVE_COLUMNS, postgres),
            update_new_step=_update_item((*_MOVE_COLUMNS, "step_started_at", "due_at",
                                          "breach_reported", "post_at", "post_by"),
                                         postgres),
            insert_event=t.events.insert().values(event_columns),
            insert_visit=_insert_visit(postgres))


def _insert_visit(postgres: bool) -> sa.Insert:
    """The visit a move ends, read from the item's row before the move updates it
    (under the same version check)."""
    c, v = t.items.c, t.step_visits.c
    left_at = sa.bindparam("v_at", type_=v.left_at.type)
    ended = sa.select(
        c.org, c.id, c.sop_revision, c.state, c.step_started_at, left_at,
        sa.bindparam("v_by", type_=v.left_by.type),
        sa.bindparam("v_outcome", type_=v.outcome.type),
        sa.bindparam("v_reason", type_=v.reason.type),
        t.visit_seconds("postgresql" if postgres else "sqlite", left_at, c.step_started_at),
    ).where(c.id == sa.bindparam("b_id"), c.org == sa.bindparam("b_org"),
            c.version == sa.bindparam("b_version"))
    return t.step_visits.insert().from_select(
        ["org", "item_id", "sop_revision", "step", "entered_at", "left_at", "left_by",
         "outcome", "reason", "seconds"], ended)


#: By dialect: ``_HOT[store.is_postgres]``.
_HOT = {False: _HotStatements.build(False), True: _HotStatements.build(True)}


class _DrivenStatements:
    """The statements of one action compiled for one store's dialect, run on the driver
    (:mod:`humasflow.storage.driver`)."""

    def __init__(self, dialect: Any) -> None:
        postgres = dialect.name == "postgresql"
        hot = _HOT[postgres]
        self.snapshot = Compiled(_SELECT_SNAPSHOT_LOCKED if postgres else _SELECT_SNAPSHOT,
                                 dialect)
        self.update_same_step = Compiled(hot.update_same_step, dialect)
        self.update_new_step = Compiled(hot.update_new_step, dialect)
        self.insert_event = Compiled(hot.insert_event, dialect)
        self.insert_visit = Compiled(hot.insert_visit, dialect)
        # An event that does not move the item (Store.append_item_event).
        items = t.items.c
        self.item_head = Compiled(
            sa.select(items.version, items.head_hash, items.state)
            .where(items.id == sa.bindparam("b_id")).with_for_update(), dialect)
        self.item = Compiled(_SELECT_ITEM, dialect)
        p = t.publications.c
        of_item = (p.org == sa.bindparam("b_org"), p.item_id == sa.bindparam("b_item"))
        one = (*of_item, p.channel == sa.bindparam("b_channel"))
        self.publications = Compiled(sa.select(t.publications).where(*of_item)
                                     .order_by(p.channel), dialect)
        self.publication_locked = Compiled(sa.select(t.publications).where(*one)
                                           .with_for_update(), dialect)
        self.publication = Compiled(sa.select(t.publications).where(*one), dialect)
        self.renew_lease = Compiled(
            t.publications.update()
            .where(*one, p.state == "in_flight", p.claimed_by == sa.bindparam("b_worker"),
                   p.attempts == sa.bindparam("b_attempt"))
            .values(lease_until=sa.bindparam("lease_until", type_=p.lease_until.type)),
            dialect)
        self._dialect = dialect
        self._updates: dict[tuple[Any, ...], Compiled] = {}
        bump_head = (t.items.update().where(items.id == sa.bindparam("b_id"),
                                            items.version == sa.bindparam("b_version"))
                     .values(version=sa.bindparam("version", type_=items.version.type),
                             head_hash=sa.bindparam("head_hash", type_=items.head_hash.type)))
        self.bump_head = Compiled(bump_head, dialect)
        # PostgreSQL runs an update of the item's row and the insert of its event as
        # one statement (the update in a WITH clause); SQLite has no such statement,
        # and no round trip to save.
        self.moves: dict[bool, Compiled] | None = None
        self.append: Compiled | None = None
        if postgres:
            self.moves = {
                False: Compiled(_event_after(hot.update_same_step), dialect),
                True: Compiled(_event_after(hot.update_new_step,
                                            hot.insert_visit.cte("visit")), dialect)}
            self.append = Compiled(_event_after(bump_head), dialect)

    def update_publication(self, columns: tuple[str, ...], states: int, claimed: bool, *,
                           attempt: bool = False, returning: bool = False) -> Compiled:
        """The update of one channel's record setting ``columns``, if in one of
        ``states`` states (``b_state_0``…), if ``claimed``, held by ``b_claimed_by``, and
        with ``attempt``, at attempt number ``b_attempt``; with ``returning``, giving the
        record as changed. Compiled once for each such shape."""
        key = (columns, states, claimed, attempt, returning)
        found = self._updates.get(key)
        if found is None:
            p = t.publications.c
            where = [p.org == sa.bindparam("b_org"), p.item_id == sa.bindparam("b_item"),
                     p.channel == sa.bindparam("b_channel")]
            if states:
                where.append(p.state.in_([sa.bindparam(f"b_state_{n}")
                                          for n in range(states)]))
            if claimed:
                where.append(p.claimed_by == sa.bindparam("b_claimed_by"))
            if attempt:
                where.append(p.attempts == sa.bindparam("b_attempt"))
            statement = t.publications.update().where(*where).values(
                {name: sa.bindparam(name, type_=p[name].type) for name in columns})
            if returning:
                statement = statement.returning(*t.publications.c)
            found = self._updates[key] = Compiled(statement, self._dialect)
        return found


_SECRET_PARAMETER = re.compile(r"pass|secret|token|key|cred", re.I)


def _safe(url: str) -> str:
    """The URL with any password masked, for messages: the one of ``user:password@``,
    and every query parameter whose name looks like a secret's (``password=``)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return url.split("@")[-1] if "@" in url else url
    query = {k: ("***" if _SECRET_PARAMETER.search(k) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


#: What a driver raises, wrapped by SQLAlchemy or (from an event handler) bare.
_DRIVER_ERRORS = (sa.exc.OperationalError, sa.exc.DataError, sa.exc.IntegrityError,
                  sa.exc.DatabaseError, sqlite3.Error, OverflowError)


#: PostgreSQL's words when the URL names a database the server does not have.
_MISSING_DATABASE = re.compile(r'database "([^"]*)" does not exist')


def _sqlstate(orig: object) -> str:
    return str(getattr(orig, "sqlstate", "") or "")


#: The stores open in this process, for :func:`_after_fork_in_child`.
_OPEN_STORES: weakref.WeakSet[Store] = weakref.WeakSet()
#: What a forked child inherited of its parent's connections: referenced for good, so
#: that neither closing nor collecting them ends the parent's sessions or, on SQLite,
#: touches its write-ahead log.
_FORKED_AWAY: list[Any] = []


def _after_fork_in_child() -> None:
    """In a forked child, give every open store connections of its own: the parent's
    kept write connection and pool are set aside, never used here, and the locks (which
    a thread of the parent may have held at the fork) are new. An in-memory store keeps
    its connection: the child's copy of it is the child's copy of the database."""
    for store in list(_OPEN_STORES):
        store._writer_busy = False
        # An in-memory database lives in its one connection, which the child has a copy
        # of (nothing is shared with the parent): it keeps it, or its database is gone.
        if not isinstance(store.engine.pool, sa.pool.StaticPool):
            _FORKED_AWAY.append((store._writer, store.engine.pool))
            store._writer = None
            store.engine.dispose(close=False)  # a new pool; the old one's connections untouched
        if store._write_lock is not None:
            store._write_lock = threading.RLock()
        if store._kept_lock is not None:
            store._kept_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_locked(orig: object) -> bool:
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig)
        return "database is locked" in text or "database is busy" in text
    return _sqlstate(orig) == "55P03"  # PostgreSQL: lock_not_available (lock_timeout)


def _too_new(current: int, latest: int) -> StorageError:
    return StorageError(_(
        "the store is at schema version {current}, newer than this humasflow knows "
        "({latest}); upgrade humasflow").format(current=current, latest=latest))


def _tune_postgres(engine: Engine, busy_timeout: float) -> None:
    milliseconds = int(busy_timeout * 1000)

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # A lock wait longer than the busy timeout fails (lock_not_available) instead of
        # hanging; 0 would mean "wait for ever" to PostgreSQL, so it waits 1 ms.
        cursor = dbapi_conn.cursor()
        cursor.execute(f"SET lock_timeout = {max(milliseconds, 1)}")
        cursor.close()
        dbapi_conn.commit()


def _tune_sqlite(engine: Engine, busy_timeout: float) -> None:
    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, decide how transactions start.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # The busy timeout first: switching a new file to WAL takes a lock that several
        # processes opening the store at once wait for like any other.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        _switch_to_wal(cursor, busy_timeout)
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa_event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("humasflow_write", False)
        # Straight to the driver: this runs once per transaction, on the hot path.
        conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if write else "BEGIN")


def _switch_to_wal(cursor: Any, busy_timeout: float) -> None:
    """``PRAGMA journal_mode=WAL``, waiting up to ``busy_timeout`` for the lock it needs.

    On a file no connection has switched yet, SQLite answers "database is locked" at
    once when another connection is switching it or reading it, without calling the
    busy handler: several processes (or threads) opening a new store at the same moment
    would fail. The pragma is retried until the deadline instead.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _utcnow() -> dt.datetime:
    # Only for the migration bookkeeping row: not domain time.
    return dt.datetime.now(dt.timezone.utc)


def _actor(row: Any) -> Actor:
    roles = frozenset(r for r in row.roles.split(",") if r)
    return Actor(id=row.id, name=row.name, email=row.email, roles=roles, org=row.org,
                 active=bool(row.active), language=row.language)


def _item_values(item: ContentItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "key": item.key,
        "org": item.org,
        "sop_revision": item.sop_revision,
        "title": item.title,
        "state": item.state,
        "version": item.version,
        "post": item.post.to_dict(),
        "produced": [m.to_dict() for m in item.produced],
        "outputs": dict(item.outputs),
        "authors": sorted(item.authors),
        "approved_digest": item.approved_digest,
        "assignee": item.assignee,
        "created_by": item.created_by,
        "created_at": item.created_at,
        "step_started_at": item.step_started_at,
        "due_at": item.due_at,
        "content_digest": item.content_digest,
    }


def _move_values(item: ContentItem) -> tuple[dict[str, Any], dict[str, str]]:
    """The columns a move writes (:data:`_MOVE_COLUMNS` but the chain's head), and the
    JSON text of its JSON columns, encoded once: for the row's digests, its content
    digest and the write alike."""
    post = item.post.to_dict()
    produced = [m.to_dict() for m in item.produced]
    outputs = dict(item.outputs)
    authors = sorted(item.authors)
    encoded = {"post": rows.encode_json(post), "produced": rows.encode_json(produced),
               "outputs": rows.encode_json(outputs), "authors": rows.encode_json(authors)}
    values = {
        "title": item.title, "state": item.state, "version": item.version, "post": post,
        "produced": produced, "outputs": outputs, "authors": authors,
        "approved_digest": item.approved_digest, "assignee": item.assignee,
        "content_digest": content_digest_of_json(encoded["post"], encoded["produced"],
                                                 encoded["outputs"], item.approved_digest),
    }
    return values, encoded


def _item(row: Any) -> ContentItem:
    return ContentItem(
        id=row.id, key=row.key or "", org=row.org, title=row.title, state=row.state,
        version=row.version,
        sop_revision=row.sop_revision, post=PostContent.from_dict(row.post),
        produced=row.produced, outputs=row.outputs, authors=row.authors,
        approved_digest=row.approved_digest, assignee=row.assignee,
        created_by=row.created_by, created_at=row.created_at,
        step_started_at=row.step_started_at, due_at=row.due_at,
        post_at=row.post_at, post_by=row.post_by,
    )


def _publication_params(values: Mapping[str, Any], org: str, item_id: int, channel: str,
                        states: Sequence[str], claimed_by: str | None,
                        attempt: int | None = None) -> dict[str, Any]:
    """The parameters of :meth:`_DrivenStatements.update_publication`'s statements."""
    return {**values, "b_org": org, "b_item": item_id, "b_channel": channel,
            "b_claimed_by": claimed_by, "b_attempt": attempt,
            **{f"b_state_{n}": state for n, state in enumerate(states)}}


def _event_after(change: sa.Update, *also: Any) -> sa.Insert:
    """One PostgreSQL statement: ``change`` (an update of one item's row under its
    version check) and the insert of its event, which inserts nothing if the update
    matched no row; the event's values are bound as ``e_<column>``. ``also``: more
    statements for the same ``WITH`` clause (all of them see the rows as they were
    before any of them, as PostgreSQL runs data-modifying ``WITH`` statements)."""
    moved = change.returning(t.items.c.id).cte("moved")
    names = [c.name for c in t.events.c if c.name != "id"]
    values = [_json_text("e_data", True) if name == "data"
              else sa.bindparam(f"e_{name}", type_=t.events.c[name].type) for name in names]
    insert = t.events.insert().from_select(names, sa.select(*values).select_from(moved))
    return insert.add_cte(*also) if also else insert


def _event_binds(event: Event, data_json: str) -> dict[str, Any]:
    """The values of :func:`_event_after`'s event."""
    return {f"e_{name}": value for name, value in _event_row(event).items()
            if name != "data"} | {"e_data": data_json}


def _appended(statement: Compiled, conn: Connection, values: Mapping[str, Any]) -> int:
    """Run a statement of :func:`_event_after`; the number of events it inserted. An
    event whose place in its stream is taken (another writer appended first: a
    unique violation on ``events``) inserts none; any other integrity error is raised."""
    try:
        return statement.rowcount(conn, values)
    except sa.exc.IntegrityError as exc:
        orig = exc.orig
        if getattr(orig, "sqlstate", None) == "23505" and getattr(  # unique_violation
                getattr(orig, "diag", None), "table_name", None) == "events":
            return 0
        raise


def _event_row(event: Event) -> dict[str, Any]:
    return {
        "org": event.org, "stream": event.stream, "seq": event.seq, "at": event.at,
        "actor": event.actor, "action": event.action, "from_state": event.from_state,
        "to_state": event.to_state, "note": event.note, "data": dict(event.data),
        "prev_hash": event.prev_hash, "hash": event.hash,
    }


def _event(row: Any) -> Event:
    return Event(org=row.org, stream=row.stream, seq=row.seq, at=row.at, actor=row.actor,
                 action=row.action, from_state=row.from_state, to_state=row.to_state,
                 note=row.note, data=row.data, prev_hash=row.prev_hash, hash=row.hash)


def _publication(row: Any) -> Publication:
    return Publication(item_id=row.item_id, channel=row.channel, state=row.state,
                       attempts=row.attempts, platform_id=row.platform_id, url=row.url,
                       error_class=row.error_class, error_message=row.error_message,
                       updated_at=row.updated_at, next_attempt_at=row.next_attempt_at,
                       claimed_by=row.claimed_by, lease_until=row.lease_until,
                       progress=row.progress or {})
