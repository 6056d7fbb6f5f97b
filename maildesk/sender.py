"""The outbox sender: claims due notifications, sends them, records what happened.

Several daemons can share one outbox. A sender claims a batch (on PostgreSQL with
`FOR UPDATE SKIP LOCKED`; on SQLite the write lock serialises claims) for a lease.
A row is marked sent only after the server accepted it, so a crash in between
sends the same bytes, with the same Message-ID, again once the lease runs out: a
notification may arrive twice, never not at all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from maildesk.config import Config, SmtpConfig
from maildesk.errors import SendError, SmtpUnavailable
from maildesk.smtp import Refusal, SmtpTransport, Transport
from maildesk.store.models import OutboxEntry

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Job:
    """One claimed notification: everything needed to send it without the database."""

    id: int
    message_id: str
    envelope_from: str
    recipients: list[str]
    raw: bytes
    attempts: int


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter for temporary failures of one notification."""

    base_seconds: float = 60.0
    cap_seconds: float = 3600.0
    min_seconds: float = 1.0

    def delay(self, attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
        """Wait before try number `attempts + 1`: half fixed, half random ("equal jitter")."""
        full = min(self.cap_seconds, self.base_seconds * 2 ** max(attempts - 1, 0))
        return timedelta(seconds=max(self.min_seconds, full / 2 + rand() * full / 2))


def build_sender(
    config: Config,
    sessions: sessionmaker[Session],
    *,
    clock: Clock | None = None,
    **options: Any,
) -> OutboxSender:
    """An OutboxSender over SMTP as configured (reads the SMTP password secret now)."""
    smtp = config.smtp
    password = smtp.password.read("SMTP password") if smtp.password else None
    transport = SmtpTransport(smtp, helo=config.tickets.id_domain, password=password)
    return OutboxSender(sessions, transport, smtp, clock=clock or _utcnow, **options)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _due(now: datetime) -> Any:
    """Pending and due, or claimed by a sender whose lease ran out (it crashed)."""
    return or_(
        and_(OutboxEntry.status == "pending", OutboxEntry.next_attempt_at <= now),
        and_(OutboxEntry.status == "sending", OutboxEntry.claimed_until < now),
    )


class OutboxSender:
    """Sends due outbox rows over one transport; `run` for the daemon, `drain` for the CLI."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        transport: Transport,
        config: SmtpConfig,
        *,
        clock: Clock,
        worker_id: str | None = None,
        batch_size: int = 50,
        lease_seconds: float = 120.0,
        poll_seconds: float = 5.0,
        backoff: Backoff | None = None,
        reconnect_seconds: tuple[float, float] = (1.0, 60.0),
    ):
        self.sessions = sessions
        self.transport = transport
        self.config = config
        self.clock = clock
        self.worker_id = worker_id or default_worker_id()
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_seconds = poll_seconds
        self.backoff = backoff or Backoff()
        self.reconnect_min, self.reconnect_max = reconnect_seconds
        self.unavailable: str | None = None  # why the last drain stopped early
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Send now: new notifications were committed (call from the event loop)."""
        self._wake.set()

    async def drain(self) -> int:
        """Send everything due now; return how many were sent.

        Stops early, leaving the rest pending, when no SMTP session can be opened;
        `self.unavailable` then says why.
        """
        self.unavailable = None
        sent = 0
        while True:
            token, jobs = await asyncio.to_thread(self._claim)
            if not jobs:
                return sent
            renew_at = self.clock() + self.lease / 2
            for index, job in enumerate(jobs):
                if self.clock() >= renew_at:
                    await asyncio.to_thread(self._renew, token)
                    renew_at = self.clock() + self.lease / 2
                try:
                    sent += await self._deliver(job)
                except SmtpUnavailable as exc:
                    self.unavailable = str(exc)
                    log.warning("outbox: %s; %d notification(s) wait", exc, len(jobs) - index)
                    await asyncio.to_thread(self._release, token, str(exc))
                    return sent

    async def run(self, stop: asyncio.Event) -> None:
        """Send due notifications until `stop` is set; back off while SMTP is unreachable."""
        delay = 0.0
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.drain()
                    failed = self.unavailable is not None
                except Exception:  # a database hiccup must not end the sender
                    log.exception("outbox sender failed; retrying")
                    failed = True
                if failed:
                    delay = min(max(delay * 2, self.reconnect_min), self.reconnect_max)
                    wait = delay
                else:
                    delay = 0.0
                    wait = await asyncio.to_thread(self._seconds_until_due)
                await _wait_any(stop, self._wake, wait)
        finally:
            await self.transport.close()

    async def _deliver(self, job: Job) -> int:
        try:
            refused = await self.transport.send(job.envelope_from, job.recipients, job.raw)
        except SmtpUnavailable:
            raise
        except SendError as exc:
            still = _temporary(getattr(exc, "refused", {}))
            if exc.permanent:
                await asyncio.to_thread(self._fail, job, str(exc))
            else:
                await asyncio.to_thread(self._retry_later, job, str(exc), still or job.recipients)
            return 0
        await asyncio.to_thread(self._mark_sent, job, refused)
        return 1

    # Database steps: each is one short transaction, run in a worker thread.

    def _claim(self) -> tuple[str, list[Job]]:
        now = self.clock()
        token = f"{self.worker_id}:{uuid.uuid4().hex[:8]}"
        with self.sessions() as session, session.begin():
            query = (
                select(OutboxEntry.id)
                .where(_due(now))
                .order_by(OutboxEntry.next_attempt_at, OutboxEntry.id)
                .limit(self.batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(session.scalars(query))
            if not ids:
                return token, []
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id.in_(ids), _due(now))
                .values(status="sending", claimed_by=token, claimed_until=now + self.lease)
                .execution_options(synchronize_session=False)
            )
            rows = session.execute(
                select(
                    OutboxEntry.id,
                    OutboxEntry.message_id,
                    OutboxEntry.envelope_from,
                    OutboxEntry.recipients,
                    OutboxEntry.raw,
                    OutboxEntry.attempts,
                )
                .where(OutboxEntry.claimed_by == token)
                .order_by(OutboxEntry.next_attempt_at, OutboxEntry.id)
            ).all()
        return token, [
            Job(r.id, r.message_id, r.envelope_from, list(r.recipients), bytes(r.raw), r.attempts)
            for r in rows
        ]

    def _renew(self, token: str) -> None:
        with self.sessions() as session, session.begin():
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.claimed_by == token, OutboxEntry.status == "sending")
                .values(claimed_until=self.clock() + self.lease)
                .execution_options(synchronize_session=False)
            )

    def _release(self, token: str, error: str) -> None:
        """Give claimed rows back untouched (no attempt counted): the server was unreachable."""
        with self.sessions() as session, session.begin():
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.claimed_by == token, OutboxEntry.status == "sending")
                .values(status="pending", claimed_by=None, claimed_until=None, last_error=error)
                .execution_options(synchronize_session=False)
            )

    def _mark_sent(self, job: Job, refused: dict[str, Refusal]) -> None:
        note = "; ".join(f"{a}: {r}" for a, r in refused.items()) or None
        values: dict[str, Any] = {
            "status": "sent",
            "sent_at": self.clock(),
            "attempts": job.attempts + 1,
            "claimed_by": None,
            "claimed_until": None,
            "last_error": f"some recipients refused: {note}" if note else None,
        }
        still = _temporary(refused)
        if still:
            # The others have it; only the recipients refused for now are tried again.
            values.update(self._later(job, f"some recipients refused: {note}", still))
        elif note:
            log.warning("outbox %s: sent, but %s", job.message_id, note)
        self._update(job.id, values)

    def _retry_later(self, job: Job, error: str, recipients: list[str]) -> None:
        values = self._later(job, error, recipients)
        if values["status"] == "failed":
            log.error("outbox %s: giving up: %s", job.message_id, values["last_error"])
        else:
            log.info("outbox %s: %s; next try %s", job.message_id, error, values["next_attempt_at"])
        self._update(job.id, values)

    def _later(self, job: Job, error: str, recipients: list[str]) -> dict[str, Any]:
        attempts = job.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "claimed_by": None,
            "claimed_until": None,
            "recipients": recipients,
        }
        if attempts >= self.config.max_attempts:
            values.update(status="failed", last_error=f"gave up after {attempts} tries: {error}")
        else:
            due = self.clock() + self.backoff.delay(attempts)
            values.update(status="pending", next_attempt_at=due, last_error=error)
        return values

    def _fail(self, job: Job, error: str) -> None:
        log.error("outbox %s to %s failed: %s", job.message_id, ", ".join(job.recipients), error)
        self._update(
            job.id,
            {
                "status": "failed",
                "attempts": job.attempts + 1,
                "claimed_by": None,
                "claimed_until": None,
                "last_error": error,
            },
        )

    def _update(self, entry_id: int, values: dict[str, Any]) -> None:
        with self.sessions() as session, session.begin():
            session.execute(
                update(OutboxEntry)
                .where(OutboxEntry.id == entry_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

    def _seconds_until_due(self) -> float:
        with self.sessions() as session:
            soonest = session.scalar(
                select(func.min(OutboxEntry.next_attempt_at)).where(OutboxEntry.status == "pending")
            )
        if soonest is None:
            return self.poll_seconds
        return min(max((soonest - self.clock()).total_seconds(), 0.0), self.poll_seconds)


def _temporary(refused: dict[str, Refusal]) -> list[str]:
    return [a for a, r in refused.items() if not r.permanent]


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    """Sleep until `stop` or `wake` is set, or `timeout` seconds pass."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
