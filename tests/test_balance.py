"""Sharing mailboxes among daemons: the fair-share rule, and hand-over at a batch boundary."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from maildesk.common.liveness import Liveness
from maildesk.service.balancer import Balancer, Share, decide, fair_share
from maildesk.service.mailbox_worker import MailboxWorker
from maildesk.service.source_ingest import lease_name
from maildesk.store import leases
from maildesk.store.models import Message
from tests.conftest import make_mail
from tests.daemon_helpers import run_for
from tests.test_file_sources import deliver, make_maildir


def settle(held: list[int], mailboxes: int, rounds: int = 20) -> tuple[list[int], int]:
    """Daemons take turns as the balancer does; (holdings at the end, mailboxes moved)."""
    held, moved = list(held), 0
    for _ in range(rounds):
        for me in random.sample(range(len(held)), len(held)):
            others = held[:me] + held[me + 1 :]
            change = decide(held[me], others, mailboxes, mailboxes - sum(held))
            held[me] += change
            moved += abs(change)
    return held, moved


@pytest.mark.parametrize(
    ("start", "mailboxes"),
    [
        ([12, 0, 0], 12),  # the issue: the first daemon took all twelve
        ([0, 0, 0], 20),
        ([20, 0, 0], 20),
        ([10, 10, 0], 20),  # a third daemon joins two
        ([7, 7], 20),  # one of three died: its 6 are free
        ([3, 3, 3, 1], 10),  # fair by ceil(M/N) alone, yet one daemon is short
        ([0], 5),
        ([2, 0, 0, 0, 0, 0, 0], 3),  # more daemons than mailboxes
    ],
)
def test_every_daemon_ends_with_floor_or_ceil_of_its_share(start, mailboxes):
    random.seed(7)
    held, _ = settle(start, mailboxes)
    share = fair_share(mailboxes, len(start))
    assert sum(held) == mailboxes
    assert all(share.low <= n <= share.high for n in held), held
    assert settle(held, mailboxes)[1] == 0  # balanced: nothing moves any more


def test_a_joining_daemon_takes_only_from_daemons_above_their_share():
    held, moved = settle([10, 10, 0], 20)
    assert sorted(held) == [6, 7, 7]
    assert moved == 2 * 6  # six handed over, six taken: no mailbox moves twice


def test_share_is_floor_and_ceil():
    assert fair_share(20, 3) == Share(6, 7)
    assert fair_share(12, 3) == Share(4, 4)
    assert fair_share(3, 0) == Share(3, 3)  # before the first heartbeat is read


class FakeSeat:
    """A mailbox worker as the balancer sees it."""

    def __init__(self, seat: str = "idle", syncing: bool = False):
        self.seat, self.syncing, self.asked = seat, syncing, None

    def offer(self) -> None:
        self.asked = "offer"

    def hand_over(self) -> None:
        self.asked = "hand over"


def round_of(balancer: Balancer) -> None:
    balancer._balance(balancer._beat(len(balancer.seats())))


def test_a_daemon_serving_no_mailboxes_takes_no_share(desk):
    seats = {f"box{n}": FakeSeat() for n in range(4)}
    sender_only = Balancer(desk, "node-b:2:x", dict)
    round_of(sender_only)  # alive (its claims are taken over when it dies), but no mailboxes
    round_of(Balancer(desk, "node-a:1:x", lambda: seats))
    assert [seat.asked for seat in seats.values()] == ["offer"] * 4


def test_a_joining_daemon_gets_idle_mailboxes_first(desk):
    seats = {"busy1": FakeSeat("held", True), "busy2": FakeSeat("held", True)}
    seats |= {"idle1": FakeSeat("held"), "idle2": FakeSeat("held")}
    with desk.sessions() as session, session.begin():
        for name in seats:
            assert leases.acquire(session, lease_name(name), "node-a:1:x", 60)
    first = Balancer(desk, "node-a:1:x", lambda: seats)
    round_of(first)
    assert all(seat.asked is None for seat in seats.values())  # alone: it keeps all four
    round_of(Balancer(desk, "node-b:2:x", lambda: {n: FakeSeat() for n in seats}))
    round_of(first)
    assert {n for n, seat in seats.items() if seat.asked} == {"idle1", "idle2"}


def test_hand_over_waits_for_the_batch_in_hand(make_desk, tmp_path):
    box = make_maildir(tmp_path / "Maildir")
    for n in range(6):
        deliver(box, f"new/{n}.A.host", make_mail(subject=f"m{n}"), 100 + n)
    desk = make_desk(
        extra=f"maildirs:\n  - {{name: local, path: {box}, batch_size: 2, poll_seconds: 0.2}}\n"
    )
    writing, go_on = threading.Event(), threading.Event()
    finish_batch = desk.pipeline.finish_batch

    def slow_batch(started, **options):
        writing.set()
        go_on.wait(10)
        return finish_batch(started, **options)

    desk.pipeline.finish_batch = slow_batch

    def lease() -> leases.LeaseInfo | None:
        with desk.sessions() as session:
            return leases.current(session, lease_name("local"))

    async def main() -> leases.LeaseInfo | None:
        worker = MailboxWorker(desk, desk.config.maildirs[0], "node:1:me", threading.Lock())
        task = asyncio.create_task(worker.run())
        worker.offer()
        assert await asyncio.to_thread(writing.wait, 10)  # the first batch is being written
        worker.hand_over()
        await asyncio.sleep(0.3)
        during = lease()  # asked to hand over, but the batch is not committed yet
        go_on.set()
        for _ in range(100):
            if worker.seat == "idle":
                break
            await asyncio.sleep(0.05)
        worker.stop.set()
        await task
        return during

    during = asyncio.run(main())
    assert during is not None and during.live and during.holder == "node:1:me"
    with desk.sessions() as session:
        assert session.query(Message).count() == 2  # the whole first batch, nothing more
    after = lease()
    assert after is not None and not after.live  # released for another daemon to take
    assert len(list((box / "new").iterdir())) == 4  # the rest waits for the next holder


def test_the_heartbeat_tells_the_sender_how_long_it_holds(desk):
    now = [100.0]
    liveness = Liveness(clock=lambda: now[0])
    assert liveness.holds()  # no heartbeat yet: nothing can lapse
    balancer = Balancer(desk, "node-a:1:x", dict, liveness)
    run_for(balancer.run, 0.3)
    lasts = balancer.heartbeat_seconds  # the heartbeat lasts this long from the renewal
    now[0] = 100.0 + lasts * 2 / 3 - 0.5  # a third of it is kept for a send in hand
    assert liveness.holds()
    now[0] = 100.0 + lasts * 2 / 3 + 0.5
    assert not liveness.holds()
