"""Mail leaves at once: a committed batch wakes the sender, in the daemon and (PostgreSQL)
in every other process; the poll (every 5 s) is only the fallback.

Each test sends three messages and wants each acknowledgement within 2 s. With the poll
alone each would wait a random 0-5 s, so all three in time would be luck (about 3%).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from maildesk.store.outbox_signal import listen_conninfo, listen_outbox, signal_outbox
from tests.conftest import make_mail
from tests.daemon_helpers import DaemonProcess, Db, desk_dir, mailbox_yaml, maildesk, wait_until

ROUNDS = 3
PROMPT = 2.0  # seconds from arrival to the SMTP server's "250" for the acknowledgement


def acked(sink, address: str) -> bool:
    return any(address in r.rcpt_tos for r in sink.received)


def seconds_to_ack(sink, address: str, since: float, daemon: DaemonProcess) -> float:
    wait_until(lambda: acked(sink, address), 20, f"the acknowledgement to {address}", daemon)
    return time.monotonic() - since


@pytest.mark.dovecot
def test_a_committed_batch_wakes_the_daemons_sender(dovecot, smtp_sink, tmp_path):
    user = dovecot.add_user("wake")
    config = desk_dir(tmp_path, [mailbox_yaml(dovecot, user, tmp_path)])  # IDLE, no polling
    config.write_text(config.read_text() + smtp_sink.smtp_config())
    daemon = DaemonProcess(config).start()
    db = Db(config)
    try:
        wait_until(lambda: db.state() == "idle", 20, "the mailbox to be watched", daemon)
        time.sleep(1.0)  # the sender's first round is over: it sleeps on its 5 s poll
        waits = []
        for i in range(ROUNDS):
            address = f"wake{i}@example.org"
            started = time.monotonic()
            dovecot.deliver(user, make_mail(sender=address, subject=f"wake {i}"))
            waits.append(seconds_to_ack(smtp_sink, address, started, daemon))
            time.sleep(0.7)  # land somewhere else in the poll's cycle next time
        # Dovecot itself waits 500 ms before telling an IDLE client about new mail.
        assert max(waits) < PROMPT, waits
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()
        db.close()


@pytest.mark.postgres
def test_mail_queued_by_another_process_wakes_the_sender_on_postgresql(
    postgres_url, smtp_sink, tmp_path
):
    config = desk_dir(tmp_path, [], database_url=postgres_url)
    config.write_text(config.read_text() + smtp_sink.smtp_config())
    daemon = DaemonProcess(config).start()  # no mailboxes: it only sends and schedules
    try:
        daemon.wait_log("started as", timeout=20)
        time.sleep(1.5)
        waits = []
        for i in range(ROUNDS):
            address = f"pg{i}@example.org"
            mail = tmp_path / f"m{i}.eml"
            mail.write_bytes(make_mail(sender=address, subject=f"from the MTA {i}"))
            done = maildesk(config, "ingest", str(mail))  # as an MTA pipe would, another process
            assert done.returncode == 0, done.stderr
            waits.append(seconds_to_ack(smtp_sink, address, time.monotonic(), daemon))
            time.sleep(0.7)
        assert max(waits) < PROMPT, waits
        assert daemon.stop() == 0
    finally:
        daemon.ensure_dead()


@pytest.mark.postgres
def test_the_listener_comes_back_after_its_connection_is_killed(postgres, postgres_url):
    """A restarted database or a dropped connection: the listener connects again and
    wakes once (a signal may have been missed meanwhile), then hears the next NOTIFY."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from maildesk.common.backoff import Backoff

    engine = create_engine(postgres_url)
    conninfo = listen_conninfo(postgres_url)
    assert conninfo is not None and listen_conninfo("sqlite:///x.db") is None

    async def scenario() -> list[str]:
        woken: list[str] = []
        stop = asyncio.Event()
        task = asyncio.create_task(
            listen_outbox(
                conninfo,
                lambda: woken.append("wake"),
                stop,
                backoff=Backoff(0.1, 0.2),
                check_seconds=0.1,
            )
        )
        await asyncio.sleep(0.5)
        assert woken == ["wake"]  # connected: one wake-up for whatever came before
        with Session(engine) as session, session.begin():
            signal_outbox(session)
        await asyncio.sleep(0.3)
        assert len(woken) == 2
        with engine.begin() as conn:  # what a restart does to the listener's connection
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                )
            )
        await asyncio.sleep(1.0)
        assert len(woken) == 3  # back, and woken once for what it may have missed
        with Session(engine) as session, session.begin():
            signal_outbox(session)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 5)
        return woken

    try:
        assert len(asyncio.run(scenario())) == 4
    finally:
        engine.dispose()
