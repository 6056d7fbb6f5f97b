"""Alembic environment: the engine comes from maildesk, not from alembic.ini."""

import contextlib
from collections.abc import Iterator
from typing import Any

from alembic import context
from sqlalchemy import Connection

from maildesk.common.errors import MaildeskError
from maildesk.store.models import Base, UTCDateTime
from maildesk.store.search import described_by_models

engine = context.config.attributes["engine"]


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | bool:
    # Autogenerate would write `maildesk.store.models.UTCDateTime(...)` into the revision,
    # tying an old migration to the live models; its column type is a plain DateTime.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


@contextlib.contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    # SQLite changes a column by copying the table and dropping the old one; with foreign
    # keys on, that drop fails as soon as another table points at a row. The pragma is
    # ignored inside a transaction, so it goes to the driver before SQLAlchemy begins one.
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


def _check_sqlite_references(connection: Connection) -> None:
    dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if dangling:
        tables = sorted({row[0] for row in dangling})
        raise MaildeskError(
            f"schema not changed: after the migration {len(dangling)} rows of "
            f"{', '.join(tables)} would point at rows that do not exist; "
            "`PRAGMA foreign_key_check` in sqlite3 lists them"
        )


with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    foreign_keys_off = _sqlite_foreign_keys_off(connection) if sqlite else contextlib.nullcontext()
    with foreign_keys_off, connection.begin():
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=sqlite,
            render_item=_render_item,
            include_name=described_by_models,  # autogenerate must not drop the search index
        )
        before = context.get_context().get_current_heads()
        context.run_migrations()
        if sqlite and context.get_context().get_current_heads() != before:
            _check_sqlite_references(connection)
