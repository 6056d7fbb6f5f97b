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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.batch_state import BatchState, evolve, state_of_new_ticket
from maildesk.compose import new_message_id
from maildesk.config import Config
from maildesk.decide import DecideContext, Decision, Notice, decide
from maildesk.domain import TicketState
from maildesk.errors import TemporaryFailure
from maildesk.incoming import IncomingMail
from maildesk.kb import KnowledgeBase, kb_context
from maildesk.outbox import QueuedNotice, ThreadContext, recipient_groups
from maildesk.parse import ParsedMessage
from maildesk.reader import MessageReader, ReadError
from maildesk.rules import RuleFacts, RuleSet
from maildesk.screen import screen_message
from maildesk.store.assignment import last_assigned, lock_assignments, open_counts
from maildesk.store.blobs import BlobStore
from maildesk.store.lookup import load_batch_state
from maildesk.store.models import Message
from maildesk.store.quarantine import quarantine_message
from maildesk.store.writer import Plan, RowIds, TicketIds, add_receipt, write_plans
from maildesk.threading import ThreadKeys, thread_keys

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Raw = bytes | IncomingMail
BatchObserver = Callable[[Sequence["IngestResult"], float], None]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SourceInfo:
    """Where a raw message came from; `uid` makes IMAP ingest idempotent."""

    source: str = "cli"
    uidvalidity: int | None = None
    uid: int | None = None
    queue: str | None = None  # the mailbox's default queue

    @property
    def receipt(self) -> tuple[str, int, int] | None:
        if self.uidvalidity is None or self.uid is None:
            return None
        return (self.source, self.uidvalidity, self.uid)


@dataclass
class IngestResult:
    """What happened to one message."""

    outcome: str  # created, added, duplicate, quarantined
    ticket_ref: str | None = None
    message_pk: int | None = None
    quarantine_id: int | None = None
    reason: str = ""
    notifications: list[str] = field(default_factory=list)  # outbox Message-IDs
    seconds: float = 0.0  # processing time before the commit (its share of the batch write)

    @property
    def stored(self) -> bool:
        return self.outcome in ("created", "added", "duplicate")


