"""The daemon's ingest of one Maildir (`maildirs:` in maildesk.yaml).

The same interface as `MailboxIngest` (open, sync, wait, close), so a Maildir gets
the mailbox worker's lease, back-off and `maildesk status` line. Messages are taken
in batches and marked seen after each commit (see `maildesk.intake.maildir`); every
commit renews the lease in the same transaction, so a daemon that lost the Maildir
to another cannot commit after it. Blocking: the daemon runs this in its own thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maildesk.common.config import MaildirConfig
from maildesk.intake.maildir import Maildir
from maildesk.service.file_ingest import ingest_paths
from maildesk.service.ingest_results import SourceInfo
from maildesk.service.source_ingest import SourceIngest

if TYPE_CHECKING:
    from maildesk.service.desk import Desk

log = logging.getLogger(__name__)

LISTED = 10_000  # unseen messages listed at a time (oldest first); then the next ones


class MaildirIngest(SourceIngest):
    """Ingest of the Maildir `config`, for as long as the worker holds its lease."""

    config: MaildirConfig

    def __init__(self, desk: Desk, config: MaildirConfig, **options: Any):
        super().__init__(desk, config, **options)
        self.maildir: Maildir | None = None

    def open(self) -> None:
        """Check the folder is a Maildir (MaildirError says what is missing)."""
        self.maildir = Maildir(self.config.path)
        self.lease.record("connected")

    def sync(self, interrupt: threading.Event | None = None) -> int:
        """Ingest the unseen messages, batch by batch; the number committed.

        When `interrupt` is set, the batch in hand is finished and marked first.
        """
        assert self.maildir is not None, "open() first"
        done = 0
        for waiting in self.maildir.slices(LISTED):
            if not done:
                log.info("maildir %s: %d message(s) to ingest", self.name, self.maildir.unseen)
            taken, interrupted = self._ingest(waiting, interrupt)
            done += taken
            if interrupted:
                break
        self.lease.record("idle", success=True, backlog=max(self.maildir.unseen - done, 0))
        return done

    def _ingest(self, waiting: list[Path], interrupt: threading.Event | None) -> tuple[int, bool]:
        """Ingest listed messages; (how many were committed, whether `interrupt` stopped it)."""
        assert self.maildir is not None
        source = SourceInfo(source=self.name, queue=self.config.queue)
        done = 0
        for _path, _result in ingest_paths(
            self.desk.pipeline,
            waiting,
            lambda _: source,
            batch_size=self.config.batch_size,
            committed=self.maildir.mark_seen,
            in_transaction=self.lease.renew,
            lock=self.lock,
        ):
            done += 1
            if done % self.config.batch_size == 0 and interrupt is not None and interrupt.is_set():
                return done, True  # between batches: the next one (read, not written) stays unseen
        return done, False

    def wait(self, seconds: float, interrupt: threading.Event) -> None:
        """Sleep until the next poll, or `interrupt`."""
        interrupt.wait(seconds)

    def close(self) -> None:
        self.maildir = None
