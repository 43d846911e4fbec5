"""Statements that every shopper request runs, run on the database driver itself.

SQLAlchemy's connection, execution context and result cost three times the CPU of a statement on
PostgreSQL (a page view's read: 0.26 ms against 0.08; a checkout's insert spent a fifth of its CPU
there). A prepared statement is compiled once, for one database; its parameters and columns are
converted by their own types, as SQLAlchemy would, and a driver's error is raised as SQLAlchemy
raises it (IntegrityError for a duplicate key, a dead connection dropped from the pool).
"""
from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar, cast

from sqlalchemy import Insert, Table, bindparam, exc, insert, literal, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.expression import Executable

S = TypeVar("S", bound=Executable)


class Prepared:
    """One statement compiled for one database, run on a pooled connection's driver connection."""

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql = str(compiled)
        self._dialect = dialect
        self._order: tuple[str, ...] | None = tuple(compiled.positiontup) if compiled.positional else None
        self._bind_names = tuple(compiled.binds)
        self._fixed = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        # Columns whose Python-side default (an INSERT) or onupdate (an UPDATE) SQLAlchemy would compute.
        self._defaults = tuple((column.key, column.default) for column in compiled.insert_prefetch) + tuple(
            (column.key, column.onupdate) for column in compiled.update_prefetch)
        self._converters = {name: converter for name, bind in compiled.binds.items()
                            if (converter := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        selected = getattr(statement, "exported_columns", None)  # a SELECT's columns, or what a write RETURNs
        self._names = tuple(selected.keys()) if selected is not None else ()
        self._types = tuple(column.type.dialect_impl(dialect) for column in selected) if selected is not None else ()
        self._row: Any = namedtuple("Row", self._names, rename=True)  # type: ignore[misc]  # rows by name, as SQLAlchemy's
        self._options = {"prepare": True} if dialect.name == "postgresql" else {}  # psycopg: at its first run
        self._results: tuple[Callable[[Any], Any] | None, ...] | None = None

    def first(self, connection: PoolProxiedConnection, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row's columns by name, or None without one."""
        cursor = connection.cursor()
        try:
            self._execute(connection, cursor, values)
            row = cursor.fetchone()
            converters = self._results or self._result_converters(cursor.description)
        finally:
            cursor.close()
        if row is None:
            return None
        return {name: value if convert is None else convert(value)
                for name, value, convert in zip(self._names, row, converters, strict=True)}

    def run(self, connection: Connection, values: Mapping[str, Any]) -> Ran:
        """What the statement wrote and returned, on ``connection`` (in whatever transaction it is in)."""
        pooled = connection.connection
        cursor = pooled.cursor()
        try:
            self._execute(pooled, cursor, values, connection)
            # Only the rows asked for: SQLAlchemy may have compiled an INSERT to return its key as well.
            rows = cursor.fetchall() if self._names and cursor.description is not None else []
            count = int(cursor.rowcount)
            converters = (self._results or self._result_converters(cursor.description)) if rows else ()
        finally:
            cursor.close()
        return Ran(count, [self._row._make(value if convert is None else convert(value)
                                           for value, convert in zip(row, converters, strict=True)) for row in rows])

    def _execute(self, pooled: PoolProxiedConnection, cursor: Any, values: Mapping[str, Any],
                 seen_by: Connection | None = None) -> None:
        parameters = self._parameters(values)
        events = seen_by is not None and bool(seen_by.dispatch.before_cursor_execute or seen_by.dispatch.after_cursor_execute)
        if events:
            seen_by.dispatch.before_cursor_execute(seen_by, cursor, self.sql, parameters, None, False)  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, parameters, **self._options)
        except self._dialect.loaded_dbapi.Error as error:
            raise self._raised(error, pooled) from error
        if events:
            seen_by.dispatch.after_cursor_execute(seen_by, cursor, self.sql, parameters, None, False)  # type: ignore[union-attr]

    def _parameters(self, values: Mapping[str, Any]) -> Any:
        given = {**self._fixed, **values}
        for name, default in self._defaults:
            if name not in values:
                given[name] = default.arg(None) if default.is_callable else default.arg  # a callable's context is unused
        converted = {name: convert(given[name]) if (convert := self._converters.get(name)) else given[name]
                     for name in self._bind_names}
        return converted if self._order is None else tuple(converted[name] for name in self._order)

    def _result_converters(self, description: Any) -> tuple[Callable[[Any], Any] | None, ...]:
        self._results = tuple(kind.result_processor(self._dialect, column[1])
                              for kind, column in zip(self._types, description, strict=True))
        return self._results

    def _raised(self, error: Any, connection: PoolProxiedConnection) -> exc.StatementError:
        dead = self._dialect.is_disconnect(error, connection.dbapi_connection, None)
        if dead:
            connection.invalidate(error)
        raised = exc.DBAPIError.instance(self.sql, None, error, self._dialect.loaded_dbapi.Error, connection_invalidated=dead)
        return cast(exc.StatementError, raised)


@dataclass(frozen=True, slots=True)
class Ran:
    """A statement's outcome: the rows it wrote, and the rows it returned (by name or position)."""

    rowcount: int
    rows: list[Any]

    def first(self) -> Any | None:
        return self.rows[0] if self.rows else None

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise exc.NoResultFound("expected one row") if not self.rows else exc.MultipleResultsFound("expected one row")
        return self.rows[0][0]


_BUILT: dict[tuple[Executable, str], Prepared] = {}
# The statements shopper requests run, with the one database each is for (None: any), compiled by warm().
_HOT: list[tuple[Executable, str | None]] = []


def hot(statement: S, only: str | None = None) -> S:
    """Mark a module's constant statement as one that shopper requests run (``only`` for one database's
    dialect): a server worker compiles it before its first shopper, see warm()."""
    _HOT.append((statement, only))
    return statement


def warm(dialect: Dialect) -> None:
    """Compile every hot statement for ``dialect``: a fresh worker's first purchase compiled a dozen,
    some 20 ms of CPU while the shoppers of a rush waited (gateway/web/warmup.py)."""
    for statement, only in _HOT:
        if only in (None, dialect.name):
            prepared(statement, dialect)


def prepared(statement: Executable, dialect: Dialect) -> Prepared:
    """``statement`` (a module's constant, built once) compiled for ``dialect``, once per process."""
    key = (statement, dialect.name)
    found = _BUILT.get(key)
    if found is None:
        found = _BUILT.setdefault(key, Prepared(statement, dialect))
    return found


def insert_of(table: Any, names: tuple[str, ...], returning: tuple[Any, ...] = ()) -> Insert:
    """A hot INSERT of the named columns, each from the parameter of its name, for ``run`` (the columns not
    named get their Python-side defaults, as SQLAlchemy would give them; an unnamed one would not be compiled)."""
    target: Table = getattr(table, "__table__", table)
    statement = insert(target).values({name: bindparam(name) for name in names})
    return hot(statement.returning(*returning) if returning else statement)


def insert_from(table: Any, source: Any, values: Mapping[str, Any], now: Any) -> Insert:
    """An INSERT of one row for each row of ``source`` (a CTE), its columns from ``values`` (SQL
    expressions), the rest from the column's own Python-side default: a constant as itself, a callable
    one (the time of writing) as ``now``. An INSERT ... SELECT gets no defaults from SQLAlchemy, so a
    NOT NULL column left without either is refused here, when the statement is built."""
    target: Table = getattr(table, "__table__", table)
    columns = dict(values)
    for column in target.columns:
        if column.key in columns or column.primary_key:
            continue
        default: Any = column.default
        if default is not None and getattr(default, "is_scalar", False):
            columns[column.key] = literal(default.arg, column.type)
        elif default is not None and getattr(default, "is_callable", False):
            columns[column.key] = now
        elif not column.nullable and column.server_default is None:
            raise ValueError(f"{target.name}.{column.key} has no value")
    return insert(target).from_select(list(columns), select(*columns.values()).select_from(source), include_defaults=False)


def run(connection: Connection, statement: Executable, values: Mapping[str, Any]) -> Ran:
    """Run a module's constant ``statement`` on ``connection``, in the transaction of its block."""
    return prepared(statement, connection.dialect).run(connection, values)
