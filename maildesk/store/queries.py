"""Read-only views of tickets for the CLI and its stable JSON output."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from maildesk.common.errors import NotFound
from maildesk.common.json_time import json_time
from maildesk.store import listing
from maildesk.store.models import Message, OutboxEntry, Ticket


def ticket_summary(ticket: Ticket, message_count: int) -> dict[str, Any]:
    """The fields of `tickets list --json` for a loaded ticket."""
    return listing.ticket_summary(
        {column: getattr(ticket, column) for column in listing.SUMMARY_COLUMNS}, message_count
    )


def list_tickets(
    session: Session,
    *,
    status: str | None = None,
    queue: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """`tickets list` in the session's transaction (the query lives in store.listing)."""
    connection = session.connection()
    return listing.list_tickets(
        connection.connection.driver_connection,
        connection.dialect.name,
        status=status,
        queue=queue,
        limit=limit,
    )


def get_ticket(session: Session, ref: str) -> Ticket:
    """A ticket by reference (`MD-42`, case-insensitive); NotFound otherwise."""
    ticket = session.scalars(
        select(Ticket)
        .where(func.upper(Ticket.ref) == ref.strip().upper())
        .options(
            selectinload(Ticket.messages).selectinload(Message.attachments),
            selectinload(Ticket.events),
            selectinload(Ticket.participants),
        )
    ).first()
    if ticket is None:
        raise NotFound(f"no ticket {ref}; see `maildesk tickets list`")
    return ticket


def ticket_detail(session: Session, ref: str) -> dict[str, Any]:
    """The fields of `tickets show --json`: the summary plus messages, events and more."""
    ticket = get_ticket(session, ref)
    detail = ticket_summary(ticket, len(ticket.messages))
    merged = session.get(Ticket, ticket.merged_into_id) if ticket.merged_into_id else None
    linked = session.get(Ticket, ticket.linked_from_id) if ticket.linked_from_id else None
    detail.update(
        {
            "requester_name": ticket.requester_name,
            "language": ticket.language,
            "message_id": ticket.message_id,
            "rules_fired": list(ticket.rules_fired or []),
            "first_response_at": json_time(ticket.first_response_at),
            "resolved_at": json_time(ticket.resolved_at),
            "closed_at": json_time(ticket.closed_at),
            "sla_policy": ticket.sla_policy,
            "first_response_due": json_time(ticket.first_response_due),
            "resolution_due": json_time(ticket.resolution_due),
            "merged_into": merged.ref if merged else None,
            "linked_from": linked.ref if linked else None,
            "spam": ticket.spam,
            "participants": [
                {"address": p.address, "name": p.name, "role": p.role, "bouncing": p.bouncing}
                for p in ticket.participants
            ],
            "messages": [_message(m) for m in ticket.messages],
            "events": [
                {
                    "at": json_time(e.at),
                    "actor": e.actor,
                    "kind": e.kind,
                    "old": e.old,
                    "new": e.new,
                    "reason": e.reason,
                }
                for e in ticket.events
            ],
            "notifications": [
                {
                    "message_id": o.message_id,
                    "template": o.template,
                    "to": list(o.recipients),
                    "subject": o.subject,
                    "status": o.status,
                    "created_at": json_time(o.created_at),
                    "sent_at": json_time(o.sent_at),
                }
                for o in session.scalars(
                    select(OutboxEntry)
                    .where(OutboxEntry.ticket_id == ticket.id)
                    .order_by(OutboxEntry.id)
                )
            ],
        }
    )
    return detail


def _message(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "message_id": m.message_id,
        "direction": m.direction,
        "author_kind": m.author_kind,
        "kind": m.kind,
        "internal": m.internal,
        "from": m.from_addr,
        "from_name": m.from_name,
        "to": list(m.to_addrs or []),
        "cc": list(m.cc_addrs or []),
        "subject": m.subject,
        "date": json_time(m.date),
        "received_at": json_time(m.created_at),
        "text": m.text_body,
        "has_html": m.html_body is not None,
        "raw_sha256": m.raw_sha256,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in m.attachments
        ],
    }
