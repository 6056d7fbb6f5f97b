"""Schema migrations: `maildesk db upgrade` from an empty database and from every revision
gives the schema the models describe and keeps the rows; downgrades undo each step."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import sqlite3
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from maildesk.store.db import MIGRATIONS, make_engine, upgrade
from maildesk.store.models import Base
from maildesk.store.search import described_by_models
from tests.conftest import make_mail, run_maildesk, write_config

SCRIPTS = ScriptDirectory(str(MIGRATIONS))
# Oldest first: the order a database created by the first release went through.
REVISIONS = [script.revision for script in reversed(list(SCRIPTS.walk_revisions()))]
HEAD = REVISIONS[-1]
CREATED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
_names = count(1)

# The index on upper(tickets.ref) cannot be reflected from SQLite (see schema_differences).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Skipped unsupported reflection of expression-based index"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request, tmp_path) -> Callable[[], str]:
    """Makes empty databases of one kind and returns their URLs."""

    def make() -> str:
        name = f"migrations_{os.getpid()}_{next(_names)}"
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / name}.db"
        return request.getfixturevalue("postgres").create_database(name)

    return make


def schema_differences(url: str) -> list:
    """What Alembic's autogenerate would change to make the database match the models."""
    engine = make_engine(url)
    try:
        with warnings.catch_warnings():
            # SQLite's reflection cannot read the index on upper(tickets.ref), so Alembic
            # skips it there (it compares it on PostgreSQL); test_lookup_plans checks it.
            warnings.filterwarnings("ignore", "(autogenerate skipping|Skipped unsupported)")
            with engine.connect() as conn:
                context = MigrationContext.configure(
                    conn, opts={"include_name": described_by_models}
                )
                return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def shape(url: str) -> dict[str, tuple]:
    """Each table's columns (name, nullable), indexes and unique constraints."""
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {
            table: (
                sorted((c["name"], c["nullable"]) for c in inspector.get_columns(table)),
                sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
                sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            )
            for table in inspector.get_table_names()
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


def desk_on(url: str, directory: Path) -> Path:
    """A desk folder whose maildesk.yaml uses the database at `url`."""
    write_config(directory, database_url=url)
    return directory


def write_old_ticket(url: str) -> None:
    """A ticket and its message with only the columns revision 0001 had, as it wrote them."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            meta = sa.MetaData()
            tickets = sa.Table("tickets", meta, autoload_with=conn)
            messages = sa.Table("messages", meta, autoload_with=conn)
            conn.execute(tickets.insert().values(**OLD_TICKET))
            conn.execute(messages.insert().values(**OLD_MESSAGE))
    finally:
        engine.dispose()


OLD_TICKET = {
    "id": 7,
    "ref": "MD-7",
    "subject": "Счёт оплачен дважды",
    "status": "resolved",
    "priority": "high",
    "queue": "billing",
    "assignee": "carol@example.com",
    "requester": "ivan@example.net",
    "requester_name": "Иван",
    "language": "ru",
    "tags": ["vip", "refund"],
    "rules_fired": ["billing"],
    "message_id": "<old-1@example.net>",
    "created_at": CREATED,
    "updated_at": CREATED,
    "resolved_at": CREATED,
    "sla_state": {"paused": False},
    "reopen_count": 1,
    "spam": False,
    "rating": 5,
    "rating_comment": "спасибо",
}
OLD_MESSAGE = {
    "id": 70,
    "ticket_id": 7,
    "dedup_key": "mid:old-1@example.net",
    "direction": "in",
    "author_kind": "requester",
    "kind": "request",
    "internal": False,
    "message_id": "<old-1@example.net>",
    "from_addr": "ivan@example.net",
    "from_name": "Иван",
    "to_addrs": ["support@example.com"],
    "cc_addrs": [],
    "subject": "Счёт оплачен дважды",
    "date": CREATED,
    "text_body": "Деньги списали два раза.",
    "raw_size": 120,
    "source": "imap:support",
    "commands": [],
    "created_at": CREATED,
}


def assert_old_ticket_shown(desk: Path) -> None:
    """`maildesk tickets show` on today's code reads the ticket the old revision wrote."""
    shown = run_maildesk(desk, "tickets", "show", "MD-7", "--json")
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    for key in ("subject", "status", "priority", "queue", "assignee", "requester", "tags"):
        assert detail[key] == OLD_TICKET[key], key
    assert detail["requester_name"] == "Иван" and detail["rules_fired"] == ["billing"]
    assert detail["resolved_at"] == detail["created_at"] and detail["created_at"].startswith(
        "2026-11-23T10:00:00"
    )
    assert [m["text"] for m in detail["messages"]] == ["Деньги списали два раза."]


def test_revisions_form_one_chain_whose_headers_match_the_code():
    assert SCRIPTS.get_heads() == [HEAD]
    assert SCRIPTS.get_revision(REVISIONS[0]).down_revision is None
    for script in SCRIPTS.walk_revisions():
        header = Path(script.path).read_text(encoding="utf-8")
        assert re.search(rf"^Revision ID: {re.escape(script.revision)}$", header, re.M)
        revises = re.search(r"^Revises:[ \t]*(\S*)$", header, re.M)
        assert revises is not None, script.path
        assert (revises.group(1) or None) == script.down_revision, script.path


def test_the_schema_check_knows_the_newest_migration(tmp_path):
    # Commands check the revision with a plain query against HEAD_REVISION, not Alembic.
    from maildesk.common.errors import SchemaOutOfDate
    from maildesk.store.db import require_current_schema
    from maildesk.store.revision import HEAD_REVISION

    assert HEAD_REVISION == HEAD, "a new migration: set maildesk.store.revision.HEAD_REVISION"
    engine = make_engine(f"sqlite:///{tmp_path / 'check.db'}")
    with pytest.raises(SchemaOutOfDate, match="has no maildesk schema"):
        require_current_schema(engine)
    upgrade(engine, REVISIONS[-2])
    with pytest.raises(SchemaOutOfDate, match=f"is at revision {REVISIONS[-2]}, but this"):
        require_current_schema(engine)
    upgrade(engine)
    require_current_schema(engine)
    engine.dispose()


def test_no_migration_imports_maildesk():
    # A migration that reads the live models would change when they change, and an old
    # database would be upgraded to something its revision never described.
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not [n for n in names if n.split(".")[0] == "maildesk"], path.name


def test_db_upgrade_on_an_empty_database_gives_the_models_schema(new_database, tmp_path):
    url = new_database()
    desk = desk_on(url, tmp_path / "desk")
    before = run_maildesk(desk, "db", "status")
    assert before.exit_code == 1
    assert f"database revision (none); newest {HEAD}" in before.output
    upgraded = run_maildesk(desk, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output.strip() == f"database at revision {HEAD} (was empty)"
    after = run_maildesk(desk, "db", "status")
    assert after.exit_code == 0 and f"database revision {HEAD}; newest {HEAD}" in after.output
    assert schema_differences(url) == []
    listed = run_maildesk(desk, "tickets", "list", "--json")
    assert listed.exit_code == 0 and json.loads(listed.output) == []


def _upgrade_paths() -> list[list[str]]:
    """From each older revision: straight to the newest, and through every one between."""
    paths = []
    for i, start in enumerate(REVISIONS[:-1]):
        paths.append([start, HEAD])
        if len(REVISIONS) - i > 2:
            paths.append(REVISIONS[i:])
    return paths


UPGRADE_PATHS = _upgrade_paths()


@pytest.mark.parametrize("path", UPGRADE_PATHS, ids=["->".join(p) for p in UPGRADE_PATHS])
def test_upgrade_from_a_released_revision_keeps_its_tickets(new_database, tmp_path, path):
    url = new_database()
    engine = make_engine(url)
    upgrade(engine, path[0])
    engine.dispose()
    write_old_ticket(url)
    desk = desk_on(url, tmp_path / "desk")
    status = run_maildesk(desk, "db", "status")
    assert status.exit_code == 1 and f"database revision {path[0]};" in status.output
    for revision in path[1:-1]:
        engine = make_engine(url)
        upgrade(engine, revision)
        engine.dispose()
    upgraded = run_maildesk(desk, "db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert upgraded.output.strip() == f"database at revision {HEAD} (was {path[-2]})"
    assert schema_differences(url) == []
    assert_old_ticket_shown(desk)


def test_sqlite_upgrade_refuses_to_leave_rows_pointing_at_nothing(tmp_path):
    # Migrations run with SQLite's foreign keys off (a table copy would trip them);
    # the references are checked before the transaction commits instead.
    url = f"sqlite:///{tmp_path / 'maildesk.db'}"
    engine = make_engine(url)
    upgrade(engine, REVISIONS[0])
    engine.dispose()
    with contextlib.closing(sqlite3.connect(tmp_path / "maildesk.db")) as raw:  # keys off
        values = {**OLD_MESSAGE, "ticket_id": 99, "date": None, "created_at": "2026-11-23"}
        values.update(to_addrs="[]", cc_addrs="[]", commands="[]")
        columns = ", ".join(f'"{c}"' for c in values)
        raw.execute(
            f"INSERT INTO messages ({columns}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )
        raw.commit()
    desk = desk_on(url, tmp_path / "desk")
    refused = run_maildesk(desk, "db", "upgrade")
    assert refused.exit_code == 1
    assert "1 rows of messages would point at rows that do not exist" in str(refused.exception)
    status = run_maildesk(desk, "db", "status")
    assert f"database revision {REVISIONS[0]};" in status.output


def test_downgrade_undoes_each_step_down_to_an_empty_database(new_database, tmp_path):
    url = new_database()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    write_old_ticket(url)
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    for revision in reversed(REVISIONS[:-1]):
        alembic.attributes["engine"] = engine = make_engine(url)
        command.downgrade(alembic, revision)
        engine.dispose()
        fresh = new_database()
        engine = make_engine(fresh)
        upgrade(engine, revision)
        engine.dispose()
        assert shape(url) == shape(fresh), revision
        assert _ticket_subjects(url) == [OLD_TICKET["subject"]]
    alembic.attributes["engine"] = engine = make_engine(url)
    command.downgrade(alembic, "base")
    engine.dispose()
    assert shape(url) == {}
    desk = desk_on(url, tmp_path / "desk")
    assert run_maildesk(desk, "db", "upgrade").exit_code == 0
    assert schema_differences(url) == []


def _ticket_subjects(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text("SELECT subject FROM tickets")).scalars())
    finally:
        engine.dispose()


def test_downgrading_past_0009_puts_each_relayed_text_back_in_its_row(new_database, tmp_path):
    url = new_database()
    desk = desk_on(url, tmp_path / "desk")
    assert run_maildesk(desk, "db", "upgrade").exit_code == 0
    mail = make_mail(subject="Printer jams", body="The printer jams on every page.")
    assert run_maildesk(desk, "ingest", "--now", "-", input=mail).exit_code == 0
    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS))
    alembic.attributes["engine"] = engine = make_engine(url)
    command.downgrade(alembic, "0008_lookup_indexes")
    engine.dispose()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT audience, context FROM outbox")).all()
    finally:
        engine.dispose()
    bodies = {
        audience: (json.loads(context) if isinstance(context, str) else context).get("body")
        for audience, context in rows
    }
    assert bodies["agents"].strip() == "The printer jams on every page."
