"""The few statements of one action, compiled once per dialect and run on the driver.

An action runs three statements (read the item with the actor, update the item under
its version check, insert its event), thousands of times a minute in a busy office.
Through :meth:`Connection.execute <sqlalchemy.engine.Connection.execute>` each one pays
for a cache-key walk of the statement, a compiled-cache lookup, the execution context,
the bind and result processing and the result object, several times what the driver
itself takes. :class:`Compiled` does that work once: it compiles the statement with the
store's dialect (``statement.compile(dialect=...)``), keeps each bind's and each column's
processor (``TypeEngine.dialect_impl(...).bind_processor/result_processor``), and runs
the SQL text on the DBAPI connection of the SQLAlchemy connection's transaction
(``Connection.connection.driver_connection``). The values written and read are the ones
SQLAlchemy would write and read: the same types process them.

The statements run inside the transaction SQLAlchemy began, so commit and rollback are
its own. A driver error is raised as the :class:`sqlalchemy.exc.DBAPIError` subclass
SQLAlchemy would raise (``IntegrityError``, ``OperationalError``…), so the store's error
handling sees no difference. SQLAlchemy's ``before_cursor_execute`` event does not see
these statements.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Compiled"]


class Compiled:
    """One statement compiled for one dialect.

    Args:
        statement: A Core statement whose parameters are named ``bindparam`` s or
            literal values (no expanding ``IN`` lists); a query, or a write (with
            ``RETURNING``: its rows are read as a query's).
        dialect: The dialect of the engine it runs on.
    """

    def __init__(self, statement: sa.ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self._dialect = dialect
        # Each bind by the name it has in the SQL text (compiled.binds also holds
        # the anonymous binds of literals under a second key).
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        escaped = getattr(compiled, "escaped_bind_names", None) or {}
        names = list(compiled.positiontup) if compiled.positional and \
            compiled.positiontup is not None else list(binds)
        self._positional = bool(compiled.positional)

        def processor(name: str) -> Callable[[Any], Any] | None:
            kind = binds[name].type
            return kind.dialect_impl(dialect).bind_processor(dialect)

        # (parameter name, name in the SQL text, processor or None); a literal in the
        # statement (``state == "in_flight"``) is a bind with its value, as in SQLAlchemy.
        self._binds = [(name, escaped.get(name, name), processor(name)) for name in names]
        self._literals = {name: binds[name].value for name in names
                          if not binds[name].required}
        self._columns: list[tuple[str, Any]] = []
        self._row: Any = None
        self._results: list[Callable[[Any], Any] | None] | None = None
        # A query's columns, or those a write returns (none without RETURNING).
        selected = statement.selected_columns if isinstance(statement, sa.Select) else (
            statement.exported_columns if isinstance(statement, sa.sql.dml.UpdateBase)
            else None)
        if selected:
            self._columns = [(str(c.key), c.type) for c in selected]
            self._row = collections.namedtuple(  # type: ignore[misc]
                "Row", [key for key, _ in self._columns], rename=True)
        self._errors = dialect.loaded_dbapi.Error

    def _params(self, values: Mapping[str, Any]) -> Any:
        if self._literals:
            values = {**self._literals, **values}
        if self._positional:
            return [values[name] if p is None else p(values[name])
                    for name, _, p in self._binds]
        return {sql_name: values[name] if p is None else p(values[name])
                for name, sql_name, p in self._binds}

    def _run(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        params = self._params(values)
        driver = conn.connection.driver_connection
        try:
            cursor = driver.cursor()  # type: ignore[union-attr]
            cursor.execute(self.sql, params)
        except self._errors as exc:
            raise sa.exc.DBAPIError.instance(self.sql, params, exc, self._errors,
                                             dialect=self._dialect) from exc
        return cursor

    def rowcount(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Run a write; return the number of rows it changed."""
        cursor = self._run(conn, values)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def first(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        """Run a query; return its first row (attributes named as the columns'
        keys, values processed by their types) or ``None``."""
        cursor = self._run(conn, values)
        try:
            raw = cursor.fetchone()
            return None if raw is None else self._made(cursor, raw)
        finally:
            cursor.close()

    def all(self, conn: Connection, values: Mapping[str, Any]) -> list[Any]:
        """Run a query; return all its rows (as :meth:`first` returns one)."""
        cursor = self._run(conn, values)
        try:
            return [self._made(cursor, raw) for raw in cursor.fetchall()]
        finally:
            cursor.close()

    def rows(self, conn: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a query; return all its rows as plain tuples, each value processed by
        its column's type (for reading many rows: no row object is made)."""
        cursor = self._run(conn, values)
        try:
            raw = cursor.fetchall()
            self._processors(cursor)
            results = self._results
            assert results is not None
            if not any(results):
                return raw if isinstance(raw, list) else list(raw)
            return [tuple(v if p is None else p(v) for p, v in zip(results, row, strict=True))
                    for row in raw]
        finally:
            cursor.close()

    def _processors(self, cursor: Any) -> None:
        if self._results is None:
            # The driver's column types are known once a query has run.
            described = cursor.description
            self._results = [
                kind.dialect_impl(self._dialect).result_processor(
                    self._dialect, described[i][1])
                for i, (_, kind) in enumerate(self._columns)]

    def _made(self, cursor: Any, raw: Any) -> Any:
        self._processors(cursor)
        results = self._results
        assert results is not None
        return self._row._make([v if p is None else p(v)
                                for p, v in zip(results, raw, strict=True)])
