"""Rows written in bulk: ids handed out before insert, one executemany per table.

Ticket and message ids are allocated first (TicketIds, RowIds), so every row of a
batch can be built as a plain dict that refers to the others, then inserted with
one statement per table and column set.
"""

from __future__ import annotations

import functools
import operator
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Dialect, Table, func, select, text
from sqlalchemy.orm import Session

from maildesk.store.blobs import insert_blobs
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


class RowIds:
    """Hands out primary keys before insert, so rows can refer to each other in one batch."""

    def __init__(self, session: Session, model: type[Base], table: str):
        self.session = session
        self.model = model
        self.table = table
        self._next: int | None = None
        self._postgresql = session.get_bind().dialect.name == "postgresql"

    def allocate(self) -> int:
        if self._postgresql:
            sql = text(f"SELECT nextval(pg_get_serial_sequence('{self.table}', 'id'))")
            return int(self.session.scalar(sql))
        if self._next is None:  # SQLite: this transaction holds the write lock (BEGIN IMMEDIATE)
            self._next = (self.session.scalar(select(func.max(self.model.id))) or 0) + 1  # type: ignore[attr-defined]
        allocated, self._next = self._next, self._next + 1
        return allocated


class TicketIds(RowIds):
    def __init__(self, session: Session):
        super().__init__(session, Ticket, "tickets")


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
        insert_blobs(session, self.blobs)
        for model in self.ORDER:
            rows = self.rows.get(model)
            if rows:
                for group in _same_keys(rows):
                    bulk_insert(session, model.__table__, group)  # type: ignore[arg-type]


def bulk_insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows that share one column set. On SQLite this is one DB-API executemany of
    pre-converted tuples: SQLAlchemy's per-row parameter handling cost more than SQLite's
    own work. Elsewhere SQLAlchemy's multi-row INSERT is the fast way already."""
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "sqlite":
        session.execute(table.insert(), rows)
        return
    keys = tuple(rows[0])
    sql, converters = _insert_sql(dialect, table, keys)
    take = operator.itemgetter(*keys)
    params: list[Any] = (
        [take(row) for row in rows] if len(keys) > 1 else [(row[keys[0]],) for row in rows]
    )
    if converters:
        params = [list(values) for values in params]
        # Most values repeat within a batch (its timestamp, None, flags): convert each once.
        seen: dict[tuple[int, Any], Any] = {}
        for i, convert in converters:
            for values in params:
                value = values[i]
                if isinstance(value, datetime | bool | None):
                    key = (i, value)
                    if key not in seen:
                        seen[key] = convert(value)
                    values[i] = seen[key]
                else:
                    values[i] = convert(value)
        params = [tuple(values) for values in params]
    connection.exec_driver_sql(sql, params)


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
def _insert_sql(
    dialect: Dialect, table: Table, keys: tuple[str, ...]
) -> tuple[str, list[tuple[int, Callable[[Any], Any]]]]:
    """The INSERT statement (qmark style) and the columns whose values need converting."""
    quote = dialect.identifier_preparer
    columns = [table.c[key] for key in keys]
    names = ", ".join(quote.format_column(c) for c in columns)
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {quote.format_table(table)} ({names}) VALUES ({marks})"
    converters = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
    return sql, [(i, convert) for i, convert in enumerate(converters) if convert is not None]


def _same_keys(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows split into runs with the same columns (executemany needs one column set)."""
    first = rows[0].keys()
    if all(row.keys() == first for row in rows):
        return [rows]
    groups: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[frozenset(row)].append(row)
    return list(groups.values())
