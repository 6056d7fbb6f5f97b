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
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from maildesk.common import metrics
from maildesk.common.backoff import Backoff
from maildesk.common.config import Config, SmtpConfig
from maildesk.common.errors import SendError, SmtpUnavailable
from maildesk.common.events import first_set
from maildesk.common.freed_memory import release_freed_memory
from maildesk.outgoing.claim_rendering import render_claimed
from maildesk.outgoing.mark_writer import MarkWriter
from maildesk.outgoing.render_jobs import (
    ChildRenderer,
    NoticeRenderer,
    RenderSettings,
)
from maildesk.outgoing.send_lanes import SendingBatch, lanes
from maildesk.outgoing.smtp import Refusal, SmtpTransport, Transport
from maildesk.store.outbox_queue import SENT, Job, Mark, OutboxQueue
from maildesk.store.outbox_signal import listen_outbox

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
    transports = [
        SmtpTransport(smtp, helo=config.tickets.id_domain, password=password)
        for _ in range(smtp.sessions)
    ]
    options.setdefault("renderer", ChildRenderer(RenderSettings.of(config)))
    return OutboxSender(sessions, transports, smtp, clock=clock or _utcnow, **options)


if TYPE_CHECKING:
    from maildesk.store.blobs import BlobStore


HEARTBEAT_LAPSING = (
    "this daemon's heartbeat was not renewed in time; what it claimed is left to the others"
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class OutboxSender:
    """Sends due outbox rows; `run` for the daemon, `drain` for the CLI.

    Given several transports (SMTP sessions), it sends over all of them side by side:
    a claimed batch is split into lanes by ticket, one lane per transport, so a ticket's
    notifications still leave one after the other, in order.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        transport: Transport | Sequence[Transport],
        config: SmtpConfig,
        *,
        clock: Clock,
        worker_id: str | None = None,
        batch_size: int = 50,
        lease_seconds: float = 120.0,
        poll_seconds: float = 5.0,
        backoff: Backoff | None = None,
        reconnect_seconds: tuple[float, float] = (1.0, 60.0),
        renderer: NoticeRenderer | None = None,
        blobs: BlobStore | None = None,
        may_send: Callable[[], bool] | None = None,
    ):
        self.worker_id = worker_id or default_worker_id()
        # False once the daemon's heartbeat may lapse (common/liveness.py): then other
        # daemons take over what this one claimed, and it must not send it too.
        self.may_send = may_send
        self.queue = OutboxQueue(
            sessions,
            clock=clock,
            worker_id=self.worker_id,
            batch_size=batch_size,
            lease=timedelta(seconds=lease_seconds),
        )
        # Turns queued notifications into bytes once, before their first attempt.
        self.renderer = renderer
        self.blobs = blobs  # where the files notifications carry are read from
        self.transports = list(transport) if isinstance(transport, Sequence) else [transport]
        self.transport = self.transports[0]
        self.config = config
        self.clock = clock
        self.lease = self.queue.lease
        self.poll_seconds = poll_seconds
        self.backoff = backoff or Backoff(60.0, 3600.0, min_seconds=1.0)
        self.reconnect = Backoff(*reconnect_seconds)  # while no SMTP session can be opened
        self.unavailable: str | None = None  # why the last drain stopped early
        self._wake: asyncio.Event | None = None  # made by run(), in its own event loop

    def wake(self) -> None:
        """Send now: new notifications were committed.

        Call it from the sender's event loop (from another thread use
        `loop.call_soon_threadsafe(sender.wake)`). A wake-up that comes while a round is
        under way makes another round follow it at once, so none is lost.
        """
        if self._wake is not None:
            self._wake.set()

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Send everything due now; return how many were sent.

        Stops early, leaving the rest pending, when no SMTP session can be opened
        (`self.unavailable` then says why) or, between batches, when `stop` is set.
        """
        self.unavailable = None
        sent = 0
        # The next batch is claimed (and rendered) while the current one is being sent.
        claim: asyncio.Future[tuple[str, list[Job], datetime]] | None = asyncio.ensure_future(
            asyncio.to_thread(self._claim)
        )
        try:
            while claim is not None:
                token, jobs, claimed_at = await claim
                claim = None
                if not jobs:
                    return sent
                if stop is not None and stop.is_set():
                    await asyncio.to_thread(self._release, token, "not sent: the sender stopped")
                    return sent
                if self.clock() - claimed_at >= self.lease / 2:
                    # Claimed ahead while a long batch was sent: before the next claim
                    # (which would take these rows back once their lease ran out), renew
                    # the lease and send only the rows no other sender took meanwhile.
                    held = await asyncio.to_thread(self._renew, token)
                    jobs = [job for job in jobs if job.id in held]
                claim = asyncio.ensure_future(asyncio.to_thread(self._claim))
                batch_sent, stopped = await self._send_batch(token, jobs)
                sent += batch_sent
                if stopped:
                    return sent
            return sent
        finally:
            if claim is not None:  # claimed ahead but not sent: give the rows back untouched
                token, jobs, _ = await claim
                if jobs:
                    why = self.unavailable or "not sent: the sender stopped"
                    await asyncio.to_thread(self._release, token, why)

    def prepare(self) -> None:
        """Start what sending needs before the first notification (the render process)."""
        if self.renderer is not None:
            self.renderer.start()

    async def run(self, stop: asyncio.Event, *, listen: str | None = None) -> None:
        """Send due notifications until `stop` is set; back off while SMTP is unreachable.

        Between rounds it sleeps until `wake()`, the next due retry, or the poll interval
        (the fallback for mail queued where no wake-up reaches us). `listen`: a PostgreSQL
        connection string whose `NOTIFY maildesk_outbox` (sent by every transaction that
        queues notifications, in any process) wakes this sender too.
        """
        failures = 0
        self._wake = wake = asyncio.Event()
        listener = None
        if listen is not None:
            listener = asyncio.create_task(listen_outbox(listen, self.wake, stop))
        await asyncio.to_thread(self.prepare)
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    if await self.drain(stop):  # a burst is over: give back what it freed
                        await asyncio.to_thread(release_freed_memory)
                    failed = self.unavailable is not None
                except Exception:  # a database hiccup must not end the sender
                    log.exception("outbox sender failed; retrying")
                    failed = True
                if failed:  # new mail does not cut the backoff short: SMTP is still away
                    failures += 1
                    await _wait_any(stop, None, self.reconnect.seconds(failures))
                    continue
                failures = 0
                wait = await asyncio.to_thread(self._seconds_until_due)
                await _wait_any(stop, wake, wait)
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            await self.close()

    async def drain_and_close(self) -> int:
        """`drain`, then end the sessions whatever happened: one `maildesk outbox send`."""
        try:
            return await self.drain()
        finally:
            await self.close()

    async def close(self) -> None:
        """End every SMTP session politely."""
        for transport in self.transports:
            await transport.close()

    async def _send_batch(self, token: str, jobs: list[Job]) -> tuple[int, bool]:
        """Send claimed jobs, each lane in order; (how many were accepted, whether SMTP
        was unreachable)."""
        marks = MarkWriter(self._write_marks, token)
        batch = SendingBatch(token, marks, self.clock() + self.lease / 2)
        paired = zip(self.transports, lanes(jobs, len(self.transports)), strict=True)
        sent = await asyncio.gather(*(self._send_lane(batch, t, lane) for t, lane in paired))
        await batch.marks.close()
        if self.unavailable is not None:
            log.warning(
                "outbox: %s; %d notification(s) wait", self.unavailable, len(jobs) - batch.done
            )
            await asyncio.to_thread(self._release, token, self.unavailable)
            return sum(sent), True
        return sum(sent), False

    async def _send_lane(self, batch: SendingBatch, transport: Transport, jobs: list[Job]) -> int:
        """Send one lane's jobs in order over `transport`; stop when SMTP is unreachable
        (from this lane or another)."""
        sent = 0
        for job in jobs:
            if self.unavailable is None and self.may_send is not None and not self.may_send():
                self.unavailable = HEARTBEAT_LAPSING
            if self.unavailable is not None:
                break
            if self.clock() >= batch.renew_at:
                batch.renew_at = self.clock() + self.lease / 2  # one lane renews
                batch.held = await asyncio.to_thread(self._renew, batch.token)
            if batch.held is not None and job.id not in batch.held:
                continue  # its claim ran out and another sender took it: theirs to send
            try:
                mark = await self._attempt(transport, job)
            except SmtpUnavailable as exc:
                self.unavailable = str(exc)
                break
            sent += mark.delivered
            batch.done += 1
            await batch.marks.add(mark)
        return sent

    async def _attempt(self, transport: Transport, job: Job) -> Mark:
        """Send one job; what to record about it (SmtpUnavailable passes through)."""
        raw = job.raw
        if raw is None:  # a big message: read now, so only the one being sent is in memory
            raw = await asyncio.to_thread(self.queue.raw_of, job.id)
            if raw is None:
                return Mark(job.id, self._failed(job, "its rendered bytes are gone"))
        try:
            refused = await transport.send(job.envelope_from, job.recipients, raw)
        except SmtpUnavailable:
            raise
        except SendError as exc:
            if exc.permanent:
                # Only this notification fails: the rest of the batch (and of its ticket) go on.
                log.error(
                    "notification %s (%s) to %s refused for good: %s; "
                    "`maildesk outbox retry %s` sends it again",
                    job.id, job.message_id, ", ".join(job.recipients), exc, job.id,
                )  # fmt: skip
                return Mark(job.id, self._failed(job, str(exc)))
            still = _temporary(getattr(exc, "refused", {})) or job.recipients
            return Mark(job.id, self._later(job, str(exc), still))
        return Mark(job.id, self._sent(job, refused), delivered=True)

    def _sent(self, job: Job, refused: dict[str, Refusal]) -> dict[str, Any]:
        if not refused:
            return dict(SENT)
        note = "some recipients refused: " + "; ".join(f"{a}: {r}" for a, r in refused.items())
        still = _temporary(refused)
        if still:
            # The others have it; only the recipients refused for now are tried again.
            return self._later(job, note, still)
        log.warning("outbox %s: sent, but %s", job.message_id, note)
        return {**SENT, "last_error": note, "attempts": job.attempts + 1}

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
            log.error("outbox %s: %s", job.message_id, values["last_error"])
        else:
            due = self.clock() + self.backoff.delay(attempts)
            values.update(status="pending", next_attempt_at=due, last_error=error)
            log.info("outbox %s: %s; next try at %s", job.message_id, error, due)
        return values

    def _failed(self, job: Job, error: str) -> dict[str, Any]:
        return {
            "status": "failed",
            "attempts": job.attempts + 1,
            "claimed_by": None,
            "claimed_until": None,
            "last_error": error,
        }

    # Database steps, each a short transaction, run in a worker thread.

    def _claim(self) -> tuple[str, list[Job], datetime]:
        """Claim due rows, then render those never rendered, outside any transaction.

        Returns the claim's token, its jobs and a time just before it was made."""
        claimed_at = self.clock()
        token, rows = self.queue.claim()
        todo = [row for row in rows if row.raw_size is None]
        rendered = render_claimed(todo, self.renderer, self.blobs, self.queue)
        jobs = []
        for r in rows:
            if r.raw_size is not None:  # rendered before; None: big, read when sent
                raw = bytes(r.raw) if r.raw is not None else None  # a driver's memoryview
            elif r.id in rendered:
                raw = rendered[r.id]
            else:
                continue  # could not be rendered: failed
            jobs.append(Job(r.id, r.message_id, r.envelope_from, list(r.recipients), raw,
                            r.attempts, r.ticket_id))  # fmt: skip
        return token, jobs, claimed_at

    def _renew(self, token: str) -> set[int]:
        return self.queue.renew(token)

    def _release(self, token: str, error: str) -> None:
        self.queue.release(token, error)

    def _write_marks(self, marks: list[Mark], token: str | None = None) -> None:
        """Record what happened to several jobs in one transaction, and count it."""
        for mark in marks:
            if mark.delivered:
                metrics.notification_sent()
            elif mark.values.get("status") in ("failed", "pending"):
                metrics.notification_failed(permanent=mark.values.get("status") == "failed")
        written = self.queue.write_marks(marks, token)
        if written < len(marks):
            log.warning(
                "outbox: %d of %d result(s) not recorded: another sender took the claim over",
                len(marks) - written,
                len(marks),
            )

    def _seconds_until_due(self) -> float:
        return self.queue.seconds_until_due(self.poll_seconds)


def _temporary(refused: dict[str, Refusal]) -> list[str]:
    return [a for a, r in refused.items() if not r.permanent]


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    """Sleep until `stop` or `wake` is set, or `timeout` seconds pass."""
    await first_set(*([stop] if wake is None else [stop, wake]), timeout=timeout)
