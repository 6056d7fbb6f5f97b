"""Notifications claimed by a daemon that died: taken over once its heartbeat lapses, and
a sender that lost its claim records nothing over the new claimer's result."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select

from maildesk.store import leases
from maildesk.store.models import OutboxEntry
from maildesk.store.outbox_queue import Mark
from tests.mailflow import send_all, sender
from tests.test_outbox_sender import ingest

DEAD, ALIVE = "node-a:1:dead", "node-b:2:alive"


def statuses(desk) -> list[str]:
    with desk.sessions() as session:
        return list(session.scalars(select(OutboxEntry.status).order_by(OutboxEntry.id)))


def beat(desk, holder: str, seconds: float) -> None:
    with desk.sessions() as session, session.begin():
        leases.beat(session, holder, seconds, mailboxes=1)


def test_a_dead_daemons_claims_are_sent_once_its_heartbeat_lapses(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    ingest(desk, 2)  # an acknowledgement and two agent copies each
    beat(desk, DEAD, 0.5)
    queue = sender(desk, worker_id=DEAD).queue  # claims for 120 s, then "dies"
    token, rows = queue.claim()
    assert len(rows) == 6
    beat(desk, ALIVE, 60)
    assert send_all(desk, worker_id=ALIVE) == 0  # its heartbeat still beats: hands off
    time.sleep(0.6)
    assert send_all(desk, worker_id=ALIVE) == 6  # lapsed: at once, not after the 120 s
    assert statuses(desk) == ["sent"] * 6
    # The "dead" sender was only slow: its late result is not written over the real one.
    assert queue.write_marks([Mark(rows[0].id, {"status": "failed"})], token) == 0
    assert statuses(desk) == ["sent"] * 6
    assert len(smtp_sink.received) == 6


def test_a_hanging_send_does_not_keep_the_ones_before_it_unrecorded(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    ingest(desk, 1)
    smtp_sink.data_delays = [0, 2.0]  # the second message hangs at DATA for 2 s

    async def scenario() -> list[str]:
        outbox_sender = sender(desk)
        task = asyncio.create_task(outbox_sender.drain())
        await asyncio.sleep(1.0)
        during = await asyncio.to_thread(statuses, desk)
        await task
        await outbox_sender.close()
        return during

    during = asyncio.run(scenario())
    # A daemon killed now would send the first again (a duplicate) had it not been recorded.
    assert during == ["sent", "sending", "sending"]
    assert statuses(desk) == ["sent"] * 3
