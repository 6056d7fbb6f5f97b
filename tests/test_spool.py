"""The MTA pipe: `maildesk ingest -` spools the message, `ingest --spool` ingests it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from io import BytesIO
from pathlib import Path

import pytest

from maildesk.common.config import SpoolConfig
from maildesk.intake.spool import (
    SpoolError,
    queue_of,
    read_spool_key,
    spool_folder,
    spool_message,
    unique_name,
)
from maildesk.service.spool_ingest import SpoolIngest
from tests.conftest import make_mail
from tests.conftest import run_maildesk as run


def pipe(config: Path, mail: bytes, *args: str) -> subprocess.CompletedProcess[str]:
    """`maildesk --config CONFIG ingest [ARGS] -` in its own process, as an MTA runs it."""
    return subprocess.run(
        [sys.executable, "-m", "maildesk", "--config", str(config), "ingest", *args, "-"],
        input=mail.decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def spooled(desk_dir: Path) -> list[str]:
    return sorted(p.name for p in (desk_dir / "spool" / "new").iterdir())


def tickets(desk_dir: Path) -> list[dict]:
    return json.loads(run(desk_dir, "tickets", "list", "--json").output)


def test_the_pipe_spools_durably_and_the_drain_makes_the_ticket(desk_dir):
    config = desk_dir / "maildesk.yaml"
    done = pipe(config, make_mail(subject="Printer on fire"))
    assert done.returncode == 0, done.stderr
    (name,) = spooled(desk_dir)
    assert done.stdout == f"-: spooled {name}\n"
    spool = desk_dir / "spool"
    assert stat.S_IMODE((spool / "new" / name).stat().st_mode) == 0o600
    folders = [spool, spool / "tmp", spool / "new", spool / "cur"]
    assert [stat.S_IMODE(p.stat().st_mode) for p in folders] == [0o700] * 4
    assert list((spool / "tmp").iterdir()) == []
    assert tickets(desk_dir) == []  # the daemon's job, or --spool's

    drained = run(desk_dir, "ingest", "--spool")
    assert drained.exit_code == 0, drained.output
    assert drained.output.endswith(": 1 message(s) ingested from the spool\n")
    assert [t["subject"] for t in tickets(desk_dir)] == ["Printer on fire"]
    assert spooled(desk_dir) == []
    assert list((spool / "cur").iterdir()) == []  # taken, then deleted


def test_the_queue_travels_with_the_spooled_message(desk_dir):
    config = desk_dir / "maildesk.yaml"
    assert pipe(config, make_mail(subject="Invoice"), "--queue", "billing").returncode == 0
    assert pipe(config, make_mail(subject="Login")).returncode == 0
    assert run(desk_dir, "ingest", "--spool").exit_code == 0
    queues = {t["subject"]: t["queue"] for t in tickets(desk_dir)}
    assert queues == {"Invoice": "billing", "Login": "general"}


def test_verbose_goes_through_the_full_cli_and_spools_the_same(desk_dir):
    config = str(desk_dir / "maildesk.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "maildesk", "-v", "--config", config, "ingest", "-"],
        input=make_mail().decode(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"-: spooled {spooled(desk_dir)[0]}\n"


def test_now_ingests_stdin_at_once(desk_dir):
    result = run(desk_dir, "ingest", "--now", "-", input=make_mail(subject="Right away"))
    assert result.exit_code == 0 and "created MD-1" in result.output
    assert not (desk_dir / "spool" / "new").exists() or spooled(desk_dir) == []


def test_a_message_already_stored_is_a_duplicate_and_leaves_the_spool(desk_dir, tmp_path):
    # What a crash between a batch's commit and the files' removal leaves behind.
    mail = make_mail(subject="Twice", message_id="<twice@example.org>")
    (tmp_path / "m.eml").write_bytes(mail)
    assert "created MD-1" in run(desk_dir, "ingest", str(tmp_path / "m.eml")).output
    assert pipe(desk_dir / "maildesk.yaml", mail).returncode == 0
    assert run(desk_dir, "ingest", "--spool").exit_code == 0
    assert [(t["ref"], t["message_count"]) for t in tickets(desk_dir)] == [("MD-1", 1)]
    assert spooled(desk_dir) == []


def test_an_oversized_message_is_spooled_and_the_pipeline_applies_the_limit(desk_dir):
    config = desk_dir / "maildesk.yaml"
    text = config.read_text().replace("max_message_bytes: 41943040", "max_message_bytes: 2000")
    config.write_text(text)
    assert pipe(config, make_mail(subject="Huge", body="x" * 20_000)).returncode == 0
    assert run(desk_dir, "ingest", "--spool").exit_code == 0
    shown = json.loads(run(desk_dir, "tickets", "show", "MD-1", "--json").output)
    assert "oversized" in shown["tags"]


@pytest.mark.parametrize(
    ("spool_line", "reason"),
    [
        ("spool: maildesk.yaml/spool", "cannot write to the spool"),  # under a file
        ("spool: missing/parent/spool", "cannot write to the spool"),  # parents not made
        ("spool: {path: spool}", "write spool: as a folder path on the same line"),
    ],
)
def test_exit_75_when_the_spool_cannot_be_written(tmp_path, spool_line, reason):
    config = tmp_path / "maildesk.yaml"
    config.write_text(f"database:\n  url: sqlite:///maildesk.db\n{spool_line}\n")
    done = pipe(config, make_mail())
    assert done.returncode == 75  # EX_TEMPFAIL: the MTA keeps the message and retries
    assert reason in done.stderr and "try again later" in done.stderr
    assert done.stdout == ""


def test_exit_75_when_the_named_config_is_missing(tmp_path):
    done = pipe(tmp_path / "nowhere.yaml", make_mail())
    assert done.returncode == 75 and "nowhere.yaml not found" in done.stderr


def test_status_shows_the_backlog_and_its_oldest_message(desk_dir):
    config = desk_dir / "maildesk.yaml"
    for subject in ("one", "two"):
        assert pipe(config, make_mail(subject=subject)).returncode == 0
    shown = run(desk_dir, "status", "--json")
    (row,) = [r for r in json.loads(shown.output) if r["name"].startswith("spool@")]
    # No daemon runs: the mail waits and nothing takes it, which monitoring must see.
    assert (row["backlog"], row["failing"], shown.exit_code) == (2, True, 1)
    assert row["oldest_at"] is not None
    table = run(desk_dir, "status").output
    assert "2, oldest" in table.splitlines()[2]


def test_check_verifies_the_pipe_and_the_daemon_agree_on_the_spool(desk_dir):
    config = desk_dir / "maildesk.yaml"
    result = run(desk_dir, "check")
    assert f"ok   spool: {desk_dir / 'spool'} is created by the first" in result.output
    with config.open("a") as fh:  # YAML reads this key; the pipe's one-line reader does not
        fh.write('"spool": elsewhere\n')
    result = run(desk_dir, "check")
    assert result.exit_code == 1
    assert f"reads {desk_dir / 'spool'} from {config}, the daemon {desk_dir / 'elsewhere'}" in (
        result.output
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("log_level: info\n", None),
        ("spool: /var/spool/maildesk\n", "/var/spool/maildesk"),
        ("spool: queue  # next to the config\n", "queue"),
        ("spool: 'my spool' # quoted\n", "my spool"),
        ('spool: "a#b"\n', "a#b"),
        ("spool: a#b\n", "a#b"),  # a # without a space before it is no comment
        ("storage:\n  spool: nested\n", None),  # not the top-level key
    ],
)
def test_the_pipe_reads_the_spool_line_as_yaml_does(text, value):
    import yaml

    assert read_spool_key(text, "maildesk.yaml") == value
    assert (yaml.safe_load(text) or {}).get("spool") == value


@pytest.mark.parametrize("line", ["spool:", "spool: [a]", "spool: 'it''s'", 'spool: "a\\tb"'])
def test_a_spool_line_the_pipe_cannot_read_is_refused(line):
    with pytest.raises(SpoolError, match=r"maildesk\.yaml:2: write spool: as a folder path"):
        read_spool_key(f"log_level: info\n{line}\n", "maildesk.yaml")


def test_a_relative_spool_is_beside_the_config(tmp_path, monkeypatch):
    (tmp_path / "maildesk.yaml").write_text("spool: in/here\n")
    assert spool_folder(tmp_path / "maildesk.yaml") == str(tmp_path / "in/here")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILDESK_CONFIG", raising=False)
    assert spool_folder(None) == str(tmp_path / "in/here")  # ./maildesk.yaml


def test_names_sort_by_time_and_carry_any_queue():
    first = unique_name("billing, EU/2: ünïcode")
    time.sleep(0.001)
    second = unique_name()
    assert first < second and "/" not in first and ":" not in first
    assert (queue_of(first), queue_of(second)) == ("billing, EU/2: ünïcode", None)


def test_the_drain_moves_what_it_took_to_cur_then_deletes_it_and_old_tmp_files(make_desk, tmp_path):
    desk = make_desk()
    folder = tmp_path / "spool"
    spool_message(folder, BytesIO(make_mail(subject="kept")))
    old, fresh = folder / "tmp" / "old", folder / "tmp" / "fresh"
    old.write_bytes(b"half a message")
    fresh.write_bytes(b"being written")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    drain = SpoolIngest(desk, SpoolConfig(name="spool@test", path=folder))
    drain.open()
    assert drain.sync() == 1
    assert sorted(p.name for p in (folder / "tmp").iterdir()) == ["fresh"]
    assert list((folder / "new").iterdir()) == []
    assert len(list((folder / "cur").iterdir())) == 1  # committed: never taken again
    assert drain.sync() == 0
    drain.wait(0.3, threading.Event())
    assert list((folder / "cur").iterdir()) == []  # deleted while waiting for mail


def test_a_mailbox_taken_out_of_the_config_no_longer_fails_status(desk_dir):
    # It failed (a wrong password), then the admin removed it: status still lists its
    # last state, as not configured, and no longer exits 1 for it for ever.
    from maildesk.common.config_file import load_config
    from maildesk.store.db import make_engine, make_sessionmaker
    from maildesk.store.models import MailboxState

    engine = make_engine(load_config(desk_dir / "maildesk.yaml").database_url())
    with make_sessionmaker(engine)() as session, session.begin():
        session.add(MailboxState(name="old", state="auth-failed", last_error="bad password"))
    engine.dispose()
    result = run(desk_dir, "status", "--json")
    assert result.exit_code == 0, result.output
    (row,) = [r for r in json.loads(result.output) if r["name"] == "old"]
    assert (row["configured"], row["failing"]) == (False, False)


def test_through_a_symlinked_config_the_pipe_and_status_name_the_same_spool(desk_dir, tmp_path):
    # /etc/maildesk.yaml -> the desk's: the daemon resolves the link, so must the pipe,
    # or the MTA's mail lands in a folder nothing drains.
    link = tmp_path / "etc" / "maildesk.yaml"
    link.parent.mkdir()
    link.symlink_to(desk_dir / "maildesk.yaml")
    assert pipe(link, make_mail(subject="via the link")).returncode == 0
    assert len(spooled(desk_dir)) == 1 and not (link.parent / "spool").exists()


def test_a_closed_stdout_does_not_turn_a_stored_message_into_a_failure(desk_dir):
    # Postfix takes any exit but 0 and 75 as a permanent failure and bounces the mail,
    # though it was stored: once it is in the spool, the pipe exits 0.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "maildesk",
            "--config",
            str(desk_dir / "maildesk.yaml"),
            "ingest",
            "-",
        ],
        input=make_mail().decode(),
        stdout=subprocess.DEVNULL,
        capture_output=False,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.close(1),
    )
    assert done.returncode == 0, done.stderr
    assert len(spooled(desk_dir)) == 1
