"""Sharing the mailboxes fairly among the daemons that run on one database.

Each daemon keeps a heartbeat lease, `daemon:<holder>`, renewed every round (a sixth
of `daemon.lease_seconds`) and lasting half of it. Every round it reads who is alive
and who holds which mailbox, and moves towards its fair share: with M mailboxes and N
live daemons each holds floor(M/N) or ceil(M/N). It offers free mailboxes to its
workers while under its share, and asks workers to hand over (at a batch boundary,
never mid-batch) while above ceil(M/N), or above floor(M/N) while another daemon is
below it and nothing is free. A daemon whose heartbeat lapsed is dead: its mailbox
leases and its claimed notifications are free at once (see store/leases.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from maildesk.common.events import first_set
from maildesk.common.liveness import Liveness
from maildesk.service.source_ingest import lease_name
from maildesk.store import leases

if TYPE_CHECKING:
    from maildesk.service.desk import Desk

log = logging.getLogger(__name__)

SeatState = Literal["idle", "wanted", "held", "leaving"]

# Heartbeats of daemons dead this long are deleted (their claims and leases are long free).
SWEEP_AFTER = timedelta(hours=1)


class Seat(Protocol):
    """What the balancer needs of a mailbox worker."""

    @property
    def seat(self) -> SeatState: ...

    @property
    def syncing(self) -> bool:
        """Ingesting now (a hand-over then waits for the batch in hand)."""

    def offer(self) -> None:
        """Try to take the mailbox's lease now."""

    def hand_over(self) -> None:
        """Give the lease up after the batch in hand."""


@dataclass(frozen=True)
class Share:
    """A daemon's fair share: `low` or `high` (= low + 1 unless M divides by N) mailboxes."""

    low: int
    high: int


