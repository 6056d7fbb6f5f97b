"""Database engine, sessions and schema migrations (Alembic, run from the package).

Alembic is imported only to migrate or to show the revisions: every command checks
the schema, and importing Alembic would cost it more than the rest of its start-up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.common.errors import TemporaryFailure
from maildesk.store.checkpoint import WRITER_CHECKPOINT_PAGES
from maildesk.store.revision import recorded_revision, require_revision

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"


def json_dumps(value: Any) -> str:
    """JSON for JSON columns: orjson is several times faster than json.dumps and writes
    non-ASCII text as UTF-8 (a third of the size of \\u escapes for Cyrillic)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with SQLite tuned for a daemon (WAL, foreign keys, busy timeout)."""
    kwargs.setdefault("json_serializer", json_dumps)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)
        create_private_file(engine)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def read_engine(url: str) -> Engine:
    """An engine for long reads (reports, metrics). On SQLite it reads without taking the
    write lock first, as `make_engine`'s transactions do, so ingest is not held up."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        create_private_file(engine)
        return engine
    return make_engine(url)


def create_private_file(engine: Engine, *, make_folder: bool = False) -> None:
    """Create a SQLite database file that does not exist yet as 0600 (a missing folder,
    with `make_folder`, as 0700).

    SQLite would create it 0644 (less the umask), and it holds every message; it gives
    its -wal and -shm files the database file's mode, so they are private too.
    """
    path = _sqlite_file(engine)
    if path is None or path.exists():
        return
    if make_folder and not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.parent.is_dir():
        return  # SQLite says so when it is used
    # Made meanwhile by another process, or not allowed here: SQLite reports the latter.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite engine; None for other databases, memory and URI filenames."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (pysqlite's own handling breaks SAVEPOINT).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    for pragma in (
        "journal_mode=WAL",
        # A commit is on disk before its mail is marked done at the source (moved to
        # cur/, deleted from the spool, moved on IMAP): NORMAL may lose the last commits
        # to a power cut, after the source forgot them. Costs 10-15% of SQLite ingest.
        "synchronous=FULL",
        "foreign_keys=ON",
        "busy_timeout=30000",
        # A background thread copies most of the log over (store/checkpoint.py).
        f"wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}",
    ):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock up front: a read-then-write transaction can then never
    # fail half way with "database is locked" when another process wrote meanwhile.
    # Read-only sessions (make_read_sessionmaker) begin without it and never wait.
    if conn.get_execution_options().get("maildesk_read_only"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for work that writes (on SQLite they take the write lock at BEGIN)."""
    return sessionmaker(engine, expire_on_commit=False)


def reader(engine: Engine) -> Engine:
    """The engine for read-only work (status, listings): never waits for the write lock."""
    return engine.execution_options(maildesk_read_only=True)


def make_read_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading only: on SQLite they never wait for a writer."""
    return sessionmaker(engine.execution_options(maildesk_read_only=True), expire_on_commit=False)


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (default: the newest)."""
    create_private_file(engine, make_folder=True)
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def alembic_head(engine: Engine) -> str:
    """The newest revision in migrations/versions, as Alembic finds it."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head() or ""


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(revision in the database, newest revision this maildesk knows)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, alembic_head(engine)


def database_revision(engine: Engine) -> str | None:
    """The revision Alembic recorded in the database (None: no maildesk schema)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return recorded_revision(list(versions))


def require_current_schema(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the database is at the newest revision."""
    where = engine.url.render_as_string(hide_password=True)
    require_revision(database_revision(engine), where)


@contextlib.contextmanager
def temporary_failures() -> Iterator[None]:
    """Turn 'database is locked' and lost connections into TemporaryFailure."""
    try:
        yield
    except OperationalError as exc:
        raise TemporaryFailure(f"database unavailable: {exc.orig}") from exc
