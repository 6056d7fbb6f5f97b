"""process_one(raw, source): parse, screen, thread, decide, store, outbox; one transaction.

A batch shares one transaction; each message runs in its own savepoint, so one bad
message is quarantined without spoiling the rest, and nothing is acknowledged to a
source before the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.config import Config
from maildesk.decide import DecideContext, Decision, Notice, decide
from maildesk.errors import ParseError, TemporaryFailure
from maildesk.outbox import Outbox, ThreadContext, auto_replies_since, one_hour_before
from maildesk.parse import ParsedMessage, parse_message
from maildesk.rules import RuleFacts, RuleSet
from maildesk.screen import screen_message
from maildesk.store.blobs import BlobStore
from maildesk.store.models import Message, Receipt, Ticket
from maildesk.store.quarantine import quarantine_message
from maildesk.store.tickets import Applied, apply_decision, find_ticket, snapshot
from maildesk.threading import thread_keys

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
BatchHook = Callable[[Session, list["IngestResult"]], None]


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

    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        rules: Callable[[], RuleSet],
        outbox: Outbox,
        clock: Clock = utcnow,
    ):
        self.config = config
        self.sessions = sessions
        self.blobs = blobs
        self.rules = rules
        self.outbox = outbox
        self.clock = clock
        tickets = config.tickets
        self.own_addresses = frozenset(
            a.lower() for a in (tickets.support_address, tickets.comment_address) if a
        ) | frozenset(m.username.lower() for m in config.mailboxes if "@" in m.username)

    def process_one(self, raw: bytes, source: SourceInfo | None = None) -> IngestResult:
        """Ingest one message in its own transaction."""
        return self.process_batch([(raw, source or SourceInfo())])[0]

    def process_batch(
        self,
        items: Sequence[tuple[bytes, SourceInfo]],
        *,
        in_transaction: BatchHook | None = None,
    ) -> list[IngestResult]:
        """Ingest messages in one transaction; raises TemporaryFailure if the commit fails.

        `in_transaction(session, results)` runs last inside the same transaction (a source's
        checkpoint); whatever it raises rolls the whole batch back.
        """
        try:
            with self.sessions() as session, session.begin():
                results = [self._guarded(session, raw, source) for raw, source in items]
                if in_transaction is not None:
                    in_transaction(session, results)
                self.blobs.sync()
        except TemporaryFailure:
            raise
        except Exception as exc:
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                raise TemporaryFailure(f"database unavailable: {exc.orig}") from exc
            raise
        return results

    def _guarded(self, session: Session, raw: bytes, source: SourceInfo) -> IngestResult:
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
        self, session: Session, raw: bytes, source: SourceInfo, stage: str, reason: str
    ) -> IngestResult:
        with session.begin_nested():
            entry = quarantine_message(
                session, self.blobs, raw, source.source, stage, reason, self.clock()
            )
            self._record_receipt(session, source, None, "quarantined")
        return IngestResult("quarantined", quarantine_id=entry.id, reason=reason)

    def _process(self, session: Session, raw: bytes, source: SourceInfo) -> IngestResult:
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
        self.blobs.put(raw, msg.sha256)
        decision = self.decide(session, msg, now, default_queue=source.queue)
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

    def _parse(self, raw: bytes) -> ParsedMessage:
        try:
            return parse_message(raw)
        except ParseError as exc:
            raise StageError("parse", str(exc)) from exc
        except Exception as exc:
            raise StageError("parse", f"parser failed: {type(exc).__name__}: {exc}") from exc

    def decide(
        self, session: Session, msg: ParsedMessage, now: datetime, default_queue: str | None = None
    ) -> Decision:
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
            default_queue=default_queue,
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
        self, session: Session, raw: bytes, source: SourceInfo
    ) -> IngestResult | None:
        try:
            msg = parse_message(raw)
        except ParseError:
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
