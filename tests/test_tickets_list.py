"""`maildesk tickets list` as an admin sees it, on SQLite and PostgreSQL alike: the rows,
the filters, and the schema check, read without SQLAlchemy over a read-only connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk.common.config_file import load_config
from maildesk.service.desk import Desk
from maildesk.store.db import make_engine, upgrade
from maildesk.store.models import Ticket
from maildesk.store.queries import list_tickets
from maildesk.store.read_only import connect_read_only
from maildesk.store.revision import HEAD_REVISION
from tests.conftest import make_mail, run_maildesk, write_config

ROOT = Path(__file__).resolve().parent.parent
FIELDS = {
    "ref",
    "subject",
    "status",
    "priority",
    "queue",
    "assignee",
    "requester",
    "created_at",
    "updated_at",
    "message_count",
    "tags",
}
LISTINGS = [
    (),
    ("--json",),
    ("--status", "open", "--json"),
    ("--queue", "billing"),
    ("--queue", "billing", "--status", "closed", "--json"),
    ("--limit", "2", "--json"),
    ("--status", "pending"),
]


def fill(desk: Desk) -> Path:
    """Four tickets (one with a reply, two in billing), some moved on; the desk's folder."""
    for subject, sender in [
        ("Cannot log in", "ann@example.org"),
        ("Invoice missing", "bob@example.org"),
        ("Export fails", "cid@example.org"),
        ("Refund for invoice 7", "dan@example.org"),
    ]:
        desk.pipeline.process_one(make_mail(subject=subject, sender=sender))
    desk.pipeline.process_one(
        make_mail(subject="Re: [MD-3] Export fails", sender="cid@example.org")
    )
    with desk.sessions.begin() as session:
        tickets = {t.ref: t for t in session.scalars(select(Ticket))}
        tickets["MD-2"].status = "open"
        tickets["MD-4"].status = "closed"
        tickets["MD-4"].tags = ["vip", "refund"]
    return Path(desk.config.source).parent


def listing(folder: Path, *args: str) -> str:
    result = run_maildesk(folder, "tickets", "list", *args)
    assert result.exit_code == 0, result.output
    return result.output


def maildesk(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A real `maildesk` process, as a shell runs it (its own stderr and exit code)."""
    return subprocess.run(
        [sys.executable, "-m", "maildesk.cli", "--config", str(folder / "maildesk.yaml"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=folder,
    )


@pytest.mark.postgres
def test_sqlite_and_postgresql_list_the_same_tickets(make_desk, postgres_url):
    lite, pg = fill(make_desk("lite")), fill(make_desk("pg", database_url=postgres_url))
    for args in LISTINGS:
        assert listing(lite, *args) == listing(pg, *args), args
    rows = json.loads(listing(pg, "--json"))
    assert [r["ref"] for r in rows] == ["MD-4", "MD-3", "MD-2", "MD-1"]  # newest first
    assert all(set(r) == FIELDS for r in rows)
    md4, md3 = rows[0], rows[1]
    assert (md4["status"], md4["queue"], md4["tags"], md4["message_count"]) == (
        "closed",
        "billing",
        ["vip", "refund"],
        1,
    )
    assert (md3["subject"], md3["message_count"]) == ("Export fails", 2)
    assert md3["created_at"].endswith("Z") and md3["updated_at"] >= md3["created_at"]
    table = listing(pg).splitlines()
    assert table[0].split() == [
        "REF",
        "STATUS",
        "PRIORITY",
        "QUEUE",
        "ASSIGNEE",
        "REQUESTER",
        "MSGS",
        "SUBJECT",
    ]
    assert [line.split()[0] for line in table[2:]] == ["MD-4", "MD-3", "MD-2", "MD-1"]


def test_the_orm_callers_get_the_rows_the_command_prints(desk):
    folder = fill(desk)
    with desk.read_session() as session:
        assert list_tickets(session, queue="billing") == json.loads(
            listing(folder, "--queue", "billing", "--json")
        )


def test_status_queue_and_limit_narrow_the_list(desk):
    folder = fill(desk)

    def refs(*args: str) -> list[str]:
        return [r["ref"] for r in json.loads(listing(folder, "--json", *args))]

    assert refs("--status", "new") == ["MD-3", "MD-1"]
    assert refs("--queue", "billing") == ["MD-4", "MD-2"]
    assert refs("--queue", "billing", "--status", "open") == ["MD-2"]
    assert refs("--limit", "3") == ["MD-4", "MD-3", "MD-2"]
    assert refs("--limit", "1", "--status", "new") == ["MD-3"]
    assert refs("--limit", "0") == ["MD-4", "MD-3", "MD-2", "MD-1"]  # 0: no limit
    assert refs("--queue", "nobody") == []
    assert listing(folder, "--queue", "nobody").strip() == "no tickets"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    """An empty database of each kind; its URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'desk' / 'maildesk.db'}"
    return request.getfixturevalue("postgres_url")


