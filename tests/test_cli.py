"""The maildesk command as an admin or an MTA uses it."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from maildesk.cli import cli
from tests.conftest import make_mail
from tests.conftest import run_maildesk as run
from tests.test_tickets_list import FIELDS as LISTED_FIELDS


def test_init_writes_a_working_desk(desk_dir):
    assert (desk_dir / "maildesk.yaml").exists() and (desk_dir / "rules.yaml").exists()
    assert (desk_dir / "templates" / "en" / "ack.txt.j2").exists()
    result = run(desk_dir, "check")
    assert result.exit_code == 0, result.output
    assert "ok   database: schema is current" in result.output


def test_ingest_file_and_stdin_then_list_and_show_json(desk_dir, tmp_path):
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_mail(subject="Cannot log in", message_id="<cli-1@example.org>"))
    assert "created MD-1" in run(desk_dir, "ingest", str(eml)).output
    reply = make_mail(subject="Re: [MD-1] Cannot log in", body="Still broken")
    assert "added MD-1" in run(desk_dir, "ingest", "--now", "-", input=reply).output

    listed = json.loads(run(desk_dir, "tickets", "list", "--json").output)
    assert len(listed) == 1
    ticket = listed[0]
    assert set(ticket) == LISTED_FIELDS  # the format README documents
    assert (ticket["ref"], ticket["subject"], ticket["message_count"]) == (
        "MD-1",
        "Cannot log in",
        2,
    )

    shown = json.loads(run(desk_dir, "tickets", "show", "md-1", "--json").output)
    assert [m["text"].strip() for m in shown["messages"]] == [
        "Something is broken.",
        "Still broken",
    ]
    assert shown["events"][0]["kind"] == "created"
    assert {n["template"] for n in shown["notifications"]} >= {"ack"}


def test_tickets_list_filters_by_status_and_queue(desk_dir, tmp_path):
    for i in range(3):
        eml = tmp_path / f"{i}.eml"
        eml.write_bytes(make_mail(subject=f"Request {i}", sender=f"c{i}@example.org"))
        run(desk_dir, "ingest", str(eml))
    assert (
        len(json.loads(run(desk_dir, "tickets", "list", "--status", "new", "--json").output)) == 3
    )
    assert json.loads(run(desk_dir, "tickets", "list", "--status", "closed", "--json").output) == []
    assert json.loads(run(desk_dir, "tickets", "list", "--queue", "billing", "--json").output) == []
    table = run(desk_dir, "tickets", "list").output
    assert "Request 2" in table and table.splitlines()[0].startswith("REF")


def test_show_unknown_ticket_says_how_to_find_one(desk_dir):
    result = run(desk_dir, "tickets", "show", "MD-99")
    assert result.exit_code != 0
    assert "no ticket MD-99" in str(result.exception) + result.output


def test_garbage_goes_to_quarantine_and_retry_reports_still_failing(desk_dir, tmp_path):
    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"\x00\x01binary")
    result = run(desk_dir, "ingest", str(bad))
    assert result.exit_code == 0 and "quarantined" in result.output
    held = json.loads(run(desk_dir, "quarantine", "list", "--json").output)
    assert len(held) == 1 and held[0]["stage"] == "parse"
    retry = run(desk_dir, "quarantine", "retry", str(held[0]["id"]))
    assert retry.exit_code != 0 and "still failing" in retry.output


def test_ingest_exits_75_when_the_database_cannot_be_written(desk_dir, tmp_path):
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_mail())
    locker = sqlite3.connect(desk_dir / "maildesk.db", timeout=0)
    locker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        import maildesk.store.db as db

        original = db._sqlite_pragmas

        def short_timeout(conn, record):
            original(conn, record)
            conn.execute("PRAGMA busy_timeout=100")

        db._sqlite_pragmas = short_timeout
        try:
            result = run(desk_dir, "ingest", str(eml))
        finally:
            db._sqlite_pragmas = original
    finally:
        locker.rollback()
        locker.close()
    assert result.exit_code == 75, result.output
    assert "try again later" in result.output


def test_run_refuses_out_of_date_schema(tmp_path):
    (tmp_path / "maildesk.yaml").write_text("database: {url: 'sqlite:///fresh.db'}\n")
    from maildesk.common.resources import example_rules

    (tmp_path / "rules.yaml").write_text(example_rules().read_text())
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "maildesk.yaml"), "tickets", "list"]
    )
    assert result.exit_code != 0
    assert "maildesk db upgrade" in str(result.exception)


def test_demo_prints_tickets_and_notifications():
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "01-outlook-russian-new.eml" in out and "-> created     MD-1" in out
    assert "05-gmail-duplicate-delivery.eml    -> duplicate   MD-2" in out
    assert "08-binary-garbage.eml              -> quarantined" in out
    assert "Не открывается личный кабинет" in out  # the Russian subject, decoded
    assert (
        "ack             maria.garcia@gmail.example    [MD-2] Invoice 2026-1187 charged twice"
        in out
    )


# The maildesk console script of the interpreter running the tests, run on this checkout.
MAILDESK = Path(sys.executable).parent / "maildesk"
CHECKOUT = Path(__file__).resolve().parent.parent


def shell_env(maildesk_on_path: bool) -> dict[str, str]:
    """A user's environment, with or without a `maildesk` on PATH."""
    path = [p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "maildesk").exists()]
    if maildesk_on_path:
        path.insert(0, str(MAILDESK.parent))
    return {**os.environ, "PATH": os.pathsep.join(path), "PYTHONPATH": str(CHECKOUT)}


