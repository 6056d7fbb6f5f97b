"""Three `maildesk run` processes on one PostgreSQL share twenty Maildirs (Maildirs take
the same leases as IMAP mailboxes, without twenty IMAP accounts): the share, a daemon
joining, one killed with SIGKILL, and every message and notification exactly once."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.service.source_ingest import lease_name
from maildesk.store import leases
from maildesk.store.db import make_engine, upgrade
from maildesk.store.models import Message, OutboxEntry, Ticket
from tests.conftest import make_mail, write_config
from tests.daemon_helpers import DaemonProcess, Db, maildesk, wait_until
from tests.servers import SmtpSink, _need_aiosmtpd
from tests.test_file_sources import make_maildir

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

LEASE = 8.0  # daemon.lease_seconds here; the heartbeat lapses after half of it
BOXES = 20
NODES = ("node-a", "node-b", "node-c")  # three "machines": no same-host shortcut


class StallingSink(SmtpSink):
    """An SMTP sink that, once armed, holds the next DATA until released, then refuses
    it (451) without recording it: a sender caught mid-send when its daemon dies."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.stalled: str | None = None  # the Message-ID being held
        self.release = False

    async def handle_DATA(self, server, session, envelope):
        if not self.armed:
            return await super().handle_DATA(server, session, envelope)
        self.armed = False
        self.stalled = BytesHeaderParser().parsebytes(envelope.original_content)["Message-ID"]
        while not self.release:
            await asyncio.sleep(0.05)
        return "451 4.3.0 try again later"


@pytest.fixture
def sink():
    _need_aiosmtpd()
    stalling = StallingSink().start()
    yield stalling
    stalling.release = True
    stalling.stop()


class Desk:
    """Twenty Maildirs, one database, a config file per daemon (one per node name)."""

    def __init__(self, tmp_path: Path, url: str, sink: SmtpSink):
        self.boxes = {
            f"box{n:02d}": make_maildir(tmp_path / "mail" / f"box{n:02d}") for n in range(BOXES)
        }
        entries = "".join(
            f"  - {{name: {name}, path: {path}, poll_seconds: 0.2, batch_size: 1}}\n"
            for name, path in self.boxes.items()
        )
        self.configs = {}
        for node in NODES:
            extra = (
                f"log_level: info\nmaildirs:\n{entries}daemon:\n  lease_seconds: {LEASE}\n"
                f"  max_backoff_seconds: 2\n  node: {node}\n{sink.smtp_config()}"
            )
            path = write_config(tmp_path / "desk", database_url=url, extra=extra)
            self.configs[node] = path.rename(path.with_name(f"{node}.yaml"))
        self.sent: dict[str, str] = {}  # Message-ID -> mailbox, of every message delivered
        self.daemons: dict[str, DaemonProcess] = {}

    def start(self, node: str) -> DaemonProcess:
        daemon = DaemonProcess(self.configs[node], f"{node}.log").start()
        self.daemons[node] = daemon
        return daemon

    def deliver(self, per_box: int) -> None:
        """`per_box` new messages in every Maildir, each from its own customer."""
        for name, box in self.boxes.items():
            for _ in range(per_box):
                n = len(self.sent)
                message_id = f"<m{n}@customer.example.org>"
                raw = make_mail(
                    sender=f"c{n}@example.org", subject=f"case {n}", message_id=message_id
                )
                (box / "tmp" / f"{n}.host").write_bytes(raw)
                (box / "tmp" / f"{n}.host").rename(box / "new" / f"{n}.host")
                self.sent[message_id.strip("<>")] = name


def holdings(db: Db) -> dict[str, str]:
    """Mailbox -> the node whose daemon holds its lease now (live leases only)."""
    with Session(db.engine) as session:
        held = leases.all_leases(session)
    return {
        name: lease.holder.split(":")[0]
        for name in (f"box{n:02d}" for n in range(BOXES))
        if (lease := held.get(lease_name(name))) is not None and lease.live
    }


def shares(db: Db) -> Counter[str]:
    return Counter(holdings(db).values())


def spread(db: Db, nodes: tuple[str, ...]) -> bool:
    """Every mailbox held, by the given nodes only, each within floor..ceil of its share."""
    held = holdings(db)
    low, high = BOXES // len(nodes), -(-BOXES // len(nodes))
    counts = Counter(held.values())
    return (
        len(held) == BOXES
        and set(counts) == set(nodes)
        and all(low <= counts[n] <= high for n in nodes)
    )


def test_three_daemons_share_twenty_maildirs_and_survive_a_kill(postgres_url, sink, tmp_path):
    desk = Desk(tmp_path, postgres_url, sink)
    engine = make_engine(postgres_url)
    upgrade(engine)
    engine.dispose()
    db = Db(desk.configs["node-a"])
    try:
        _run(desk, db, sink)
    finally:
        for daemon in desk.daemons.values():
            daemon.ensure_dead()
        db.close()


