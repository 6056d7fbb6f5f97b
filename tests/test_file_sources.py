"""Message files and Maildirs as sources: `maildesk ingest FILE...` and `--maildir`."""

from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import select

from maildesk.intake.maildir import Maildir
from maildesk.service.file_ingest import ingest_paths
from maildesk.service.ingest_results import SourceInfo
from tests.conftest import make_mail
from tests.conftest import run_maildesk as run


def tickets(desk_dir):
    return {t["ref"]: t for t in json.loads(run(desk_dir, "tickets", "list", "--json").output)}


def test_several_files_go_in_one_batch_and_thread_in_order(desk_dir, tmp_path):
    names = []
    for n, mail in enumerate(
        [
            make_mail(subject="Printer on fire", message_id="<first@example.org>"),
            make_mail(subject="Re: Printer on fire", in_reply_to="<first@example.org>"),
            make_mail(subject="Another thing", sender="Bob <bob@example.org>"),
        ]
    ):
        path = tmp_path / f"{n}.eml"
        path.write_bytes(mail)
        names.append(str(path))
    result = run(desk_dir, "ingest", *names)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{names[0]}: created MD-1",
        f"{names[1]}: added MD-1",
        f"{names[2]}: created MD-2",
    ]


def make_maildir(root):
    for folder in ("cur", "new", "tmp"):
        (root / folder).mkdir(parents=True)
    return root


def deliver(root, name: str, mail: bytes, mtime: float) -> None:
    path = root / name
    path.write_bytes(mail)
    os.utime(path, (mtime, mtime))


def test_maildir_unseen_messages_are_ingested_and_marked_seen(desk_dir, tmp_path):
    box = make_maildir(tmp_path / "Maildir")
    deliver(box, "cur/100.A.host:2,S", make_mail(subject="Read already"), 100)
    deliver(box, "cur/200.B.host:2,F", make_mail(subject="Flagged, unread"), 200)
    deliver(box, "new/300.C.host", make_mail(subject="New one"), 300)
    deliver(box, "new/.300.C.host.lock", b"not a message", 300)
    result = run(desk_dir, "ingest", "--maildir", str(box))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "cur/200.B.host:2,F: created MD-1",  # oldest delivery first
        "new/300.C.host: created MD-2",
        f"{box}: 2 unseen message(s) ingested and marked seen",
    ]
    assert sorted(p.name for p in (box / "cur").iterdir()) == [
        "100.A.host:2,S",
        "200.B.host:2,FS",  # its own flags kept
        "300.C.host:2,S",
    ]
    assert [p.name for p in (box / "new").iterdir()] == [".300.C.host.lock"]
    assert {t["subject"] for t in tickets(desk_dir).values()} == {"Flagged, unread", "New one"}

    again = run(desk_dir, "ingest", "--maildir", str(box))
    assert again.output.splitlines() == [f"{box}: 0 unseen message(s) ingested and marked seen"]


def test_a_crash_before_marking_seen_ingests_nothing_twice(desk_dir, tmp_path):
    box = make_maildir(tmp_path / "Maildir")
    deliver(box, "new/1.A.host", make_mail(subject="Only once"), 100)
    from maildesk.common.config_file import load_config
    from maildesk.service.desk import Desk

    desk = Desk.build(load_config(desk_dir / "maildesk.yaml"))
    try:  # committed, then "killed" before the file was marked seen
        results = list(ingest_paths(desk.pipeline, Maildir(box).waiting(), lambda _: SourceInfo()))
    finally:
        desk.close()
    assert [r.outcome for _, r in results] == ["created"]
    assert (box / "new" / "1.A.host").exists()

    result = run(desk_dir, "ingest", "--maildir", str(box))
    assert "new/1.A.host: duplicate MD-1" in result.output
    assert (box / "cur" / "1.A.host:2,S").exists()
    assert list(tickets(desk_dir)) == ["MD-1"]


def test_a_message_taken_by_another_reader_is_skipped(desk_dir, tmp_path):
    box = make_maildir(tmp_path / "Maildir")
    deliver(box, "new/1.A.host", make_mail(subject="Ours"), 100)
    deliver(box, "new/2.B.host", make_mail(subject="Taken"), 200)
    from maildesk.common.config_file import load_config
    from maildesk.service.desk import Desk

    maildir = Maildir(box)
    waiting = maildir.waiting()
    (box / "new" / "2.B.host").rename(box / "cur" / "2.B.host:2,S")  # a mail client read it
    desk = Desk.build(load_config(desk_dir / "maildesk.yaml"))
    try:
        results = list(
            ingest_paths(
                desk.pipeline, waiting, lambda _: SourceInfo(), committed=maildir.mark_seen
            )
        )
    finally:
        desk.close()
    assert [(p.name, r.outcome) for p, r in results] == [("1.A.host", "created")]
    assert _names(box / "cur") == ["1.A.host:2,S", "2.B.host:2,S"]


