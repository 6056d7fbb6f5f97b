"""A ticket's latest mail from its customer side, for an agent who takes the ticket over."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.decide.decision import LastMessage
from maildesk.store.models import Message

_CUSTOMER_SIDE = ("requester", "participant")


def last_customer_message(session: Session, ticket_id: int) -> LastMessage | None:
    """The newest mail the requester or a participant wrote on the ticket (not notes)."""
    row = session.execute(
        select(Message.from_name, Message.from_addr, Message.date, Message.text_body)
        .where(
            Message.ticket_id == ticket_id,
            Message.author_kind.in_(_CUSTOMER_SIDE),
            Message.internal.is_(False),
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    name, address, date, text = row
    return LastMessage(f"{name} <{address}>" if name else address, date, text or "")
