"""process_one(raw, source): parse, screen, thread, decide, store, outbox; one transaction.

A batch shares one transaction; each message runs in its own savepoint, so one bad
message is quarantined without spoiling the rest, and nothing is acknowledged to a
source before the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from maildesk.bounce import BounceReport, read_bounce
from maildesk.config import Config
from maildesk.decide import DecideContext, Decision, decide
from maildesk.domain import Author
from maildesk.errors import ParseError, TemporaryFailure
from maildesk.notifications import Notifier, notification_context
from maildesk.outbox import Outbox, auto_replies_since, one_hour_before
from maildesk.parse import ParsedMessage, parse_message
from maildesk.rules import RuleFacts, RuleSet
from maildesk.screen import MailClass, Screening, screen_message
from maildesk.store.blobs import BlobStore
from maildesk.store.bounces import clear_bouncing, record_bounce
from maildesk.store.models import Message, OutboxEntry, Receipt, Ticket
from maildesk.store.quarantine import quarantine_message
from maildesk.store.tickets import Applied, apply_decision, find_ticket, snapshot
from maildesk.threading import ThreadKeys, subject_ticket_numbers, thread_keys

__all__ = ["IngestResult", "Pipeline", "SourceInfo", "notification_context"]

log = logging.getLogger(__name__)

# An auto-reply that names no ticket belongs to what we last sent its sender this recently.
AUTO_REPLY_WINDOW = timedelta(days=7)

Clock = Callable[[], datetime]


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
        self.notifier = Notifier(config, outbox)
        self.clock = clock
        tickets = config.tickets
        self.own_addresses = frozenset(
            a.lower() for a in (tickets.support_address, tickets.comment_address) if a
        ) | frozenset(m.username.lower() for m in config.mailboxes if "@" in m.username)

    def process_one(self, raw: bytes, source: SourceInfo | None = None) -> IngestResult:
        """Ingest one message in its own transaction."""
        return self.process_batch([(raw, source or SourceInfo())])[0]

    def process_batch(self, items: Sequence[tuple[bytes, SourceInfo]]) -> list[IngestResult]:
        """Ingest messages in one transaction; raises TemporaryFailure if the commit fails."""
        try:
            with self.sessions() as session, session.begin():
                results = [self._guarded(session, raw, source) for raw, source in items]
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
        screening = self.screen(msg)
        bounce = (
            read_bounce(raw, own_domain=self.config.tickets.id_domain)
            if screening.kind is MailClass.BOUNCE
            else None
        )
        decision = self.decide(session, msg, now, screening=screening, bounce=bounce)
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
        if bounce is not None:
            record_bounce(session, applied.ticket, bounce, msg.from_addr or "mailer-daemon", now)
        elif not screening.automatic and msg.from_addr:
            clear_bouncing(session, applied.ticket, msg.from_addr, now)
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

    def screen(self, msg: ParsedMessage) -> Screening:
        """Is `msg` an auto-reply, a bounce, list mail or our own mail coming back?"""
        return screen_message(
            msg, own_domain=self.config.tickets.id_domain, own_addresses=self.own_addresses
        )

    def decide(
        self,
        session: Session,
        msg: ParsedMessage,
        now: datetime,
        *,
        screening: Screening | None = None,
        bounce: BounceReport | None = None,
    ) -> Decision:
        """Load the facts `decide` needs, then call it (pure)."""
        prefix = self.config.tickets.prefix
        screening = screening or self.screen(msg)
        ticket = self._bounced_ticket(session, bounce) if bounce else None
        if ticket is None:
            ticket = find_ticket(session, thread_keys(msg, prefix), prefix)
        if ticket is None and screening.kind is MailClass.AUTO_REPLY and msg.from_addr:
            ticket = self._recently_notified(session, msg.from_addr, now)
        state = snapshot(session, ticket) if ticket is not None else None
        tickets = self.config.tickets
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

    def _bounced_ticket(self, session: Session, bounce: BounceReport) -> Ticket | None:
        """The ticket a bounce is about: by the returned Message-ID, else its ticket header."""
        prefix = self.config.tickets.prefix
        ref = bounce.ticket_ref
        numbers = subject_ticket_numbers(f"[{ref}]", prefix) if ref else []
        ids = [bounce.original_message_id] if bounce.original_message_id else []
        if not numbers and not ids:
            return None
        by_id = find_ticket(session, ThreadKeys([], ids), prefix) if ids else None
        return by_id or find_ticket(session, ThreadKeys(numbers, []), prefix)

    def _recently_notified(self, session: Session, address: str, now: datetime) -> Ticket | None:
        """The ticket we last wrote to `address` about, for auto-replies that quote nothing."""
        ticket_id = session.scalar(
            select(OutboxEntry.ticket_id)
            .where(
                OutboxEntry.to_addr == address,
                OutboxEntry.created_at >= now - AUTO_REPLY_WINDOW,
                OutboxEntry.ticket_id.is_not(None),
            )
            .order_by(OutboxEntry.id.desc())
            .limit(1)
        )
        return session.get(Ticket, ticket_id) if ticket_id is not None else None

    def _enqueue_notices(
        self,
        session: Session,
        applied: Applied,
        decision: Decision,
        msg: ParsedMessage,
        now: datetime,
    ) -> list[str]:
        if not decision.notices:
            return []
        from_requester_side = decision.author in (Author.REQUESTER, Author.PARTICIPANT)
        entries = self.notifier.queue(
            session,
            applied.ticket,
            decision.notices,
            now,
            msg=msg,
            requester_saw_msg=from_requester_side and not decision.internal,
        )
        return [e.message_id for e in entries]

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
