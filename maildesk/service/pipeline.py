"""process_one(raw, source): parse, screen, thread, decide, store, outbox; one transaction.

A batch shares one transaction. Its messages are decided one after another against a
BatchState (so a reply finds a ticket opened earlier in the batch) and written with
one flush. If writing fails, the batch is redone message by message, each in its own
savepoint, so one bad message is quarantined without spoiling the rest. Nothing is
acknowledged to a source before the commit.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.common.config import Config
from maildesk.common.domain import Author, TicketState
from maildesk.common.errors import StageError, TemporaryFailure
from maildesk.common.message_ids import new_message_id
from maildesk.decide.batch_state import BatchState
from maildesk.decide.commands import parse_commands
from maildesk.decide.decision import DecideContext, Decision
from maildesk.decide.inbound import decide
from maildesk.decide.kb import Article, kb_context
from maildesk.decide.notices import address_notices
from maildesk.decide.ticket_changes import apply_decision, state_of_new_ticket
from maildesk.intake.message import ParsedMessage
from maildesk.intake.message_reader import MessageReader
from maildesk.intake.raw_mail import IncomingMail
from maildesk.rules import RuleFacts, RuleSet
from maildesk.service.knowledge_base import KnowledgeBase
from maildesk.store.assignment import last_assigned, lock_assignments, open_counts
from maildesk.store.blobs import BlobStore
from maildesk.store.bounce_flags import clear_bouncing, record_bounce
from maildesk.store.bulk import RowIds, TicketIds
from maildesk.store.lookup import load_batch_state
from maildesk.store.models import Message, Ticket
from maildesk.store.quarantine import quarantine_message
from maildesk.store.writer import Plan, add_receipt, write_plans
from maildesk.triage.bounce import BounceReport, read_bounce
from maildesk.triage.screen import MailClass, Screening, screen_message
from maildesk.triage.thread_keys import (
    ThreadKeys,
    format_token,
    subject_ticket_numbers,
    thread_keys,
)

__all__ = ["IngestResult", "Pipeline", "SourceInfo", "StartedBatch"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Raw = bytes | IncomingMail
BatchHook = Callable[[Session, list["IngestResult"]], None]
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
            _Entry(mail, source, parsed)
            for mail, source, parsed in zip(batch.mails, batch.sources, batch.read(), strict=True)
        ]
        try:
            with self.sessions() as session, session.begin():
                results = self._run_guarded(session, entries)
                if in_transaction is not None:
                    in_transaction(session, results)
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
        for entry in entries:
            self._screen(entry)
        auto_repliers = [
            e.parsed.from_addr
            for e in entries
            if e.screening and e.screening.kind is MailClass.AUTO_REPLY and e.parsed.from_addr
        ]
        keyed = [(e.parsed, self._keys(e)) for e in entries if isinstance(e.parsed, ParsedMessage)]
        receipts = [e.source.receipt for e in entries if e.source.receipt]
        inputs = self._inputs(now)  # one version of the rules (and KB, secret) per batch
        rules = inputs.rules
        with session.no_autoflush:
            state = load_batch_state(
                session,
                keyed,
                receipts,
                prefix=prefix,
                now=now,
                auto_repliers=auto_repliers,
                extra_refs=_merge_targets(entries, prefix),
            )
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
                if isinstance(msg, StageError):
                    results.append(self._quarantine(session, entry, msg.stage, str(msg)))
                    continue
                duplicate = self._duplicate(session, state, msg, entry.source, now)
                if duplicate:
                    results.append(duplicate)
                    continue
                plan = self._plan(msg, entry, state, (ids, message_ids), inputs)
                plans.append((index, plan))
                results.append(None)
        write_plans(session, [p for _, p in plans], self.config, self.blobs)
        self._bounce_flags(session, [(entries[i], p) for i, p in plans])
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
        inputs: _BatchInputs,
    ) -> Plan:
        now = inputs.now
        before = self._find_ticket(msg, entry, state)
        try:
            decision = decide(msg, before, self._context(msg, entry, state, inputs))
        except Exception as exc:
            raise StageError("decide", f"{type(exc).__name__}: {exc}") from exc
        if decision.new_ticket is not None:
            before = None
            start = self._new_ticket_state(decision, ids[0].allocate(), now)
            new = decision.new_ticket
            if new.assign_strategy and new.assignee:
                state.assigned(new.queue, new.assignee)
        else:
            assert before is not None
            start = before
        after, events = apply_decision(start, decision, now)
        suggestions = None
        if before is None and self.knowledge_base is not None:
            suggestions = kb_context(self.knowledge_base.suggest(f"{msg.subject}\n{msg.text}"))
        queued = address_notices(
            decision.notices,
            after,
            self.config,
            msg=msg,
            requester_saw_msg=decision.author in (Author.REQUESTER, Author.PARTICIPANT)
            and not decision.internal,
            requester_extra=suggestions,
        )
        message_pk = ids[1].allocate()
        new_thread_ref = bool(msg.message_id) and msg.message_id not in state.thread_refs
        state.record(
            msg,
            after,
            message_pk=message_pk,
            visible_message=_visible(decision),
            outbound=[
                (q.message_id, None if q.notice.audience == "requester" else q.to[0].address)
                for q in queued
            ],
            agent=msg.from_addr if decision.author is Author.AGENT else None,
            automatic_to=[
                q.to[0].address
                for q in queued
                if q.notice.automatic and q.notice.audience == "requester"
            ],
        )
        source = entry.source
        plan = Plan(
            msg, decision, before, after, events, queued, source.source, source.receipt, now
        )
        plan.message_pk = message_pk
        plan.new_thread_ref = new_thread_ref
        plan.keep_raw = lambda inline: self.reader.keep_raw(entry.mail, msg, inline)
        return plan

    def _new_ticket_state(self, decision: Decision, ticket_id: int, now: datetime) -> TicketState:
        assert decision.new_ticket is not None
        ref = format_token(self.config.tickets.prefix, ticket_id)
        return state_of_new_ticket(
            decision.new_ticket,
            ticket_id=ticket_id,
            ref=ref,
            message_id=new_message_id(ref, self.config.tickets.id_domain),
            now=now,
            rules_fired=decision.rule_hits,
        )

    def _screen(self, entry: _Entry) -> None:
        """Is it an auto-reply, a bounce, list mail or our own mail coming back?"""
        msg = entry.parsed
        if not isinstance(msg, ParsedMessage):
            return
        tickets = self.config.tickets
        entry.keys = thread_keys(msg, tickets.prefix)
        entry.screening = screen_message(
            msg, own_domain=tickets.id_domain, own_addresses=self.own_addresses
        )
        if entry.screening.kind is MailClass.BOUNCE and entry.mail.size <= 10 << 20:
            entry.bounce = read_bounce(entry.mail.bytes(), own_domain=tickets.id_domain)

    def _bounce_numbers(self, bounce: BounceReport) -> list[int]:
        prefix = self.config.tickets.prefix
        return subject_ticket_numbers(f"[{bounce.ticket_ref}]", prefix) if bounce.ticket_ref else []

    def _keys(self, entry: _Entry) -> ThreadKeys:
        """What may tie the message to a ticket; a bounce also names what it returns."""
        keys = entry.keys
        bounce = entry.bounce
        if bounce is None:
            return keys
        ids = [bounce.original_message_id] if bounce.original_message_id else []
        numbers = self._bounce_numbers(bounce)
        return ThreadKeys([*numbers, *keys.ticket_numbers], [*ids, *keys.reference_ids])

    def _find_ticket(
        self, msg: ParsedMessage, entry: _Entry, state: BatchState
    ) -> TicketState | None:
        bounce = entry.bounce
        if bounce is not None:  # the notification it returns, else the ticket it names
            original = bounce.original_message_id
            found = state.find_ticket(ThreadKeys([], [original])) if original else None
            numbers = self._bounce_numbers(bounce)
            found = found or (state.find_ticket(ThreadKeys(numbers, [])) if numbers else None)
            if found is not None:
                return found
        found = state.find_ticket(entry.keys)
        if found is None and entry.screening and entry.screening.kind is MailClass.AUTO_REPLY:
            found = state.last_notified_ticket(msg.from_addr)
        return found

    def _bounce_flags(self, session: Session, written: list[tuple[_Entry, Plan]]) -> None:
        """Flag addresses a bounce reports; clear the flag when such an address writes again."""
        for entry, plan in written:
            sender = plan.msg.from_addr
            if entry.bounce is not None:
                ticket = session.get(Ticket, plan.after.id)
                if ticket is not None:
                    record_bounce(
                        session, ticket, entry.bounce, sender or "mailer-daemon", plan.now
                    )
            elif plan.before is not None and sender in plan.before.bouncing:
                ticket = session.get(Ticket, plan.after.id)
                if ticket is not None and entry.screening and not entry.screening.automatic:
                    clear_bouncing(session, ticket, sender, plan.now)

    def _inputs(self, now: datetime) -> _BatchInputs:
        """What every message of a batch decides against, read once per batch."""
        secret = self.config.satisfaction.secret
        kb = self.knowledge_base.articles() if self.knowledge_base is not None else []
        return _BatchInputs(
            rules=self.rules(),
            now=now,
            kb_articles=tuple(kb),
            rating_secret=secret.read("satisfaction secret") if secret else None,
        )

    def _context(
        self,
        msg: ParsedMessage,
        entry: _Entry,
        state: BatchState,
        inputs: _BatchInputs,
    ) -> DecideContext:
        source, now = entry.source, inputs.now
        tickets = self.config.tickets
        assert entry.screening is not None, "screened in _run"
        facts = RuleFacts(
            now=now,
            open_counts=state.open_counts,
            last_assigned=state.last_assigned,
            mailbox=source.source,
            mailbox_queue=source.queue,
        )
        prefix = tickets.prefix
        return DecideContext(
            find_ticket=lambda ref: state.find_ticket(
                ThreadKeys(subject_ticket_numbers(f"[{ref}]", prefix), [])
            ),
            kb_articles=inputs.kb_articles,
            rating_secret=inputs.rating_secret,
            tickets=tickets,
            rules=inputs.rules,
            now=now,
            screening=entry.screening,
            facts=facts,
            auto_replies_last_hour=state.auto_replies.get(msg.from_addr, 0),
            auto_reply_limit=self.config.limits.auto_replies_per_hour,
            own_addresses=self.own_addresses,
        )


@dataclass
class StartedBatch:
    """A batch whose messages are being read; `read()` waits for them."""

    sources: list[SourceInfo]
    mails: list[IncomingMail]
    read: Callable[[], list[ParsedMessage | StageError]]
    started: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class _BatchInputs:
    """Read once per batch: the rules in force, the time, KB articles, the rating secret."""

    rules: RuleSet
    now: datetime
    kb_articles: tuple[Article, ...]
    rating_secret: str | None


@dataclass
class _Entry:
    """One message of a batch: as received, where from, and as read."""

    mail: IncomingMail
    source: SourceInfo
    parsed: ParsedMessage | StageError
    screening: Screening | None = None
    bounce: BounceReport | None = None
    keys: ThreadKeys = field(default_factory=lambda: ThreadKeys([], []))  # found once


def _incoming(raw: Raw) -> IncomingMail:
    return raw if isinstance(raw, IncomingMail) else IncomingMail.from_bytes(raw)


def _visible(decision: Decision) -> bool:
    """The requester sees an agent's words only as our relayed copy, never the original."""
    return not decision.internal and decision.author is not Author.AGENT


_MERGE = re.compile("#merge", re.IGNORECASE)  # a scan, not a lowered copy of every body


def _merge_targets(entries: list[_Entry], prefix: str) -> set[str]:
    """Tickets named by `#merge REF` commands, loaded so the deciding step can check them."""
    refs = set()
    for entry in entries:
        if isinstance(entry.parsed, ParsedMessage) and _MERGE.search(entry.parsed.text):
            for command in parse_commands(entry.parsed.text).named("merge"):
                for number in subject_ticket_numbers(f"[{command.argument}]", prefix):
                    refs.add(format_token(prefix, number).upper())
    return refs