def test_a_database_behind_the_code_is_refused_with_what_to_run(database, tmp_path):
    folder = write_config(tmp_path / "desk", database_url=database).parent
    engine = make_engine(load_config(folder / "maildesk.yaml").database_url())
    upgrade(engine, "0006_automatic")
    engine.dispose()
    done = maildesk(folder, "tickets", "list")
    assert done.returncode == 1 and done.stdout == ""
    assert "is at revision 0006_automatic, but this maildesk needs " in done.stderr
    assert done.stderr.strip().endswith("run `maildesk db upgrade` first")


def test_a_database_never_migrated_is_refused_and_left_alone(database, tmp_path):
    folder = write_config(tmp_path / "desk", database_url=database).parent
    done = maildesk(folder, "tickets", "list", "--json")
    assert done.returncode == 1 and done.stdout == ""
    assert f"has no maildesk schema, but this maildesk needs {HEAD_REVISION}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (folder / "maildesk.db").exists()  # a listing creates no database file


def test_the_listing_connection_cannot_write(database, tmp_path):
    folder = write_config(tmp_path / "desk", database_url=database).parent
    url = load_config(folder / "maildesk.yaml").database_url()
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    with connect_read_only(url) as db, pytest.raises(Exception, match=r"read-only|readonly"):
        db.connection.cursor().execute("DELETE FROM alembic_version")
    assert json.loads(listing(folder, "--json")) == []


LIST = ("tickets", "list", "--json")


def _listed_refs(folder: Path, cwd: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "maildesk.cli", "--config", str(folder / "maildesk.yaml"), *LIST],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return [row["ref"] for row in json.loads(done.stdout)]


def test_a_relative_database_path_is_the_config_folders_from_anywhere(desk, tmp_path):
    # maildesk.yaml says sqlite:///maildesk.db: the file next to it, wherever we stand.
    folder = fill(desk)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _listed_refs(folder, elsewhere) == ["MD-4", "MD-3", "MD-2", "MD-1"]
    assert not (elsewhere / "maildesk.db").exists()


def test_a_database_section_with_more_than_a_url_is_read_by_the_whole_config(tmp_path):
    from maildesk.common.database_setting import plain_database_url

    config = tmp_path / "maildesk.yaml"
    config.write_text("database:\n  url: sqlite:///x.db\n", encoding="utf-8")
    assert plain_database_url(config) == f"sqlite:///{tmp_path / 'x.db'}"
    config.write_text("tickets: {prefix: HD}\n", encoding="utf-8")
    assert plain_database_url(config) == f"sqlite:///{tmp_path / 'maildesk.db'}"
    for text in [
        "database:\n  url: postgresql+psycopg://md@db/md\n  password: {env: MD_PW}\n",
        "database:\n  url: sqlite:///x.db\n  pasword: oops\n",
        "database: [not, a, mapping]\n",
        "database:\n  url: [1]\n",
        "database: {url: sqlite:///x.db\n",  # broken YAML: the whole config says where
    ]:
        config.write_text(text, encoding="utf-8")
        assert plain_database_url(config) is None, text


def test_a_mistake_in_the_database_section_is_reported_with_its_line(desk):
    folder = fill(desk)
    config = folder / "maildesk.yaml"
    config.write_text(
        config.read_text().replace("  url:", "  pasword: secret\n  url:", 1), encoding="utf-8"
    )
    done = maildesk(folder, "tickets", "list")
    assert done.returncode != 0 and not done.stdout
    assert "maildesk.yaml" in done.stderr and "pasword" in done.stderr
    assert "did you mean 'password'" in done.stderr


@pytest.mark.postgres
def test_a_database_password_from_a_secret_still_lists(make_desk, postgres_url, monkeypatch):
    folder = fill(make_desk("pg", database_url=postgres_url))
    config = folder / "maildesk.yaml"
    monkeypatch.setenv("MAILDESK_TEST_DB_PASSWORD", "any")  # the suite's server trusts
    config.write_text(
        config.read_text().replace(
            f"  url: {postgres_url}",
            f"  url: {postgres_url}\n  password: {{env: MAILDESK_TEST_DB_PASSWORD}}",
        ),
        encoding="utf-8",
    )
    assert _listed_refs(folder, folder) == ["MD-4", "MD-3", "MD-2", "MD-1"]
    monkeypatch.delenv("MAILDESK_TEST_DB_PASSWORD")
    done = maildesk(folder, "tickets", "list")
    assert done.returncode != 0 and "MAILDESK_TEST_DB_PASSWORD" in done.stderr


def test_a_mistake_elsewhere_in_the_config_does_not_stop_a_listing_and_check_finds_it(desk):
    # A listing reads only the database URL (a third of its start-up was the config's
    # models); `maildesk check`, and every command that needs more, still refuses.
    folder = fill(desk)
    config = folder / "maildesk.yaml"
    config.write_text(config.read_text().replace("  prefix: MD", "  prefix: 42"), encoding="utf-8")
    assert _listed_refs(folder, folder) == ["MD-4", "MD-3", "MD-2", "MD-1"]
    checked = maildesk(folder, "check")
    assert checked.returncode != 0 and "prefix" in checked.stderr