def test_a_file_that_cannot_be_read_stays_and_the_others_go_on(
    desk_dir, tmp_path, monkeypatch, caplog
):
    # Mode 000 or another owner (the tests run as root, which reads anything), or a disk
    # error: that file waits in new/ for the next pass; the files after it are ingested.
    import pathlib

    box = make_maildir(tmp_path / "Maildir")
    for n, subject in enumerate(["First", "Unreadable", "Last"], start=1):
        deliver(box, f"new/{n}.A.host", make_mail(subject=subject), 100 * n)
    real_open = pathlib.Path.open

    def open_(self, *args, **kwargs):
        if self.name == "2.A.host":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", open_)
    from maildesk.common.config_file import load_config
    from maildesk.service.desk import Desk

    maildir = Maildir(box)
    desk = Desk.build(load_config(desk_dir / "maildesk.yaml"))
    try:
        results = list(
            ingest_paths(
                desk.pipeline,
                maildir.waiting(),
                lambda _: SourceInfo(),
                committed=maildir.mark_seen,
            )
        )
    finally:
        desk.close()
    assert [(p.name, r.outcome) for p, r in results] == [
        ("1.A.host", "created"),
        ("3.A.host", "created"),
    ]
    assert _names(box / "new") == ["2.A.host"]
    assert "2.A.host cannot be read (Permission denied): left in place" in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give message FILES (or -), --maildir DIR or --spool, one of them"),
        (("a.eml", "-"), "- (a message on stdin) must be the only argument"),
    ],
)
def test_ingest_says_what_to_give_it(desk_dir, args, message):
    result = run(desk_dir, "ingest", *args)
    assert result.exit_code == 2 and message in result.output


def test_a_folder_that_is_not_a_maildir_is_named(desk_dir, tmp_path):
    (tmp_path / "inbox" / "new").mkdir(parents=True)
    result = run(desk_dir, "ingest", "--maildir", str(tmp_path / "inbox"))
    assert result.exit_code == 1
    assert "is not a Maildir: it has no cur/ folder" in result.output


def test_the_daemon_polls_a_maildir_and_reports_it_in_status(tmp_path):
    from tests.daemon_helpers import DaemonProcess, Db, desk_dir, maildesk, wait_until

    box = make_maildir(tmp_path / "Maildir")
    deliver(box, "new/1.A.host", make_mail(subject="Waiting before start"), 100)
    config = desk_dir(tmp_path / "desk", [])
    with config.open("a") as fh:  # a relative path: resolved against maildesk.yaml's folder
        fh.write("maildirs:\n  - {name: local, path: ../Maildir, poll_seconds: 0.2}\n")
    daemon = DaemonProcess(config).start()
    db = Db(config)
    try:
        wait_until(lambda: db.tickets() == 1, 20, "the waiting message", daemon)
        deliver(box, "new/2.B.host", make_mail(subject="Arrived while running"), 200)
        wait_until(lambda: db.tickets() == 2, 10, "the new message", daemon)
        seen = ["1.A.host:2,S", "2.B.host:2,S"]
        wait_until(lambda: _names(box / "cur") == seen, 5, "both marked seen", daemon)
        rows = json.loads(maildesk(config, "status", "--json").stdout)
        (row,) = [r for r in rows if r["name"] == "local"]  # the other is the spool
        assert (row["name"], row["state"], row["backlog"]) == ("local", "idle", 0)
        assert db.subjects() == ["Arrived while running", "Waiting before start"]
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
        db.close()


