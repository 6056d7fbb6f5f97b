"""Exactly-once ingest of one IMAP folder: fetch in batches, commit with the checkpoint, ack.

The checkpoint (UIDVALIDITY + last UID) is written in the same transaction as the
tickets, together with a receipt per UID; the server is told (\\Seen or MOVE) only
after the commit. A crash between commit and acknowledgement is repaired on the next
connect: committed but unacknowledged UIDs are acknowledged without processing them
again. Blocking: the daemon runs this in the mailbox's own thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from maildesk.common.config import MailboxConfig
from maildesk.intake.imap import FetchedMessage, FolderInfo, ImapSource
from maildesk.intake.raw_mail import IncomingMail, discard_all
from maildesk.service.ingest_results import IngestResult, SourceInfo
from maildesk.service.pipeline import StartedBatch
from maildesk.service.source_ingest import SourceIngest
from maildesk.store.db import temporary_failures
from maildesk.store.mailboxes import (
    advance,
    load_checkpoint,
    received_uids,
    restart_checkpoint,
    set_state,
)

if TYPE_CHECKING:
    from maildesk.service.desk import Desk

log = logging.getLogger(__name__)


class MailboxIngest(SourceIngest):
    """One connection's worth of ingest for the mailbox `config`."""

    config: MailboxConfig

    def __init__(self, desk: Desk, config: MailboxConfig, **options: Any):
        super().__init__(desk, config, **options)
        self.source = ImapSource(config)
        self.uidvalidity = 0

    def open(self) -> FolderInfo:
        """Connect and check the checkpoint against the folder's UIDVALIDITY."""
        info = self.source.connect()
        uidnext = info.uidnext or max(self.source.new_uids(0), default=0) + 1
        with temporary_failures(), self.desk.sessions() as session, session.begin():
            self.lease.renew(session)
            checkpoint = load_checkpoint(session, self.name)
            if checkpoint.uidvalidity != info.uidvalidity:
                if checkpoint.uidvalidity is not None:
                    log.warning(
                        "mailbox %s: UIDVALIDITY changed from %s to %s; rescanning unacknowledged"
                        " mail, messages already stored are recognised by Message-ID or hash",
                        self.name,
                        checkpoint.uidvalidity,
                        info.uidvalidity,
                    )
                # Mail already there is taken if unacknowledged (UNSEEN, or not moved yet).
                restart_checkpoint(session, self.name, info.uidvalidity, uidnext - 1)
            set_state(session, self.name, "connected", self.desk.pipeline.clock())
        self.uidvalidity = info.uidvalidity
        log.info(
            "mailbox %s: connected, %d message(s) in %s", self.name, info.exists, self.config.folder
        )
        return info

    def close(self) -> None:
        self.source.close()

    def sync(self, interrupt: threading.Event | None = None) -> int:
        """Ingest everything pending now, batch by batch; returns the messages committed.

        When `interrupt` is set, the batch in hand is finished and acknowledged first.
        """
        with temporary_failures(), self.desk.sessions() as session:
            last_uid = load_checkpoint(session, self.name).last_uid
        todo = self._unfinished(last_uid) + self.source.new_uids(last_uid)
        if not todo:
            self.lease.record("idle", success=True, backlog=0)
            return 0
        log.info("mailbox %s: %d message(s) to ingest", self.name, len(todo))
        done = 0
        pending: _Fetched | None = None  # read (parsed) while the batch before it is written
        try:
            for batch in self.source.batches(todo, self.config.batch_size):
                if interrupt is not None and interrupt.is_set():
                    break
                messages = self.source.fetch(batch, spool=self.desk.pipeline.reader.receive)
                fetched = self._read(messages, batch)
                previous, pending = pending, fetched
                if previous is not None:
                    done += self._finish(previous, backlog=len(todo) - done - len(previous.uids))
            if pending is not None:
                last, pending = pending, None
                done += self._finish(last, backlog=len(todo) - done - len(last.uids))
        finally:
            if pending is not None:  # not committed: fetched again next time
                pending.discard()
        return done

    def _finish(self, fetched: _Fetched, backlog: int) -> int:
        """Commit a fetched batch with the checkpoint, then acknowledge it on the server."""
        try:
            self._commit(fetched, backlog)
        finally:
            fetched.discard()
        self.source.acknowledge([m.uid for m in fetched.messages])
        return len(fetched.uids)

    def _unfinished(self, last_uid: int) -> list[int]:
        """UIDs at or below the checkpoint not acknowledged yet; committed ones are acked now."""
        waiting = self.source.unacknowledged_uids(last_uid)
        if not waiting:
            return []
        with temporary_failures(), self.desk.sessions() as session:
            committed = received_uids(session, self.name, self.uidvalidity, waiting)
        if committed:
            log.info(
                "mailbox %s: acknowledging %d message(s) committed before",
                self.name,
                len(committed),
            )
            self.source.acknowledge(sorted(committed))
        return [uid for uid in waiting if uid not in committed]

    def _read(self, messages: list[FetchedMessage], uids: Sequence[int]) -> _Fetched:
        """Start reading fetched messages (in the background, see Pipeline.start_batch)."""
        return _Fetched(messages, uids, self.desk.pipeline.start_batch(self._items(messages)))

    def _items(
        self, messages: list[FetchedMessage]
    ) -> list[tuple[bytes | IncomingMail, SourceInfo]]:
        return [
            (
                m.mail or m.raw,
                SourceInfo(
                    source=self.name,
                    uidvalidity=self.uidvalidity,
                    uid=m.uid,
                    queue=self.config.queue,
                ),
            )
            for m in messages
        ]

    def _commit(self, fetched: _Fetched, backlog: int) -> None:
        def checkpoint(session: Session, results: list[IngestResult]) -> None:
            self.lease.renew(session)
            advance(session, self.name, fetched.uids, backlog, self.desk.pipeline.clock())

        with self.lock:
            results = self.desk.pipeline.finish_batch(fetched.started, in_transaction=checkpoint)
        outcomes: dict[str, int] = {}
        for result in results:
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        log.info(
            "mailbox %s: committed %d message(s): %s",
            self.name,
            len(results),
            ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "none left",
        )

    def wait(self, seconds: float, interrupt: threading.Event) -> None:
        """IDLE (or sleep) until new mail, `interrupt`, or `seconds` pass."""
        self.source.wait(seconds, interrupt)


@dataclass
class _Fetched:
    """A batch fetched from the server, its reading started."""

    messages: list[FetchedMessage]
    uids: Sequence[int]
    started: StartedBatch

    def discard(self) -> None:
        discard_all(m.mail for m in self.messages)
