"""Reading ticket snapshots for the deciding step and applying its Decision."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from maildesk.decide import Change, Decision
from maildesk.domain import Author, Priority, Status, TicketState
from maildesk.filenames import safe_filename
from maildesk.parse import Address, ParsedMessage
from maildesk.store.blobs import BlobStore
from maildesk.store.models import (
    Attachment,
    Event,
    Message,
    Participant,
    ThreadRef,
    Ticket,
)
from maildesk.threading import ThreadKeys


def find_ticket(session: Session, keys: ThreadKeys, prefix: str) -> Ticket | None:
    """The ticket named by the subject token, else by In-Reply-To/References, else None."""
    ticket = None
    if keys.ticket_numbers:
        refs = [f"{prefix}-{n}" for n in keys.ticket_numbers]
        found = {
            t.ref.upper(): t for t in session.scalars(select(Ticket).where(Ticket.ref.in_(refs)))
        }
        ticket = next((found[r.upper()] for r in refs if r.upper() in found), None)
    if ticket is None and keys.reference_ids:
        rows = session.execute(
            select(ThreadRef.message_id, ThreadRef.ticket_id).where(
                ThreadRef.message_id.in_(keys.reference_ids[:100])
            )
        ).all()
        by_id = dict(rows)
        ticket_id = next((by_id[m] for m in keys.reference_ids if m in by_id), None)
        if ticket_id is not None:
            ticket = session.get(Ticket, ticket_id)
    return follow_merges(session, ticket)


def follow_merges(session: Session, ticket: Ticket | None) -> Ticket | None:
    """The ticket a merged ticket was folded into (transitively)."""
    seen: set[int] = set()
    while ticket is not None and ticket.merged_into_id and ticket.id not in seen:
        seen.add(ticket.id)
        ticket = session.get(Ticket, ticket.merged_into_id)
    return ticket


def lock_ticket(session: Session, ticket_id: int) -> Ticket | None:
    """Load a ticket for update, so two daemons never change it at once (PostgreSQL)."""
    query = select(Ticket).where(Ticket.id == ticket_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.scalars(query.options(selectinload(Ticket.participants))).first()


def snapshot(session: Session, ticket: Ticket) -> TicketState:
    """The read-only view of `ticket` that the deciding step gets."""
    thread_ids = session.scalars(
        select(ThreadRef.message_id)
        .where(ThreadRef.ticket_id == ticket.id, ThreadRef.visible.is_(True))
        .order_by(ThreadRef.id)
    ).all()
    merged = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    return TicketState(
        id=ticket.id,
        ref=ticket.ref,
        subject=ticket.subject,
        status=Status(ticket.status),
        priority=Priority(ticket.priority),
        queue=ticket.queue,
        assignee=ticket.assignee,
        requester=ticket.requester,
        requester_name=ticket.requester_name,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        message_id=ticket.message_id,
        participants={p.address: p.role for p in ticket.participants if p.role != "requester"},
        tags=tuple(ticket.tags or ()),
        language=ticket.language,
        thread_ids=tuple(thread_ids),
        merged_into=merged.ref if merged else None,
        first_response_at=ticket.first_response_at,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
        sla_policy=ticket.sla_policy,
        first_response_due=ticket.first_response_due,
        resolution_due=ticket.resolution_due,
    )


@dataclass
class Applied:
    ticket: Ticket
    message: Message
    created: bool


def apply_decision(
    session: Session,
    decision: Decision,
    msg: ParsedMessage,
    *,
    prefix: str,
    id_domain: str,
    source: str,
    blobs: BlobStore,
    now: datetime,
) -> Applied:
    """Write the ticket change, the message, its attachments and the events; no commit."""
    if decision.new_ticket is not None:
        ticket = _create_ticket(session, decision, prefix, id_domain, now)
        created = True
    else:
        assert decision.ticket_id is not None
        ticket = lock_ticket(session, decision.ticket_id)
        if ticket is None:
            raise LookupError(f"ticket {decision.ticket_id} vanished while processing")
        created = False
    for change in decision.changes:
        apply_change(session, ticket, change, decision.actor, now)
    _add_participants(session, ticket, decision.participants)
    for kind, text in decision.notes:
        session.add(
            Event(ticket_id=ticket.id, at=now, actor=decision.actor, kind=kind, reason=text)
        )
    message = _store_message(session, ticket, decision, msg, source, blobs, now)
    _touch(ticket, decision, now)
    return Applied(ticket, message, created)


def _create_ticket(
    session: Session, decision: Decision, prefix: str, id_domain: str, now: datetime
) -> Ticket:
    new = decision.new_ticket
    assert new is not None
    placeholder = uuid.uuid4().hex
    ticket = Ticket(
        ref=f"~{placeholder[:30]}",
        subject=new.subject[:2000],
        status=Status.NEW.value,
        priority=new.priority.value,
        queue=new.queue,
        assignee=new.assignee,
        requester=new.requester.address,
        requester_name=new.requester.name,
        language=new.language,
        tags=list(dict.fromkeys(new.tags)),
        rules_fired=list(decision.rule_hits),
        message_id=f"{placeholder}@{id_domain}",
        thread_index=new.thread_index,
        created_at=now,
        updated_at=now,
        sla_policy=new.sla_policy,
        sla_state={},
        spam=new.spam,
        linked_from_id=new.linked_from,
        reopen_count=0,
    )
    session.add(ticket)
    session.flush()
    ticket.ref = f"{prefix}-{ticket.id}"
    ticket.message_id = f"{ticket.ref.lower()}.{placeholder[:12]}@{id_domain}"
    session.add(
        Participant(
            ticket_id=ticket.id,
            address=new.requester.address,
            name=new.requester.name,
            role="requester",
        )
    )
    hits = f"; rules: {', '.join(decision.rule_hits)}" if decision.rule_hits else ""
    session.add(
        Event(
            ticket_id=ticket.id,
            at=now,
            actor=decision.actor,
            kind="created",
            new=ticket.ref,
            reason=f"new request in queue {new.queue}, priority {new.priority.value}{hits}",
        )
    )
    if new.assignee:
        session.add(
            Event(
                ticket_id=ticket.id,
                at=now,
                actor="rules",
                kind="assignee",
                new=new.assignee,
                reason=f"assigned by rules{hits}",
            )
        )
    return ticket


_TIMESTAMPS = {Status.RESOLVED: "resolved_at", Status.CLOSED: "closed_at"}


def apply_change(
    session: Session, ticket: Ticket, change: Change, actor: str, now: datetime
) -> None:
    """Set one field and log it; 'tag' adds a tag rather than replacing the list."""
    value: Any = change.value
    if change.field == "tag":
        if value in (ticket.tags or []):
            return
        ticket.tags = [*(ticket.tags or []), value]
        old, new = None, str(value)
    else:
        old_value = getattr(ticket, change.field)
        stored = value.value if hasattr(value, "value") else value
        if old_value == stored:
            return
        setattr(ticket, change.field, stored)
        old, new = _text(old_value), _text(stored)
        if change.field == "status":
            _status_side_effects(ticket, Status(stored), Status(old_value), now)
    session.add(
        Event(
            ticket_id=ticket.id,
            at=now,
            actor=actor,
            kind=change.field,
            old=old,
            new=new,
            reason=change.reason,
        )
    )


def _status_side_effects(ticket: Ticket, new: Status, old: Status, now: datetime) -> None:
    stamp = _TIMESTAMPS.get(new)
    if stamp:
        setattr(ticket, stamp, now)
    if old in (Status.RESOLVED, Status.CLOSED) and new in (Status.OPEN, Status.PENDING, Status.NEW):
        ticket.reopen_count = (ticket.reopen_count or 0) + 1
        ticket.resolved_at = None
        ticket.closed_at = None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _add_participants(session: Session, ticket: Ticket, people: list[tuple[Address, str]]) -> None:
    known = {p.address for p in ticket.participants} | {ticket.requester}
    for address, role in people:
        if address.address in known:
            continue
        known.add(address.address)
        participant = Participant(
            ticket_id=ticket.id, address=address.address, name=address.name, role=role
        )
        session.add(participant)
        ticket.participants.append(participant)


def _store_message(
    session: Session,
    ticket: Ticket,
    decision: Decision,
    msg: ParsedMessage,
    source: str,
    blobs: BlobStore,
    now: datetime,
) -> Message:
    message = Message(
        ticket_id=ticket.id,
        dedup_key=msg.dedup_key,
        direction="in",
        author_kind=decision.author.value,
        kind=decision.kind.value,
        internal=decision.internal,
        message_id=msg.message_id,
        in_reply_to=" ".join(msg.in_reply_to) or None,
        references=" ".join(msg.references) or None,
        from_addr=msg.from_addr,
        from_name=msg.sender.name if msg.sender else "",
        to_addrs=[str(a) for a in msg.to],
        cc_addrs=[str(a) for a in msg.cc],
        subject=msg.subject,
        date=msg.date,
        text_body=msg.text,
        html_body=msg.html,
        raw_sha256=msg.sha256,
        raw_size=msg.size,
        source=source,
        screen_reason=decision.screening.reason or None,
        commands=list(decision.commands),
        created_at=now,
    )
    session.add(message)
    session.flush()
    for att in msg.attachments:
        digest = blobs.put(att.data)
        session.add(
            Attachment(
                message_id=message.id,
                filename=safe_filename(att.filename),
                content_type=att.content_type[:255],
                size=att.size,
                sha256=digest,
                content_id=att.content_id,
                inline=att.inline,
            )
        )
    if msg.message_id:
        # The requester sees what agents write only as our relayed copy, never the original.
        visible = not decision.internal and decision.author is not Author.AGENT
        existing = session.scalar(
            select(ThreadRef.id).where(ThreadRef.message_id == msg.message_id)
        )
        if existing is None:
            session.add(
                ThreadRef(
                    message_id=msg.message_id, ticket_id=ticket.id, visible=visible, created_at=now
                )
            )
    return message


def _touch(ticket: Ticket, decision: Decision, now: datetime) -> None:
    ticket.updated_at = now
    if decision.author.value in ("requester", "participant") and not decision.internal:
        ticket.last_customer_at = now
    elif decision.author.value == "agent":
        ticket.last_agent_at = now