def fair_share(mailboxes: int, daemons: int) -> Share:
    daemons = max(daemons, 1)
    return Share(mailboxes // daemons, -(-mailboxes // daemons))


def decide(mine: int, others: Sequence[int], mailboxes: int, free: int) -> int:
    """How many mailboxes to take (> 0) or hand over (< 0) now.

    `mine` counts what this daemon holds or is taking, `others` what each other live
    daemon holds, `free` the mailboxes nobody holds (or that are being handed over).
    """
    share = fair_share(mailboxes, len(others) + 1)
    if mine > share.high:
        return share.high - mine
    if mine < share.low:
        return min(share.low - mine, free)
    if any(n < share.low for n in others):
        # Someone is short: let it take what is free; if nothing is, make room.
        return -1 if free == 0 and mine > share.low else 0
    return min(share.high - mine, free)


class Balancer:
    """The daemon's heartbeat and its share of the mailboxes; `run` is a background task."""

    def __init__(
        self,
        desk: Desk,
        holder: str,
        seats: Callable[[], Mapping[str, Seat]],
        liveness: Liveness | None = None,
    ) -> None:
        self.desk = desk
        self.holder = holder
        self.seats = seats
        self.liveness = liveness or Liveness()  # the sender stops when it no longer holds
        lease_seconds = desk.config.daemon.lease_seconds
        self.round_seconds = lease_seconds / 6
        self.heartbeat_seconds = lease_seconds / 2
        self.kicked = asyncio.Event()
        self.said: tuple[int, int, int] | None = None  # (daemons, mailboxes, held), last logged
        self.reported: dict[str, str] = {}  # mailbox -> the other holder we logged

    @property
    def heartbeat(self) -> str:
        return leases.HEARTBEAT + self.holder

    def kick(self) -> None:
        """Balance again now (a worker missed a mailbox another daemon took first)."""
        self.kicked.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Beat and balance every round until `stop`; then remove the heartbeat."""
        try:
            while not stop.is_set():
                self.kicked.clear()
                wait = self.round_seconds
                try:
                    started = self.liveness.clock()
                    held = await asyncio.to_thread(self._beat, len(self.seats()))
                    self.liveness.renewed(started, self.heartbeat_seconds)
                    if self._balance(held):
                        wait /= 4  # short of our share: take what is handed over soon
                except Exception as exc:  # the database is down: workers keep their leases
                    log.warning("balance: heartbeat not renewed: %s", exc)
                await first_set(stop, self.kicked, timeout=wait)
                if self.kicked.is_set():
                    await asyncio.sleep(0.05)  # misses come in bursts: one round for them
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._leave)

    def _beat(self, mailboxes: int) -> dict[str, leases.LeaseInfo]:
        """Renew our heartbeat and read every lease, in one transaction."""
        with self.desk.sessions() as session, session.begin():
            leases.beat(session, self.holder, self.heartbeat_seconds, mailboxes)
            if random.random() < 0.01:
                leases.sweep(session, leases.HEARTBEAT, SWEEP_AFTER)
            return leases.all_leases(session)

    def _leave(self) -> None:
        with self.desk.sessions() as session, session.begin():
            leases.forget(session, self.heartbeat, self.holder)

    def _balance(self, held: Mapping[str, leases.LeaseInfo]) -> bool:
        """Offer or hand over mailboxes; True while short of our share after it."""
        seats = self.seats()
        daemons, owner = self._view(held, seats)
        counts = Counter(owner.values())  # a daemon holding none counts 0
        mine = sum(seat.seat in ("wanted", "held") for seat in seats.values())
        leaving = sum(seat.seat == "leaving" for seat in seats.values())
        free = [m for m, seat in seats.items() if m not in owner and seat.seat == "idle"]
        others = [counts[d] for d in daemons if d != self.holder]
        change = decide(mine, others, len(seats), len(free) + leaving)
        self._tell(len(daemons), len(seats), mine, change, owner)
        if change > 0:
            for name in random.sample(free, min(change, len(free))):
                seats[name].offer()
        elif change < 0:
            # Idle mailboxes first: they change hands at once, without a batch to finish.
            held_now = [
                m for m in random.sample(list(seats), len(seats)) if seats[m].seat == "held"
            ]
            for name in sorted(held_now, key=lambda m: seats[m].syncing)[:-change]:
                seats[name].hand_over()
        return mine + max(change, 0) < fair_share(len(seats), len(daemons)).low

    def _view(
        self, held: Mapping[str, leases.LeaseInfo], seats: Mapping[str, Seat]
    ) -> tuple[set[str], dict[str, str]]:
        """The live daemons that serve mailboxes (us included), and who holds which."""
        daemons = {  # a heartbeat's token counts the mailboxes its daemon serves
            name.removeprefix(leases.HEARTBEAT)
            for name, lease in held.items()
            if name.startswith(leases.HEARTBEAT) and lease.live and lease.token > 0
        }
        # A daemon that died on this machine is known dead now (acquire takes its leases).
        daemons = {d for d in daemons if not leases.dead_here(d, self.holder)} | {self.holder}
        owner = {
            m: lease.holder
            for m in seats
            if (lease := held.get(lease_name(m))) is not None
            and lease.live
            and not leases.dead_here(lease.holder, self.holder)
        }
        return daemons, owner

    def _tell(
        self, daemons: int, mailboxes: int, mine: int, change: int, owner: Mapping[str, str]
    ) -> None:
        """Log the share when it changes, and each mailbox another daemon holds, once."""
        if (daemons, mailboxes, mine) != self.said or change:
            share = fair_share(mailboxes, daemons)
            shown = f"{share.low}" if share.low == share.high else f"{share.low}-{share.high}"
            what = f"; taking {change}" if change > 0 else ""
            what = f"; handing over {-change}" if change < 0 else what
            log.info(
                "balance: %d daemon(s), fair share %s of %d mailbox(es), holding %d%s",
                daemons,
                shown,
                mailboxes,
                mine,
                what,
            )
            self.said = (daemons, mailboxes, mine)
        for name, holder in owner.items():
            if holder != self.holder and self.reported.get(name) != holder:
                log.info("mailbox %s: held by %s; standing by", name, holder)
                self.reported[name] = holder
