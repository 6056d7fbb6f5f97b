"""The files stored on a ticket: for `#send-attachments`, for telling an agent's own
files from the ones they quoted back, and for `maildesk tickets attachment`."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maildesk.decide.decision import FileRef
from maildesk.store.models import Attachment, Message, Ticket


def ticket_files(session: Session, ticket_id: int) -> list[FileRef]:
    """Every file of the ticket's messages, oldest first."""
    rows = session.execute(
        select(Attachment)
        .join(Message, Attachment.message_id == Message.id)
        .where(Message.ticket_id == ticket_id)
        .order_by(Message.id, Attachment.id)
    ).scalars()
    return [
        FileRef(a.sha256, a.filename, a.content_type, a.size, a.content_id, a.inline) for a in rows
    ]


def files_named(
    session: Session, ref: str, name: str, message_id: int | None = None
) -> tuple[bool, list[tuple[int, FileRef]]]:
    """(whether ticket `ref` exists, its files called `name` as (message id, file))."""
    ticket_id = session.scalar(select(Ticket.id).where(func.upper(Ticket.ref) == ref.upper()))
    if ticket_id is None:
        return False, []
    query = (
        select(Attachment)
        .join(Message, Attachment.message_id == Message.id)
        .where(Message.ticket_id == ticket_id, func.lower(Attachment.filename) == name.lower())
        .order_by(Message.id, Attachment.id)
    )
    if message_id is not None:
        query = query.where(Message.id == message_id)
    return True, [
        (a.message_id, FileRef(a.sha256, a.filename, a.content_type, a.size))
        for a in session.execute(query).scalars()
    ]
