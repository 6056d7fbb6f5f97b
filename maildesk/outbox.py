"""The transactional outbox: notifications rendered and stored with the change that caused them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maildesk.compose import (
    AUTO_GENERATED,
    AUTO_REPLIED,
    Envelope,
    compose,
    decode_root,
    new_message_id,
)
from maildesk.config import Config
from maildesk.conversation_index import new_root
from maildesk.decide import Notice
from maildesk.parse import Address
from maildesk.render import Renderer
from maildesk.store.models import OutboxEntry, ThreadRef, Ticket


@dataclass(frozen=True)
class ThreadContext:
    """The Message-IDs a notification answers and refers to."""

    in_reply_to: str | None
    references: list[str]


class Outbox:
    """Queues notifications in the caller's transaction; a sender delivers them later."""

    def __init__(self, config: Config, renderer: Renderer):
        self.config = config
        self.renderer = renderer

    def enqueue(
        self,
        session: Session,
        ticket: Ticket,
        notice: Notice,
        thread: ThreadContext,
        now: datetime,
        context: dict[str, Any],
        *,
        replying: bool = True,
    ) -> list[OutboxEntry]:
        """Render `notice` and add one outbox row per To recipient (agents) or one in all.

        `replying` says the notice answers a message (Auto-Submitted: auto-replied)
        rather than a timer (auto-generated).
        """
        groups = [[a] for a in notice.to] if notice.audience == "agents" else [notice.to]
        if len(groups) > 1 and notice.message_id:
            raise ValueError("a fixed Message-ID can only go to one group of recipients")
        entries = []
        for to in groups:
            if not to:
                continue
            entry = self._entry(session, ticket, notice, to, thread, now, context, replying)
            entries.append(entry)
        return entries

    def _entry(
        self,
        session: Session,
        ticket: Ticket,
        notice: Notice,
        to: list[Address],
        thread: ThreadContext,
        now: datetime,
        context: dict[str, Any],
        replying: bool,
    ) -> OutboxEntry:
        tickets = self.config.tickets
        rendered = self.renderer.render(notice.template, ticket.language, context)
        support = Address(tickets.support_name, tickets.support_address)
        on_behalf = notice.from_agent or notice.on_behalf_of
        sender = support
        if on_behalf:
            name = on_behalf.name or on_behalf.address
            sender = Address(f"{name} via {tickets.support_name}", support.address)
        message_id = notice.message_id or new_message_id(ticket.ref, tickets.id_domain)
        subject = rendered.subject
        if f"[{ticket.ref}]".lower() not in subject.lower():
            subject = f"[{ticket.ref}] {subject}"  # the token is how replies find the ticket
        cc = notice.cc if notice.audience == "requester" else []
        references = [r for r in thread.references if r != message_id]
        automatic = AUTO_REPLIED if replying else AUTO_GENERATED
        envelope = Envelope(
            sender=sender,
            to=to,
            cc=cc,
            reply_to=support,
            subject=subject,
            message_id=message_id,
            in_reply_to=thread.in_reply_to,
            references=references,
            date=now,
            auto_submitted=automatic if notice.automatic else None,
            ticket_ref=ticket.ref,
            loop_token=tickets.id_domain,
            thread_root=thread_root(ticket),
            thread_depth=len(references),
            language=ticket.language,
        )
        raw = compose(envelope, rendered).as_bytes()
        entry = OutboxEntry(
            created_at=now,
            ticket_id=ticket.id,
            template=notice.template,
            audience=notice.audience,
            automatic=notice.automatic,
            to_addr=to[0].address,
            recipients=list(dict.fromkeys(a.address for a in [*to, *cc])),
            envelope_from=tickets.support_address,
            message_id=message_id,
            subject=subject,
            raw=raw,
            status="pending",
            attempts=0,
            next_attempt_at=now,
        )
        session.add(entry)
        session.add(
            ThreadRef(
                message_id=message_id,
                ticket_id=ticket.id,
                ours=True,
                visible=notice.audience == "requester",
                created_at=now,
            )
        )
        return entry


def thread_root(ticket: Ticket) -> bytes:
    """The ticket's Outlook conversation root: adopted from the request, or made from it."""
    return decode_root(ticket.thread_index) or new_root(ticket.created_at, ticket.message_id)


def auto_replies_since(session: Session, address: str, since: datetime) -> int:
    """How many automatic notifications went to `address` since `since` (for rate limits)."""
    query = select(func.count(OutboxEntry.id)).where(
        OutboxEntry.to_addr == address,
        OutboxEntry.automatic.is_(True),
        OutboxEntry.audience == "requester",
        OutboxEntry.created_at >= since,
    )
    return session.scalar(query) or 0


def one_hour_before(now: datetime) -> datetime:
    return now - timedelta(hours=1)
