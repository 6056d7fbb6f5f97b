"""A read-only DB-API connection, schema-checked, for commands that only show rows.

sqlite3 or psycopg directly, not SQLAlchemy: importing SQLAlchemy costs more than all
of `maildesk tickets list` may take. Nothing here can write to the database.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any
from urllib.parse import quote

from maildesk.common.db_url import DbUrl, parse_url
from maildesk.common.errors import MaildeskError
from maildesk.store.revision import recorded_revision, require_revision

_HAS_VERSIONS = {
    "sqlite": "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
    "AND name = 'alembic_version'",
    # Looked up through search_path, as SQLAlchemy's has_table does.
    "postgresql": "SELECT count(*) FROM pg_catalog.pg_class "
    "WHERE relname = 'alembic_version' AND pg_catalog.pg_table_is_visible(oid)",
}


class ReadOnlyDb:
    """An open read-only connection and its dialect (`sqlite` or `postgresql`)."""

    def __init__(self, connection: Any, dialect: str):
        self.connection = connection
        self.dialect = dialect

    def __enter__(self) -> ReadOnlyDb:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.connection.close()


def connect_read_only(url: str) -> ReadOnlyDb:
    """A read-only connection to the database at `url` (a SQLAlchemy URL); raises
    SchemaOutOfDate, as every command does, unless its schema is the newest."""
    parsed = parse_url(url)
    where = parsed.render(hide_password=True)
    if parsed.backend == "sqlite":
        connection = _sqlite(parsed)
        if connection is None:  # memory, or no file yet: nothing was ever migrated
            require_revision(None, where)
    elif parsed.backend == "postgresql":
        connection = _postgres(parsed)
    else:
        raise MaildeskError(f"database.url {where}: maildesk works with SQLite or PostgreSQL")
    db = ReadOnlyDb(connection, parsed.backend)
    try:
        require_revision(schema_revision(db), where)
    except BaseException:
        connection.close()
        raise
    return db


def schema_revision(db: ReadOnlyDb) -> str | None:
    """The revision Alembic recorded in the database (None: no maildesk schema)."""
    cursor = db.connection.cursor()
    try:
        cursor.execute(_HAS_VERSIONS[db.dialect])
        if not cursor.fetchone()[0]:
            return None
        cursor.execute("SELECT version_num FROM alembic_version")
        return recorded_revision([row[0] for row in cursor.fetchall()])
    finally:
        cursor.close()


def _sqlite(url: DbUrl) -> Any:
    """The database file opened read-only; None when there is no file to open."""
    import sqlite3

    if not url.database or url.database == ":memory:":
        return None
    path = os.path.abspath(url.database)  # as SQLAlchemy's pysqlite dialect does
    if not os.path.exists(path):
        return None  # mode=ro cannot create it, and an empty file has no schema either
    return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=30)


def _postgres(url: DbUrl) -> Any:
    """A psycopg connection whose transactions are READ ONLY."""
    import psycopg  # only PostgreSQL desks get here; psycopg is their extra

    connection = psycopg.connect(url.libpq())
    connection.read_only = True
    return connection
