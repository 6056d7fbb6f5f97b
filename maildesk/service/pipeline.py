"""process_one(raw, source): parse, screen, thread, decide, store, outbox; one transaction.

A batch shares one transaction. Its messages are decided one after another against a
BatchState (so a reply finds a ticket opened earlier in the batch) and written with
one flush. If writing fails, the batch is redone message by message, each in its own
savepoint, so one bad message is quarantined without spoiling the rest. Nothing is
acknowledged to a source before the commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.common.config import Config
from maildesk.common.errors import StageError, TemporaryFailure
from maildesk.intake.message import ParsedMessage
from maildesk.intake.message_reader import MessageReader
from maildesk.intake.raw_mail import IncomingMail
from maildesk.rules import RuleSet
from maildesk.service.batch_entry import BatchEntry
from maildesk.service.batch_planner import BatchPlanner
from maildesk.service.ingest_results import IngestResult, SourceInfo
from maildesk.service.knowledge_base import KnowledgeBase
from maildesk.store.blobs import BlobStore
from maildesk.store.outbox_signal import signal_outbox
from maildesk.store.quarantine import quarantine_message
from maildesk.store.writer import add_receipt, write_plans

__all__ = ["Pipeline", "StartedBatch"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Raw = bytes | IncomingMail
BatchHook = Callable[[Session, list["IngestResult"]], None]
BatchObserver = Callable[[Sequence["IngestResult"], float], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Pipeline:
    """The ingest pipeline, wired with its store, rules and clock."""

    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        rules: Callable[[], RuleSet],
        clock: Clock = utcnow,
        knowledge_base: KnowledgeBase | None = None,
        on_batch: BatchObserver | None = None,
        reader: MessageReader | None = None,
    ):
        self.reader = reader or MessageReader(config, blobs)
        self.planner = BatchPlanner(config, self.reader, rules, knowledge_base)
        self.on_batch = on_batch  # told of every committed batch (metrics)
        self.sessions = sessions
        self.blobs = blobs
        self.rules = rules
        self.clock = clock

    @property
    def config(self) -> Config:
        return self.planner.config

    @config.setter
    def config(self, config: Config) -> None:
        self.planner.config = config

    @property
    def own_addresses(self) -> frozenset[str]:
        """The desk's own addresses: mail from them is never a customer's."""
        return self.planner.own_addresses

    @own_addresses.setter
    def own_addresses(self, addresses: frozenset[str]) -> None:
        self.planner.own_addresses = addresses

    def process_one(self, raw: Raw, source: SourceInfo | None = None) -> IngestResult:
        """Ingest one message in its own transaction."""
        return self.process_batch([(raw, source or SourceInfo())])[0]

    def process_file(
        self, file: str | Path | BinaryIO, source: SourceInfo | None = None
    ) -> IngestResult:
        """Ingest one message from a path or a binary stream, never reading a big one
        into memory whole (it is spooled to the blob store first)."""
        if isinstance(file, str | Path):
            with open(file, "rb") as fh:
                return self.process_file(fh, source)
        mail = self.reader.receive(file)
        try:
            return self.process_one(mail, source)
        finally:
            mail.discard()

    def process_batch(
        self,
        items: Sequence[tuple[Raw, SourceInfo]],
        *,
        in_transaction: BatchHook | None = None,
    ) -> list[IngestResult]:
        """Ingest messages in one transaction; raise TemporaryFailure if it cannot commit.

        `in_transaction(session, results)` runs last inside the same transaction (a source's
        checkpoint); whatever it raises rolls the whole batch back.
        """
        return self.finish_batch(self.start_batch(items), in_transaction=in_transaction)

    def process_batches(
        self, batches: Iterable[Sequence[tuple[Raw, SourceInfo]]]
    ) -> Iterator[list[IngestResult]]:
        """Ingest batch after batch, each in its own transaction, yielding each one's results
        after its commit; the next batch is read while the current one is written."""
        pending: StartedBatch | None = None
        for items in batches:
            started = self.start_batch(items)
            if pending is not None:
                yield self.finish_batch(pending)
            pending = started
        if pending is not None:
            yield self.finish_batch(pending)

    def start_batch(self, items: Sequence[tuple[Raw, SourceInfo]]) -> StartedBatch:
        """Begin reading a batch. With the sandboxed parser the reading goes on in the
        background, so the caller can write the previous batch meanwhile."""
        mails = [_incoming(raw) for raw, _ in items]
        return StartedBatch([source for _, source in items], mails, self.reader.read_later(mails))

    def finish_batch(
        self, batch: StartedBatch, *, in_transaction: BatchHook | None = None
    ) -> list[IngestResult]:
        """Decide and write a started batch in one transaction (see process_batch)."""
        started = batch.started
        entries = [
            BatchEntry(mail, source, parsed)
            for mail, source, parsed in zip(batch.mails, batch.sources, batch.read(), strict=True)
        ]
        try:
            with self.sessions() as session, session.begin():
                results = self._run_guarded(session, entries)
                if in_transaction is not None:
                    in_transaction(session, results)
                if any(r.notifications for r in results):
                    signal_outbox(session)  # other daemons' senders wake when this commits
                self.blobs.sync()
        except OperationalError as exc:
            raise TemporaryFailure(f"database unavailable: {exc.orig}") from exc
        elapsed = time.perf_counter() - started
        for result in results:
            result.seconds = elapsed / max(len(results), 1)
        if self.on_batch is not None:
            self.on_batch(results, elapsed)
        return results

    def _run_guarded(self, session: Session, entries: list[BatchEntry]) -> list[IngestResult]:
        if len(entries) > 1:
            try:
                with session.begin_nested():
                    return self._run(session, entries)
            except Exception as exc:  # redo one by one: only the guilty message is quarantined
                if _outage(exc):
                    raise
                log.info(
                    "batch of %d failed while writing (%s); retrying one by one", len(entries), exc
                )
        return [self._run_one(session, entry) for entry in entries]

    def _run_one(self, session: Session, entry: BatchEntry) -> IngestResult:
        try:
            with session.begin_nested():
                return self._run(session, [entry])[0]
        except IntegrityError as exc:
            # Usually another daemon stored the same message a moment earlier: once more,
            # it is then a duplicate. If it fails again, it is quarantined like any other
            # failure, so one message can never make its batch fail for good.
            return self._retry_one(session, entry, f"integrity error: {exc.orig}")
        except Exception as exc:
            if _outage(exc):
                raise
            stage = exc.stage if isinstance(exc, StageError) else "store"
            return self._quarantine(session, entry, stage, f"{type(exc).__name__}: {exc}")

    def _retry_one(self, session: Session, entry: BatchEntry, first: str) -> IngestResult:
        try:
            with session.begin_nested():
                return self._run(session, [entry])[0]
        except Exception as exc:
            if _outage(exc):
                raise
            again = f"{type(exc).__name__}: {exc}"
            return self._quarantine(session, entry, "store", f"{first}; then {again}")

    def _quarantine(
        self, session: Session, entry: BatchEntry, stage: str, reason: str
    ) -> IngestResult:
        source = entry.source
        log.warning("quarantined message from %s at stage %s: %s", source.source, stage, reason)
        now = self.clock()
        with session.begin_nested():
            held = quarantine_message(
                session, self.blobs, entry.mail, source.source, stage, reason, now
            )
            if source.receipt:
                add_receipt(session, source.receipt, None, "quarantined", now)
        return IngestResult("quarantined", quarantine_id=held.id, reason=reason)

    def _run(self, session: Session, entries: list[BatchEntry]) -> list[IngestResult]:
        def quarantine(entry: BatchEntry, stage: str, reason: str) -> IngestResult:
            return self._quarantine(session, entry, stage, reason)

        results, plans = self.planner.plan_batch(session, entries, self.clock(), quarantine)
        write_plans(session, [p for _, p in plans], self.config, self.blobs)
        self.planner.bounce_flags(session, [(entries[i], p) for i, p in plans])
        for index, plan in plans:
            results[index] = IngestResult(
                "created" if plan.before is None else "added",
                ticket_ref=plan.after.ref,
                message_pk=plan.message_pk,
                notifications=[q.message_id for q in plan.queued],
            )
        return [r for r in results if r is not None]


@dataclass
class StartedBatch:
    """A batch whose messages are being read; `read()` waits for them."""

    sources: list[SourceInfo]
    mails: list[IncomingMail]
    read: Callable[[], list[ParsedMessage | StageError]]
    started: float = field(default_factory=time.perf_counter)


def _incoming(raw: Raw) -> IncomingMail:
    return raw if isinstance(raw, IncomingMail) else IncomingMail.from_bytes(raw)


def _outage(exc: Exception) -> bool:
    """The database cannot take the batch now (connection, locks, disk): try it again
    later. Not PostgreSQL's refusals of one message's values (SQLSTATE classes 22, data
    exception, and 54, a limit such as an index entry's size), which are reported as
    OperationalError too but would fail every retry: that message is quarantined."""
    if not isinstance(exc, OperationalError):
        return False
    state = getattr(exc.orig, "sqlstate", None) or ""
    return state[:2] not in ("22", "54")