def _run(desk: Desk, db: Db, sink: StallingSink) -> None:
    # Two daemons split the twenty Maildirs 10/10.
    desk.deliver(1)
    first, _ = desk.start("node-a"), desk.start("node-b")
    wait_until(lambda: spread(db, NODES[:2]), 30, "a 10/10 split", first)
    assert sorted(shares(db).values()) == [10, 10]

    # A third joins while a backlog is being ingested, batch by batch.
    joined = time.monotonic()
    third = desk.start("node-c")
    third.wait_log("started as", timeout=30)
    desk.deliver(1)  # its heartbeat comes a moment later, when these are being ingested
    wait_until(lambda: _alive(db, "node-c"), 30, "the third daemon's heartbeat", third)
    registered = time.monotonic()
    wait_until(lambda: spread(db, NODES), LEASE, "its share within one lease period", third)
    print(
        f"\njoin: share {sorted(shares(db).values())} {time.monotonic() - registered:.2f} s "
        f"after the heartbeat ({time.monotonic() - joined:.2f} s after the start)"
    )
    assert sorted(shares(db).values()) == [6, 7, 7]
    _status_shows(desk, shares(db))

    # Everything so far ingested and acknowledged, once.
    wait_until(lambda: _incoming(db) == len(desk.sent), 60, "the backlog", third)
    wait_until(lambda: _all_sent(db, sink), 30, "the notifications", third)

    # A sender is caught mid-send (its message held at DATA); its daemon is killed.
    sink.armed = True
    desk.deliver(1)
    wait_until(lambda: sink.stalled is not None, 30, "a notification held at DATA", third)
    victim_node = _claimer(db, sink.stalled)
    victim = desk.daemons[victim_node]
    held_by_victim = shares(db)[victim_node]
    assert 6 <= held_by_victim <= 7
    time.sleep(0.3)  # results of its earlier sends reach the database (within 50 ms)
    victim.kill9()
    killed = time.monotonic()
    sink.release = True  # the dead connection gets its 451: that copy was never delivered
    survivors = tuple(n for n in NODES if n != victim_node)
    wait_until(lambda: spread(db, survivors), 2 * LEASE, "the takeover", desk.daemons[survivors[0]])
    takeover = time.monotonic() - killed
    stalled_id = sink.stalled.strip("<>")
    wait_until(
        lambda: stalled_id in sink.message_ids(),
        20,
        "the held notification",
        desk.daemons[survivors[0]],
    )
    resent = time.monotonic() - killed
    print(
        f"kill: {held_by_victim} mailboxes taken over in {takeover:.2f} s, "
        f"its claimed notification sent {resent:.2f} s after the kill"
    )
    assert takeover <= LEASE  # documented worst case: 2/3 of the lease, plus a round
    assert sorted(shares(db).values()) == [10, 10]

    # Mail keeps coming; the survivors take all of it.
    desk.deliver(1)
    last = desk.daemons[survivors[0]]
    wait_until(lambda: _incoming(db) == len(desk.sent), 60, "every message", last)
    wait_until(lambda: _all_sent(db, sink), 30, "every notification", last)
    time.sleep(1)  # a duplicate would arrive now

    with db.engine.connect() as conn:
        stored = list(conn.scalars(select(Message.message_id).where(Message.direction == "in")))
        tickets = len(conn.scalars(select(Ticket.id)).all())
    assert sorted(m.strip("<>") for m in stored) == sorted(desk.sent)  # each message once
    assert tickets == len(desk.sent)
    acks = Counter(
        str(r.parsed()["In-Reply-To"]).strip("<>")
        for r in sink.received
        if r.rcpt_tos[0].startswith("c")  # to a customer, not to the agents
    )
    assert acks == Counter(desk.sent.keys())  # each customer acknowledged exactly once
    with db.engine.connect() as conn:
        queued = conn.scalars(select(OutboxEntry.message_id)).all()
    assert Counter(sink.message_ids()) == Counter(queued)  # every notification, once
    for node, daemon in desk.daemons.items():  # no batch was cut off by a hand-over
        assert not re.search(r"lease mailbox:\S+ lost", daemon.log()), node
    for node in survivors:
        assert desk.daemons[node].stop() == 0


def _status_shows(desk: Desk, held: Counter[str]) -> None:
    """`maildesk status` lists each daemon with the number of mailboxes it holds."""
    done = maildesk(desk.configs["node-a"], "status")
    assert done.returncode == 0, done.stderr
    table = done.stdout.partition("\n\n")[2].splitlines()[2:]
    shown = {line.split()[0].split(":")[0]: line.split() for line in table}
    assert {node: int(fields[1]) for node, fields in shown.items()} == held
    assert all(fields[2] == "6-7" and fields[-1] == "alive" for fields in shown.values())


def _all_sent(db: Db, sink: SmtpSink) -> bool:
    """Every queued notification recorded as sent, and as many received by the server."""
    with db.engine.connect() as conn:
        statuses = Counter(conn.scalars(select(OutboxEntry.status)))
    return set(statuses) == {"sent"} and len(sink.received) >= statuses["sent"]


def _incoming(db: Db) -> int:
    with db.engine.connect() as conn:
        return len(conn.scalars(select(Message.id).where(Message.direction == "in")).all())


def _alive(db: Db, node: str) -> bool:
    with Session(db.engine) as session:
        return any(b.live and b.holder.startswith(f"{node}:") for b in leases.heartbeats(session))


def _claimer(db: Db, message_id: str) -> str:
    """The node whose sender claimed the notification `message_id`."""
    with db.engine.connect() as conn:
        claimed = conn.scalar(
            select(OutboxEntry.claimed_by).where(OutboxEntry.message_id == message_id.strip("<>"))
        )
    assert claimed, f"{message_id} is not claimed"
    return claimed.split(":")[0]
