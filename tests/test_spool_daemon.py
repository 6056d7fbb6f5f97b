"""The daemon drains the spool `maildesk ingest -` writes: promptly, and exactly once."""

from __future__ import annotations

import json
import time
from io import BytesIO

from maildesk.intake.spool import spool_message
from tests.conftest import make_mail
from tests.daemon_helpers import DaemonProcess, Db, desk_dir, maildesk, wait_until
from tests.test_spool import pipe


def spool_row(config) -> dict:
    rows = json.loads(maildesk(config, "status", "--json").stdout)
    (row,) = [r for r in rows if r["name"].startswith("spool@")]
    return row


def test_the_daemon_takes_piped_mail_within_a_second_or_two(tmp_path):
    config = desk_dir(tmp_path / "desk", [])
    daemon = DaemonProcess(config).start()
    db = Db(config)
    try:
        wait_until(lambda: spool_row(config)["state"] == "idle", 30, "the spool drain", daemon)
        started = time.monotonic()
        assert pipe(config, make_mail(subject="Piped")).returncode == 0
        wait_until(lambda: db.tickets() == 1, 5, "the piped message's ticket", daemon)
        took = time.monotonic() - started
        assert took < 3, f"{took:.1f} s from the pipe to the ticket"
        assert db.subjects() == ["Piped"]
        new = config.parent / "spool" / "new"
        wait_until(lambda: not list(new.iterdir()), 5, "the file out of new/", daemon)
        row = spool_row(config)
        assert (row["backlog"], row["oldest_at"], row["holder"] is not None) == (0, None, True)
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
        db.close()


def test_kill_9_mid_drain_then_restart_loses_and_doubles_nothing(tmp_path):
    config = desk_dir(tmp_path / "desk", [])
    total = 600
    for i in range(total):  # what `ingest -` writes, without 600 processes
        spool_message(config.parent / "spool", BytesIO(make_mail(subject=f"spooled {i}")))
    db = Db(config)
    daemon = DaemonProcess(config).start()
    try:
        wait_until(lambda: db.messages() >= 200, 60, "the first batch", daemon)
        daemon.kill9()
        assert db.messages() < total, "the daemon finished before it was killed"
    finally:
        daemon.ensure_dead()
    done = maildesk(config, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert (db.messages(), db.tickets()) == (total, total)
    assert sorted(db.subjects()) == sorted(f"spooled {i}" for i in range(total))
    assert list((config.parent / "spool" / "new").iterdir()) == []
    db.close()


def test_a_spool_that_cannot_be_made_is_not_a_failing_source(tmp_path):
    # Users who never pipe mail must not see an alarm for a spool they do not use.
    config = desk_dir(tmp_path / "desk", [])
    with config.open("a") as fh:
        fh.write("spool: maildesk.yaml/spool\n")  # under a file: cannot exist
    done = maildesk(config, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert "cannot create it" in done.stderr
    assert maildesk(config, "status").returncode == 0
    assert spool_row(config)["failing"] is False
    checked = maildesk(config, "check")
    assert "ok   spool: " in checked.stdout and "may not write" in checked.stdout