def paste(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a line the way a user pasting it into a shell would."""
    return subprocess.run(
        command, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_demo_ends_with_commands_that_keep_a_desk_and_show_its_ticket(tmp_path):
    # As after `bash scripts/demo`: maildesk is not on PATH, and a folder of the suggested
    # name is already taken.
    env = shell_env(maildesk_on_path=False)
    (tmp_path / "maildesk-demo").mkdir()
    (tmp_path / "maildesk-demo" / "notes.txt").write_text("mine")
    demo = paste(f"{shlex.quote(str(MAILDESK))} demo", tmp_path, env)
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    temporary = lines[0].removeprefix("maildesk demo: SQLite database and blob store in ")
    assert not Path(temporary).exists()
    hint = lines.index(
        "The demo desk was temporary and is gone. To keep one and see a ticket in full:"
    )
    commands = [line.strip() for line in lines[hint + 1 :] if line.strip()]
    maildesk = shlex.quote(str(MAILDESK.resolve()))
    assert commands == [
        f"{maildesk} demo --keep maildesk-demo-2",
        f"{maildesk} --config maildesk-demo-2/maildesk.yaml tickets show MD-1",
    ]
    kept = paste(commands[0], tmp_path, env)
    assert kept.returncode == 0, kept.stderr
    shown = paste(commands[1], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("MD-1  Не открывается личный кабинет\n")
    assert (tmp_path / "maildesk-demo" / "notes.txt").read_text() == "mine"


def test_demo_keep_ends_with_a_command_for_the_kept_desk(tmp_path):
    env = shell_env(maildesk_on_path=True)
    demo = paste("maildesk demo --keep 'my desk'", tmp_path, env)
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.endswith(
        "\nSee one ticket in full with: maildesk --config 'my desk/maildesk.yaml' "
        "tickets show MD-1\n\n"
    )
    shown = paste(demo.stdout.strip().splitlines()[-1].split(": ", 1)[1], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("MD-1  Не открывается личный кабинет\n")


def test_demo_keep_refuses_a_folder_with_files(tmp_path):
    (tmp_path / "maildesk.yaml").write_text("database: {url: 'sqlite:///mine.db'}\n")
    result = CliRunner().invoke(cli, ["demo", "--keep", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not empty; give a new or empty folder" in result.output
    assert (tmp_path / "maildesk.yaml").read_text() == "database: {url: 'sqlite:///mine.db'}\n"
