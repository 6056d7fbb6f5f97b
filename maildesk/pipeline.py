"""process_one(raw, source): parse, screen, thread, decide, store, outbox; one transaction.

A batch shares one transaction; each message runs in its own savepoint, so one bad
message is quarantined without spoiling the rest, and nothing is acknowledged to a
source before the commit.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.config import Config
from maildesk.decide import DecideContext, Decision, Notice, decide
from maildesk.errors import ParseError, ProcessingTimeout, TemporaryFailure
from maildesk.incoming import IncomingMail
from maildesk.largemail import SkeletonTooLarge, cut_skeleton, expand_stored_tnef
from maildesk.outbox import Outbox, ThreadContext, auto_replies_since, one_hour_before
from maildesk.parse import ParsedMessage, ParseLimits, human_size
from maildesk.rules import RuleFacts, RuleSet
from maildesk.sandbox import InlineParser, MessageParser, shared_sandbox
from maildesk.screen import screen_message
from maildesk.store.blobs import BlobStore
from maildesk.store.models import Message, Receipt, Ticket
from maildesk.store.quarantine import quarantine_message
from maildesk.store.tickets import Applied, apply_decision, find_ticket, snapshot
from maildesk.threading import thread_keys

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Raw = bytes | IncomingMail


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
    def has_uid(self) -> bool:
        return self.uidvalidity is not None and self.uid is not None


@dataclass
class IngestResult:
    """What happened to one message."""

    outcome: str  # created, added, duplicate, quarantined
    ticket_ref: str | None = None
    message_pk: int | None = None
    quarantine_id: int | None = None
    reason: str = ""
    notifications: list[str] = field(default_factory=list)  # outbox message ids

    @property
    def stored(self) -> bool:
        return self.outcome in ("created", "added", "duplicate")


class StageError(Exception):
    """An error in one pipeline stage; the stage name goes into the quarantine entry."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