class StageError(Exception):
    """An error in one pipeline stage; the stage name goes into the quarantine entry."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


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
        self.config = config
        self.reader = reader or MessageReader(config, blobs)
        self.knowledge_base = knowledge_base  # suggests articles in acknowledgements
        self.on_batch = on_batch  # told of every committed batch (metrics)
        self.sessions = sessions
        self.blobs = blobs
        self.rules = rules
        self.clock = clock
        tickets = config.tickets
        self.own_addresses = frozenset(
            a.lower() for a in (tickets.support_address, tickets.comment_address) if a
        ) | frozenset(m.username.lower() for m in config.mailboxes if "@" in m.username)

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

    def process_batch(self, items: Sequence[tuple[Raw, SourceInfo]]) -> list[IngestResult]:
        """Ingest messages in one transaction; raise TemporaryFailure if it cannot commit."""
        started = time.perf_counter()
        mails = [_incoming(raw) for raw, _ in items]
        entries = [
            _Entry(mail, source, parsed)
            for mail, (_, source), parsed in zip(
                mails, items, self.reader.read_all(mails), strict=True
            )
        ]
        try:
            with self.sessions() as session, session.begin():
                results = self._run_guarded(session, entries)
                self.blobs.sync()
        except OperationalError as exc:
            raise TemporaryFailure(f"database unavailable: {exc.orig}") from exc
        elapsed = time.perf_counter() - started
        for result in results:
            result.seconds = elapsed / max(len(results), 1)
        if self.on_batch is not None:
            self.on_batch(results, elapsed)
        return results

    def _run_guarded(self, session: Session, entries: list[_Entry]) -> list[IngestResult]:
        if len(entries) > 1:
            try:
                with session.begin_nested():
                    return self._run(session, entries)
            except OperationalError:
                raise
            except Exception as exc:  # redo one by one: only the guilty message is quarantined
                log.info(
                    "batch of %d failed while writing (%s); retrying one by one", len(entries), exc
                )
        return [self._run_one(session, entry) for entry in entries]

    def _run_one(self, session: Session, entry: _Entry) -> IngestResult:
        try:
            with session.begin_nested():
                return self._run(session, [entry])[0]
        except OperationalError:
            raise
        except IntegrityError as exc:
            # Usually another daemon stored the same message a moment earlier.
            with session.begin_nested():
                again = self._run(session, [entry])[0]
            if again.outcome == "duplicate":
                return again
            return self._quarantine(session, entry, "store", f"integrity error: {exc.orig}")
        except Exception as exc:
            stage = exc.stage if isinstance(exc, StageError) else "store"
            return self._quarantine(session, entry, stage, f"{type(exc).__name__}: {exc}")

    def _quarantine(self, session: Session, entry: _Entry, stage: str, reason: str) -> IngestResult:
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

    def _run(self, session: Session, entries: list[_Entry]) -> list[IngestResult]:
        now = self.clock()
        prefix = self.config.tickets.prefix
        keyed = [
            (e.parsed, thread_keys(e.parsed, prefix))
            for e in entries
            if isinstance(e.parsed, ParsedMessage)
        ]
        receipts = [e.source.receipt for e in entries if e.source.receipt]
        rules = self.rules()  # one version of the rules for the whole batch
        with session.no_autoflush:
            state = load_batch_state(session, keyed, receipts, prefix=prefix, now=now)
            if rules.needs_assignment_facts:
                lock_assignments(session)
                state.open_counts, state.last_assigned = (
                    open_counts(session),
                    last_assigned(session),
                )
            ids = TicketIds(session)
            message_ids = RowIds(session, Message, "messages")
            results: list[IngestResult | None] = []
            plans: list[tuple[int, Plan]] = []
            for index, entry in enumerate(entries):
                msg = entry.parsed
                if isinstance(msg, ReadError):
                    results.append(self._quarantine(session, entry, msg.stage, str(msg)))
                    continue
                duplicate = self._duplicate(session, state, msg, entry.source, now)
                if duplicate:
                    results.append(duplicate)
                    continue
                plan = self._plan(msg, entry, state, (ids, message_ids), rules, now)
                plans.append((index, plan))
                results.append(None)
        write_plans(session, [p for _, p in plans], self.config, self.blobs)
        for index, plan in plans:
            results[index] = IngestResult(
                "created" if plan.before is None else "added",
                ticket_ref=plan.after.ref,
                message_pk=plan.message_pk,
                notifications=[q.message_id for q in plan.queued],
            )
        return [r for r in results if r is not None]

    def _duplicate(
        self,
        session: Session,
        state: BatchState,
        msg: ParsedMessage,
        source: SourceInfo,
        now: datetime,
    ) -> IngestResult | None:
        receipt = source.receipt
        if receipt and receipt in state.receipts:
            return IngestResult(
                "duplicate", reason=f"{source.source} UID {source.uid} already ingested"
            )
        stored = state.stored.get(msg.dedup_key)
        if stored is None:
            return None
        ref, message_pk = stored
        if receipt:
            add_receipt(session, receipt, msg.dedup_key, "duplicate", now)
            state.receipts.add(receipt)
        return IngestResult(
            "duplicate",
            ticket_ref=ref,
            message_pk=message_pk,
            reason=f"already stored ({msg.dedup_key})",
        )

    def _plan(
        self,
        msg: ParsedMessage,
        entry: _Entry,
        state: BatchState,
        ids: tuple[TicketIds, RowIds],
        rules: RuleSet,
        now: datetime,
    ) -> Plan:
        keys: ThreadKeys = thread_keys(msg, self.config.tickets.prefix)
        before = state.find_ticket(keys)
        try:
            decision = decide(msg, before, self._context(msg, entry.source, state, rules, now))
        except Exception as exc:
            raise StageError("decide", f"{type(exc).__name__}: {exc}") from exc
        if decision.new_ticket is not None:
            before = None
            ticket_id = ids[0].allocate()
            ref = f"{self.config.tickets.prefix}-{ticket_id}"
            root = new_message_id(ref, self.config.tickets.id_domain)
            new = decision.new_ticket
            start = state_of_new_ticket(new, ticket_id=ticket_id, ref=ref, message_id=root, now=now)
            if new.assign_strategy and new.assignee:
                state.assigned(new.queue, new.assignee)
        else:
            assert before is not None
            start = before
        after = evolve(start, decision, now)
        queued = queue_notices(
            decision, msg, start, after, self.config.tickets.id_domain, created=before is None
        )
        contexts = [notification_context(after, q.notice, msg, self.config) for q in queued]
        if before is None and self.knowledge_base is not None:
            suggestions = kb_context(self.knowledge_base.suggest(f"{msg.subject}\n{msg.text}"))
            for queued_notice, context in zip(queued, contexts, strict=True):
                if queued_notice.notice.audience == "requester":
                    context.update(suggestions)
        message_pk = ids[1].allocate()
        state.record(
            msg,
            after,
            message_pk=message_pk,
            visible_message=not decision.internal,
            outbound=[(q.message_id, q.notice.audience == "requester") for q in queued],
            automatic_to=[
                q.to[0].address
                for q in queued
                if q.notice.automatic and q.notice.audience == "requester"
            ],
        )
        source = entry.source
        plan = Plan(
            msg, decision, before, after, queued, contexts, source.source, source.receipt, now
        )
        plan.message_pk = message_pk
        plan.keep_raw = lambda inline: self.reader.keep_raw(entry.mail, msg, inline)
        return plan

    def _context(
        self,
        msg: ParsedMessage,
        source: SourceInfo,
        state: BatchState,
        rules: RuleSet,
        now: datetime,
    ) -> DecideContext:
        tickets = self.config.tickets
        facts = RuleFacts(
            now=now,
            open_counts=state.open_counts,
            last_assigned=state.last_assigned,
            mailbox=source.source,
            mailbox_queue=source.queue,
        )
        return DecideContext(
            tickets=tickets,
            rules=rules,
            now=now,
            screening=screen_message(
                msg, own_domain=tickets.id_domain, own_addresses=self.own_addresses
            ),
            facts=facts,
            auto_replies_last_hour=state.auto_replies.get(msg.from_addr, 0),
            auto_reply_limit=self.config.limits.auto_replies_per_hour,
            own_addresses=self.own_addresses,
        )


@dataclass
class _Entry:
    """One message of a batch: as received, where from, and as read."""

    mail: IncomingMail
    source: SourceInfo
    parsed: ParsedMessage | ReadError


def _incoming(raw: Raw) -> IncomingMail:
    return raw if isinstance(raw, IncomingMail) else IncomingMail.from_bytes(raw)


def queue_notices(
    decision: Decision,
    msg: ParsedMessage,
    before: TicketState,
    after: TicketState,
    id_domain: str,
    *,
    created: bool,
) -> list[QueuedNotice]:
    """Give each notice its recipients, Message-ID and thread headers."""
    queued: list[QueuedNotice] = []
    for notice in decision.notices:
        thread = thread_context(list(before.thread_ids), msg, decision, notice)
        for group in recipient_groups(notice):
            first_ack = created and notice.audience == "requester" and not queued
            message_id = after.message_id if first_ack else new_message_id(after.ref, id_domain)
            queued.append(QueuedNotice(notice, group, message_id, thread))
    return queued


def thread_context(
    visible: list[str], msg: ParsedMessage, decision: Decision, notice: Notice
) -> ThreadContext:
    """In-Reply-To the message being answered; References what the reader has seen."""
    shown = notice.audience == "agents" or not decision.internal
    answering = msg.message_id if msg.message_id and shown else None
    refs = [r for r in visible if r != answering]
    if answering:
        refs.append(answering)
    return ThreadContext(in_reply_to=answering or (refs[-1] if refs else None), references=refs)


def notification_context(
    ticket: TicketState, notice: Notice, msg: ParsedMessage | None, config: Config
) -> dict[str, Any]:
    """The variables every notification template can use (stored as JSON in the outbox)."""
    tickets = config.tickets
    return {
        "ticket": {
            "ref": ticket.ref,
            "subject": ticket.subject,
            "status": ticket.status.value,
            "priority": ticket.priority.value,
            "queue": ticket.queue,
            "assignee": ticket.assignee or "",
            "requester": ticket.requester,
            "requester_name": ticket.requester_name or ticket.requester,
            "created_at": ticket.created_at.isoformat(),
        },
        "support": {"address": tickets.support_address, "name": tickets.support_name},
        "agent": {"name": notice.from_agent.name, "address": notice.from_agent.address}
        if notice.from_agent
        else None,
        "body": notice.body_text or "",
        "message": {
            "from": str(msg.sender) if msg and msg.sender else "",
            "subject": msg.subject if msg else "",
        },
        **notice.extra,
    }