def test_sighup_adds_a_maildir_to_a_running_daemon(tmp_path):
    import signal

    from tests.daemon_helpers import DaemonProcess, Db, desk_dir, wait_until

    box = make_maildir(tmp_path / "Maildir")
    config = desk_dir(tmp_path / "desk", [])
    daemon = DaemonProcess(config).start()
    db = Db(config)
    try:
        daemon.wait_log("nothing to ingest")
        deliver(box, "new/1.A.host", make_mail(subject="Before the reload"), 100)
        with config.open("a") as fh:
            fh.write(f"maildirs:\n  - {{name: local, path: {box}, poll_seconds: 0.2}}\n")
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("mailbox local: added")
        wait_until(lambda: db.tickets() == 1, 10, "the waiting message", daemon)
        assert db.subjects() == ["Before the reload"]
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
        db.close()


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_maildir_may_not_take_a_mailbox_name(tmp_path):
    from maildesk.common.config_file import load_config
    from maildesk.common.errors import ConfigError

    path = tmp_path / "maildesk.yaml"
    path.write_text(
        "mailboxes:\n  - {name: support, host: imap.example.com, username: u,"
        " password: {env: X}}\nmaildirs:\n  - {name: support, path: Maildir}\n"
    )
    with pytest.raises(ConfigError, match="repeated: support"):
        load_config(path)


def test_check_names_a_maildir_that_is_missing(desk_dir, tmp_path):
    make_maildir(tmp_path / "Maildir")
    with (desk_dir / "maildesk.yaml").open("a") as fh:
        fh.write(f"maildirs:\n  - {{name: local, path: {tmp_path / 'Maildir'}}}\n")
        fh.write(f"  - {{name: typo, path: {tmp_path / 'Maildri'}}}\n")
    result = run(desk_dir, "check")
    assert result.exit_code == 1
    assert f"maildir typo: {tmp_path / 'Maildri'} is not a Maildir" in result.output
    assert "maildir local" not in result.output


def test_a_backlog_is_listed_a_slice_at_a_time_oldest_first(desk, tmp_path, monkeypatch):
    # Listing 100,000 waiting files whole took 58 MiB: the daemon lists the
    # oldest LISTED, ingests them, then lists again, and status still shows the backlog.
    from maildesk.common.config import MaildirConfig
    from maildesk.service import maildir_ingest
    from maildesk.service.maildir_ingest import MaildirIngest
    from maildesk.store.models import Ticket

    box = make_maildir(tmp_path / "Maildir")
    for n in range(7):
        deliver(box, f"new/{n}.M.host", make_mail(subject=f"request {n}"), 1000 - n)
    maildir = Maildir(box)
    oldest = maildir.waiting(limit=3)
    assert [p.name for p in oldest] == ["6.M.host", "5.M.host", "4.M.host"]
    assert maildir.unseen == 7

    monkeypatch.setattr(maildir_ingest, "LISTED", 3)
    source = MaildirIngest(desk, MaildirConfig(name="box", path=box, batch_size=2))
    source.open()
    assert source.sync() == 7
    with desk.sessions() as s:  # oldest delivery first, across the slices
        subjects = list(s.scalars(select(Ticket.subject).order_by(Ticket.id)))
    assert subjects == [f"request {n}" for n in range(6, -1, -1)]
    assert sorted(p.name for p in (box / "cur").iterdir()) == [f"{n}.M.host:2,S" for n in range(7)]
    assert maildir.waiting() == []


def test_ingest_maildir_takes_a_backlog_a_slice_at_a_time(desk_dir, tmp_path, monkeypatch):
    from maildesk.service import maildir_ingest

    monkeypatch.setattr(maildir_ingest, "LISTED", 2)
    box = make_maildir(tmp_path / "Maildir")
    for n in range(5):
        deliver(box, f"new/{n}.M.host", make_mail(subject=f"request {n}"), 1000 + n)
    result = run(desk_dir, "ingest", "--maildir", str(box))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        *(f"new/{n}.M.host: created MD-{n + 1}" for n in range(5)),
        f"{box}: 5 unseen message(s) ingested and marked seen",
    ]


def test_sighup_reloads_the_rules_even_when_the_file_looks_unchanged(tmp_path):
    # An edit of the same size within one mtime tick (or a copy that kept the old mtime)
    # is not seen by the periodic check; SIGHUP is how an admin makes sure.
    import os
    import signal

    from tests.daemon_helpers import DaemonProcess, desk_dir

    config = desk_dir(tmp_path / "desk", [])
    rules = config.parent / "rules.yaml"
    daemon = DaemonProcess(config).start()
    try:
        daemon.wait_log("nothing to ingest")
        before = rules.stat()
        text = rules.read_text()
        edited = text.replace("priority: high", "priority: urgn", 1)  # same size, invalid
        assert edited != text and len(edited) == len(text)
        rules.write_text(edited)
        os.utime(rules, ns=(before.st_atime_ns, before.st_mtime_ns))
        daemon.signal(signal.SIGHUP)
        daemon.wait_log("rules not reloaded, keeping the last good rules")
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