class Pipeline:
    """The ingest pipeline, wired with its store, rules, outbox and clock."""

    # Messages bigger than this are read through a skeleton (see largemail.py), and
    # their part bodies above `spill_bytes` go straight to the blob store.
    skeleton_from: int = 4 << 20
    spill_bytes: int = 256 << 10

    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        rules: Callable[[], RuleSet],
        outbox: Outbox,
        clock: Clock = utcnow,
        parser: MessageParser | None = None,
    ):
        self.config = config
        self.sessions = sessions
        self.blobs = blobs
        self.rules = rules
        self.outbox = outbox
        self.clock = clock
        self.parser = parser or (
            shared_sandbox() if config.limits.isolate_parser else InlineParser()
        )
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
        mail = self.receive(file)
        try:
            return self.process_one(mail, source)
        finally:
            mail.discard()

    def receive(self, stream: BinaryIO) -> IncomingMail:
        """Read a message from `stream`: in memory when small, else into a spool file.

        The caller calls `discard()` on the result when done with it.
        """
        limits = self.config.limits
        keep = limits.max_message_bytes if limits.oversized_keep == "headers" else None
        return IncomingMail.spool(
            stream, self.blobs, memory_limit=self.skeleton_from, keep_limit=keep
        )

    def process_batch(self, items: Sequence[tuple[Raw, SourceInfo]]) -> list[IngestResult]:
        """Ingest messages in one transaction; raises TemporaryFailure if the commit fails."""
        mails = [(_incoming(raw), source) for raw, source in items]
        try:
            with self.sessions() as session, session.begin():
                results = [self._guarded(session, mail, source) for mail, source in mails]
                self.blobs.sync()
        except TemporaryFailure:
            raise
        except Exception as exc:
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                raise TemporaryFailure(f"database unavailable: {exc.orig}") from exc
            raise
        return results

    def _guarded(self, session: Session, raw: IncomingMail, source: SourceInfo) -> IngestResult:
        try:
            with session.begin_nested():
                return self._process(session, raw, source)
        except IntegrityError:
            # Another daemon stored the same message first (unique Message-ID).
            with session.begin_nested():
                duplicate = self._already_stored(session, raw, source)
                if duplicate is not None:
                    return duplicate
            return self._quarantine(session, raw, source, "store", "integrity error while storing")
        except Exception as exc:
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                raise
            stage = exc.stage if isinstance(exc, StageError) else "process"
            reason = str(exc) if isinstance(exc, StageError) else f"{type(exc).__name__}: {exc}"
            log.warning("quarantined message from %s at stage %s: %s", source.source, stage, reason)
            return self._quarantine(session, raw, source, stage, reason)

    def _quarantine(
        self, session: Session, raw: IncomingMail, source: SourceInfo, stage: str, reason: str
    ) -> IngestResult:
        with session.begin_nested():
            entry = quarantine_message(
                session, self.blobs, raw, source.source, stage, reason, self.clock()
            )
            self._record_receipt(session, source, None, "quarantined")
        return IngestResult("quarantined", quarantine_id=entry.id, reason=reason)

    def _process(self, session: Session, raw: IncomingMail, source: SourceInfo) -> IngestResult:
        if source.has_uid and self._has_receipt(session, source):
            return IngestResult(
                "duplicate", reason=f"{source.source} UID {source.uid} already ingested"
            )
        msg = self._parse(raw)
        duplicate = self._find_duplicate(session, msg)
        if duplicate is not None:
            self._record_receipt(session, source, msg.dedup_key, "duplicate")
            return duplicate
        now = self.clock()
        self._keep_raw(raw, msg)
        decision = self.decide(session, msg, now)
        applied = apply_decision(
            session,
            decision,
            msg,
            prefix=self.config.tickets.prefix,
            id_domain=self.config.tickets.id_domain,
            source=source.source,
            blobs=self.blobs,
            now=now,
        )
        sent = self._enqueue_notices(session, applied, decision, msg, now)
        self._record_receipt(session, source, msg.dedup_key, "stored")
        return IngestResult(
            "created" if applied.created else "added",
            ticket_ref=applied.ticket.ref,
            message_pk=applied.message.id,
            notifications=sent,
        )

    def _parse(self, mail: IncomingMail) -> ParsedMessage:
        try:
            if mail.size > self.config.limits.max_message_bytes:
                return self._headers_only(mail, self._too_big(mail))
            if mail.size <= self.skeleton_from:
                msg = self._parse_bytes(mail.bytes())
            else:
                msg = self._parse_large(mail)
        except (ParseError, ProcessingTimeout) as exc:
            raise StageError("parse", str(exc)) from exc
        except Exception as exc:
            raise StageError("parse", f"parser failed: {type(exc).__name__}: {exc}") from exc
        if not msg.oversized:
            msg.sha256, msg.size = mail.sha256, mail.size
        return msg

    def _parse_limits(self) -> ParseLimits:
        return ParseLimits(max_attachment_bytes=self.config.limits.max_attachment_bytes)

    def _parse_bytes(self, raw: bytes, spilled: Any = None) -> ParsedMessage:
        timeout = self.config.limits.processing_seconds
        return self.parser.parse(raw, self._parse_limits(), spilled, timeout)

    def _parse_large(self, mail: IncomingMail) -> ParsedMessage:
        """Cut big bodies out to the blob store as they stream by; parse what is left."""
        try:
            with mail.open() as fh:
                skeleton = cut_skeleton(
                    fh,
                    self.blobs,
                    spill_bytes=self.spill_bytes,
                    max_attachment_bytes=self.config.limits.max_attachment_bytes,
                    body_spill_bytes=self._parse_limits().max_body_bytes,
                )
        except SkeletonTooLarge as exc:
            return self._headers_only(mail, f"{exc}, too big to read")
        msg = self._parse_bytes(skeleton.data, skeleton.spilled)
        msg.defects.extend(skeleton.defects)
        expand_stored_tnef(msg, self.blobs, self.config.limits.max_attachment_bytes)
        return msg

    def _too_big(self, mail: IncomingMail) -> str:
        limit = human_size(self.config.limits.max_message_bytes)
        return f"the message is {human_size(mail.size)}, over the {limit} limit"

    def _drops_body(self, mail: IncomingMail) -> bool:
        limits = self.config.limits
        return mail.size > limits.max_message_bytes and limits.oversized_keep == "headers"

    def _headers_only(self, mail: IncomingMail, why: str) -> ParsedMessage:
        """A message read by its headers alone; its text says why."""
        head = mail.head()
        msg = self._parse_bytes(head)
        kept = "Only its headers were kept." if self._drops_body(mail) else "It is stored as is."
        msg.oversized = why
        msg.text = f"[maildesk: {why[:1].upper()}{why[1:]}; its content was not read. {kept}]"
        msg.html = None
        msg.attachments, msg.dropped = [], []
        msg.size = mail.size
        msg.sha256 = hashlib.sha256(head).hexdigest() if self._drops_body(mail) else mail.sha256
        return msg

    def _keep_raw(self, mail: IncomingMail, msg: ParsedMessage) -> None:
        """Store the raw message (or, for oversized_keep: headers, only its headers)."""
        if self._drops_body(mail):
            self.blobs.put(mail.head(), msg.sha256)
        else:
            mail.store(self.blobs)

    def decide(self, session: Session, msg: ParsedMessage, now: datetime) -> Decision:
        """Load the facts `decide` needs, then call it (pure)."""
        prefix = self.config.tickets.prefix
        ticket = find_ticket(session, thread_keys(msg, prefix), prefix)
        state = snapshot(session, ticket) if ticket is not None else None
        tickets = self.config.tickets
        screening = screen_message(
            msg, own_domain=tickets.id_domain, own_addresses=self.own_addresses
        )
        recent = (
            auto_replies_since(session, msg.from_addr, one_hour_before(now))
            if screening.may_auto_reply
            else 0
        )
        ctx = DecideContext(
            tickets=tickets,
            rules=self.rules(),
            now=now,
            screening=screening,
            facts=RuleFacts(now=now),
            auto_replies_last_hour=recent,
            auto_reply_limit=self.config.limits.auto_replies_per_hour,
            own_addresses=self.own_addresses,
        )
        return decide(msg, state, ctx)

    def _enqueue_notices(
        self,
        session: Session,
        applied: Applied,
        decision: Decision,
        msg: ParsedMessage,
        now: datetime,
    ) -> list[str]:
        ticket = applied.ticket
        sent: list[str] = []
        if not decision.notices:
            return sent
        visible = list(snapshot(session, ticket).thread_ids)
        for notice in decision.notices:
            if applied.created and notice.audience == "requester" and not sent:
                notice.message_id = ticket.message_id  # the acknowledgement is the thread's root
            thread = self._thread_for(visible, msg, decision, notice)
            context = notification_context(ticket, notice, msg, self.config)
            entries = self.outbox.enqueue(session, ticket, notice, thread, now, context)
            sent.extend(e.message_id for e in entries)
        return sent

    @staticmethod
    def _thread_for(
        visible: list[str], msg: ParsedMessage, decision: Decision, notice: Notice
    ) -> ThreadContext:
        """In-Reply-To the message being answered; References the thread the reader has seen."""
        shown = notice.audience == "agents" or not decision.internal
        answering = msg.message_id if msg.message_id and shown else None
        refs = [r for r in visible if r != answering]
        if answering:
            refs.append(answering)
        return ThreadContext(in_reply_to=answering or (refs[-1] if refs else None), references=refs)

    def _find_duplicate(self, session: Session, msg: ParsedMessage) -> IngestResult | None:
        row = session.execute(
            select(Message.id, Ticket.ref)
            .join(Ticket, Ticket.id == Message.ticket_id)
            .where(Message.dedup_key == msg.dedup_key)
        ).first()
        if row is None:
            return None
        return IngestResult(
            "duplicate",
            ticket_ref=row.ref,
            message_pk=row.id,
            reason=f"already stored ({msg.dedup_key})",
        )

    def _already_stored(
        self, session: Session, raw: IncomingMail, source: SourceInfo
    ) -> IngestResult | None:
        try:
            msg = self._parse(raw)
        except StageError:
            return None
        return self._find_duplicate(session, msg)

    def _has_receipt(self, session: Session, source: SourceInfo) -> bool:
        return (
            session.scalar(
                select(Receipt.id).where(
                    Receipt.source == source.source,
                    Receipt.uidvalidity == source.uidvalidity,
                    Receipt.uid == source.uid,
                )
            )
            is not None
        )

    def _record_receipt(
        self, session: Session, source: SourceInfo, key: str | None, outcome: str
    ) -> None:
        if not source.has_uid or self._has_receipt(session, source):
            return
        assert source.uidvalidity is not None and source.uid is not None
        session.add(
            Receipt(
                source=source.source,
                uidvalidity=source.uidvalidity,
                uid=source.uid,
                dedup_key=key,
                outcome=outcome,
                at=self.clock(),
            )
        )


def _incoming(raw: Raw) -> IncomingMail:
    return raw if isinstance(raw, IncomingMail) else IncomingMail.from_bytes(raw)


def notification_context(
    ticket: Ticket, notice: Notice, msg: ParsedMessage | None, config: Config
) -> dict[str, Any]:
    """The variables every notification template can use."""
    tickets = config.tickets
    return {
        "ticket": {
            "ref": ticket.ref,
            "subject": ticket.subject,
            "status": ticket.status,
            "priority": ticket.priority,
            "queue": ticket.queue,
            "assignee": ticket.assignee or "",
            "requester": ticket.requester,
            "requester_name": ticket.requester_name or ticket.requester,
            "created_at": ticket.created_at,
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
