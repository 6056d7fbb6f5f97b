"""`maildesk run` as an admin runs it: a child process against a real Dovecot (and PostgreSQL)."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from maildesk.service.source_ingest import lease_name
from tests.conftest import make_mail
from tests.daemon_helpers import (
    DaemonProcess,
    Db,
    desk_dir,
    mailbox_yaml,
    maildesk,
    wait_until,
)

pytestmark = pytest.mark.dovecot


@pytest.fixture
def daemons():
    """Start DaemonProcesses; any left running are killed after the test."""
    started: list[DaemonProcess] = []

    def start(config, log_name="daemon.log") -> DaemonProcess:
        daemon = DaemonProcess(config, log_name).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.ensure_dead()


def status(config) -> list[dict]:
    done = maildesk(config, "status", "--json")
    return json.loads(done.stdout)


def all_seen(dovecot, user) -> bool:
    flags = dovecot.flags(user)
    return bool(flags) and all("\\Seen" in f for f in flags.values())


def test_mail_arriving_while_idling_becomes_a_ticket(dovecot, daemons, tmp_path):
    user = dovecot.add_user("support")
    config = desk_dir(tmp_path, [mailbox_yaml(dovecot, user, tmp_path)])  # polls every 300 s
    daemon = daemons(config)
    db = Db(config)
    wait_until(lambda: db.state() == "idle", 20, "the mailbox to idle", daemon)
    dovecot.deliver(user, make_mail(subject="Arrived during IDLE"))
    wait_until(lambda: db.tickets() == 1, 10, "a ticket from IDLE", daemon)
    assert db.subjects() == ["Arrived during IDLE"]
    wait_until(lambda: all_seen(dovecot, user), 5, "\\Seen after commit", daemon)
    assert daemon.stop() == 0
    assert "stopped" in daemon.log()
    assert db.state() == "stopped"
    db.close()


def test_kill_9_mid_batch_then_restart_loses_and_doubles_nothing(dovecot, daemons, tmp_path):
    user = dovecot.add_user("support")
    total = 150
    dovecot.append(user, [make_mail(subject=f"backlog {i}") for i in range(total)])
    config = desk_dir(tmp_path, [mailbox_yaml(dovecot, user, tmp_path, batch_size=10)])
    db = Db(config)
    for round_ in range(2):  # kill it twice, at different points
        daemon = daemons(config, f"daemon{round_}.log")
        start = len(db.receipts())
        wait_until(lambda: len(db.receipts()) >= start + 30, 30, "progress", daemon)  # noqa: B023
        daemon.kill9()
        assert len(db.receipts()) < total, "the daemon finished before it was killed"
    done = maildesk(config, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert db.messages() == total
    assert db.tickets() == total
    receipts = db.receipts()
    assert len(receipts) == len(set(receipts)) == total
    assert sorted(db.subjects()) == sorted(f"backlog {i}" for i in range(total))
    assert all_seen(dovecot, user)
    db.close()


def test_sigterm_finishes_and_acknowledges_the_batch_in_hand(dovecot, daemons, tmp_path):
    user = dovecot.add_user("support")
    dovecot.append(user, [make_mail(subject=f"m{i}") for i in range(200)])
    config = desk_dir(tmp_path, [mailbox_yaml(dovecot, user, tmp_path, batch_size=20)])
    db = Db(config)
    daemon = daemons(config)
    wait_until(lambda: db.messages() >= 20, 30, "the first batch", daemon)
    assert daemon.stop(timeout=20) == 0
    committed = db.messages()
    assert 20 <= committed < 200
    assert committed % 20 == 0  # whole batches only
    seen = sum("\\Seen" in f for f in dovecot.flags(user).values())
    assert seen == committed  # every committed message was acknowledged before exit
    db.close()


def test_dovecot_restart_under_a_running_daemon(own_dovecot, daemons, tmp_path):
    user = own_dovecot.add_user("support")
    config = desk_dir(tmp_path, [mailbox_yaml(own_dovecot, user, tmp_path)])
    daemon = daemons(config)
    db = Db(config)
    own_dovecot.deliver(user, make_mail(subject="before restart"))
    wait_until(lambda: db.tickets() == 1, 20, "the first ticket", daemon)
    own_dovecot.restart()
    own_dovecot.deliver(user, make_mail(subject="after restart"))
    wait_until(lambda: db.tickets() == 2, 30, "a ticket after the restart", daemon)
    assert "retrying in" in daemon.log()  # it noticed and reconnected
    assert db.subjects() == ["after restart", "before restart"]
    assert daemon.stop() == 0
    db.close()


def test_broken_mailboxes_are_reported_while_the_others_keep_working(dovecot, daemons, tmp_path):
    good, bad = dovecot.add_user("good"), dovecot.add_user("bad")
    mute = socket.socket()  # accepts connections, never greets: a hung server
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    hung_port = mute.getsockname()[1]
    entries = [
        mailbox_yaml(dovecot, bad, tmp_path, name="wrongpw", password="nope"),
        mailbox_yaml(dovecot, good, tmp_path, name="hung", port=hung_port, timeout=2),
        mailbox_yaml(dovecot, good, tmp_path, name="good"),
    ]
    config = desk_dir(tmp_path, entries)
    daemon = daemons(config)
    db = Db(config)
    dovecot.deliver(good, make_mail(subject="still served"))
    wait_until(lambda: db.tickets() == 1, 10, "the good mailbox's ticket", daemon)
    wait_until(lambda: db.state("wrongpw") == "auth-failed", 10, "auth error", daemon)
    done = maildesk(config, "status")
    assert done.returncode == 1  # monitoring sees a failing mailbox
    mailboxes, _, daemons_table = done.stdout.partition("\n\n")
    lines = {line.split()[0]: line for line in mailboxes.splitlines()[2:]}
    (daemon_line,) = daemons_table.splitlines()[2:]  # one daemon, alive, sharing with nobody
    assert daemon_line.split()[2] == "3" and daemon_line.endswith("alive")  # fair share: all 3
    assert "auth-failed" in lines["wrongpw"]
    assert f"login refused for {bad}: [AUTHENTICATIONFAILED]" in lines["wrongpw"]
    good_line = lines["good"].split()
    assert good_line[1] == "idle"
    assert good_line[3].endswith("s") and good_line[4:6] == ["ago", "0"]  # last success, backlog
    wait_until(lambda: db.state("hung") == "error", 15, "the timeout", daemon)
    hung = next(r for r in status(config) if r["name"] == "hung")
    assert "timed out" in hung["last_error"]
    assert daemon.stop() == 0
    mute.close()
    db.close()


def test_sighup_adds_and_removes_mailboxes_without_a_restart(dovecot, daemons, tmp_path):
    first, second = dovecot.add_user("first"), dovecot.add_user("second")
    first_entry = mailbox_yaml(dovecot, first, tmp_path, name="first")
    config = desk_dir(tmp_path, [first_entry])
    daemon = daemons(config)
    db = Db(config)
    wait_until(lambda: db.state("first") == "idle", 20, "first idles", daemon)
    # The new mailbox polls every second instead of IDLE: that path is exercised too.
    polled = mailbox_yaml(dovecot, second, tmp_path, name="second", idle="false", poll_seconds=1)
    config.write_text(config.read_text().replace(first_entry, polled))
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("mailbox second: added")
    daemon.wait_log("mailbox first: removed")
    assert db.state("first") == "stopped"
    dovecot.deliver(second, make_mail(subject="to the new mailbox"))
    dovecot.deliver(first, make_mail(subject="to the removed mailbox"))
    wait_until(lambda: db.tickets() == 1, 15, "a ticket from the added mailbox", daemon)
    time.sleep(1.5)  # the removed mailbox would have been seen by now (IDLE: ~0.5 s)
    assert db.subjects() == ["to the new mailbox"]
    assert daemon.stop() == 0
    db.close()


def test_run_refuses_an_out_of_date_schema(tmp_path):
    from tests.conftest import write_config

    config = write_config(tmp_path)  # database never upgraded
    done = maildesk(config, "run", "--once")
    assert done.returncode == 1
    assert "maildesk db upgrade" in done.stderr


@pytest.mark.postgres
def test_postgresql_restart_under_a_running_daemon_loses_nothing(
    dovecot, postgres, postgres_url, daemons, tmp_path
):
    user = dovecot.add_user("dbdown")
    entry = mailbox_yaml(dovecot, user, tmp_path)
    config = desk_dir(tmp_path, [entry], database_url=postgres_url, lease_seconds=3)
    daemon = daemons(config)
    db = Db(config)
    dovecot.deliver(user, make_mail(subject="before the outage"))
    wait_until(lambda: db.tickets() == 1, 20, "the first ticket", daemon)
    postgres.stop("fast")  # as `systemctl restart postgresql` does
    try:
        dovecot.deliver(user, make_mail(subject="during the outage"))
        daemon.wait_log("database unavailable", timeout=20)
        assert not all_seen(dovecot, user)  # not acknowledged: nothing was committed
    finally:
        postgres.start()
    wait_until(lambda: db.tickets() == 2, 30, "the ticket after the outage", daemon)
    assert db.subjects() == ["before the outage", "during the outage"]
    wait_until(lambda: all_seen(dovecot, user), 10, "acknowledged after commit", daemon)
    assert daemon.stop() == 0
    db.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_daemons_on_postgres_store_a_backlog_exactly_once(
    dovecot, postgres_url, daemons, tmp_path
):
    user = dovecot.add_user("shared")
    total = 250
    dovecot.append(user, [make_mail(subject=f"shared {i}") for i in range(total)])
    # Small batches, so the kill below lands while the backlog is still being ingested.
    entry = mailbox_yaml(dovecot, user, tmp_path, batch_size=1)
    # Two "machines": node names differ, so the lease can only pass on by expiring.
    configs = [
        desk_dir(
            tmp_path,
            [entry],
            database_url=postgres_url,
            lease_seconds=3,
            config_name=f"{node}.yaml",
            node=node,
        )
        for node in ("node-a", "node-b")
    ]
    db = Db(configs[0])
    first = daemons(configs[0], "a.log")
    second = daemons(configs[1], "b.log")
    wait_until(lambda: len(db.receipts()) >= 20, 60, "progress", first)
    # Kill whichever daemon owns the mailbox; the other must take over its lease.
    owner = db.lease_holder(lease_name("support")) or ""
    victim, survivor = (first, second) if owner.startswith("node-a:") else (second, first)
    victim.kill9()
    killed_at = len(db.receipts())
    assert killed_at < total, "finished before the kill"
    wait_until(lambda: len(db.receipts()) == total, 90, "all receipts", survivor)
    assert "standing by" in survivor.log()
    assert db.messages() == total
    assert db.tickets() == total
    receipts = db.receipts()
    assert len(set(receipts)) == total
    wait_until(lambda: all_seen(dovecot, user), 10, "all acknowledged", survivor)
    time.sleep(1)  # nothing more should appear
    assert db.messages() == total
    assert survivor.stop() == 0
    db.close()


def test_under_systemd_log_lines_carry_journald_priorities(tmp_path):
    import os
    import subprocess
    import sys

    config = desk_dir(tmp_path, [])  # no mailboxes: one warning
    done = subprocess.run(
        [sys.executable, "-m", "maildesk", "--config", str(config), "run", "--once"],
        capture_output=True,
        text=True,
        env={**os.environ, "JOURNAL_STREAM": "8:12345"},
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stderr.startswith("<4>maildesk.service.daemon: nothing to ingest: add mailboxes:")
