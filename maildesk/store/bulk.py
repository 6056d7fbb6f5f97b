"""Rows written in bulk: ids handed out before insert, one statement per table.

Ticket and message ids are allocated first (TicketIds, RowIds), so every row of a
batch can be built as a plain dict that refers to the others, then inserted with
one statement per table and column set.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Dialect, Table, func, select
from sqlalchemy.orm import Session

from maildesk.store.bind_values import bound_rows
from maildesk.store.blob_rows import insert_new_blobs
from maildesk.store.models import (
    Attachment,
    Base,
    Event,
    Message,
    OutboxEntry,
    Participant,
    Receipt,
    ThreadRef,
    Ticket,
)
from maildesk.store.pg_bulk import copy_rows, sequence_pool


class RowIds:
    """Hands out primary keys before insert, so rows can refer to each other in one batch.

    On PostgreSQL they come from the table's sequence in blocks of up to `largest` per
    round trip, kept from batch to batch (`pg_bulk.SequencePool`): ids left when the
    daemon stops are skipped, as a rolled-back insert skips its id. On SQLite the
    transaction holds the write lock (BEGIN IMMEDIATE), so they count up from the
    largest id, without gaps.
    """

    def __init__(self, session: Session, model: type[Base], table: str, *, largest: int = 256):
        self.session = session
        self.model = model
        self.pool = (
            sequence_pool(session, table, largest)
            if session.get_bind().dialect.name == "postgresql"
            else None
        )
        self._next: int | None = None

    def reserve(self, count: int) -> None:
        """On PostgreSQL: fetch ids for `count` rows ahead in one round trip (the ones
        this batch leaves are kept for the next). Elsewhere there is nothing to fetch."""
        if self.pool is not None and count > 0:
            self.pool.reserve(self.session, count)

    def allocate(self) -> int:
        if self.pool is not None:
            return self.pool.take(self.session)
        if self._next is None:
            self._next = (self.session.scalar(select(func.max(self.model.id))) or 0) + 1  # type: ignore[attr-defined]
        allocated, self._next = self._next, self._next + 1
        return allocated


class TicketIds(RowIds):
    """Ticket ids. A ticket's reference (MD-42) is its id, so on PostgreSQL blocks stay
    small (16), and a batch reserves as many as it may open tickets: a daemon that stops
    skips at most the numbers its last batch reserved and did not use."""

    def __init__(self, session: Session):
        super().__init__(session, Ticket, "tickets", largest=16)


class Rows:
    """Rows to insert, per model, in an order that satisfies foreign keys."""

    ORDER = (Ticket, Participant, Message, Attachment, Event, ThreadRef, Receipt, OutboxEntry)

    def __init__(self) -> None:
        self.rows: dict[type[Base], list[dict[str, Any]]] = defaultdict(list)
        self.blobs: dict[str, bytes] = {}

    def blob(self, sha256: str, data: bytes) -> None:
        self.blobs.setdefault(sha256, data)

    def add(self, model: type[Base], **values: Any) -> dict[str, Any]:
        """A row to insert; columns it leaves out get the model's defaults, as an ORM
        insert would give them (the SQLite fast path writes exactly the keys given)."""
        for name, default in _defaults(model.__table__).items():  # type: ignore[arg-type]
            if name not in values:
                values[name] = default()
        self.rows[model].append(values)
        return values

    def insert(self, session: Session) -> None:
        insert_new_blobs(session, self.blobs)
        for model in self.ORDER:
            rows = self.rows.get(model)
            if rows:
                for group in _same_keys(rows):
                    bulk_insert(session, model.__table__, group)  # type: ignore[arg-type]


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows that share one column set: one COPY on PostgreSQL, one DB-API
    executemany of pre-converted tuples on SQLite, SQLAlchemy's multi-row INSERT elsewhere."""
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql":
        copy_rows(session, table, rows)
    elif dialect.name == "sqlite":
        keys, params = bound_rows(dialect, table, rows)
        connection.exec_driver_sql(_insert_sql(dialect, table, keys), params)
    else:
        session.execute(table.insert(), rows)


@functools.cache
def _defaults(table: Table) -> dict[str, Callable[[], Any]]:
    """Column name -> a function giving the column's Python-side default (scalar or callable)."""
    found: dict[str, Callable[[], Any]] = {}
    for column in table.columns:
        default: Any = column.default
        if default is None or column.primary_key:
            continue
        if default.is_scalar:
            found[column.key] = functools.partial(_same, default.arg)
        elif default.is_callable:  # SQLAlchemy wraps `default=list` to take a context
            found[column.key] = functools.partial(default.arg, None)
    return found


def _same(value: Any) -> Any:
    return value


@functools.cache
def _insert_sql(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> str:
    """The INSERT statement in qmark style."""
    quote = dialect.identifier_preparer
    names = ", ".join(quote.format_column(table.c[key]) for key in keys)
    marks = ", ".join("?" for _ in keys)
    return f"INSERT INTO {quote.format_table(table)} ({names}) VALUES ({marks})"


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows split into runs with the same columns (executemany needs one column set)."""
    first = rows[0].keys()
    if all(row.keys() == first for row in rows):
        return [rows]
    groups: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[frozenset(row)].append(row)
    return list(groups.values())
