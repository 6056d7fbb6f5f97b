"""PostgreSQL's fast paths for a batch: new rows by COPY, row ids from the sequences in
blocks, lookups by `= ANY(array)`.

COPY and ids talk to psycopg directly, inside the session's transaction: SQLAlchemy's
executemany sends one INSERT per row (pipelined, but each parsed and executed on the
server), and its per-statement overhead is larger than a `nextval` round trip itself.
Driver errors are raised as SQLAlchemy's (IntegrityError, OperationalError), as the
pipeline expects.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import weakref
from collections import deque
from collections.abc import Collection, Iterator
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Dialect, Engine, Table, any_, bindparam
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from maildesk.common.errors import SchemaOutOfDate
from maildesk.store.bind_values import bound_rows

# The sequence is named once per pool: pg_get_serial_sequence in the select list runs
# for every id (1.27 ms for a block of 256 against 0.34 ms with the name).
_SEQUENCE_OF = "SELECT pg_get_serial_sequence(%s, 'id')"
_NEXT_IDS = "SELECT nextval(%s::regclass) FROM generate_series(1, %s)"


def among(session: Session, column: ColumnElement[Any], values: Collection[Any]) -> Any:
    """`column IN values`; on PostgreSQL `column = ANY(array)`: one parameter instead of
    one per value, which SQLAlchemy renders and psycopg parses anew for every batch."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def driver_connection(session: Session) -> Any:
    """The psycopg connection of the session's current transaction."""
    return session.connection().connection.driver_connection


@contextlib.contextmanager
def sqlalchemy_errors(statement: str) -> Iterator[None]:
    """Raise psycopg's errors as the SQLAlchemy exceptions the callers handle."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def copy_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows that share one column set with one COPY."""
    dialect = session.get_bind().dialect
    keys, values = bound_rows(dialect, table, rows, json_text=True)
    statement, types = _copy_statement(dialect, table, keys)
    cursor = driver_connection(session).cursor()
    with sqlalchemy_errors(statement), cursor, cursor.copy(statement) as copy:
        if types is not None:
            copy.set_types(types)
        for row in values:
            copy.write_row(row)


def execute_binary(session: Session, statement: str, params: tuple[Any, ...]) -> None:
    """Run one statement with psycopg's `%b` placeholders: parameters sent in binary, so
    arrays of text or bytea are copied as they are, not escaped and parsed element by
    element."""
    with sqlalchemy_errors(statement):
        driver_connection(session).execute(statement, params)


class SequencePool:
    """Ids from one table's sequence, fetched in blocks that double up to `largest` and
    kept for the next batches of this process (as PostgreSQL's own sequence CACHE keeps
    them per session): what is left when the process ends is never used, a gap."""

    def __init__(self, table: str, largest: int):
        self.table = table
        self.largest = largest
        self.block = 1  # a one-off `maildesk ingest` takes one id, not a block
        self.ids: deque[int] = deque()
        self.sequence: str | None = None
        self.lock = threading.Lock()  # mailbox workers of one daemon share the pool

    def take(self, session: Session) -> int:
        with self.lock:
            if not self.ids:
                self._fetch(session, self.block)
                self.block = min(self.block * 2, self.largest)
            return self.ids.popleft()

    def reserve(self, session: Session, count: int) -> None:
        """Have at least `count` ids at hand, fetched in one round trip if short."""
        with self.lock:
            if len(self.ids) < count:
                self._fetch(session, count - len(self.ids))

    def _fetch(self, session: Session, count: int) -> None:
        if self.sequence is None:
            self.sequence = sequence_of(session, self.table)
        self.ids.extend(next_ids(session, self.sequence, count))


_pools: weakref.WeakKeyDictionary[Engine, dict[str, SequencePool]] = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


def sequence_pool(session: Session, table: str, largest: int) -> SequencePool:
    """The pool of ids for `table` of the session's engine (one per engine and table)."""
    engine = session.get_bind()
    with _pools_lock:
        pools = _pools.setdefault(engine, {})  # type: ignore[arg-type]
        if table not in pools:
            pools[table] = SequencePool(table, largest)
        return pools[table]


def sequence_of(session: Session, table: str) -> str:
    """The name of the sequence that numbers `table`.id."""
    with sqlalchemy_errors(_SEQUENCE_OF):
        row = driver_connection(session).execute(_SEQUENCE_OF, (table,)).fetchone()
    if row is None or row[0] is None:
        raise SchemaOutOfDate(
            f"table {table} has no sequence for its id column; run `maildesk db upgrade`"
        )
    return str(row[0])


def next_ids(session: Session, sequence: str, count: int) -> list[int]:
    """`count` new ids from `sequence`, in one round trip."""
    with sqlalchemy_errors(_NEXT_IDS):
        cursor = driver_connection(session).execute(_NEXT_IDS, (sequence, count), prepare=True)
        return [row[0] for row in cursor.fetchall()]


# The binary COPY format sends values as the server keeps them (no text to escape on
# our side, no timestamps or numbers to parse on the server's); the type names tell
# psycopg how to write each column. JSON goes as its text, which is json's binary form.
_BINARY_TYPES = {
    "INTEGER": "int4",
    "BIGINT": "int8",
    "SMALLINT": "int2",
    "BOOLEAN": "bool",
    "TEXT": "text",
    "VARCHAR": "text",
    "JSON": "text",
    "BYTEA": "bytea",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "FLOAT": "float8",
    "DOUBLE PRECISION": "float8",
}


@functools.cache
def _copy_statement(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[str, tuple[str, ...] | None]:
    """The COPY statement, binary with the columns' type names when all are known."""
    quote = dialect.identifier_preparer
    names = ", ".join(quote.format_column(table.c[key]) for key in keys)
    copy = f"COPY {quote.format_table(table)} ({names}) FROM STDIN"
    types = tuple(_BINARY_TYPES.get(_type_name(dialect, table.c[key].type), "") for key in keys)
    if "" in types:
        return copy, None
    return f"{copy} (FORMAT BINARY)", types


def _type_name(dialect: Dialect, type_: Any) -> str:
    """The column type as PostgreSQL names it, without a length: VARCHAR(320) -> VARCHAR."""
    return type_.compile(dialect=dialect).split("(")[0].strip()
