"""`maildesk run`: an asyncio supervisor with one worker per mailbox, plus background tasks.

Each mailbox has its own thread for its blocking IMAP calls, so one slow or broken
mailbox never stalls another. A worker owns its mailbox through a lease, reconnects
with exponential backoff and jitter, and leaves IDLE when asked to stop. The balancer
keeps the daemon's heartbeat and its fair share of the mailboxes among the daemons
on the same database. SIGTERM and SIGINT finish the batch in hand and exit; SIGHUP
reloads maildesk.yaml.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maildesk.common.children import retire_idle_after
from maildesk.common.config import Config, SourceConfig, SpoolConfig
from maildesk.common.config_file import load_config
from maildesk.common.errors import (
    FileProblems,
)
from maildesk.common.liveness import Liveness
from maildesk.service.balancer import Balancer
from maildesk.service.desk import settle_heap
from maildesk.service.mailbox_worker import MailboxWorker
from maildesk.store import leases
from maildesk.triage import language

if TYPE_CHECKING:
    from maildesk.service.desk import Desk

log = logging.getLogger(__name__)

# A background task: runs until `stop` is set. Under --once it is called once, after
# ingest, with `stop` already set, and should do one round of work and return.
BackgroundTask = Callable[[asyncio.Event], Awaitable[None]]

RULES_RELOAD_SECONDS = 2.0
SHUTDOWN_GRACE_SECONDS = 60.0


class Daemon:
    """Runs every configured mailbox (and the spool) and the background tasks until told
    to stop."""

    def __init__(
        self,
        desk: Desk,
        *,
        config_path: Path | None = None,
        tasks: Sequence[BackgroundTask] = (),
        holder: str | None = None,
        liveness: Liveness | None = None,
    ):
        self.desk = desk
        self.config_path = config_path
        self.tasks = list(tasks)
        self.holder = holder or leases.holder_id(desk.config.daemon.node)
        self.lock = threading.Lock()
        self.stopping = asyncio.Event()
        self.workers: dict[str, tuple[MailboxWorker, asyncio.Task[None]]] = {}
        # Tasks started from signal handlers: the event loop keeps only weak references,
        # so an unreferenced task could be garbage-collected before it finishes.
        self._signal_tasks: set[asyncio.Task[None]] = set()
        self.balancer = Balancer(desk, self.holder, self._shared_seats, liveness)

    @property
    def config(self) -> Config:
        return self.desk.config

    def _shared_seats(self) -> dict[str, MailboxWorker]:
        """The sources the daemons share out: every one but this machine's spool, which
        only the daemons on this machine can drain (they take turns through its lease)."""
        return {n: w for n, (w, _) in self.workers.items() if not _is_spool(w.config)}

    def _start_worker(self, mailbox: SourceConfig) -> None:
        spool = _is_spool(mailbox)
        worker = MailboxWorker(
            self.desk,
            mailbox,
            self.holder,
            self.lock,
            missed=self._spool_missed(mailbox.name) if spool else self.balancer.kick,
        )
        if spool:
            worker.offer()  # not balanced: always wanted here
        task = asyncio.create_task(worker.run(), name=f"mailbox-{mailbox.name}")
        self.workers[mailbox.name] = (worker, task)

    def _spool_missed(self, name: str) -> Callable[[], None]:
        """Another daemon on this machine drains the spool: try again a round later."""

        def again() -> None:
            entry = self.workers.get(name)
            if entry is not None and not self.stopping.is_set():
                asyncio.get_running_loop().call_later(self.balancer.round_seconds, entry[0].offer)

        return again

    async def _stop_worker(self, name: str) -> None:
        worker, task = self.workers.pop(name)
        worker.stop.set()
        try:
            await asyncio.wait_for(task, SHUTDOWN_GRACE_SECONDS)
        except TimeoutError:
            log.error("mailbox %s did not stop in time", name)

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        mailboxes = self.config.sources
        log.info(
            "maildesk %s started as %s: %d mailbox(es), spool %s",
            _version(),
            self.holder,
            len(mailboxes) - 1,
            self.config.spool,
        )
        _warn_if_only_the_spool(self.config)
        retire_idle_after(self.config.limits.child_idle_seconds)
        await asyncio.to_thread(self.desk.pipeline.reader.start)
        await asyncio.to_thread(language.prepare)
        settle_heap()
        for mailbox in mailboxes:
            self._start_worker(mailbox)
        background = [asyncio.create_task(self._reload_rules())]
        background.append(asyncio.create_task(self.balancer.run(self.stopping)))
        background += [asyncio.create_task(task(self.stopping)) for task in self.tasks]
        await self.stopping.wait()
        log.info("stopping: finishing the batches in hand")
        await asyncio.gather(*(self._stop_worker(name) for name in list(self.workers)))
        await _finish(background)
        log.info("stopped")
        return 0

    async def run_once(self) -> int:
        """Ingest every mailbox once, run each background task once; 1 if a mailbox failed."""
        _warn_if_only_the_spool(self.config)
        settle_heap()
        workers = [MailboxWorker(self.desk, m, self.holder, self.lock) for m in self.config.sources]
        outcomes = await asyncio.gather(*(w.run_once() for w in workers))
        self.stopping.set()
        await _finish([asyncio.create_task(task(self.stopping)) for task in self.tasks])
        for outcome in outcomes:
            if outcome.error:
                log.error("mailbox %s: %s", outcome.mailbox, outcome.error)
            elif outcome.skipped:
                log.info("mailbox %s: skipped, %s", outcome.mailbox, outcome.skipped)
            else:
                log.info("mailbox %s: %d message(s) ingested", outcome.mailbox, outcome.ingested)
        self.outcomes = outcomes
        return 1 if any(o.error for o in outcomes) else 0

    # --- signals and reloading ----------------------------------------------------------

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_reload_signal)

    def _on_reload_signal(self) -> None:
        task = asyncio.create_task(self.reload(), name="reload")
        self._signal_tasks.add(task)
        task.add_done_callback(self._signal_tasks.discard)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if self.stopping.is_set():
            log.warning("%s again: exiting now (uncommitted batches are retried later)", sig.name)
            os._exit(1)
        log.info("%s received", sig.name)
        self.stopping.set()

    async def _reload_rules(self) -> None:
        while not self.stopping.is_set():
            try:
                await asyncio.to_thread(self.desk.rules.reload_if_changed)
            except Exception:
                log.exception("rules reload failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), RULES_RELOAD_SECONDS)

    async def reload(self) -> None:
        """SIGHUP: re-read maildesk.yaml; mailboxes and log level change at once."""
        if self.config_path is None or self.stopping.is_set():
            return
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except FileProblems as exc:
            log.error("config not reloaded, keeping the running one: %s", exc)
            return
        old = self.config
        ignored = [
            key
            for key in (
                "database",
                "storage",
                "tickets",
                "rules",
                "templates",
                "smtp",
                "limits",
                "daemon",
            )
            if getattr(old, key) != getattr(new, key)
        ]
        if ignored:
            log.warning("changes to %s take effect after a restart", ", ".join(ignored))
        logging.getLogger().setLevel(new.log_level.upper())
        self.desk.config = old.model_copy(
            update={"mailboxes": new.mailboxes, "maildirs": new.maildirs, "spool": new.spool}
        )
        self.desk.pipeline.own_addresses |= {
            m.username.lower() for m in new.mailboxes if "@" in m.username
        }
        await self._apply_mailboxes({m.name: m for m in new.sources})
        self.balancer.kick()
        self.desk.rules.signature = ()  # reload the rules too, even if they look unchanged
        await asyncio.to_thread(self.desk.rules.reload_if_changed)
        log.info("config reloaded: %d mailbox(es)", len(self.workers))

    async def _apply_mailboxes(self, wanted: dict[str, SourceConfig]) -> None:
        changed = [
            name
            for name, (worker, _) in self.workers.items()
            if name not in wanted or wanted[name] != worker.config
        ]
        await asyncio.gather(*(self._stop_worker(name) for name in changed))
        for name, mailbox in wanted.items():
            if name not in self.workers:
                log.info("mailbox %s: %s", name, "restarted" if name in changed else "added")
                self._start_worker(mailbox)
        for name in changed:
            if name not in wanted:
                log.info("mailbox %s: removed", name)


def _warn_if_only_the_spool(config: Config) -> None:
    if not (config.mailboxes or config.maildirs):
        log.warning(
            "nothing to ingest: add mailboxes: or maildirs: to maildesk.yaml (only mail piped "
            "to `maildesk ingest -` is ingested, from the spool %s)",
            config.spool,
        )


async def _finish(tasks: list[asyncio.Task[Any]]) -> None:
    """Let tasks end on their own within the grace period, then cancel the rest."""
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
    for task in pending:
        task.cancel()
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed: %r", task.exception())


def _version() -> str:
    from maildesk import __version__

    return __version__


def _is_spool(source: SourceConfig) -> bool:
    return isinstance(source, SpoolConfig)
