"""Which connection a write runs on: one kept per store for a thread's writes in turn,
the pool for writers at the same moment (PostgreSQL), never a parent's in a forked child.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest
import sqlalchemy as sa

from humasflow.storage.store import Store


def _identity(store: Store, conn: sa.Connection) -> int:
    """The server session (PostgreSQL) or the driver connection (SQLite) of ``conn``."""
    if store.is_postgres:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    return id(conn.connection.driver_connection)


def test_writes_in_turn_share_one_connection(store: Store) -> None:
    seen = []
    for _ in range(3):
        with store.writing() as conn:
            seen.append(_identity(store, conn))
    assert len(set(seen)) == 1


@pytest.mark.postgres
def test_postgres_writers_at_the_same_moment_do_not_wait_for_each_other(
        pg_store: Store) -> None:
    store = pg_store
    holding, done = threading.Event(), threading.Event()
    release = threading.Event()
    other: list[int] = []

    def first() -> None:
        with store.writing() as conn:
            other.append(_identity(store, conn))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(10)

        def second() -> None:
            with store.writing() as conn:
                other.append(_identity(store, conn))
            done.set()

        threading.Thread(target=second).start()
        # The second writer finishes while the first still holds its transaction.
        assert done.wait(10)
        # And a write begun inside another on one thread runs beside it.
        with store.writing() as outer, store.writing() as inner:
            assert _identity(store, inner) != _identity(store, outer)
    finally:
        release.set()
        thread.join(10)
    assert len(set(other)) == 2
    # Idle, the store holds its kept write connection and no other.
    assert store.engine.pool.checkedout() == 1


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_a_forked_child_reads_and_writes_on_connections_of_its_own(store: Store) -> None:
    """A web server forking its workers after the store was opened: each child must not
    use (nor close) the parent's kept write connection or its pooled ones."""
    with store.writing() as conn:
        parent_writer = _identity(store, conn)
    with store.reading() as conn:
        parent_reader = _identity(store, conn)  # back in the pool, idle, at the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connections, then leave at once
        code = 1
        try:
            os.close(read)
            with store.reading() as conn:
                seen = [_identity(store, conn)]
            with store.writing() as conn:
                seen.append(_identity(store, conn))
            os.write(write, " ".join(map(str, seen)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = [int(x) for x in pipe.read().split()]
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child) == 2
    assert not set(child) & {parent_writer, parent_reader}
    # The parent's connections are still its own, and still work.
    with store.writing() as conn:
        assert _identity(store, conn) == parent_writer
    with store.reading() as conn:
        _identity(store, conn)


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_a_forked_child_keeps_its_copy_of_an_in_memory_store() -> None:
    store = Store(":memory:")
    try:
        version = store.schema_version
        assert version > 0
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(read)
                with store.writing() as conn:
                    conn.exec_driver_sql("SELECT 1")
                os.write(write, str(store.schema_version).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as pipe:
            child = pipe.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert child == str(version)
    finally:
        store.close()
