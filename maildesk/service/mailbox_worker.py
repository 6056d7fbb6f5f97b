"""One mailbox (or Maildir) kept ingested while the daemon holds its lease.

Each worker has its own thread for its blocking IMAP calls, so one slow or broken
mailbox never stalls another. It takes its mailbox's lease when the balancer offers
it (service/balancer.py), hands it over after the batch in hand when asked, checks
the lease's fencing token on every write, reconnects with exponential backoff and
jitter, and leaves IDLE when asked to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from maildesk.common import metrics
from maildesk.common.backoff import Backoff
from maildesk.common.config import MaildirConfig, SourceConfig, SpoolConfig
from maildesk.common.errors import LeaseLost, MailboxAuthError, MaildeskError
from maildesk.common.events import first_set
from maildesk.common.freed_memory import release_freed_memory
from maildesk.service.mailbox_ingest import MailboxIngest
from maildesk.service.maildir_ingest import MaildirIngest
from maildesk.service.source_ingest import SourceIngest, lease_name
from maildesk.service.spool_ingest import SpoolIngest
from maildesk.store import leases
from maildesk.store.mailboxes import set_state

if TYPE_CHECKING:
    from maildesk.service.desk import Desk

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Retries:
    """Failures in a row, for the next backoff delay; reset once a round works."""

    backoff: Backoff
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return self.backoff.seconds(self.failures)

    def reset(self) -> None:
        self.failures = 0


@dataclass
class OnceOutcome:
    """What `run --once` did for one mailbox."""

    mailbox: str
    ingested: int = 0
    skipped: str | None = None
    error: str | None = None


class MailboxWorker:
    """Keeps one mailbox ingested for as long as the daemon runs."""

    def __init__(
        self,
        desk: Desk,
        config: SourceConfig,
        holder: str,
        lock: threading.Lock,
        *,
        missed: Callable[[], None] = lambda: None,
    ):
        self.desk = desk
        self.config = config
        self.holder = holder
        self.lock = lock
        self.missed = missed  # told when an offered lease was taken by another daemon first
        self.settings = desk.config.daemon
        self.lease = lease_name(config.name)
        self.token: int | None = None  # the fencing token of our current holding
        self.stop = asyncio.Event()
        self.offered = asyncio.Event()
        self.leaving = asyncio.Event()
        self.holding = False
        self.syncing = False  # a batch may be in hand: handing over waits for it
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"mailbox-{config.name}")

    @property
    def name(self) -> str:
        return self.config.name

    # --- what the balancer sees and asks --------------------------------------------------

    @property
    def seat(self) -> Literal["idle", "wanted", "held", "leaving"]:
        if self.holding:
            return "leaving" if self.leaving.is_set() else "held"
        return "wanted" if self.offered.is_set() else "idle"

    def offer(self) -> None:
        """Take the lease now (the balancer found it free and this daemon under its share)."""
        self.offered.set()

    def hand_over(self) -> None:
        """Give the lease up after the batch in hand, for a daemon below its share."""
        if self.holding:
            self.leaving.set()

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in this mailbox's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    def _ingest(self) -> SourceIngest:
        kind: type[SourceIngest] = MailboxIngest
        if isinstance(self.config, MaildirConfig):
            kind = MaildirIngest
        elif isinstance(self.config, SpoolConfig):
            kind = SpoolIngest
        return kind(
            self.desk,
            self.config,
            holder=self.holder,
            token=self.token,
            lease_seconds=self.settings.lease_seconds,
            lock=self.lock,
        )

    # --- leases -------------------------------------------------------------------------

    def _acquire(self) -> bool:
        with self.desk.sessions() as session, session.begin():
            token = leases.acquire(session, self.lease, self.holder, self.settings.lease_seconds)
        self.token = token
        return token is not None

    def _renew(self) -> None:
        with self.desk.sessions() as session, session.begin():
            leases.renew(session, self.lease, self.holder, self.settings.lease_seconds, self.token)

    def _release(self) -> None:
        with self.desk.sessions() as session, session.begin():
            leases.release(session, self.lease, self.holder, self.token)

    def _owner(self) -> str:
        try:
            with self.desk.sessions() as session:
                lease = leases.current(session, self.lease)
        except Exception:  # the database is down: that was logged already
            return "(unknown: database unavailable)"
        return lease.holder if lease and lease.live else "nobody"

    async def _try_acquire(self) -> bool:
        try:
            return await self._db(self._acquire)
        except Exception as exc:  # database down: try again later
            log.warning("mailbox %s: cannot take the lease: %s", self.name, exc)
            return False

    async def _keep_lease(self, lost: asyncio.Event) -> None:
        """Renew the lease every third of its life; give up once it may have expired."""
        period = self.settings.lease_seconds / 3
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(period)
            try:
                await self._db(self._renew)
                renewed = time.monotonic()
            except LeaseLost as exc:
                log.warning("mailbox %s: %s; stopping", self.name, exc)
                lost.set()
                return
            except Exception as exc:
                log.warning("mailbox %s: lease not renewed: %s", self.name, exc)
                if time.monotonic() - renewed > self.settings.lease_seconds * 0.8:
                    lost.set()
                    return

    # --- the daemon loop ----------------------------------------------------------------

    async def run(self) -> None:
        """Ingest the mailbox whenever offered its lease, until stopped; never raises."""
        backoff = _Retries(Backoff(1.0, self.settings.max_backoff_seconds))
        while not self.stop.is_set():
            await first_set(self.stop, self.offered)
            if self.stop.is_set():
                break
            acquired = await self._try_acquire()
            self.offered.clear()
            if not acquired:
                self.missed()
                continue
            self.holding, failure = True, None
            self.leaving.clear()
            try:
                await self._serve(backoff)
            except LeaseLost as exc:
                log.warning("mailbox %s: %s", self.name, exc)
            except Exception as exc:
                failure = exc
            finally:
                self.holding = False
            if failure is not None:
                await self._failed(failure, backoff)
            elif self.leaving.is_set() and not self.stop.is_set():
                await self._hand_over()
        await self._shut_down()

    async def _hand_over(self) -> None:
        try:
            await self._db(self._release)
            log.info("mailbox %s: handed over after a whole batch, to balance", self.name)
        except Exception as exc:  # it expires in its own time
            log.warning("mailbox %s: lease not released: %s", self.name, exc)

    async def _serve(self, backoff: _Retries) -> None:
        ingest = self._ingest()
        interrupt = threading.Event()  # tells the mailbox thread to stop waiting
        lost = asyncio.Event()
        keeper = asyncio.create_task(self._keep_lease(lost))
        relay = asyncio.create_task(self._relay(interrupt, lost, self.leaving))
        try:
            await self._blocking(ingest.open)
            while not interrupt.is_set():
                self.syncing = True
                done = count = await self._blocking(ingest.sync, interrupt)
                while count and not interrupt.is_set():  # more may have arrived meanwhile
                    count = await self._blocking(ingest.sync, interrupt)
                    done += count
                self.syncing = False
                if done:  # a burst is over: what it freed goes back to the system
                    await self._blocking(release_freed_memory)
                backoff.reset()  # a whole round worked: the next failure retries quickly
                if interrupt.is_set():
                    break
                await self._blocking(ingest.wait, self.config.poll_seconds, interrupt)
        finally:
            self.syncing = False
            interrupt.set()
            keeper.cancel()
            relay.cancel()
            await self._blocking(ingest.close)
        if lost.is_set():
            raise LeaseLost(f"lease {self.lease} lost")

    async def _relay(self, interrupt: threading.Event, *events: asyncio.Event) -> None:
        """Tell the mailbox thread to finish its batch once stopped, lost or handing over."""
        try:
            await first_set(self.stop, *events)
        finally:
            interrupt.set()

    async def _failed(self, exc: BaseException, backoff: _Retries) -> None:
        if isinstance(exc, MailboxAuthError):
            state = "auth-failed"
        else:
            state = "error"
            if not isinstance(exc, MaildeskError):  # a bug must not end the ingest for good
                log.error("mailbox %s: unexpected error", self.name, exc_info=exc)
        delay = backoff.next()
        message = str(exc) or type(exc).__name__
        if not message.startswith(f"mailbox {self.name}"):
            message = f"mailbox {self.name}: {message}"
        log.error("%s; retrying in %.0f s", message, delay)
        metrics.imap_error(self.name)
        try:
            await self._db(self._record, state, message)
            await self._db(self._release)  # a healthier daemon may take over meanwhile
        except Exception as db_exc:
            log.warning("mailbox %s: cannot record the error: %s", self.name, db_exc)
        await self._sleep(delay)

    def _record(self, state: str, error: str | None = None) -> None:
        with self.desk.sessions() as session, session.begin():
            lease = leases.current(session, self.lease)
            if lease is None or (lease.holder, lease.token) != (self.holder, self.token):
                return  # the owner speaks for the mailbox
            set_state(session, self.name, state, self.desk.pipeline.clock(), error=error)

    async def _shut_down(self) -> None:
        try:
            await self._db(self._record, "stopped")
            await self._db(self._release)
        except Exception as exc:
            log.warning("mailbox %s: lease not released: %s", self.name, exc)
        self.executor.shutdown(wait=False, cancel_futures=True)

    # --- run --once ---------------------------------------------------------------------

    async def run_once(self) -> OnceOutcome:
        """Ingest everything pending, then return; skip a mailbox another daemon owns."""
        outcome = OnceOutcome(self.name)
        try:
            acquired = await self._db(self._acquire)
        except Exception as exc:
            outcome.error = f"cannot take the lease: {exc}"
            return outcome
        if not acquired:
            outcome.skipped = f"held by {await self._db(self._owner)}"
            return outcome
        ingest = self._ingest()
        try:
            await self._blocking(ingest.open)
            while count := await self._blocking(ingest.sync, None):
                outcome.ingested += count
            await self._db(self._record, "stopped")
        except Exception as exc:
            if not isinstance(exc, MaildeskError):
                log.exception("mailbox %s: unexpected error", self.name)
            outcome.error = str(exc) or type(exc).__name__
            state = "auth-failed" if isinstance(exc, MailboxAuthError) else "error"
            with contextlib.suppress(Exception):
                await self._db(self._record, state, str(exc))
        finally:
            await self._blocking(ingest.close)
            with contextlib.suppress(Exception):
                await self._db(self._release)
            self.executor.shutdown(wait=False)
        return outcome
